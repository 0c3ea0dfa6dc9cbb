//! The I/O reactor: readiness events from mio (epoll on Linux), turned
//! into task wakeups.
//!
//! There is no reactor thread. The reactor is polled by the pool's workers
//! (see `pool/README.md`, "The reactor"): the idle worker that holds the
//! driver role sleeps in [`Reactor::turn_unless`] (an `epoll_wait` bounded
//! by the next timer deadline) instead of on its parker, and running workers poll
//! it without blocking ([`Reactor::turn_now`]) every few dozen tasks and
//! before they go idle, so a busy runtime handles its events on the workers
//! that run the tasks, with no thread hop. Only one thread polls at a time
//! (`mio::Poll` needs `&mut`): a running worker that finds the poll taken
//! skips it, since whoever holds it dispatches the events. The poll lock is
//! held only to poll and record the events; the tasks are woken after it is
//! released.
//!
//! Each registered source has a [`ScheduledIo`]: its readiness, packed with
//! a tick that counts the events delivered to it, and the wakers of the
//! tasks waiting to read and of those waiting to write (a [`WakerList`] per
//! direction: an event wakes every task waiting in its direction). A task
//! that saw a source ready and then got `WouldBlock` (or read or wrote
//! fewer bytes than it asked, see [`Registration::poll_transfer`]) clears
//! the readiness it saw, and only if no newer event arrived since (the
//! tick is unchanged), so an event is never lost between the check and the
//! clear.

use crate::task::coop;
use std::cell::Cell;
use std::io;
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
    Ordering::SeqCst,
};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::event::Source;
use mio::{Events, Interest, Token};
use parking_lot::{Mutex, MutexGuard};
use slab::Slab;

/// The token of the reactor's own waker.
const WAKER: Token = Token(usize::MAX);

/// A source's token is its slot in `Reactor::sources` in the low
/// `SLOT_BITS` bits, and its registration's generation above them: a slot
/// freed and taken again between a poll and the dispatch of its events
/// (the old registration dropped meanwhile) has a new generation, so the
/// old source's events are dropped rather than delivered to the new one.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: usize = (1 << SLOT_BITS) - 1;
/// The slots a reactor holds: `SLOT_MASK` itself is never one, so that no
/// source's token is `WAKER`.
const MAX_SOURCES: usize = SLOT_MASK;
/// The generations a token holds (they wrap).
const GENERATION_MASK: usize = usize::MAX >> SLOT_BITS;

/// The token of the source in `slot` registered as `generation`.
fn token(slot: usize, generation: usize) -> Token {
    Token((generation & GENERATION_MASK) << SLOT_BITS | slot)
}

/// How many events one turn takes at most.
const EVENTS: usize = 1024;

/// Readiness bits.
const READABLE: usize = 1;
const WRITABLE: usize = 2;
const READ_CLOSED: usize = 4;
const WRITE_CLOSED: usize = 8;
const ERROR: usize = 16;
/// The runtime shut down: set on every source by [`Reactor::shutdown`],
/// never cleared.
const SHUTDOWN: usize = 32;
/// The readiness bits of the word; the rest is the tick.
const READY_MASK: usize = 0xff;
const TICK_SHIFT: u32 = 8;

/// A direction a task waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The readiness bits that end a wait in this direction: a closed or
    /// failed source is "ready" too, so that the operation reports it.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR | SHUTDOWN,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR | SHUTDOWN,
        }
    }
}

/// A readiness seen by a task: what it may clear after a `WouldBlock`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    tick: usize,
    ready: usize,
}

impl ReadyEvent {
    /// Ready, and not the readiness of the event `stale` (the tick of one
    /// an operation already found `WouldBlock` on).
    fn is_ready(self, stale: Option<usize>) -> bool {
        self.ready != 0 && stale != Some(self.tick)
    }

    /// The readiness, or the error of a source whose runtime shut down.
    fn or_shut_down(self) -> io::Result<ReadyEvent> {
        if self.ready & SHUTDOWN != 0 {
            return Err(shut_down());
        }
        Ok(self)
    }
}

/// The error of an operation on a source whose runtime has shut down (or
/// of registering one with it).
fn shut_down() -> io::Error {
    io::Error::other("wq: the runtime this I/O resource belongs to has shut down")
}

/// One source's readiness and waiting tasks.
#[derive(Debug, Default)]
pub(crate) struct ScheduledIo {
    /// The generation of its token (see `SLOT_BITS`), set at registration.
    generation: usize,
    /// `tick << TICK_SHIFT | ready bits`.
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    reader: WakerList,
    writer: WakerList,
}

impl Waiters {
    fn direction(&mut self, direction: Direction) -> &mut WakerList {
        match direction {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }
}

/// The tasks waiting in one direction, as tokio keeps them: several tasks
/// may wait on one source (receivers sharing a UDP socket, acceptors
/// sharing a listener), and an event wakes them all.
///
/// - The poll methods (`AsyncRead`/`AsyncWrite`, `poll_accept`,
///   `poll_read_ready`...) share one slot per direction, whose waker each
///   poll replaces: the caller of a poll method is one task at a time.
/// - Each future of an async method (`recv_from`, `accept`, `readable`...)
///   owns an entry ([`Waiting`]) from its first wait to its drop; a poll
///   replaces the entry's waker.
///
/// So the list holds a waker per waiting future, never more, and none of
/// a dropped one. An event takes the wakers and leaves the entries.
#[derive(Debug, Default)]
struct WakerList {
    poll: Option<Waker>,
    futures: Slab<Option<Waker>>,
}

impl WakerList {
    /// Puts `waker` in `waiter`'s place, replacing what was there.
    fn register(&mut self, waiter: &mut Waiter, waker: &Waker) {
        let place = match waiter {
            Waiter::Poll => &mut self.poll,
            Waiter::Entry(Some(key)) => &mut self.futures[*key],
            Waiter::Entry(key @ None) => {
                *key = Some(self.futures.insert(Some(waker.clone())));
                return;
            }
        };
        match place {
            Some(old) if old.will_wake(waker) => {}
            _ => *place = Some(waker.clone()),
        }
    }

    /// Moves every waiting task's waker to `wakers`.
    fn take_into(&mut self, wakers: &mut Vec<Waker>) {
        wakers.extend(self.poll.take());
        if !self.futures.is_empty() {
            wakers.extend(
                self.futures
                    .iter_mut()
                    .filter_map(|(_, waker)| waker.take()),
            );
        }
    }
}

/// Where a waiting task's waker goes (see [`WakerList`]).
#[derive(Debug)]
pub(crate) enum Waiter {
    /// The poll methods' slot.
    Poll,
    /// A future's own entry, once it has waited.
    Entry(Option<usize>),
}

impl ScheduledIo {
    /// Records an event (new readiness bits, a new tick) and takes the
    /// wakers it satisfies.
    fn set_readiness(&self, ready: usize, wakers: &mut Vec<Waker>) {
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |word| {
            let tick = (word >> TICK_SHIFT).wrapping_add(1);
            Some((tick << TICK_SHIFT) | (word & READY_MASK) | ready)
        });
        // After the readiness is published: a task that registers its
        // waker under this lock re-checks the readiness, so either it sees
        // the new bits or we see its waker.
        let mut waiters = self.waiters.lock();
        if ready & Direction::Read.mask() != 0 {
            waiters.reader.take_into(wakers);
        }
        if ready & Direction::Write.mask() != 0 {
            waiters.writer.take_into(wakers);
        }
    }

    /// Ready in `direction`, or registers `cx`'s waker to be woken when it
    /// is. The readiness of the event whose tick is `stale` does not count:
    /// an operation found `WouldBlock` on it, and what the clear left of it
    /// (a closed bit) would only let the operation fail again.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        waiter: &mut Waiter,
        stale: Option<usize>,
    ) -> Poll<ReadyEvent> {
        let event = self.ready_in(direction);
        if event.is_ready(stale) {
            return Poll::Ready(event);
        }
        let mut waiters = self.waiters.lock();
        waiters.direction(direction).register(waiter, cx.waker());
        // Re-checked under the lock (see `set_readiness`).
        let event = self.ready_in(direction);
        if event.is_ready(stale) {
            return Poll::Ready(event);
        }
        Poll::Pending
    }

    fn ready_in(&self, direction: Direction) -> ReadyEvent {
        let word = self.readiness.load(Acquire);
        ReadyEvent {
            tick: word >> TICK_SHIFT,
            ready: word & direction.mask(),
        }
    }

    /// Clears what `event` saw (an operation then got `WouldBlock`), unless
    /// a newer event arrived meanwhile. The error bit goes too: the
    /// operation has consumed the socket's error (or there was none left),
    /// and a kept one would make every wait end at once. Closed and
    /// shutdown bits stay: they are final.
    pub(crate) fn clear(&self, event: ReadyEvent) {
        let clearable = event.ready & (READABLE | WRITABLE | ERROR);
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |word| {
            (word >> TICK_SHIFT == event.tick).then_some(word & !clearable)
        });
    }

    /// Frees a future's entry (the future is dropped).
    fn remove(&self, direction: Direction, key: usize) {
        let waker = self
            .waiters
            .lock()
            .direction(direction)
            .futures
            .try_remove(key);
        // Dropped unlocked: a task's last waker may drop its future.
        drop(waker);
    }

    /// Wakes whoever waits (the source is going away).
    fn wake_all(&self) {
        let mut wakers = Vec::new();
        {
            let mut waiters = self.waiters.lock();
            waiters.reader.take_into(&mut wakers);
            waiters.writer.take_into(&mut wakers);
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// What a parker needs of a reactor to sleep in it: the real [`Reactor`],
/// or a model of it under loom (`pool/loom_tests.rs`).
pub(crate) trait ReactorPark: Send + Sync + std::fmt::Debug {
    /// Polls, waiting up to `timeout` unless `woken` says not to once the
    /// poll is ours (see [`Reactor::turn_unless`]); returns the tasks woken.
    fn park_turn(&self, timeout: Duration, woken: &dyn Fn() -> bool) -> usize;
    /// Interrupts a poll in progress, or makes the next one return at once.
    fn wake(&self);
}

impl ReactorPark for Reactor {
    fn park_turn(&self, timeout: Duration, woken: &dyn Fn() -> bool) -> usize {
        self.turn_unless(Some(timeout), woken)
    }

    fn wake(&self) {
        Reactor::wake(self);
    }
}

/// What the thread that polls holds.
struct Poller {
    poll: mio::Poll,
    events: Events,
}

thread_local! {
    /// The wakers of this thread's last turn, kept to reuse their
    /// allocation. Taken out for a turn (`Cell::take`), so a wake that
    /// somehow turns the reactor again on this thread finds it empty
    /// rather than borrowed.
    static TURN_WAKERS: Cell<Vec<Waker>> = const { Cell::new(Vec::new()) };
}

/// The reactor of a runtime.
pub(crate) struct Reactor {
    /// The poller and its event buffer: one thread polls at a time.
    poll: Mutex<Poller>,
    registry: mio::Registry,
    waker: mio::Waker,
    sources: Mutex<Slab<Arc<ScheduledIo>>>,
    /// Set by [`shutdown`](Reactor::shutdown), under the `sources` lock:
    /// a registration made after it fails.
    is_shut_down: AtomicBool,
    /// The generation of the next registration's token.
    next_generation: AtomicUsize,
    /// Registered sources, read without the lock.
    registered: AtomicUsize,
    /// Set while a thread waits for the poll to sleep in it (the idle
    /// driver): `turn_now` then leaves the poll to it rather than make it
    /// wait again.
    sleeper_waiting: AtomicBool,
    /// Called after each registration (installed by the pool that drives
    /// the reactor: if every worker is blocked, its observer must poll).
    on_register: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("registered", &self.registered.load(Acquire))
            .finish_non_exhaustive()
    }
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(Reactor {
            poll: Mutex::new(Poller {
                poll,
                events: Events::with_capacity(EVENTS),
            }),
            registry,
            waker,
            sources: Mutex::new(Slab::new()),
            is_shut_down: AtomicBool::new(false),
            next_generation: AtomicUsize::new(0),
            registered: AtomicUsize::new(0),
            sleeper_waiting: AtomicBool::new(false),
            on_register: std::sync::OnceLock::new(),
        })
    }

    /// Waits for events (up to `timeout`, or until [`wake`](Reactor::wake))
    /// and dispatches them. Returns how many tasks were woken. If another
    /// thread is polling, waits for it to finish first.
    #[cfg(test)]
    pub(crate) fn turn(&self, timeout: Option<Duration>) -> usize {
        self.turn_unless(timeout, || false)
    }

    /// [`turn`](Reactor::turn), without waiting if `woken` says so once the
    /// poll is ours. A [`wake`](Reactor::wake) is an event that any thread
    /// polling may consume (a worker's `turn_now` while we waited for the
    /// poll): a sleeper that checks its own wake flag after taking the
    /// poll, and before waiting, cannot miss one (a wake after the check
    /// finds the event still pending, since only we poll now).
    pub(crate) fn turn_unless(
        &self,
        timeout: Option<Duration>,
        woken: impl FnOnce() -> bool,
    ) -> usize {
        let poll = match self.poll.try_lock() {
            Some(poll) => poll,
            None => self.wait_for_poll(),
        };
        let timeout = if woken() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        self.turn_locked(poll, timeout)
    }

    /// Takes the poll from a `turn_now` in progress. Its holder only
    /// polls without waiting and records the events (it wakes the tasks
    /// after releasing the poll), a few microseconds: spin for that long
    /// rather than let the lock yield the CPU or sleep, which on a busy
    /// machine hands the CPU to another process for a whole time slice.
    /// `sleeper_waiting` keeps further `turn_now`s away meanwhile.
    #[cold]
    fn wait_for_poll(&self) -> MutexGuard<'_, Poller> {
        /// About 20 us of `spin_loop` hints on current x86 (a `pause` is
        /// some 40 ns).
        const SPINS: u32 = 512;
        self.sleeper_waiting.store(true, Relaxed);
        let mut poll = None;
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if let Some(taken) = self.poll.try_lock() {
                poll = Some(taken);
                break;
            }
        }
        // The holder was preempted: wait as a lock does.
        let poll = poll.unwrap_or_else(|| self.poll.lock());
        self.sleeper_waiting.store(false, Relaxed);
        poll
    }

    /// Dispatches the events already there, without waiting; 0 at once if
    /// another thread is polling (it dispatches them) or waits to.
    pub(crate) fn turn_now(&self) -> usize {
        if self.registered.load(Acquire) == 0 || self.sleeper_waiting.load(Relaxed) {
            return 0;
        }
        match self.poll.try_lock() {
            Some(poll) => self.turn_locked(poll, Some(Duration::ZERO)),
            None => 0,
        }
    }

    /// Polls and records the events under the poll lock, then releases it
    /// before waking the tasks: a wake schedules a task (and may kick a
    /// worker), and the driver waiting to sleep in the reactor, or a
    /// running worker's `turn_now`, should not wait for that.
    fn turn_locked(&self, mut poller: MutexGuard<'_, Poller>, timeout: Option<Duration>) -> usize {
        let mut wakers = TURN_WAKERS.take();
        {
            let Poller { poll, events } = &mut *poller;
            if let Err(err) = poll.poll(events, timeout) {
                if err.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %err, "wq: polling the I/O reactor failed");
                }
                return 0;
            }
            let sources = self.sources.lock();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                dispatch(&sources, event.token(), ready_of(event), &mut wakers);
            }
        }
        drop(poller);
        let woken = wakers.len();
        wakers.drain(..).for_each(Waker::wake);
        TURN_WAKERS.set(wakers);
        woken
    }

    /// Interrupts a [`turn`](Reactor::turn) in progress, or makes the next
    /// one return at once.
    pub(crate) fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            tracing::error!(error = %err, "wq: waking the I/O reactor failed");
        }
    }

    /// Installs the function called after each registration.
    pub(crate) fn set_on_register(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_register.set(hook);
    }

    /// Whether any source is registered (then someone must poll).
    pub(crate) fn has_sources(&self) -> bool {
        self.registered.load(SeqCst) != 0
    }

    /// Registers `source` for `interest`.
    pub(crate) fn register(
        self: &Arc<Reactor>,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<Registration> {
        // Relaxed: only distinct from the generations still in flight.
        let generation = self.next_generation.fetch_add(1, Relaxed) & GENERATION_MASK;
        let io = Arc::new(ScheduledIo {
            generation,
            ..ScheduledIo::default()
        });
        let key = {
            let mut sources = self.sources.lock();
            // Relaxed: written under this lock.
            if self.is_shut_down.load(Relaxed) {
                return Err(shut_down());
            }
            let entry = sources.vacant_entry();
            let key = entry.key();
            if key >= MAX_SOURCES {
                return Err(io::Error::other(format!(
                    "wq: the I/O reactor holds at most {MAX_SOURCES} sources"
                )));
            }
            self.registry
                .register(source, token(key, generation), interest)?;
            entry.insert(io.clone());
            key
        };
        self.registered.fetch_add(1, SeqCst);
        if let Some(hook) = self.on_register.get() {
            hook();
        }
        Ok(Registration {
            reactor: self.clone(),
            key,
            io,
        })
    }
}

impl Reactor {
    /// The runtime shuts down: every registered source becomes ready in
    /// both directions with the shutdown bit, so that its waiting tasks are
    /// woken and its operations fail from now on (nobody will poll the
    /// reactor again), and registering a source fails.
    pub(crate) fn shutdown(&self) {
        let mut wakers = Vec::new();
        {
            let sources = self.sources.lock();
            // Relaxed: read under this lock (`register`).
            self.is_shut_down.store(true, Relaxed);
            for (_, io) in sources.iter() {
                io.set_readiness(SHUTDOWN, &mut wakers);
            }
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Records an event for the source of `token`, if it is still
/// registered: an event polled before its source was deregistered and
/// dispatched after finds the slot empty, or holding a newer source of
/// another generation.
fn dispatch(sources: &Slab<Arc<ScheduledIo>>, token: Token, ready: usize, wakers: &mut Vec<Waker>) {
    let (slot, generation) = (token.0 & SLOT_MASK, token.0 >> SLOT_BITS);
    match sources.get(slot) {
        Some(io) if io.generation == generation => io.set_readiness(ready, wakers),
        _ => {}
    }
}

/// The readiness bits of a mio event.
fn ready_of(event: &mio::event::Event) -> usize {
    let mut ready = 0;
    if event.is_readable() {
        ready |= READABLE;
    }
    if event.is_writable() {
        ready |= WRITABLE;
    }
    if event.is_read_closed() {
        ready |= READ_CLOSED;
    }
    if event.is_write_closed() {
        ready |= WRITE_CLOSED;
    }
    if event.is_error() {
        ready |= ERROR;
    }
    ready
}

/// A source's place in the reactor. The owner deregisters the source
/// (`deregister`) before it is closed; dropping the registration frees the
/// slot and wakes any waiter.
#[derive(Debug)]
pub(crate) struct Registration {
    reactor: Arc<Reactor>,
    key: usize,
    io: Arc<ScheduledIo>,
}

impl Registration {
    /// Runs the non-blocking operation `op` once the source is ready in
    /// `direction`, as often as it reports `WouldBlock` (clearing the
    /// readiness it saw each time), until it succeeds, fails, or the source
    /// is not ready (then the task is woken when it is).
    ///
    /// After a `WouldBlock`, only a newer event runs `op` again: whatever
    /// readiness the clear left was just tried, and looping on it would
    /// spin without progress.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_as(cx, direction, &mut Waiter::Poll, op)
    }

    /// [`poll_io`](Registration::poll_io), waiting as `waiter`.
    fn poll_io_as<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        waiter: &mut Waiter,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let unit = std::task::ready!(coop::poll_proceed(cx));
        let mut stale = None;
        loop {
            let event = std::task::ready!(self.io.poll_ready(cx, direction, waiter, stale))
                .or_shut_down()?;
            match op() {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.io.clear(event);
                    stale = Some(event.tick);
                }
                result => {
                    unit.made_progress();
                    return Poll::Ready(result);
                }
            }
        }
    }

    /// [`poll_io`](Registration::poll_io) for a read or write `op` of `len`
    /// bytes. A transfer shorter than asked for, but not empty, means the
    /// socket's buffer was drained (read) or filled (write): the readiness
    /// seen is cleared then too, which spares the call that would only
    /// have found `WouldBlock` (one `recv` per request on a request/response
    /// connection). Data that arrives after the transfer is a new edge,
    /// reported by the next poll; an event already dispatched has moved the
    /// tick, and the clear does nothing.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        len: usize,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let unit = std::task::ready!(coop::poll_proceed(cx));
        let mut stale = None;
        loop {
            let event =
                std::task::ready!(self.io.poll_ready(cx, direction, &mut Waiter::Poll, stale))
                    .or_shut_down()?;
            match op() {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.io.clear(event);
                    stale = Some(event.tick);
                }
                Ok(n) if n > 0 && n < len => {
                    self.io.clear(event);
                    unit.made_progress();
                    return Poll::Ready(Ok(n));
                }
                result => {
                    unit.made_progress();
                    return Poll::Ready(result);
                }
            }
        }
    }

    /// Waits until the source is ready in `direction`. Takes a unit of the
    /// task's budget when ready (`task::coop`).
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<()>> {
        self.poll_ready_event(cx, direction).map_ok(|_| ())
    }

    /// Waits until the source is ready in `direction`; returns what was
    /// seen, for [`clear`](Registration::clear).
    pub(crate) fn poll_ready_event(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready_as(cx, direction, &mut Waiter::Poll)
    }

    /// [`poll_ready_event`](Registration::poll_ready_event), waiting as
    /// `waiter`.
    fn poll_ready_as(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        waiter: &mut Waiter,
    ) -> Poll<io::Result<ReadyEvent>> {
        let unit = std::task::ready!(coop::poll_proceed(cx));
        let event = std::task::ready!(self.io.poll_ready(cx, direction, waiter, None));
        unit.made_progress();
        Poll::Ready(event.or_shut_down())
    }

    /// An entry of its own among the tasks waiting in `direction`, for one
    /// future of an async method (see [`WakerList`]); freed on drop.
    pub(crate) fn waiting(&self, direction: Direction) -> Waiting<'_> {
        Waiting {
            registration: self,
            direction,
            waiter: Waiter::Entry(None),
        }
    }

    /// Clears the readiness `event` saw, unless a newer event arrived.
    #[cfg(unix)]
    pub(crate) fn clear(&self, event: ReadyEvent) {
        self.io.clear(event);
    }

    /// Runs `op` without waiting; on `WouldBlock`, clears the readiness it
    /// was run on so that the next wait really waits.
    pub(crate) fn try_io<R>(
        &self,
        direction: Direction,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let event = self.io.ready_in(direction);
        let result = op();
        if matches!(&result, Err(err) if err.kind() == io::ErrorKind::WouldBlock) {
            self.io.clear(event);
        }
        result
    }

    #[cfg(test)]
    fn token(&self) -> Token {
        token(self.key, self.io.generation)
    }

    /// Removes `source` from the reactor's poller.
    pub(crate) fn deregister(&self, source: &mut impl Source) -> io::Result<()> {
        self.reactor.registry.deregister(source)
    }
}

/// One future's place among the tasks waiting on a source in one
/// direction (see [`WakerList`]): taken at its first wait, freed when it is
/// dropped.
#[derive(Debug)]
pub(crate) struct Waiting<'a> {
    registration: &'a Registration,
    direction: Direction,
    waiter: Waiter,
}

impl Waiting<'_> {
    /// [`Registration::poll_io`], waiting in this entry.
    pub(crate) fn poll_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.registration
            .poll_io_as(cx, self.direction, &mut self.waiter, op)
    }

    /// [`Registration::poll_ready_event`], waiting in this entry.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.registration
            .poll_ready_as(cx, self.direction, &mut self.waiter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Waiter::Entry(Some(key)) = self.waiter {
            self.registration.io.remove(self.direction, key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = self.reactor.sources.lock().try_remove(self.key);
        if removed.is_some() {
            self.reactor.registered.fetch_sub(1, SeqCst);
        }
        self.io.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use mio::Interest;

    use super::{
        dispatch, Direction, Reactor, ScheduledIo, ERROR, READABLE, READ_CLOSED, SLOT_MASK,
    };

    /// A connected pair: a blocking std end, and a non-blocking mio end to
    /// register.
    fn socket_pair() -> (std::os::unix::net::UnixStream, mio::net::UnixStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, mio::net::UnixStream::from_std(b))
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A readable event wakes the reader once; after a `WouldBlock` the
    /// readiness is cleared and the next poll waits again.
    #[test]
    fn readiness_wakes_the_reader_and_is_cleared_on_would_block() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let (mut a, mut b) = socket_pair();
        let registration = reactor
            .register(&mut b, Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 8];
        // Nothing to read yet: pending, waker registered.
        reactor.turn(Some(Duration::ZERO));
        let poll = registration.poll_io(&mut cx, Direction::Read, || (&b).read(&mut buf));
        assert!(poll.is_pending());
        a.write_all(b"hi").unwrap();
        assert_eq!(reactor.turn(Some(Duration::from_secs(5))), 1);
        assert_eq!(counter.0.load(SeqCst), 1);
        let poll = registration.poll_io(&mut cx, Direction::Read, || (&b).read(&mut buf));
        assert!(matches!(poll, Poll::Ready(Ok(2))));
        // Drained: the next read blocks, clears, and waits.
        let poll = registration.poll_io(&mut cx, Direction::Read, || (&b).read(&mut buf));
        assert!(poll.is_pending());
        registration.deregister(&mut b).unwrap();
        drop(registration);
        assert!(!reactor.has_sources());
    }

    /// A read shorter than its buffer clears the readiness it ran on: the
    /// next read waits for an event instead of calling `read` for a
    /// `WouldBlock`. A full read keeps it.
    #[test]
    fn a_short_read_clears_readiness_and_a_full_one_keeps_it() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let (mut a, mut source) = socket_pair();
        let registration = reactor.register(&mut source, Interest::READABLE).unwrap();
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&waker);
        let calls = AtomicUsize::new(0);
        let mut read = |buf: &mut [u8]| {
            let len = buf.len();
            registration.poll_transfer(&mut cx, Direction::Read, len, || {
                calls.fetch_add(1, SeqCst);
                (&source).read(buf)
            })
        };
        a.write_all(b"abcd").unwrap();
        reactor.turn(Some(Duration::from_secs(5)));
        // Full: 2 of the 4 bytes fill the buffer; readiness stays.
        assert!(matches!(read(&mut [0; 2]), Poll::Ready(Ok(2))));
        // Short: 2 bytes into 8.
        assert!(matches!(read(&mut [0; 8]), Poll::Ready(Ok(2))));
        assert_eq!(calls.load(SeqCst), 2);
        // Cleared: pending without a third `read`.
        assert!(read(&mut [0; 8]).is_pending());
        assert_eq!(calls.load(SeqCst), 2);
        // New data is a new event.
        a.write_all(b"ef").unwrap();
        reactor.turn(Some(Duration::from_secs(5)));
        let mut buf = [0; 8];
        assert!(matches!(read(&mut buf), Poll::Ready(Ok(2))));
        assert_eq!(&buf[..2], b"ef");
        registration.deregister(&mut source).unwrap();
    }

    /// Every future waiting in a direction is woken by an event, once
    /// however often it polled, and so is the last poll-method caller; the
    /// event takes the wakers and leaves the futures' entries, which go
    /// when the futures drop. The poll methods' slot holds one waker, the
    /// last poll's.
    #[test]
    fn an_event_wakes_every_waiting_future_and_the_last_poll() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let (mut a, mut b) = socket_pair();
        let registration = reactor.register(&mut b, Interest::READABLE).unwrap();
        let counters: Vec<Arc<CountingWaker>> =
            (0..5).map(|_| Arc::new(CountingWaker::default())).collect();
        let wakers: Vec<Waker> = counters.iter().cloned().map(Waker::from).collect();
        // Three futures, each polled twice with its task's waker.
        let mut futures: Vec<_> = (0..3)
            .map(|_| registration.waiting(Direction::Read))
            .collect();
        for _ in 0..2 {
            for (waiting, waker) in futures.iter_mut().zip(&wakers) {
                let mut cx = Context::from_waker(waker);
                assert!(waiting.poll_ready(&mut cx).is_pending());
            }
        }
        // Two poll-method callers in turn: the second replaces the first.
        for waker in &wakers[3..] {
            let mut cx = Context::from_waker(waker);
            assert!(registration
                .poll_ready(&mut cx, Direction::Read)
                .is_pending());
        }
        let held = |registration: &super::Registration| {
            let waiters = registration.io.waiters.lock();
            let futures = waiters.reader.futures.iter().filter(|(_, w)| w.is_some());
            (
                waiters.reader.futures.len(),
                futures.count(),
                waiters.reader.poll.is_some(),
            )
        };
        assert_eq!(held(&registration), (3, 3, true));
        a.write_all(b"hi").unwrap();
        assert_eq!(reactor.turn(Some(Duration::from_secs(5))), 4);
        let woken: Vec<usize> = counters.iter().map(|c| c.0.load(SeqCst)).collect();
        assert_eq!(woken, [1, 1, 1, 0, 1]);
        assert_eq!(held(&registration), (3, 0, false));
        drop(futures);
        assert_eq!(held(&registration), (0, 0, false));
        registration.deregister(&mut b).unwrap();
    }

    /// A future dropped while it waits takes its waker with it: nothing of
    /// its task stays behind until the next event.
    #[test]
    fn a_dropped_waiting_future_leaves_no_waker() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let (_a, mut b) = socket_pair();
        let registration = reactor.register(&mut b, Interest::READABLE).unwrap();
        let counter = Arc::new(CountingWaker::default());
        for _ in 0..100 {
            let waker = Waker::from(counter.clone());
            let mut waiting = registration.waiting(Direction::Read);
            assert!(waiting
                .poll_ready(&mut Context::from_waker(&waker))
                .is_pending());
        }
        assert_eq!(Arc::strong_count(&counter), 1);
        registration.deregister(&mut b).unwrap();
    }

    /// An error event ends a wait in either direction; the operation it
    /// ran consumes the error, and the clear after its `WouldBlock` takes
    /// the error bit too, so the next wait waits.
    #[test]
    fn a_clear_takes_the_error_bit() {
        let io = ScheduledIo::default();
        let mut wakers = Vec::new();
        io.set_readiness(ERROR, &mut wakers);
        let event = io.ready_in(Direction::Read);
        assert_eq!(event.ready, ERROR);
        assert_eq!(io.ready_in(Direction::Write).ready, ERROR);
        io.clear(event);
        assert_eq!(io.ready_in(Direction::Read).ready, 0);
        assert_eq!(io.ready_in(Direction::Write).ready, 0);
    }

    /// An operation that finds `WouldBlock` on a readiness the clear
    /// cannot take (a closed bit) is not run again until a newer event:
    /// the poll returns `Pending`, with the waker registered.
    #[test]
    fn poll_io_after_would_block_waits_for_a_newer_event() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let (_a, mut b) = socket_pair();
        let registration = reactor.register(&mut b, Interest::READABLE).unwrap();
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut wakers = Vec::new();
        registration.io.set_readiness(READ_CLOSED, &mut wakers);
        let calls = AtomicUsize::new(0);
        // Gives up after 100 calls, should the poll loop on the stale
        // readiness.
        let mut would_block = || {
            registration.poll_io(&mut cx, Direction::Read, || {
                match calls.fetch_add(1, SeqCst) {
                    ..100 => Err::<(), _>(io::ErrorKind::WouldBlock.into()),
                    _ => Err(io::Error::other("spun")),
                }
            })
        };
        assert!(would_block().is_pending());
        assert_eq!(calls.load(SeqCst), 1);
        // A newer event wakes the task, and the operation runs again.
        registration.io.set_readiness(READABLE, &mut wakers);
        assert_eq!(wakers.len(), 1);
        wakers.drain(..).for_each(Waker::wake);
        assert_eq!(counter.0.load(SeqCst), 1);
        assert!(would_block().is_pending());
        assert_eq!(calls.load(SeqCst), 2);
        registration.deregister(&mut b).unwrap();
    }

    /// An event polled for a source whose registration then went away is
    /// not recorded for a newer source that took its slot.
    #[test]
    fn a_stale_token_does_not_reach_the_slot_s_new_source() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let (_a, mut b) = socket_pair();
        let old = reactor.register(&mut b, Interest::READABLE).unwrap();
        let old_token = old.token();
        old.deregister(&mut b).unwrap();
        drop(old);
        let new = reactor.register(&mut b, Interest::READABLE).unwrap();
        assert_eq!(new.key, old_token.0 & SLOT_MASK);
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(new.poll_ready(&mut cx, Direction::Read).is_pending());
        let mut wakers = Vec::new();
        dispatch(
            &reactor.sources.lock(),
            old_token,
            READ_CLOSED | ERROR,
            &mut wakers,
        );
        assert_eq!(
            (wakers.len(), new.io.ready_in(Direction::Read).ready),
            (0, 0)
        );
        dispatch(&reactor.sources.lock(), new.token(), READABLE, &mut wakers);
        assert_eq!(
            (wakers.len(), new.io.ready_in(Direction::Read).ready),
            (1, READABLE)
        );
        new.deregister(&mut b).unwrap();
    }

    /// `wake` interrupts a turn that would wait forever.
    #[test]
    fn wake_interrupts_a_turn() {
        let reactor = Arc::new(Reactor::new().unwrap());
        let waker = {
            let reactor = reactor.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                reactor.wake();
            })
        };
        assert_eq!(reactor.turn(None), 0);
        waker.join().unwrap();
    }
}

//! Forward progress: the rescuers of `mem_reclaim` workqueues.
//!
//! A workqueue built with `.mem_reclaim()` gets one rescuer thread when it
//! is built, so that having it cannot fail later. The thread sleeps until a
//! pool calls for it; it is never a pool worker and never counts in
//! `nr_running`.
//!
//! A pool starves when work is queued and no worker is left to take it or
//! to create another: every worker is blocked and `max_workers` is reached,
//! or creating a thread fails. After 10 ms of that, and every 100 ms while
//! it lasts, the pool sends mayday (`pool/mayday.rs`): the runtime's
//! [`Rescuers`] (the pools' mayday hook) put the pool on the mayday list of
//! the rescuer of every workqueue with tasks queued there, and wake it.
//!
//! A rescuer takes the pools on its list in turn. In each pool it takes its
//! own workqueue's runnables ONE AT A TIME (the design of the kernel's 2025
//! rescuer series): the first matching runnable from the cursor (the head
//! of the rotated queue, see `pool/mayday.rs`) is polled on the rescuer's
//! thread, then the scan goes on from the cursor. The others stay on the
//! pool's queues, so a rescued task that blocks holds up only itself: the
//! other rescued tasks are still there for the workers when they come back.
//! The rescuer stops as soon as the pool no longer starves, and after
//! [`RESCUER_BATCH`] polls if other pools wait on its list (the pool goes
//! back at the tail). When it leaves a pool it kicks it, so that
//! concurrency does not stay at zero if a worker became free meanwhile.
//!
//! What is rescued is a *poll*: a rescued task that awaits something goes
//! back to its pool when woken, and is rescued again at the pool's next
//! mayday if still no worker can be had. A rescued task that waits for
//! tasks of a workqueue without a rescuer (a `flush`, or a `JoinHandle`)
//! can still wait forever: forward progress holds only for chains of
//! `mem_reclaim` workqueues. `Workqueue::flush` and `drain` warn about it at
//! run time, as the kernel's `check_flush_dependency` does.

#[cfg(all(test, loom))]
mod loom_tests;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Instant;

use crate::loom::atomic::{AtomicU64, Ordering::Relaxed};
use crate::loom::{Condvar, Mutex};
use crate::pool::{Hook, MaydayHook, Pool};
use crate::task::Runnable;

/// How many polls a rescuer runs in one pool before it moves on to another
/// pool waiting on its list (the kernel's `RESCUER_BATCH`).
pub(crate) const RESCUER_BATCH: usize = 16;

/// What a rescuer needs of a pool: the real [`Pool`], or a model of it
/// under loom (`rescuer/loom_tests.rs`).
pub(crate) trait RescuePool: Clone + Send + Sync + 'static {
    /// What the pool queues (a runnable).
    type Item;
    /// Work queued and no worker to take it or to create another.
    fn is_starving(&self) -> bool;
    /// Starts a lap over the queued items; returns its length.
    fn rescue_lap(&self) -> usize;
    /// The next item tagged `tag` within the lap, if any.
    fn take_rescued(&self, tag: u64, lap: &mut usize) -> Option<Self::Item>;
    /// Runs one item (a poll) on the calling thread.
    fn run(item: Self::Item);
    /// Wakes an idle worker if the pool needs one.
    fn kick(&self);
    fn same(&self, other: &Self) -> bool;
}

impl RescuePool for Pool {
    type Item = Runnable;

    fn is_starving(&self) -> bool {
        Pool::is_starving(self)
    }

    fn rescue_lap(&self) -> usize {
        Pool::rescue_lap(self)
    }

    fn take_rescued(&self, tag: u64, lap: &mut usize) -> Option<Runnable> {
        Pool::take_rescued(self, tag, lap)
    }

    fn run(runnable: Runnable) {
        // A task's panic is caught inside it; this guards against a
        // panicking waker or schedule hook.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            crate::task::coop::budget(|| runnable.run())
        }));
    }

    fn kick(&self) {
        Pool::kick(self)
    }

    fn same(&self, other: &Pool) -> bool {
        Pool::same(self, other)
    }
}

/// A runtime's rescuers, by tag: the mayday hook of its pools.
#[derive(Default)]
pub(crate) struct Rescuers {
    by_tag: parking_lot::Mutex<HashMap<u64, Weak<Shared>>>,
    last_tag: std::sync::atomic::AtomicU64,
}

/// One rescuer, owned by its workqueue. Dropping it stops the thread
/// (without waiting: it may be the thread dropping it).
pub(crate) struct Rescuer {
    shared: Arc<Shared>,
    rescuers: Weak<Rescuers>,
}

/// What a rescuer's thread and its workqueue share.
struct Shared<P: RescuePool = Pool> {
    /// The tag the rescuer's workqueue puts on its runnables.
    tag: u64,
    /// Mayday requests received (the pool was added to the list).
    mayday: AtomicU64,
    /// Polls run by the rescuer.
    rescued: AtomicU64,
    state: Mutex<State<P>>,
    /// Signalled when a pool is put on the list, on stop, and on exit.
    changed: Condvar,
}

struct State<P> {
    /// Pools that called for this rescuer, in order.
    maydays: VecDeque<P>,
    stop: bool,
    exited: bool,
}

impl Rescuers {
    /// The hook to install on every pool of the runtime.
    pub(crate) fn hook(self: &Arc<Rescuers>) -> MaydayHook {
        let rescuers = Arc::downgrade(self);
        Arc::new(move |pool: &Pool, tags: &[u64]| {
            if let Some(rescuers) = rescuers.upgrade() {
                rescuers.mayday(pool, tags);
            }
        })
    }

    /// `pool` starves with runnables tagged `tags` queued: puts it on the
    /// list of each of those rescuers (once) and wakes them.
    pub(crate) fn mayday(&self, pool: &Pool, tags: &[u64]) {
        let called: Vec<Arc<Shared>> = {
            let by_tag = self.by_tag.lock();
            tags.iter()
                .filter_map(|tag| by_tag.get(tag)?.upgrade())
                .collect()
        };
        for rescuer in called {
            rescuer.send_mayday(pool);
        }
    }

    /// Starts the rescuer thread of the workqueue `name` (named
    /// `wq-R-{name}`, after the kernel's `kworker/R-{name}`), which runs
    /// `on_start` first and `on_stop` last (the runtime's thread hooks).
    pub(crate) fn start(
        self: &Arc<Rescuers>,
        name: &str,
        on_start: Option<Hook>,
        on_stop: Option<Hook>,
    ) -> io::Result<Rescuer> {
        let tag = self.last_tag.fetch_add(1, Relaxed) + 1;
        let shared = Arc::new(Shared::new(tag));
        let thread_shared = shared.clone();
        thread::Builder::new()
            .name(format!("wq-R-{name}"))
            .spawn(move || {
                let _exit = ExitGuard(&thread_shared);
                if let Some(hook) = &on_start {
                    hook();
                }
                thread_shared.run();
                if let Some(hook) = &on_stop {
                    hook();
                }
            })?;
        self.by_tag.lock().insert(tag, Arc::downgrade(&shared));
        Ok(Rescuer {
            shared,
            rescuers: Arc::downgrade(self),
        })
    }

    /// Stops every rescuer (at shutdown) and waits until `deadline` (or
    /// forever) for their threads to exit: one in the middle of a poll
    /// finishes it first.
    pub(crate) fn stop_all(&self, deadline: Option<Instant>) {
        let all: Vec<Arc<Shared>> = self
            .by_tag
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for rescuer in &all {
            rescuer.stop();
        }
        for rescuer in &all {
            let mut state = rescuer.state.lock();
            while !state.exited {
                match deadline {
                    None => state = rescuer.changed.wait(state),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return;
                        }
                        state = rescuer.changed.wait_timeout(state, left).0;
                    }
                }
            }
        }
    }
}

impl Rescuer {
    /// The tag of the workqueue's runnables.
    pub(crate) fn tag(&self) -> u64 {
        self.shared.tag
    }

    /// Mayday requests received: times a starving pool put itself on this
    /// rescuer's list.
    pub(crate) fn mayday(&self) -> u64 {
        self.shared.mayday.load(Relaxed)
    }

    /// Polls of the workqueue's tasks run by the rescuer.
    pub(crate) fn rescued(&self) -> u64 {
        self.shared.rescued.load(Relaxed)
    }
}

impl Drop for Rescuer {
    fn drop(&mut self) {
        if let Some(rescuers) = self.rescuers.upgrade() {
            rescuers.by_tag.lock().remove(&self.shared.tag);
        }
        self.shared.stop();
    }
}

impl<P: RescuePool> Shared<P> {
    fn new(tag: u64) -> Shared<P> {
        Shared {
            tag,
            mayday: AtomicU64::new(0),
            rescued: AtomicU64::new(0),
            state: Mutex::new(State {
                maydays: VecDeque::new(),
                stop: false,
                exited: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Puts `pool` on the list, unless it is there already, and wakes the
    /// thread.
    fn send_mayday(&self, pool: &P) {
        let mut state = self.state.lock();
        if state.stop || state.maydays.iter().any(|p| p.same(pool)) {
            return;
        }
        self.mayday.fetch_add(1, Relaxed);
        state.maydays.push_back(pool.clone());
        self.changed.notify_all();
    }

    fn stop(&self) {
        let mut state = self.state.lock();
        state.stop = true;
        state.maydays.clear();
        self.changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.state.lock().stop
    }

    /// The thread's loop: serve the pools on the list, in order.
    fn run(&self) {
        loop {
            let pool = {
                let mut state = self.state.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    if let Some(pool) = state.maydays.pop_front() {
                        break pool;
                    }
                    state = self.changed.wait(state);
                }
            };
            self.rescue(&pool);
        }
    }

    /// Runs this rescuer's runnables queued on `pool`, one at a time, while
    /// the pool starves; kicks it when leaving.
    fn rescue(&self, pool: &P) {
        let mut polls = 0;
        'laps: loop {
            if self.stopping() || !pool.is_starving() {
                break;
            }
            // One lap over what is queued now; a lap that rescued nothing
            // ends the turn (what is queued later waits for the next
            // mayday, if the pool still starves then).
            let mut lap = pool.rescue_lap();
            let mut found = false;
            while pool.is_starving() && !self.stopping() {
                let Some(runnable) = pool.take_rescued(self.tag, &mut lap) else {
                    break;
                };
                found = true;
                polls += 1;
                self.rescued.fetch_add(1, Relaxed);
                P::run(runnable);
                if polls >= RESCUER_BATCH && self.others_waiting(pool) {
                    break 'laps;
                }
            }
            if !found {
                break;
            }
        }
        pool.kick();
    }

    /// After a batch: if other pools wait on the list, puts `pool` back at
    /// the tail (if it still starves) and returns true.
    fn others_waiting(&self, pool: &P) -> bool {
        let mut state = self.state.lock();
        if state.maydays.is_empty() {
            return false;
        }
        if pool.is_starving() && !state.maydays.iter().any(|p| p.same(pool)) {
            state.maydays.push_back(pool.clone());
        }
        true
    }
}

/// Marks the rescuer's thread as exited, however it ends.
struct ExitGuard<'a, P: RescuePool>(&'a Shared<P>);

impl<P: RescuePool> Drop for ExitGuard<'_, P> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.exited = true;
        state.maydays.clear();
        self.0.changed.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::{RescuePool, Shared, RESCUER_BATCH};

    const TAG: u64 = 1;

    /// A pool that starves while it holds items; records what ran, in
    /// order, in a log shared by every pool of a test.
    #[derive(Clone)]
    struct ListPool {
        name: char,
        queue: Arc<Mutex<VecDeque<u64>>>,
        log: Arc<Mutex<Vec<char>>>,
    }

    impl ListPool {
        fn new(
            name: char,
            tags: impl IntoIterator<Item = u64>,
            log: &Arc<Mutex<Vec<char>>>,
        ) -> Self {
            ListPool {
                name,
                queue: Arc::new(Mutex::new(tags.into_iter().collect())),
                log: log.clone(),
            }
        }
    }

    impl RescuePool for ListPool {
        type Item = (Arc<Mutex<Vec<char>>>, char);

        fn is_starving(&self) -> bool {
            !self.queue.lock().unwrap().is_empty()
        }

        fn rescue_lap(&self) -> usize {
            self.queue.lock().unwrap().len()
        }

        fn take_rescued(&self, tag: u64, lap: &mut usize) -> Option<Self::Item> {
            while *lap > 0 {
                *lap -= 1;
                let item = self.queue.lock().unwrap().pop_front()?;
                if item == tag {
                    return Some((self.log.clone(), self.name));
                }
                self.queue.lock().unwrap().push_back(item);
            }
            None
        }

        fn run((log, name): Self::Item) {
            log.lock().unwrap().push(name);
        }

        fn kick(&self) {}

        fn same(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.queue, &other.queue)
        }
    }

    /// What the rescuer's thread does until its list is empty.
    fn serve_list(shared: &Shared<ListPool>) {
        loop {
            let Some(pool) = shared.state.lock().maydays.pop_front() else {
                return;
            };
            shared.rescue(&pool);
        }
    }

    /// Two pools call the same rescuer: it runs 16 of the first pool's
    /// items, moves on to the second, and comes back for the rest; items
    /// of other workqueues are left queued.
    #[test]
    fn at_most_a_batch_per_turn_when_other_pools_wait() {
        let log = Arc::default();
        let a = ListPool::new('a', (0..40).map(|i| if i % 4 == 3 { 2 } else { TAG }), &log);
        let b = ListPool::new('b', [TAG; 5], &log);
        let shared = Shared::<ListPool>::new(TAG);
        shared.send_mayday(&a);
        shared.send_mayday(&b);
        shared.send_mayday(&a); // already on the list: not counted again
        serve_list(&shared);
        let expected: String = std::iter::repeat_n('a', RESCUER_BATCH)
            .chain(std::iter::repeat_n('b', 5))
            .chain(std::iter::repeat_n('a', 30 - RESCUER_BATCH))
            .collect();
        let ran: String = log.lock().unwrap().iter().collect();
        assert_eq!(ran, expected);
        assert_eq!(
            a.queue.lock().unwrap().len(),
            10,
            "another queue's items were taken"
        );
        assert_eq!(shared.mayday.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(
            shared.rescued.load(std::sync::atomic::Ordering::Relaxed),
            35
        );
    }

    /// Alone on the list, a pool is served until it no longer starves.
    #[test]
    fn alone_a_pool_is_served_past_the_batch() {
        let log = Arc::default();
        let a = ListPool::new('a', [TAG; 40], &log);
        let shared = Shared::<ListPool>::new(TAG);
        shared.send_mayday(&a);
        serve_list(&shared);
        assert_eq!(log.lock().unwrap().len(), 40);
    }
}

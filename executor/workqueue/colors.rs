//! Flush colours: which of a workqueue's tasks a `flush` waits for, with no
//! lock on the spawn and completion paths (the kernel's work colours, see
//! `cmwq.md`).
//!
//! Every queued task takes the queue's current colour and counts itself in
//! that colour's in-flight count until it finishes. A flush *closes* the
//! current colour (later tasks take the next one) and waits until every
//! colour up to the closed one has drained. Colours live in a ring of
//! [`COLORS`] counts; a colour may only be opened once the colour that last
//! used its count has drained, so a count never mixes two live colours.
//! When the ring is full (more than `COLORS - 1` flushes waiting for the
//! same old task), the flush waits without closing, and closes the colour
//! as soon as a count frees: tasks queued in between are waited for too.
//! Closing and the drained mark ([`Ring`]) change only under the queue
//! lock; tasks touch only the counts.
//!
//! Two kinds of counts implement [`Counts`]: [`Colors`] here, atomic
//! counters for the tasks a workqueue wraps (`gate.rs`), and the task
//! registry's per-shard counts for `wq::spawn`'s tasks
//! (`task/registry.rs`), which cost nothing on top of the registry's own
//! lock. The `system` queue has both (its delayed tasks are wrapped) and
//! keeps them on the same colour.
//!
//! [`Colors`] follows the pool's pattern where a task and a flush race:
//! publish, `fence(SeqCst)`, then look. A task adds to its colour's count,
//! fences and re-reads the colour; a flush closes the colour, fences
//! (in [`Ring::drained`]) and reads the count: either the task sees the new
//! colour (and moves to it) or the flush sees the task. Its dual: a task
//! leaving fences and then reads `waiters`, a flush registers in `waiters`
//! and fences before it reads the counts, so a flush never sleeps through
//! the drain it waits for. (The fences, not SeqCst accesses alone, are what
//! loom can check.)
//!
//! A drain also reads `queued`, the tasks ever queued: a round reads it,
//! closes the current colour, and ends the drain when that colour has
//! drained and `queued` has not changed. So a task counts itself in
//! `queued` only once its colour is fixed (Release, paired with the
//! Acquire read in [`Colors::totals`]): a task that the round's read
//! counts read its colour before the round's close, so it took a colour
//! the round waits for. (Counted first, a task could take the next colour
//! after the read, and the drain end with it in flight.) A task counted
//! after the read changes `queued`, and chained work counts itself before
//! its parent task finishes, so before the round sees the parent's colour
//! drained.

use crossbeam_utils::CachePadded;

use crate::loom::atomic::{
    fence, AtomicU32, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release, Ordering::SeqCst,
};

/// Colours in the ring: how many flushes may each wait on a different
/// colour before a flush has to wait to close its own (the kernel's
/// `WORK_NR_COLORS`). Two under loom, so that models reach the wrap.
pub(crate) const COLORS: usize = crate::task::registry::FLUSH_COLORS;

/// What the ring needs of a queue's counts.
pub(crate) trait Counts {
    /// The colour new tasks take.
    fn current(&self) -> u64;
    /// Makes `color` the one new tasks take (under the queue lock).
    fn open(&self, color: u64);
    /// Tasks of `color` (modulo the ring) not finished. Once `color` is
    /// closed this only goes down, so a zero read stays true.
    fn in_flight(&self, color: u64) -> u64;
}

/// The drained mark, under the queue lock.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// Every colour below this one has drained.
    below: u64,
}

impl Ring {
    /// Closes the current colour if the ring has room, so tasks queued from
    /// now on take the next one. Returns the colour the caller's flush
    /// waits for (all colours up to it), closed or not yet.
    pub(crate) fn close(&mut self, counts: &impl Counts) -> u64 {
        let color = counts.current();
        self.try_close(color, counts);
        color
    }

    /// Closes `color` if it is still the current one and the ring has room.
    pub(crate) fn try_close(&mut self, color: u64, counts: &impl Counts) {
        if counts.current() != color {
            return;
        }
        let next = color + 1;
        // `next` reuses the count of `next - COLORS`: it must have drained.
        if next < COLORS as u64 || self.drained(counts) > next - COLORS as u64 {
            counts.open(next);
        }
    }

    /// Advances and returns the drained mark: every colour below the
    /// returned one has no task left.
    pub(crate) fn drained(&mut self, counts: &impl Counts) -> u64 {
        // After the caller's close and waiter registration, before the
        // counts (see the module's comment).
        fence(SeqCst);
        let current = counts.current();
        while self.below < current && counts.in_flight(self.below) == 0 {
            self.below += 1;
        }
        self.below
    }
}

/// Atomic colour counts, for the tasks a workqueue wraps. The counts every
/// task writes are on their own cache lines, away from the read-mostly
/// colour and waiters.
pub(crate) struct Colors {
    /// The colour tasks take now: every colour below it is closed.
    current: AtomicU64,
    /// Flushes and drains registered to be woken (under the queue lock).
    waiters: AtomicUsize,
    counts: CachePadded<Tally>,
}

/// What every task writes: one line for the whole ring (a colour holds
/// fewer than 2^32 tasks: each takes far more than a byte).
struct Tally {
    /// Tasks queued and not finished, by colour modulo [`COLORS`].
    in_flight: [AtomicU32; COLORS],
    /// Tasks ever queued.
    queued: AtomicU64,
}

fn slot(color: u64) -> usize {
    (color % COLORS as u64) as usize
}

impl Colors {
    pub(crate) fn new() -> Colors {
        Colors {
            current: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            counts: CachePadded::new(Tally {
                in_flight: std::array::from_fn(|_| AtomicU32::new(0)),
                queued: AtomicU64::new(0),
            }),
        }
    }

    /// Counts a newly queued task in the current colour. Returns the
    /// colour, and whether a flush must be woken (see [`Colors::leave`]):
    /// on a race with a flush the task moves to the next colour, and its
    /// short stay in the closed one may have held that flush up.
    pub(crate) fn enter(&self) -> (u64, bool) {
        let mut wake = false;
        loop {
            let color = self.current.load(SeqCst);
            self.counts.in_flight[slot(color)].fetch_add(1, SeqCst);
            fence(SeqCst);
            if self.current.load(SeqCst) == color {
                // Only now that the colour is fixed: a drain that sees this
                // count sees a task of a colour it waits for (see the
                // module's comment).
                self.counts.queued.fetch_add(1, Release);
                return (color, wake);
            }
            wake |= self.leave(color);
        }
    }

    /// Uncounts a finished task of `color`. Returns true if its colour
    /// drained while a flush or drain waits: the caller must then wake who
    /// is done (under the queue lock).
    #[must_use]
    pub(crate) fn leave(&self, color: u64) -> bool {
        if self.counts.in_flight[slot(color)].fetch_sub(1, SeqCst) != 1 {
            return false;
        }
        fence(SeqCst);
        self.waiters.load(SeqCst) > 0
    }

    /// Tasks ever queued, and tasks queued and not finished now (each
    /// read on its own: a snapshot only when the queue is quiet).
    pub(crate) fn totals(&self) -> (u64, u64) {
        // Pairs with `enter`'s Release: the tasks counted here have read
        // their colour already, before a close that follows this read.
        let queued = self.counts.queued.load(Acquire);
        let pending = self
            .counts
            .in_flight
            .iter()
            .map(|n| u64::from(n.load(Relaxed)));
        (queued, pending.sum())
    }

    /// The waiters count, which a waiter raises before it checks the
    /// counts.
    pub(crate) fn waiters(&self) -> &AtomicUsize {
        &self.waiters
    }
}

impl Counts for Colors {
    fn current(&self) -> u64 {
        self.current.load(SeqCst)
    }

    fn open(&self, color: u64) {
        self.current.store(color, SeqCst);
    }

    fn in_flight(&self, color: u64) -> u64 {
        u64::from(self.counts.in_flight[slot(color)].load(SeqCst))
    }
}

//! `LocalSet`: tasks whose futures need not be `Send`, run on the thread
//! that owns the set.
//!
//! # Threads
//!
//! A `LocalSet` is `!Send`: it is created, polled and dropped on one
//! thread, its *owner*. Its tasks check their thread: one polled on another
//! thread panics, one dropped on another thread aborts the process (its
//! future need not be `Send`; `task/harness.rs`), so every runnable of the
//! set must end up run or dropped by the owner. Their wakers are `Send`
//! all the same, and a wake may come from anywhere: a worker firing a timer
//! or dispatching I/O, a std thread sending on a channel, an abort.
//!
//! # Queues
//!
//! A spawned task's first runnable goes to the local queue (spawning needs
//! the set, so it happens on the owner). A woken task's runnable goes to one
//! of two queues (`current::schedule`):
//!
//! - the *local queue* (`Context::queue`, a `RefCell`, no lock) if the
//!   waking thread is the owner and has the set entered (the thread-local
//!   `CURRENT` holds its context): while the set is polled, while it is
//!   dropped, and under a [`LocalSet::enter`] guard. Only while the set is
//!   polled (`Context::polling`) does the wake skip waking the set's waker:
//!   the tick in progress will find the runnable;
//! - the *remote queue* (`Shared`, an mpsc channel) otherwise, after which
//!   the wake wakes the set's waker, an `AtomicWaker` holding the waker of
//!   the last poll of the set or of its `run_until`.
//!
//! A poll registers its waker before it reads the remote queue, so a push
//! that the poll does not see wakes the new waker: no wake is lost.
//!
//! # Ticks
//!
//! A poll of `run_until` polls its future and then runs one tick; a poll of
//! the set runs one tick. A tick moves the remote queue to the back of the
//! local one and runs at most `MAX_TASKS_PER_TICK` (61, tokio's number)
//! tasks from the front. If tasks are still queued after that, the poll
//! wakes its own waker and returns `Pending`: a set polled next to other
//! futures (under `join!`, `select!`, or in a task) shares the thread with
//! them, and tasks that keep waking themselves cannot starve the remote
//! queue, which joins the local one at every tick.
//!
//! # Drop
//!
//! Dropping the set drops the future of each of its tasks exactly once, on
//! the owner (`Context::shutdown`):
//! 1. The set is entered as if polled: wakes from the destructors below go
//!    to the local queue, and `spawn_local` from them targets this set.
//! 2. The set's registry closes: a spawn from now on drops its future at
//!    once and returns a cancelled handle. Every task still alive is woken:
//!    an idle one is scheduled (into the local queue); one already
//!    scheduled has its runnable in a queue, or on its way to the remote
//!    queue from the thread that woke it.
//! 3. Runnables are taken from both queues and dropped without being run.
//!    Dropping a runnable drops the task's future, and its `JoinHandle`
//!    resolves as cancelled. While futures are alive (counted in `live.rs`)
//!    and both queues are empty, the owner blocks on the remote queue: such
//!    a future belongs to a task that another thread has marked scheduled
//!    and not yet pushed (async-task lets only the holder of a runnable drop
//!    its future), and that push comes next.
//!
//! After step 3 no runnable of the set exists and none can be made: waking
//! a task whose future is gone does nothing.

mod context;
mod current;
mod live;
mod set;
mod shared;

pub use current::{spawn_local, LocalEnterGuard};
pub use set::LocalSet;

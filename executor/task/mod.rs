//! Tasks: spawning, joining, cancelling and yielding; local task sets for
//! futures that are not `Send`; task-local storage and task ids.

mod builder;
pub mod coop;
mod error;
pub(crate) mod harness;
mod id;
mod join_handle;
mod join_set;
mod local_set;
pub(crate) mod registry;
pub(crate) mod stats;
mod task_local;
mod yield_now;

pub use builder::Builder;
pub use coop::{consume_budget, unconstrained, Unconstrained};
pub(crate) use error::panic_message;
pub use error::JoinError;
pub use id::{id, try_id, Id};
pub use join_handle::{AbortHandle, JoinHandle};
pub use join_set::JoinSet;
pub use local_set::{spawn_local, LocalEnterGuard, LocalSet};
pub use task_local::{AccessError, LocalKey};
pub use yield_now::yield_now;

pub use crate::runtime::{spawn, spawn_blocking};

/// The futures that task functions return, at tokio's path
/// (`tokio::task::futures`).
///
/// ```
/// wq::task_local! {
///     static KEY: u32;
/// }
///
/// let future: wq::task::futures::TaskLocalFuture<u32, _> = KEY.scope(1, async { KEY.get() });
/// let rt = wq::Runtime::new().unwrap();
/// assert_eq!(rt.block_on(future), 1);
/// ```
pub mod futures {
    pub use super::task_local::TaskLocalFuture;
}

/// A scheduled task as the pool sees it: runs one poll.
pub(crate) type Runnable = async_task::Runnable<Tag>;

/// What the pool reads of a scheduled task: async-task's metadata, kept in
/// the task's allocation.
#[derive(Debug)]
pub(crate) struct Tag {
    /// Published in the worker's poll stamp while the task is polled.
    pub(crate) id: Id,
    /// The rescuer of the task's workqueue (a `mem_reclaim` queue's), or
    /// [`NO_RESCUER`].
    pub(crate) rescuer: u64,
    /// Its workqueue's counters, published in the poll stamp too.
    pub(crate) queue: stats::QueueId,
    /// What the task shares with its handles.
    pub(crate) state: harness::TaskState,
}

/// The `rescuer` tag of a task whose workqueue has none.
pub(crate) const NO_RESCUER: u64 = 0;

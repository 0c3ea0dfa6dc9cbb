//! Tasks: spawning, joining, cancelling and yielding.

mod builder;
mod error;
pub(crate) mod harness;
mod id;
mod join_handle;
mod join_set;
pub(crate) mod registry;
mod yield_now;

pub use builder::Builder;
pub use error::JoinError;
pub use id::Id;
pub use join_handle::{AbortHandle, JoinHandle};
pub use join_set::JoinSet;
pub use yield_now::yield_now;

pub use crate::runtime::{spawn, spawn_blocking};

/// A scheduled task as the pool sees it: runs one poll. Its metadata is the
/// task's id.
pub(crate) type Runnable = async_task::Runnable<Id>;

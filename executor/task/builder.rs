//! `wq::task::Builder`: spawning with a name.

use std::future::Future;
use std::io;
use std::panic::Location;
use std::sync::Arc;

use super::registry::SpawnMeta;
use super::JoinHandle;
use crate::runtime::Handle;

/// Spawns a task with settings, as tokio's `task::Builder` does. A task's
/// name appears in the runtime's reports about it (a CPU hog warning, for
/// one), next to its id and spawn location.
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = wq::task::Builder::new()
///         .name("fetch-config")
///         .spawn(async { 42 })
///         .unwrap();
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Builder<'a> {
    name: Option<&'a str>,
}

impl<'a> Builder<'a> {
    /// A builder for an unnamed task.
    pub fn new() -> Builder<'a> {
        Builder { name: None }
    }

    /// Names the task.
    pub fn name(self, name: &'a str) -> Builder<'a> {
        Builder { name: Some(name) }
    }

    /// Spawns `future` on the current runtime. Never fails today; the
    /// `Result` is tokio's signature.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime context, like [`wq::spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let meta = self.meta(Location::caller());
        Ok(crate::runtime::spawn_with(future, meta))
    }

    /// Spawns `future` on the runtime of `handle`.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Ok(handle.spawn_with(future, self.meta(Location::caller())))
    }

    fn meta(self, location: &'static Location<'static>) -> SpawnMeta {
        SpawnMeta {
            location,
            name: self.name.map(Arc::from),
            queue: crate::task::stats::QueueId::SYSTEM,
        }
    }
}

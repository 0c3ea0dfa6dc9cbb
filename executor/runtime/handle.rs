//! `Handle`: a cloneable reference to a runtime.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::pool::Pool;
use crate::task::registry::SpawnMeta;
use crate::task::{harness, JoinHandle};

use super::context::{self, SetCurrentGuard};
use super::{block_on, Inner, RuntimeFlavor};

/// A cloneable, `Send + Sync` reference to a runtime, for spawning onto it
/// from anywhere. A handle does not keep the runtime running: once the
/// [`Runtime`](crate::Runtime) is dropped, spawns through a handle yield
/// cancelled tasks.
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let result = std::thread::spawn(move || handle.block_on(async { 7 }))
///     .join()
///     .unwrap();
/// assert_eq!(result, 7);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

/// Returned by [`Handle::try_current`] outside a runtime context.
#[derive(Debug)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no wq runtime is current on this thread")
    }
}

impl std::error::Error for TryCurrentError {}

impl TryCurrentError {
    /// Whether no runtime was current on the thread: always, the only
    /// reason [`Handle::try_current`] fails (tokio's also fails while the
    /// thread's locals are being destroyed).
    ///
    /// ```
    /// let err = wq::Handle::try_current().unwrap_err();
    /// assert!(err.is_missing_context());
    /// ```
    pub fn is_missing_context(&self) -> bool {
        true
    }
}

/// Makes a runtime current on this thread until dropped; see
/// [`Handle::enter`].
#[must_use = "the runtime is current only while the guard lives"]
pub struct EnterGuard<'a> {
    _guard: SetCurrentGuard,
    _handle: PhantomData<&'a Handle>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}

impl Handle {
    /// The handle of the runtime current on this thread.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime context (a task, `block_on`, or an
    /// [`enter`](Handle::enter) guard).
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let handle = wq::Handle::current();
    ///     assert_eq!(handle.spawn(async { 5 }).await.unwrap(), 5);
    /// });
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => panic!(
                "there is no wq runtime current on this thread: `Handle::current` must be \
                 called from a task, inside `block_on`, or while an `enter` guard is held"
            ),
        }
    }

    /// The handle of the current runtime, or an error outside one.
    ///
    /// ```
    /// assert!(wq::Handle::try_current().is_err());
    /// ```
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::with_current(|handle| handle.cloned()).ok_or(TryCurrentError(()))
    }

    /// Spawns `future` onto the runtime and returns its [`JoinHandle`]. The
    /// task starts running at once on a worker; awaiting the handle is
    /// optional. After the runtime has shut down the task is not run and the
    /// handle resolves to a cancelled [`JoinError`](crate::task::JoinError).
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let handle = rt.handle().spawn(async { "done" });
    /// assert_eq!(rt.block_on(handle).unwrap(), "done");
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, SpawnMeta::here())
    }

    /// The runtime's system workqueues.
    pub(crate) fn system_queues(&self) -> &crate::workqueue::SystemQueues {
        &self.inner.system_queues
    }

    /// Spawns `future` on the `system` workqueue, recording where (and as
    /// what) it was spawned.
    pub(crate) fn spawn_with<F>(&self, future: F, meta: SpawnMeta) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::workqueue::spawn_system(self, future, meta)
    }

    /// The runtime's high-priority pool, created on first use.
    pub(crate) fn highpri_pool(&self) -> std::io::Result<&Pool> {
        self.inner.highpri_pool()
    }

    /// The runtime's shared state, for the layers above the pools.
    pub(crate) fn inner(&self) -> &super::Inner {
        &self.inner
    }

    /// Spawns `future` onto `pool`, one of this runtime's pools; `counted`
    /// counts it in the registry's flush colours (`system` tasks);
    /// `rescuer` is the tag of its workqueue's rescuer, if it has one.
    pub(crate) fn spawn_on_pool<F>(
        &self,
        future: F,
        meta: SpawnMeta,
        pool: &Pool,
        counted: bool,
        rescuer: u64,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let pool = pool.clone();
        let schedule = move |runnable, yielded| pool.schedule(runnable, yielded);
        let tasks = &self.inner.tasks;
        let (runnable, handle) = harness::spawn(future, meta, counted, rescuer, tasks, schedule);
        if let Some(runnable) = runnable {
            runnable.schedule();
        }
        handle
    }

    /// Runs the blocking closure `f` on a worker of the runtime, inside
    /// [`wq::blocking`](crate::blocking): the worker leaves the concurrency
    /// count while `f` runs and another takes its place. A closure that has
    /// started is not interrupted by abort or shutdown. On a current-thread
    /// runtime the closures run on a pool of threads of their own (named
    /// like the workers, with a `B`), never on the `block_on` thread.
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let handle = rt.handle().spawn_blocking(|| std::fs::metadata(".").is_ok());
    /// assert!(rt.block_on(handle).unwrap());
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let meta = SpawnMeta::here();
        let task = async move { crate::blocking(f) };
        match self.inner.flavor {
            RuntimeFlavor::MultiThread => self.spawn_with(task, meta),
            // Not on the `block_on` thread, which would block everything
            // else: on the blocking pool's threads (created on first use).
            RuntimeFlavor::CurrentThread => match self.inner.blocking_pool() {
                Ok(pool) => self.spawn_on_pool(task, meta, &pool, false, crate::task::NO_RESCUER),
                Err(err) => {
                    panic!("`spawn_blocking` could not create the runtime's blocking thread: {err}")
                }
            },
        }
    }

    /// Runs `future` to completion on the current thread, with this runtime
    /// current; spawned tasks run on its workers.
    ///
    /// # Panics
    ///
    /// Panics if called from a thread that already drives a runtime (a
    /// worker, or inside `block_on`).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _driving = context::enter_driving(self.clone());
        match self.inner.flavor {
            RuntimeFlavor::MultiThread => block_on::block_on(future, &self.inner.time),
            RuntimeFlavor::CurrentThread => {
                block_on::block_on_current_thread(future, &self.inner.pool, &self.inner.time)
            }
        }
    }

    /// Which kind of runtime this handle belongs to.
    ///
    /// ```
    /// let rt = wq::Builder::new_current_thread().build().unwrap();
    /// assert_eq!(rt.handle().runtime_flavor(), wq::RuntimeFlavor::CurrentThread);
    /// ```
    pub fn runtime_flavor(&self) -> RuntimeFlavor {
        self.inner.flavor
    }

    /// Makes this runtime current on this thread until the guard is dropped,
    /// so that [`wq::spawn`](crate::spawn) and [`Handle::current`] work from
    /// synchronous code.
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let _guard = rt.handle().enter();
    /// let task = wq::spawn(async { 3 });
    /// assert_eq!(rt.block_on(task).unwrap(), 3);
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _guard: context::set_current(self.clone()),
            _handle: PhantomData,
        }
    }

    /// Figures about the runtime, read now.
    ///
    /// ```
    /// let rt = wq::Builder::new().workers(2).build().unwrap();
    /// let metrics = rt.handle().metrics();
    /// assert!(metrics.num_workers() >= 1);
    /// assert!(metrics.num_workers() <= 512);
    /// ```
    pub fn metrics(&self) -> crate::RuntimeMetrics {
        crate::RuntimeMetrics::new(self.inner.clone())
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("pool", &self.inner.pool)
            .finish()
    }
}

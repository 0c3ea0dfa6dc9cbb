//! `JoinSet`: a collection of spawned tasks, joined in completion order.

mod members;

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use super::{AbortHandle, Id, JoinError, JoinHandle, LocalSet};
use members::Members;

/// A set of tasks spawned on a runtime, awaited in the order they finish.
///
/// Dropping the set aborts every task still in it.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let mut set = wq::task::JoinSet::new();
/// for i in 0..10u32 {
///     set.spawn(async move { i * 2 });
/// }
/// let mut sum = 0;
/// while let Some(result) = set.join_next().await {
///     sum += result.unwrap();
/// }
/// assert_eq!(sum, 90);
/// # });
/// ```
pub struct JoinSet<T> {
    tasks: Members<T>,
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// ```
    /// let set = wq::task::JoinSet::<()>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> JoinSet<T> {
        JoinSet {
            tasks: Members::new(),
        }
    }

    /// How many tasks are in the set (finished ones not yet joined included).
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(async {});
    /// assert_eq!(set.len(), 1);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(async {});
    /// set.join_next().await;
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tasks.len() == 0
    }

    /// Adds an already spawned task to the set.
    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        self.tasks.insert(handle)
    }

    /// Waits for the next task to finish and returns its result, or `None` if
    /// the set is empty. Cancel safe: a task is taken out of the set only
    /// when its result is returned.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(async { 1 });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
    /// assert!(set.join_next().await.is_none());
    /// # });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](JoinSet::join_next), with the id of the task that
    /// finished (a [`JoinError`] carries it too: [`JoinError::id`]). Cancel
    /// safe.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// let abort = set.spawn(async { "done" });
    /// let (id, output) = set.join_next_with_id().await.unwrap().unwrap();
    /// assert_eq!((id, output), (abort.id(), "done"));
    /// # });
    /// ```
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// Polls for the next finished task; `Ready(None)` if the set is empty.
    /// On `Pending`, the waker of `cx` is woken when a task finishes; of
    /// several calls, only the last one's waker is.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(async { 3 });
    /// let result = std::future::poll_fn(|cx| set.poll_join_next(cx)).await;
    /// assert_eq!(result.unwrap().unwrap(), 3);
    /// # });
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|next| next.map(|result| result.map(|(_, output)| output)))
    }

    /// [`poll_join_next`](JoinSet::poll_join_next), with the id of the task
    /// that finished.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// let abort = set.spawn(async { 4 });
    /// let result = std::future::poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
    /// assert_eq!(result.unwrap().unwrap(), (abort.id(), 4));
    /// # });
    /// ```
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        self.tasks.poll_next(cx)
    }

    /// The result of a task that has already finished, without waiting:
    /// `None` if no task of the set has finished (or the set is empty).
    /// A task counts as finished once its completion has reached the set,
    /// a moment after its [`JoinHandle::is_finished`] turns true.
    ///
    /// It needs no [`Context`]: it works outside any task, is not limited
    /// by the task's budget of [`coop`](crate::task::coop), and leaves the
    /// waker of the last [`poll_join_next`](JoinSet::poll_join_next) (or
    /// `join_next`) registered.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(async { 5 });
    /// let output = loop {
    ///     match set.try_join_next() {
    ///         Some(result) => break result.unwrap(),
    ///         // Not finished yet: do something else meanwhile.
    ///         None => wq::task::yield_now().await,
    ///     }
    /// };
    /// assert_eq!(output, 5);
    /// assert!(set.try_join_next().is_none());
    /// # });
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id()
            .map(|result| result.map(|(_, output)| output))
    }

    /// [`try_join_next`](JoinSet::try_join_next), with the id of the task
    /// that finished.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// let abort = set.spawn(async { 6 });
    /// let joined = loop {
    ///     match set.try_join_next_with_id() {
    ///         Some(result) => break result.unwrap(),
    ///         None => wq::task::yield_now().await,
    ///     }
    /// };
    /// assert_eq!(joined, (abort.id(), 6));
    /// # });
    /// ```
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        self.tasks.try_next()
    }

    /// Aborts every task in the set. They stay in the set; joining them
    /// yields their cancellation (or their result if they had finished).
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.abort_all();
    /// assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_all(&mut self) {
        self.tasks.abort_all();
    }

    /// Removes every task from the set without aborting it: they run on,
    /// detached, as if their [`JoinHandle`]s had been dropped. The set is
    /// empty afterwards.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(async move { tx.send("still ran").unwrap() });
    /// set.detach_all();
    /// drop(set);
    /// assert_eq!(rx.await.unwrap(), "still ran");
    /// # });
    /// ```
    pub fn detach_all(&mut self) {
        self.tasks.clear();
    }

    /// Aborts every task and waits until all have stopped; the set is empty
    /// afterwards.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.shutdown().await;
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task and returns their outputs, in the order the
    /// tasks finished.
    ///
    /// # Panics
    ///
    /// If a task panicked, its panic is resumed here; if one was cancelled,
    /// this panics with its [`JoinError`]. The tasks still in the set are
    /// aborted then (the set is dropped). Join with
    /// [`join_next`](JoinSet::join_next) to handle errors otherwise.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// for i in 1..=3u32 {
    ///     set.spawn(async move { i * 10 });
    /// }
    /// let mut outputs = set.join_all().await;
    /// outputs.sort_unstable();
    /// assert_eq!(outputs, [10, 20, 30]);
    /// # });
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut outputs = Vec::with_capacity(self.len());
        while let Some(result) = self.join_next().await {
            match result {
                Ok(output) => outputs.push(output),
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => panic!("{err}"),
            }
        }
        outputs
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` on the current runtime and adds it to the set.
    ///
    /// # Panics
    ///
    /// Panics outside a wq runtime, like [`wq::spawn`](crate::spawn).
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// let abort = set.spawn(async { 2 });
    /// assert_eq!(set.join_next_with_id().await.unwrap().unwrap(), (abort.id(), 2));
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(crate::spawn(future))
    }

    /// Spawns `future` on the runtime behind `handle` and adds it to the set.
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn_on(async { 1 }, rt.handle());
    /// assert_eq!(rt.block_on(set.join_all()), [1]);
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(&mut self, future: F, handle: &crate::Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Runs the blocking closure `f` on the current runtime, as
    /// [`wq::task::spawn_blocking`](crate::task::spawn_blocking) does, and
    /// adds its task to the set. Aborting it before it starts keeps it from
    /// running; a closure that has started runs to its end.
    ///
    /// # Panics
    ///
    /// Panics outside a wq runtime, like `spawn_blocking`.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut set = wq::task::JoinSet::new();
    /// for i in 0..4u64 {
    ///     set.spawn_blocking(move || {
    ///         std::thread::sleep(std::time::Duration::from_millis(5));
    ///         i
    ///     });
    /// }
    /// let mut outputs = set.join_all().await;
    /// outputs.sort_unstable();
    /// assert_eq!(outputs, [0, 1, 2, 3]);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(crate::task::spawn_blocking(f))
    }

    /// Runs the blocking closure `f` on the runtime behind `handle`, as
    /// [`Handle::spawn_blocking`](crate::Handle::spawn_blocking) does, and
    /// adds its task to the set.
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let mut set = wq::task::JoinSet::new();
    /// set.spawn_blocking_on(|| "blocking", rt.handle());
    /// assert_eq!(rt.block_on(set.join_all()), ["blocking"]);
    /// ```
    #[track_caller]
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &crate::Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(handle.spawn_blocking(f))
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns the `!Send` `future` on the [`LocalSet`] entered on this
    /// thread, as [`wq::task::spawn_local`](crate::task::spawn_local) does,
    /// and adds it to the set.
    ///
    /// # Panics
    ///
    /// Panics outside a `LocalSet`, like `spawn_local`.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = wq::Runtime::new().unwrap();
    /// let local = wq::task::LocalSet::new();
    /// let outputs = local.block_on(&rt, async {
    ///     let mut set = wq::task::JoinSet::new();
    ///     let shared = Rc::new(5);
    ///     for i in 0..2 {
    ///         let shared = shared.clone();
    ///         set.spawn_local(async move { *shared + i });
    ///     }
    ///     set.join_all().await
    /// });
    /// assert_eq!(outputs.iter().sum::<i32>(), 11);
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.insert(crate::task::spawn_local(future))
    }

    /// Spawns the `!Send` `future` on `local_set`, as
    /// [`LocalSet::spawn_local`] does (the set need not be entered or
    /// running: the task starts at its next poll), and adds it to the set.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = wq::Runtime::new().unwrap();
    /// let local = wq::task::LocalSet::new();
    /// let mut set = wq::task::JoinSet::new();
    /// let name = Rc::new("local");
    /// set.spawn_local_on(async move { *name }, &local);
    /// assert_eq!(local.block_on(&rt, set.join_all()), ["local"]);
    /// ```
    #[track_caller]
    pub fn spawn_local_on<F>(&mut self, future: F, local_set: &LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.insert(local_set.spawn_local(future))
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

/// Spawns each future of the iterator on the current runtime into a new
/// set, as [`JoinSet::spawn`] does.
///
/// # Panics
///
/// Panics outside a wq runtime.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let set: wq::task::JoinSet<u32> = (1..=4).map(|i| async move { i * i }).collect();
/// let total: u32 = set.join_all().await.into_iter().sum();
/// assert_eq!(total, 30);
/// # });
/// ```
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = F>>(futures: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        set.extend(futures);
        set
    }
}

/// Spawns each future of the iterator on the current runtime and adds it to
/// the set, as [`JoinSet::spawn`] does.
///
/// # Panics
///
/// Panics outside a wq runtime.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let mut set = wq::task::JoinSet::new();
/// set.spawn(async { 1 });
/// set.extend((2..=3).map(|i| async move { i }));
/// assert_eq!(set.len(), 3);
/// # });
/// ```
impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn extend<I: IntoIterator<Item = F>>(&mut self, futures: I) {
        for future in futures {
            self.spawn(future);
        }
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

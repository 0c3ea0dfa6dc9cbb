//! `LocalKey`: a task-local key, and entering its scope.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::mem;
use std::thread;

use super::{AccessError, TaskLocalFuture};

/// A key to task-local storage, declared with
/// [`task_local!`](crate::task_local).
///
/// The key holds a value only inside a scope: the future given to
/// [`scope`](LocalKey::scope), while it is polled (on whichever worker),
/// and the closure given to [`sync_scope`](LocalKey::sync_scope). There,
/// [`with`](LocalKey::with) and [`get`](LocalKey::get) read it. Each task
/// (each scope, really) has its own value: tasks running at once never see
/// each other's. A task does not inherit its spawner's value: give it a
/// scope of its own.
///
/// ```
/// wq::task_local! {
///     static NUMBER: u32;
/// }
///
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let a = wq::spawn(NUMBER.scope(1, async {
///     wq::task::yield_now().await;
///     NUMBER.get()
/// }));
/// let b = wq::spawn(NUMBER.scope(2, async {
///     wq::task::yield_now().await;
///     NUMBER.get()
/// }));
/// assert_eq!(a.await.unwrap(), 1);
/// assert_eq!(b.await.unwrap(), 2);
/// assert!(NUMBER.try_with(|n| *n).is_err());
/// # });
/// ```
pub struct LocalKey<T: 'static> {
    /// Holds the value while a scope of the key runs on this thread.
    slot: thread::LocalKey<RefCell<Option<T>>>,
}

/// Why a scope could not be entered.
pub(super) enum ScopeError {
    /// Inside [`LocalKey::with`] of the same key.
    Borrowed,
    /// While the thread's locals are being destroyed.
    Destroyed,
}

impl ScopeError {
    #[track_caller]
    pub(super) fn panic(self) -> ! {
        match self {
            ScopeError::Borrowed => panic!(
                "cannot enter a task-local scope while the task-local storage is borrowed: \
                 a scope of this key was entered inside `LocalKey::with` of the same key"
            ),
            ScopeError::Destroyed => panic!(
                "cannot enter a task-local scope during or after destruction of the underlying \
                 thread-local"
            ),
        }
    }
}

impl<T: 'static> LocalKey<T> {
    /// The key backed by `slot`: what [`task_local!`](crate::task_local)
    /// expands to. Not part of the API.
    #[doc(hidden)]
    pub const fn __from_slot(slot: thread::LocalKey<RefCell<Option<T>>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// Sets the key to `value` while `future` runs: each poll of the
    /// returned future (and its drop) sees `value`, wherever it is polled.
    /// When it completes, `future` is dropped inside the scope and then the
    /// value with the returned future.
    ///
    /// Inside an outer scope of the same key, the inner value shadows the
    /// outer one for the inner future's polls.
    ///
    /// ```
    /// wq::task_local! {
    ///     static NAME: &'static str;
    /// }
    ///
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// NAME.scope("outer", async {
    ///     assert_eq!(NAME.get(), "outer");
    ///     NAME.scope("inner", async {
    ///         wq::task::yield_now().await;
    ///         assert_eq!(NAME.get(), "inner");
    ///     })
    ///     .await;
    ///     assert_eq!(NAME.get(), "outer");
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture::new(self, value, future)
    }

    /// Sets the key to `value` while `f` runs on this thread, and returns
    /// what `f` returns. The value is dropped after `f` returns (or
    /// unwinds).
    ///
    /// # Panics
    ///
    /// Panics inside [`with`](LocalKey::with) of the same key, as tokio's
    /// does: "cannot enter a task-local scope while the task-local storage
    /// is borrowed".
    ///
    /// ```
    /// wq::task_local! {
    ///     static LIMIT: usize;
    /// }
    ///
    /// let doubled = LIMIT.sync_scope(21, || LIMIT.with(|limit| limit * 2));
    /// assert_eq!(doubled, 42);
    /// ```
    #[track_caller]
    pub fn sync_scope<F, R>(&'static self, value: T, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        let mut slot = Some(value);
        match self.enter(&mut slot, f) {
            Ok(output) => output,
            Err(err) => err.panic(),
        }
    }

    /// Runs `f` with the value in `slot` set for this key, the key's value
    /// before (if any) being kept in `slot` meanwhile; the two are swapped
    /// back when `f` returns or unwinds.
    pub(super) fn enter<R>(
        &'static self,
        slot: &mut Option<T>,
        f: impl FnOnce() -> R,
    ) -> Result<R, ScopeError> {
        self.slot
            .try_with(|cell| {
                let mut current = cell.try_borrow_mut().map_err(|_| ScopeError::Borrowed)?;
                mem::swap(slot, &mut *current);
                Ok(())
            })
            .map_err(|_| ScopeError::Destroyed)??;

        /// Swaps the values back, also on unwind.
        struct SwapBack<'a, T: 'static> {
            key: &'static LocalKey<T>,
            slot: &'a mut Option<T>,
        }

        impl<T: 'static> Drop for SwapBack<'_, T> {
            fn drop(&mut self) {
                // No borrow of the cell is alive here: the only ones are
                // those of `with`, which end before the scope that `with`
                // runs in can end. The slot lives as long as the scope did.
                let _ = self
                    .key
                    .slot
                    .try_with(|cell| mem::swap(self.slot, &mut *cell.borrow_mut()));
            }
        }

        let _swap_back = SwapBack { key: self, slot };
        Ok(f())
    }

    /// Runs `f` with a reference to the key's value and returns what it
    /// returns. Scopes of this key cannot be entered inside `f`.
    ///
    /// # Panics
    ///
    /// Panics outside a scope of the key, as tokio's does: "cannot access a
    /// task-local storage value without setting it first". Use
    /// [`try_with`](LocalKey::try_with) where that can happen.
    ///
    /// ```
    /// wq::task_local! {
    ///     static GREETING: String;
    /// }
    ///
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let len = GREETING
    ///     .scope("hello".to_string(), async { GREETING.with(|g| g.len()) })
    ///     .await;
    /// assert_eq!(len, 5);
    /// # });
    /// ```
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(output) => output,
            Err(AccessError(())) => panic!(
                "cannot access a task-local storage value without setting it first: the \
                 task-local value is not set outside `LocalKey::scope` and \
                 `LocalKey::sync_scope`"
            ),
        }
    }

    /// Runs `f` with a reference to the key's value, or returns
    /// [`AccessError`] outside a scope of the key (`f` is not called then).
    ///
    /// ```
    /// wq::task_local! {
    ///     static LEVEL: u8;
    /// }
    ///
    /// assert!(LEVEL.try_with(|level| *level).is_err());
    /// assert_eq!(LEVEL.sync_scope(3, || LEVEL.try_with(|level| *level)), Ok(3));
    /// ```
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        // Once the thread's locals are destroyed no scope can be running.
        let value = self.slot.try_with(|cell| {
            // Never borrowed mutably while other code runs: a scope's swap
            // calls nothing.
            let current = cell.borrow();
            current.as_ref().map(f)
        });
        match value {
            Ok(Some(output)) => Ok(output),
            Ok(None) | Err(_) => Err(AccessError(())),
        }
    }
}

impl<T: Clone + 'static> LocalKey<T> {
    /// A clone of the key's value.
    ///
    /// # Panics
    ///
    /// Panics outside a scope of the key, like [`with`](LocalKey::with).
    ///
    /// ```
    /// wq::task_local! {
    ///     static TENANT: &'static str;
    /// }
    ///
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let tenant = TENANT.scope("acme", async { TENANT.get() }).await;
    /// assert_eq!(tenant, "acme");
    /// # });
    /// ```
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("LocalKey { .. }")
    }
}

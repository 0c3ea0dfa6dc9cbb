//! Task identifiers, and the id of the task being polled on this thread.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// An opaque, unique identifier of a task, for as long as the process runs.
///
/// Ids are never reused. They appear in [`JoinError`](crate::task::JoinError)
/// messages and in the runtime's reports. A task reads its own with
/// [`wq::task::id`](id); others read it from its
/// [`JoinHandle::id`](crate::task::JoinHandle::id).
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// let a = rt.spawn(async {});
/// let b = rt.spawn(async {});
/// assert_ne!(a.id(), b.id());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    pub(crate) fn next() -> Id {
        // Uniqueness is all that is needed: Relaxed.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id(NEXT.fetch_add(1, Relaxed))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    /// The id whose `as_u64` is `raw`.
    pub(crate) fn from_u64(raw: u64) -> Id {
        Id(raw)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

thread_local! {
    /// The id of the task whose future this thread is polling (or dropping),
    /// if any.
    static CURRENT: Cell<Option<Id>> = const { Cell::new(None) };
}

/// The [`Id`] of the task being run: the same as its
/// [`JoinHandle::id`](crate::task::JoinHandle::id).
///
/// Every task has one: those of [`wq::spawn`](crate::spawn), of
/// workqueues, of [`spawn_local`](crate::task::spawn_local) and of
/// [`spawn_blocking`](crate::task::spawn_blocking) (inside the closure). It
/// is set while the task's future is polled or dropped.
///
/// # Panics
///
/// Panics outside a task, as tokio's does. The future given to `block_on`
/// is not a task: use [`try_id`] where that can happen.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let handle = wq::spawn(async { wq::task::id() });
/// let id = handle.id();
/// assert_eq!(handle.await.unwrap(), id);
/// # });
/// ```
#[track_caller]
pub fn id() -> Id {
    match try_id() {
        Some(id) => id,
        None => panic!(
            "Can't get a task id when not inside a task: `wq::task::id` was called outside of \
             a task (the future of `block_on` is not one); use `wq::task::try_id` there"
        ),
    }
}

/// The [`Id`] of the task being run, or `None` outside a task (on a thread
/// of your own, or in the future given to `block_on`, which is not a task).
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// assert_eq!(wq::task::try_id(), None);
/// rt.block_on(async {
///     assert_eq!(wq::task::try_id(), None);
///     let handle = wq::spawn(async { wq::task::try_id() });
///     let id = handle.id();
///     assert_eq!(handle.await.unwrap(), Some(id));
/// });
/// ```
pub fn try_id() -> Option<Id> {
    // `None` while the thread's locals are being destroyed.
    CURRENT.try_with(Cell::get).ok().flatten()
}

/// Makes `id` the current task's id until the guard drops; then the one
/// before is restored (polls nest: a `LocalSet` polled inside a task).
#[inline]
pub(crate) fn enter(id: Id) -> Current {
    Current(
        CURRENT
            .try_with(|current| current.replace(Some(id)))
            .ok()
            .flatten(),
    )
}

/// The previous task id, restored on drop; see [`enter`].
pub(crate) struct Current(Option<Id>);

impl Drop for Current {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| current.set(self.0));
    }
}

//! The set entered on this thread: where [`spawn_local`] spawns, and where
//! this thread's wakes of that set's tasks are queued.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use crate::task::registry::SpawnMeta;
use crate::task::{JoinHandle, Runnable};

use super::context::Context;
use super::shared::Shared;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
}

/// The message of [`spawn_local`] outside a set. It starts with the words of
/// tokio's, for tests written against tokio.
const OUTSIDE: &str = "`spawn_local` called from outside of a `task::LocalSet`: call it from a \
    task of a `LocalSet`, inside `LocalSet::run_until` or `LocalSet::block_on`, while a \
    `LocalSet::enter` guard is held, or use `LocalSet::spawn_local`";

/// Spawns a `!Send` future onto the [`LocalSet`](super::LocalSet) entered on
/// this thread and returns its [`JoinHandle`]. The task runs on this thread,
/// at the set's next tick (whether or not the handle is awaited), and only
/// while the set is polled: by [`run_until`](super::LocalSet::run_until),
/// [`block_on`](super::LocalSet::block_on), or awaiting the set.
///
/// The handle behaves as one from [`wq::spawn`](crate::spawn): abort it from
/// any thread, and a panic in the task is caught and returned as a
/// [`JoinError`](crate::task::JoinError) for which `is_panic` holds. It is
/// `Send` if the output is.
///
/// # Panics
///
/// Panics outside a set: call it from one of its tasks, from the future of
/// `run_until` or `block_on`, or while an [`enter`](super::LocalSet::enter)
/// guard is held; or use [`LocalSet::spawn_local`](super::LocalSet::spawn_local).
///
/// ```
/// use std::rc::Rc;
///
/// let rt = wq::Runtime::new().unwrap();
/// let local = wq::task::LocalSet::new();
/// let name = Rc::new(String::from("local"));
/// let len = local.block_on(&rt, async move {
///     // `Rc` is not `Send`: `wq::spawn` would not accept this future.
///     let task = wq::task::spawn_local(async move { name.len() });
///     task.await.unwrap()
/// });
/// assert_eq!(len, 5);
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let meta = SpawnMeta::here();
    match current() {
        Some(context) => context.spawn(future, meta),
        None => panic!("{OUTSIDE}"),
    }
}

/// The context of the set entered on this thread, if any.
fn current() -> Option<Rc<Context>> {
    CURRENT.try_with(|current| current.borrow().clone()).ok()?
}

/// Queues a woken task of the set that `shared` belongs to: on the local
/// queue if this thread is the set's owner and has the set entered, on the
/// remote queue otherwise.
pub(super) fn schedule(shared: &Arc<Shared>, runnable: Runnable) {
    match current() {
        Some(context) if Arc::ptr_eq(&context.shared, shared) => context.push(runnable),
        _ => shared.push_remote(runnable),
    }
}

/// Makes `context` the entered set on this thread, and with `polling`
/// marks it polled, until dropped; then what was before is restored.
pub(super) fn enter(context: &Rc<Context>, polling: bool) -> Entered {
    // `None` while the thread's locals are being destroyed: the set still
    // works, its wakes going through the remote queue.
    let prev = CURRENT
        .try_with(|current| current.replace(Some(context.clone())))
        .ok();
    let was_polling = polling.then(|| context.polling.replace(true));
    Entered {
        context: context.clone(),
        prev,
        was_polling,
    }
}

/// A set entered on this thread; see [`enter`].
pub(super) struct Entered {
    context: Rc<Context>,
    prev: Option<Option<Rc<Context>>>,
    was_polling: Option<bool>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(was_polling) = self.was_polling {
            self.context.polling.set(was_polling);
        }
        if let Some(prev) = self.prev.take() {
            // The replaced context is dropped outside the borrow.
            let _replaced = CURRENT.try_with(|current| current.replace(prev));
        }
    }
}

/// Makes a [`LocalSet`](super::LocalSet) the target of [`spawn_local`] on
/// this thread until dropped; see [`LocalSet::enter`](super::LocalSet::enter).
///
/// ```
/// let local = wq::task::LocalSet::new();
/// let guard = local.enter();
/// let task = wq::task::spawn_local(async { 1 });
/// drop(guard);
/// let rt = wq::Runtime::new().unwrap();
/// assert_eq!(local.block_on(&rt, task).unwrap(), 1);
/// ```
#[must_use = "the set is entered only while the guard lives"]
pub struct LocalEnterGuard {
    pub(super) _entered: Entered,
}

impl fmt::Debug for LocalEnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalEnterGuard")
    }
}

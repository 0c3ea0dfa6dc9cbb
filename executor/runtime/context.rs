//! The per-thread runtime context: which runtime `wq::spawn` uses, and
//! whether the thread is already driving one (then `block_on` must not nest).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use super::Handle;

struct Context {
    /// The runtime `wq::spawn` and `Handle::current` refer to.
    handle: RefCell<Option<Handle>>,
    /// The thread is a worker or inside `block_on`: blocking on a runtime here
    /// would stall the tasks this thread drives.
    driving: Cell<bool>,
}

thread_local! {
    static CONTEXT: Context = const {
        Context {
            handle: RefCell::new(None),
            driving: Cell::new(false),
        }
    };
}

/// Runs `f` with the current handle, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    CONTEXT.with(|ctx| f(ctx.handle.borrow().as_ref()))
}

/// Makes `handle` current until the guard drops (then the previous one is
/// restored).
pub(crate) fn set_current(handle: Handle) -> SetCurrentGuard {
    let prev = CONTEXT.with(|ctx| ctx.handle.replace(Some(handle)));
    SetCurrentGuard {
        prev,
        _not_send: PhantomData,
    }
}

pub(crate) struct SetCurrentGuard {
    prev: Option<Handle>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // Drop the replaced handle outside the borrow: dropping the last
        // handle of a runtime runs arbitrary code.
        let _replaced = CONTEXT.with(|ctx| ctx.handle.replace(prev));
    }
}

/// The message for blocking on a runtime from a thread that drives one.
pub(crate) const NESTED_BLOCK_ON: &str = "Cannot start a runtime from within a runtime. \
    This happens because a function (like `block_on`) attempted to block the current thread \
    while the thread is being used to drive asynchronous tasks.";

/// Marks the thread as driving a runtime until the guard drops.
///
/// # Panics
///
/// Panics with [`NESTED_BLOCK_ON`] if the thread already drives one.
#[track_caller]
pub(crate) fn enter_driving(handle: Handle) -> DrivingGuard {
    if is_driving() {
        panic!("{NESTED_BLOCK_ON}");
    }
    CONTEXT.with(|ctx| ctx.driving.set(true));
    DrivingGuard {
        _current: set_current(handle),
    }
}

/// Marks a worker thread as driving its runtime for the rest of its life.
pub(crate) fn enter_worker(handle: Handle) {
    CONTEXT.with(|ctx| {
        ctx.driving.set(true);
        *ctx.handle.borrow_mut() = Some(handle);
    });
}

/// Clears a worker thread's context as it exits.
pub(crate) fn exit_worker() {
    let _handle = CONTEXT.with(|ctx| {
        ctx.driving.set(false);
        ctx.handle.borrow_mut().take()
    });
}

/// Marks the thread as not driving its runtime until the guard drops (then
/// the previous state is restored). For a worker inside `wq::blocking`: it
/// has left the pool's running count and handed its queue over, so
/// blocking on a runtime there stalls no task but the caller, as tokio
/// allows `Handle::block_on` inside `block_in_place` and `spawn_blocking`.
pub(crate) fn exit_driving() -> ExitDrivingGuard {
    let was_driving = CONTEXT.with(|ctx| ctx.driving.replace(false));
    ExitDrivingGuard {
        was_driving,
        _not_send: PhantomData,
    }
}

pub(crate) struct ExitDrivingGuard {
    was_driving: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ExitDrivingGuard {
    fn drop(&mut self) {
        CONTEXT.with(|ctx| ctx.driving.set(self.was_driving));
    }
}

pub(crate) fn is_driving() -> bool {
    CONTEXT.with(|ctx| ctx.driving.get())
}

pub(crate) struct DrivingGuard {
    _current: SetCurrentGuard,
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        CONTEXT.with(|ctx| ctx.driving.set(false));
    }
}

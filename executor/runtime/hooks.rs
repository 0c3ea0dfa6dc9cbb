//! The user's thread hooks (`on_thread_start`, `on_thread_stop`,
//! `on_thread_park`, `on_thread_unpark`), wrapped so that a panic in one
//! cannot take a thread of the runtime down with it.
//!
//! A panicking hook is reported through `tracing` at error level (the 1st,
//! 2nd, 4th, 8th… time it panics, so that a park hook that always panics
//! does not flood the log) and the thread carries on as if the hook had
//! returned: a worker keeps working, a rescuer keeps rescuing. The other
//! choice, letting the panic end the thread, would cost the pool a worker
//! (or a `mem_reclaim` queue its rescuer) for good, silently from the
//! tasks' point of view.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::pool::Hook;
use crate::task::panic_message;

/// `hook`, run so that its panics are caught and reported; `name` is the
/// `Builder` method that installed it.
pub(crate) fn guarded(name: &'static str, hook: Hook) -> Hook {
    let panics = AtomicU64::new(0);
    Arc::new(move || {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook())) {
            // Relaxed: a count for the report, nothing else reads it.
            let count = panics.fetch_add(1, Relaxed) + 1;
            if count.is_power_of_two() {
                tracing::error!(
                    hook = name,
                    panics = count,
                    message = panic_message(payload.as_ref()).unwrap_or("<not a string>"),
                    thread = std::thread::current().name().unwrap_or("<unnamed>"),
                    "wq: a thread hook panicked; the thread carries on as if it had returned"
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_panicking_hook_returns_and_a_quiet_one_runs() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let hook = guarded(
            "on_thread_park",
            Arc::new(move || {
                counted.fetch_add(1, Relaxed);
                panic!("hook failure");
            }),
        );
        for _ in 0..3 {
            hook();
        }
        assert_eq!(runs.load(Relaxed), 3);
    }
}

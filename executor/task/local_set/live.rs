//! The count of a set's live futures: those spawned and not yet dropped.
//!
//! A future is counted from its spawn and uncounted by its own destructor,
//! which async-task runs on the owner (it checks), so the count is a plain
//! `Cell`. The set is done when it reaches zero, and its drop waits for
//! that (see the module's docs).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

#[derive(Default)]
pub(super) struct Live(Rc<Cell<usize>>);

impl Live {
    /// How many counted futures have not been dropped.
    pub(super) fn count(&self) -> usize {
        self.0.get()
    }

    /// Counts `future` until it is dropped.
    pub(super) fn track<F: Future>(&self, future: F) -> Tracked<F> {
        self.0.set(self.0.get() + 1);
        Tracked {
            future,
            _token: Token(self.0.clone()),
        }
    }
}

pin_project! {
    /// A future counted as live.
    pub(super) struct Tracked<F> {
        #[pin]
        future: F,
        // Dropped after `future`, even if `future`'s destructor panics.
        _token: Token,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

struct Token(Rc<Cell<usize>>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

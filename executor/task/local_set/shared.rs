//! What the wakers of a set's tasks share with its owner, from any thread:
//! the remote queue and the set's waker.

use std::sync::mpsc::{self, Receiver, SendError, Sender};
use std::sync::Arc;
use std::task::Waker;

use futures::task::AtomicWaker;

use crate::task::Runnable;

pub(super) struct Shared {
    /// The remote queue; the owner holds the receiving end.
    remote: Sender<Runnable>,
    /// The waker of the set's last poll, woken when a task is queued while
    /// the set is not being polled.
    waker: AtomicWaker,
}

impl Shared {
    /// A set's shared half, and the receiving end of its remote queue.
    pub(super) fn new() -> (Arc<Shared>, Receiver<Runnable>) {
        let (remote, inbox) = mpsc::channel();
        let shared = Shared {
            remote,
            waker: AtomicWaker::new(),
        };
        (Arc::new(shared), inbox)
    }

    /// Queues `runnable` on the remote queue and wakes the set.
    pub(super) fn push_remote(&self, runnable: Runnable) {
        if let Err(SendError(runnable)) = self.remote.send(runnable) {
            // The receiver lives until the set's drop has dropped every
            // future (see the module's docs), and then no runnable exists.
            // Should one come anyway, leak it: dropping it here would drop
            // a local future on the wrong thread.
            std::mem::forget(runnable);
            return;
        }
        self.wake();
    }

    /// Wakes whoever polled the set last.
    pub(super) fn wake(&self) {
        self.waker.wake();
    }

    /// Lets go of the last poll's waker (at the set's drop): the wakers of
    /// its finished tasks, which may be kept anywhere, then keep nothing of
    /// whoever polled the set alive.
    pub(super) fn release_waker(&self) {
        drop(self.waker.take());
    }

    /// Makes `waker` the one woken by the next queued task. Called before
    /// each poll reads the remote queue.
    pub(super) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

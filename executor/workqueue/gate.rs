//! The future a workqueue task runs as: the user's future behind the
//! queue's admission.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{Inner, CURRENT, RECLAIMING};
use crate::time::Sleep;

/// Where a task stands with its queue.
pub(super) enum Admission {
    /// Not queued yet: a delayed task waiting for its timer.
    Delayed(Pin<Box<Sleep>>),
    /// Queued (in flush colour `color`), waiting on the inactive FIFO for
    /// a slot.
    Waiting { id: u64, color: u64 },
    /// Queued (in flush colour `.0`), holding one of the queue's slots: its
    /// future may be polled.
    Active(u64),
    /// Finished and accounted for.
    Done,
}

pin_project! {
    /// A workqueue task: polls `future` only while it holds a slot.
    pub(super) struct Gated<F> {
        #[pin]
        future: F,
        queue: Arc<Inner>,
        admission: Admission,
    }

    impl<F> PinnedDrop for Gated<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            match std::mem::replace(this.admission, Admission::Done) {
                Admission::Active(color) => this.queue.finish_active(color),
                Admission::Waiting { id, color } => this.queue.finish_waiting(id, color),
                Admission::Delayed(_) | Admission::Done => {}
            }
        }
    }
}

/// Marks the thread as polling a task of one queue (for `drain`, and for
/// the flush dependency check if the queue is `mem_reclaim`), undone even if
/// the poll panics.
struct CurrentQueue {
    prev: usize,
    prev_reclaiming: Option<Option<Arc<str>>>,
}

impl CurrentQueue {
    fn enter(queue: &Inner) -> CurrentQueue {
        let prev = CURRENT.with(|c| c.replace(queue.id()));
        let prev_reclaiming = queue
            .rescuer
            .is_some()
            .then(|| RECLAIMING.with(|r| r.replace(Some(queue.name.clone()))));
        CurrentQueue {
            prev,
            prev_reclaiming,
        }
    }
}

impl Drop for CurrentQueue {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
        if let Some(prev) = self.prev_reclaiming.take() {
            // Dropped outside the borrow.
            let _ours = RECLAIMING.with(|r| r.replace(prev));
        }
    }
}

impl<F> Gated<F> {
    pub(super) fn new(future: F, queue: Arc<Inner>, admission: Admission) -> Gated<F> {
        Gated {
            future,
            queue,
            admission,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        loop {
            match this.admission {
                Admission::Delayed(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Queued now, as the kernel queues delayed work when its
                    // timer fires. A drain does not refuse it: it was
                    // accepted before.
                    *this.admission = this.queue.queue_task();
                }
                Admission::Waiting { id, color } => {
                    let (id, color) = (*id, *color);
                    let mut state = this.queue.state.lock();
                    if state.handed.remove(&id) {
                        drop(state);
                        *this.admission = Admission::Active(color);
                        continue;
                    }
                    if let Some(entry) = state.inactive.iter_mut().find(|(i, _)| *i == id) {
                        entry.1 = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Admission::Active(color) => {
                    let color = *color;
                    let poll = {
                        let _current = CurrentQueue::enter(this.queue);
                        if this.queue.attrs.cpu_intensive {
                            // Out of concurrency management while it runs,
                            // as the kernel's WQ_CPU_INTENSIVE work: the
                            // pool runs another worker meanwhile.
                            crate::blocking(|| this.future.poll(cx))
                        } else {
                            this.future.poll(cx)
                        }
                    };
                    if poll.is_ready() {
                        *this.admission = Admission::Done;
                        this.queue.finish_active(color);
                    }
                    return poll;
                }
                Admission::Done => unreachable!("workqueue task polled after completion"),
            }
        }
    }
}

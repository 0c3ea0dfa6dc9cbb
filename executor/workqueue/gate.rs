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
        // `None` once dropped: before the slot is given up.
        #[pin]
        future: Option<F>,
        queue: Arc<Inner>,
        admission: Admission,
    }

    impl<F> PinnedDrop for Gated<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // The future goes first: the destructors of an aborted task are
            // still that task running, and the task its slot goes to (the
            // next one of an ordered queue) must not start before they end.
            // The slot is given up even if one of them panics.
            let _finish = Finish {
                queue: this.queue,
                admission: std::mem::replace(this.admission, Admission::Done),
            };
            this.future.set(None);
        }
    }
}

/// Accounts for a task that leaves its queue, when dropped.
struct Finish<'a> {
    queue: &'a Inner,
    admission: Admission,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.admission, Admission::Done) {
            Admission::Active(color) => self.queue.finish_active(color),
            Admission::Waiting { id, color } => self.queue.finish_waiting(id, color),
            Admission::Delayed(_) | Admission::Done => {}
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
            future: Some(future),
            queue,
            admission,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
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
                        // The future is first polled at the next poll of the
                        // task, which looks first whether it was aborted: an
                        // abort that came while it waited (while this poll
                        // began, even) cancels it unpolled.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if let Some(entry) = state.inactive.iter_mut().find(|(i, _)| *i == id) {
                        entry.1 = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Admission::Active(color) => {
                    let color = *color;
                    let Some(future) = this.future.as_mut().as_pin_mut() else {
                        unreachable!("workqueue task polled after its future was dropped");
                    };
                    let poll = {
                        let _current = CurrentQueue::enter(this.queue);
                        if this.queue.attrs.cpu_intensive {
                            // Out of concurrency management while it runs,
                            // as the kernel's WQ_CPU_INTENSIVE work: the
                            // pool runs another worker meanwhile.
                            crate::blocking(|| future.poll(cx))
                        } else {
                            future.poll(cx)
                        }
                    };
                    if poll.is_ready() {
                        // Dropped before the slot goes on, as when aborted.
                        this.future.set(None);
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

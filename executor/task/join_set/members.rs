//! The members of a `JoinSet`: its tasks' handles, and the queue of those
//! whose task has finished, in the order they finished.
//!
//! Each member has a waker of its own, registered on its `JoinHandle` by a
//! poll as soon as the member is added (a task that has already finished
//! is queued then, its result kept). The completion of a task wakes its
//! member's waker, which queues the member (once: a flag says it is queued)
//! and wakes whoever polled the set last. Joining pops members in queue
//! order, so results come in the order the tasks finished, as tokio's
//! `JoinSet` gives them; and [`Members::try_next`] needs no waker of its
//! own, the queue being filled by the members' wakers.
//!
//! A queued entry names the member's slot and its task's id: a slot freed
//! and reused meanwhile holds another id, and the stale entry is skipped.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use parking_lot::Mutex;
use slab::Slab;

use crate::task::{coop, AbortHandle, Id, JoinError, JoinHandle};

/// What a joined member yields: the task's id and output, or its error.
pub(super) type Joined<T> = Result<(Id, T), JoinError>;

pub(super) struct Members<T> {
    slab: Slab<Member<T>>,
    queue: Arc<Queue>,
}

struct Member<T> {
    id: Id,
    state: State<T>,
    notify: Arc<Notify>,
    waker: Waker,
}

enum State<T> {
    Running(JoinHandle<T>),
    /// The task had finished when it was added: its result, until joined.
    Finished(Option<Result<T, JoinError>>),
}

impl<T> State<T> {
    /// The task's result, if it has finished; `waker` is woken when it
    /// does.
    fn poll(&mut self, waker: &Waker) -> Poll<Result<T, JoinError>> {
        match self {
            State::Running(handle) => Pin::new(handle).poll(&mut Context::from_waker(waker)),
            State::Finished(result) => Poll::Ready(result.take().expect("a member is joined once")),
        }
    }
}

/// The members whose task has finished, in order, and the set's waker.
struct Queue {
    finished: Mutex<VecDeque<(usize, Id)>>,
    waker: AtomicWaker,
}

/// A member's waker: queues the member.
struct Notify {
    slot: usize,
    id: Id,
    /// In the queue (or being joined): a wake adds nothing.
    queued: AtomicBool,
    /// Weak: a task keeps its waker until it finishes, and nothing of the
    /// set (whose owner's waker the queue holds) need live that long.
    queue: Weak<Queue>,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(queue) = self.queue.upgrade() else {
            return;
        };
        if !self.queued.swap(true, SeqCst) {
            queue.finished.lock().push_back((self.slot, self.id));
            queue.waker.wake();
        }
    }
}

impl<T> Members<T> {
    pub(super) fn new() -> Members<T> {
        Members {
            slab: Slab::new(),
            queue: Arc::new(Queue {
                finished: Mutex::new(VecDeque::new()),
                waker: AtomicWaker::new(),
            }),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Adds the task of `handle`; returns its abort handle.
    pub(super) fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let entry = self.slab.vacant_entry();
        let id = handle.id();
        let notify = Arc::new(Notify {
            slot: entry.key(),
            id,
            queued: AtomicBool::new(false),
            queue: Arc::downgrade(&self.queue),
        });
        let waker = Waker::from(notify.clone());
        // Registers the member's waker with the task (or takes the result
        // of a task already finished, and queues the member at once).
        let mut state = State::Running(handle);
        if let Poll::Ready(result) = coop::without_budget(|| state.poll(&waker)) {
            state = State::Finished(Some(result));
            waker.wake_by_ref();
        }
        entry.insert(Member {
            id,
            state,
            notify,
            waker,
        });
        abort
    }

    /// The next member that finished, joined; `Ready(None)` if there are
    /// none at all. `Pending` registers `cx`'s waker for the next one.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Joined<T>>> {
        // Before the queue is read: a member queued after that wakes it.
        self.queue.waker.register(cx.waker());
        let Some(slot) = self.pop() else {
            return if self.slab.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        };
        match self.join(slot) {
            Poll::Ready(joined) => Poll::Ready(Some(joined)),
            // The task's budget is spent (the handle queued its member
            // again, which woke `cx`), or a wake came early: yield.
            Poll::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// The next member that finished, joined, if any, without waiting and
    /// without the task's budget.
    pub(super) fn try_next(&mut self) -> Option<Joined<T>> {
        // Members joined in vain are queued again only by a later wake, so
        // this ends; the bound keeps it short even so.
        let queued = self.queue.finished.lock().len();
        for _ in 0..queued {
            let slot = self.pop()?;
            if let Poll::Ready(joined) = coop::without_budget(|| self.join(slot)) {
                return Some(joined);
            }
        }
        None
    }

    /// Pops the next queued member still in the set, and clears its queued
    /// flag: a wake from now on queues it again.
    fn pop(&mut self) -> Option<usize> {
        loop {
            let (slot, id) = self.queue.finished.lock().pop_front()?;
            if let Some(member) = self.slab.get(slot).filter(|member| member.id == id) {
                member.notify.queued.store(false, SeqCst);
                return Some(slot);
            }
        }
    }

    /// Polls the member in `slot` with its own waker; removes it if ready.
    fn join(&mut self, slot: usize) -> Poll<Joined<T>> {
        let member = &mut self.slab[slot];
        let result = ready!(member.state.poll(&member.waker));
        let id = self.slab.remove(slot).id;
        Poll::Ready(result.map(|output| (id, output)))
    }

    /// Aborts every running member's task.
    pub(super) fn abort_all(&self) {
        for (_, member) in self.slab.iter() {
            if let State::Running(handle) = &member.state {
                handle.abort();
            }
        }
    }

    /// Removes every member; their tasks run on, detached.
    pub(super) fn clear(&mut self) {
        self.slab.clear();
        self.queue.finished.lock().clear();
    }
}

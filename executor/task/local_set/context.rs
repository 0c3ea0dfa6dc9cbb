//! The owner's half of a set: its local queue, its ticks, spawning onto it,
//! and dropping every task at the end.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::task::Waker;

use crate::task::registry::{Registry, SpawnMeta};
use crate::task::{harness, JoinHandle, Runnable};

use super::current::{self, Entered};
use super::live::Live;
use super::shared::Shared;

/// The most tasks one tick runs (tokio's number).
const MAX_TASKS_PER_TICK: usize = 61;

pub(super) struct Context {
    /// Tasks spawned onto the set, those the owner wakes while it has the
    /// set entered, and those moved from the remote queue. Never borrowed
    /// across a poll or a drop of a runnable.
    queue: RefCell<VecDeque<Runnable>>,
    /// The receiving end of the remote queue.
    inbox: Receiver<Runnable>,
    pub(super) shared: Arc<Shared>,
    /// The set's tasks, registered from spawn until their future is
    /// dropped; closed by `shutdown`.
    tasks: Arc<Registry>,
    pub(super) live: Live,
    /// A poll or the drop of the set is running on the owner: a task queued
    /// now will be found without waking the set.
    pub(super) polling: Cell<bool>,
}

impl Context {
    pub(super) fn new() -> Rc<Context> {
        let (shared, inbox) = Shared::new();
        Rc::new(Context {
            queue: RefCell::new(VecDeque::new()),
            inbox,
            shared,
            tasks: Arc::new(Registry::new(1)),
            live: Live::default(),
            polling: Cell::new(false),
        })
    }

    /// Spawns `future` onto the set; it runs at the set's next tick.
    pub(super) fn spawn<F>(&self, future: F, meta: SpawnMeta) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let shared = self.shared.clone();
        let schedule = move |runnable| current::schedule(&shared, runnable);
        let future = self.live.track(future);
        let (runnable, handle) = harness::spawn_local(future, meta, &self.tasks, schedule);
        if let Some(runnable) = runnable {
            self.push(runnable);
        }
        handle
    }

    /// Queues `runnable` on the local queue (on the owner), waking the set
    /// unless it is being polled.
    pub(super) fn push(&self, runnable: Runnable) {
        self.queue.borrow_mut().push_back(runnable);
        if !self.polling.get() {
            self.shared.wake();
        }
    }

    /// Enters the set for a poll woken through `waker`.
    pub(super) fn enter_polling(self: &Rc<Context>, waker: &Waker) -> Entered {
        self.shared.register(waker);
        current::enter(self, true)
    }

    /// Runs up to `MAX_TASKS_PER_TICK` tasks, after moving the remote queue
    /// behind the local one. Returns whether tasks are still queued. Called
    /// with the set entered for a poll.
    pub(super) fn tick(&self) -> bool {
        self.take_inbox();
        for _ in 0..MAX_TASKS_PER_TICK {
            match self.next() {
                Some(runnable) => {
                    crate::task::coop::budget(|| runnable.run());
                }
                None => return false,
            }
        }
        self.take_inbox();
        !self.queue.borrow().is_empty()
    }

    /// Drops every task's future (the module's drop steps).
    pub(super) fn shutdown(self: &Rc<Context>) {
        let _entered = current::enter(self, true);
        for waker in self.tasks.close() {
            waker.wake();
        }
        loop {
            let runnable = match self.next() {
                Some(runnable) => runnable,
                None if self.live.count() == 0 => break,
                // A wake on another thread is about to push this runnable.
                None => self
                    .inbox
                    .recv()
                    .expect("the context holds a sender of its remote queue"),
            };
            // Drops the future; its JoinHandle resolves as cancelled.
            drop(runnable);
        }
        self.shared.release_waker();
    }

    /// How many tasks are queued on the local queue.
    pub(super) fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    /// The next task to run: the local queue's front, else the remote one.
    fn next(&self) -> Option<Runnable> {
        let local = self.queue.borrow_mut().pop_front();
        local.or_else(|| self.inbox.try_recv().ok())
    }

    /// Moves every runnable of the remote queue to the local queue.
    fn take_inbox(&self) {
        let mut queue = self.queue.borrow_mut();
        queue.extend(self.inbox.try_iter());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::mpsc;
    use std::task::Poll;
    use std::thread;
    use std::time::Duration;

    use super::*;

    struct SetOnDrop(Rc<Cell<bool>>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    /// Drop step 3 with a runnable in transit: another thread has woken the
    /// task (so the set's own wake does nothing) and pushes the runnable
    /// only later. The drop waits for it and drops the future here.
    #[test]
    fn shutdown_waits_for_a_runnable_on_its_way_to_the_remote_queue() {
        let context = Context::new();
        let dropped = Rc::new(Cell::new(false));
        let guard = SetOnDrop(dropped.clone());
        let (waker_tx, waker_rx) = mpsc::channel::<Waker>();
        let future = context.live.track(async move {
            let _guard = guard;
            std::future::poll_fn(|cx| {
                waker_tx.send(cx.waker().clone()).unwrap();
                Poll::<()>::Pending
            })
            .await
        });
        // This task's wakes hand the runnable to `in_transit` instead of
        // queueing it: the thread below holds it for a while.
        let (in_transit_tx, in_transit) = mpsc::channel::<Runnable>();
        let schedule = move |runnable| in_transit_tx.send(runnable).unwrap();
        let (runnable, handle) =
            harness::spawn_local(future, SpawnMeta::here(), &context.tasks, schedule);
        runnable.unwrap().run();
        let waker = waker_rx.recv().unwrap();

        let (woken_tx, woken) = mpsc::channel();
        let pushed = Arc::new(AtomicBool::new(false));
        let waking = thread::spawn({
            let (shared, pushed) = (context.shared.clone(), pushed.clone());
            move || {
                waker.wake();
                let runnable = in_transit.recv().unwrap();
                woken_tx.send(()).unwrap();
                thread::sleep(Duration::from_millis(20));
                pushed.store(true, SeqCst);
                shared.push_remote(runnable);
            }
        });
        woken.recv().unwrap();
        context.shutdown();
        assert!(pushed.load(SeqCst));
        assert!(dropped.get());
        assert_eq!(context.live.count(), 0);
        waking.join().unwrap();
        let result = futures::executor::block_on(handle);
        assert!(result.unwrap_err().is_cancelled());
    }
}

//! LocalSet and spawn_local: `!Send` tasks on the thread that owns the set.

mod support;

use std::cell::{Cell, RefCell};
use std::future::{pending, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::Counters;
use tokio::sync::oneshot;
use wq::task::{spawn_local, yield_now, LocalSet};

/// Counts drops of a `!Send` value on one thread.
struct DropCount(Rc<Cell<usize>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn local_tasks_share_rc_refcell_state() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let total = local.block_on(&rt, {
        let log = log.clone();
        async move {
            let mut handles = Vec::new();
            for i in 0..10 {
                let log = log.clone();
                handles.push(spawn_local(async move {
                    yield_now().await;
                    log.borrow_mut().push(i);
                    i
                }));
            }
            let mut total = 0;
            for handle in handles {
                total += handle.await.unwrap();
            }
            total
        }
    });
    assert_eq!(total, 45);
    let mut seen = log.borrow().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(Rc::strong_count(&log), 1);
}

#[test]
fn spawn_local_from_inside_local_tasks() {
    fn chain(depth: usize, reached: Rc<Cell<usize>>) -> Pin<Box<dyn Future<Output = usize>>> {
        Box::pin(async move {
            reached.set(reached.get().max(depth));
            if depth == 20 {
                return depth;
            }
            spawn_local(chain(depth + 1, reached)).await.unwrap()
        })
    }

    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let reached = Rc::new(Cell::new(0));
    let deepest = local.block_on(&rt, local.spawn_local(chain(0, reached.clone())));
    assert_eq!(deepest.unwrap(), 20);
    assert_eq!(reached.get(), 20);
}

#[test]
fn run_until_returns_while_local_tasks_are_pending() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let (tx, rx) = oneshot::channel::<u32>();
    let waiting = local.spawn_local(async move { rx.await.unwrap() + 1 });
    let output = local.block_on(&rt, async {
        // Let the task start and park on the channel.
        yield_now().await;
        "future done"
    });
    assert_eq!(output, "future done");
    assert!(!waiting.is_finished());
    // The task stayed in the set: a later run finishes it.
    tx.send(41).unwrap();
    assert_eq!(local.block_on(&rt, waiting).unwrap(), 42);
}

#[test]
fn awaiting_the_set_runs_every_task_to_completion() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let done = Rc::new(Cell::new(0));
    for i in 0..50 {
        let done = done.clone();
        local.spawn_local(counters.track(async move {
            for _ in 0..i % 5 {
                yield_now().await;
            }
            // Spawned from a task, awaited by nobody: the set still waits.
            spawn_local(async move { done.set(done.get() + 1) });
        }));
    }
    assert_eq!(format!("{local:?}"), "LocalSet { tasks: 50, queued: 50 }");
    rt.block_on(local);
    assert_eq!(done.get(), 50);
    assert_eq!(counters.completions(), 50);
    assert_eq!(counters.drops(), 50);
}

#[test]
fn awaiting_an_empty_set_completes_at_once() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(LocalSet::default());
}

#[test]
fn a_wake_from_a_std_thread_reaches_a_local_task() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (tx, rx) = oneshot::channel();
    let sender = std::thread::spawn(move || {
        started_rx.recv().unwrap();
        tx.send(7).unwrap();
    });
    let marker = Rc::new(());
    let got = local.block_on(&rt, async move {
        spawn_local(async move {
            let _marker = marker;
            started_tx.send(()).unwrap();
            rx.await.unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(got, 7);
    sender.join().unwrap();
}

#[test]
fn a_wake_from_a_worker_task_reaches_a_local_task() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let local = LocalSet::new();
    let got = local.block_on(&rt, async {
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let (tx, rx) = oneshot::channel();
        let worker = wq::spawn(async move {
            go_rx.await.unwrap();
            // Sent from a worker while the local task waits.
            tx.send(std::thread::current().name().map(str::to_owned))
                .unwrap();
        });
        let state = Rc::new(Cell::new(0));
        let task = spawn_local({
            let state = state.clone();
            async move {
                go_tx.send(()).unwrap();
                let name = rx.await.unwrap();
                state.set(1);
                name
            }
        });
        let name = task.await.unwrap();
        worker.await.unwrap();
        assert_eq!(state.get(), 1);
        name
    });
    // The sender ran on a worker, not on the set's thread.
    assert_ne!(got.as_deref(), std::thread::current().name());
}

#[test]
fn join_handles_carry_outputs_ids_and_finished_state() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let a = spawn_local(async { Rc::new("a") });
        let b = spawn_local(async { 2 });
        assert_ne!(a.id(), b.id());
        assert!(!a.is_finished());
        while !b.is_finished() {
            yield_now().await;
        }
        assert_eq!(*a.await.unwrap(), "a");
        assert_eq!(b.await.unwrap(), 2);
    });
}

#[test]
fn abort_cancels_a_local_task_and_drops_it_once() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let handle = spawn_local(counters.track(pending::<()>()));
        while counters.polls() == 0 {
            yield_now().await;
        }
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(!err.is_panic());
    });
    assert_eq!(counters.polls(), 1);
    assert_eq!(counters.drops(), 1);
}

#[test]
fn abort_from_another_thread_reaches_the_set() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let handle = spawn_local(counters.track(pending::<()>()));
        while counters.polls() == 0 {
            yield_now().await;
        }
        let abort = handle.abort_handle();
        std::thread::spawn(move || abort.abort()).join().unwrap();
        assert!(handle.await.unwrap_err().is_cancelled());
    });
    assert_eq!(counters.polls(), 1);
    assert_eq!(counters.drops(), 1);
}

#[test]
fn a_panicking_local_task_is_a_join_error_with_its_payload() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let after = local.block_on(&rt, async {
        let err = spawn_local(async {
            let state = Rc::new(5);
            if *state == 5 {
                panic!("local boom");
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        let payload = err.into_panic();
        assert_eq!(*payload.downcast_ref::<&str>().unwrap(), "local boom");
        // The set runs on.
        spawn_local(async { 9 }).await.unwrap()
    });
    assert_eq!(after, 9);
}

#[test]
fn dropping_a_set_drops_each_pending_future_once_and_cancels_its_handle() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let drops = Rc::new(Cell::new(0));
    let polled = Rc::new(Cell::new(0));
    let (tx, rx) = oneshot::channel::<()>();
    let (woken_tx, woken_rx) = oneshot::channel::<()>();
    let mut handles = Vec::new();
    // Idle: polled once, its waker stored nowhere.
    handles.push(local.spawn_local({
        let (guard, polled) = (DropCount(drops.clone()), polled.clone());
        async move {
            let _guard = guard;
            polled.set(polled.get() + 1);
            pending::<()>().await
        }
    }));
    // Idle, its waker held by a channel whose sender outlives the set.
    handles.push(local.spawn_local({
        let (guard, polled) = (DropCount(drops.clone()), polled.clone());
        async move {
            let _guard = guard;
            polled.set(polled.get() + 1);
            rx.await.unwrap();
        }
    }));
    // Woken from another thread after its last poll: queued remotely at the
    // drop.
    handles.push(local.spawn_local({
        let (guard, polled) = (DropCount(drops.clone()), polled.clone());
        async move {
            let _guard = guard;
            polled.set(polled.get() + 1);
            woken_rx.await.unwrap();
            unreachable!("never polled after the wake");
        }
    }));
    local.block_on(&rt, async {
        while polled.get() < 3 {
            yield_now().await;
        }
    });
    std::thread::spawn(move || woken_tx.send(()).unwrap())
        .join()
        .unwrap();
    // Spawned, never polled.
    handles.push(local.spawn_local({
        let (guard, polled) = (DropCount(drops.clone()), polled.clone());
        async move {
            let _guard = guard;
            polled.set(polled.get() + 1);
        }
    }));
    assert_eq!(drops.get(), 0);
    drop(local);
    assert_eq!(drops.get(), 4);
    assert_eq!(polled.get(), 3);
    for handle in handles {
        assert!(handle.is_finished());
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
    }
    // Waking a task of the dropped set does nothing.
    assert!(tx.send(()).is_err());
    assert_eq!(drops.get(), 4);
}

#[test]
fn destructors_run_during_the_drop_may_wake_and_spawn() {
    struct OnDrop<F: FnMut()>(F);
    impl<F: FnMut()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }

    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let drops = Rc::new(Cell::new(0));
    let spawned_late = Rc::new(RefCell::new(None));
    let (tx, rx) = oneshot::channel::<()>();
    let waiter = local.spawn_local({
        let guard = DropCount(drops.clone());
        async move {
            let _guard = guard;
            rx.await.unwrap()
        }
    });
    let waker = local.spawn_local({
        let (drops, spawned_late) = (drops.clone(), spawned_late.clone());
        async move {
            let mut tx = Some(tx);
            let _on_drop = OnDrop(move || {
                // Wakes another task of the set, and spawns onto it.
                let _ = tx.take().unwrap().send(());
                let late = spawn_local({
                    let guard = DropCount(drops.clone());
                    async move {
                        let _guard = guard;
                    }
                });
                *spawned_late.borrow_mut() = Some(late);
            });
            pending::<()>().await
        }
    });
    local.block_on(&rt, yield_now());
    drop(local);
    // The waiter and the task spawned during the drop.
    assert_eq!(drops.get(), 2);
    assert!(rt.block_on(waiter).unwrap_err().is_cancelled());
    assert!(rt.block_on(waker).unwrap_err().is_cancelled());
    let late = spawned_late.borrow_mut().take().unwrap();
    assert!(rt.block_on(late).unwrap_err().is_cancelled());
}

/// A wake from another thread racing the drop: the task is dropped once,
/// on the set's thread, whichever comes first. (The narrowest case, a
/// runnable still on its way to the remote queue when the drop looks, is
/// forced in `local_set::context`'s unit test.)
#[test]
fn dropping_a_set_while_another_thread_wakes_its_task() {
    const ROUNDS: usize = 500;
    let rt = wq::Runtime::new().unwrap();
    let (senders_tx, senders_rx) = mpsc::channel::<oneshot::Sender<()>>();
    let waking = std::thread::spawn(move || {
        for tx in senders_rx {
            let _ = tx.send(());
        }
    });
    for _ in 0..ROUNDS {
        let local = LocalSet::new();
        let drops = Rc::new(Cell::new(0));
        let (tx, rx) = oneshot::channel::<()>();
        let guard = DropCount(drops.clone());
        let handle = local.spawn_local(async move {
            let _guard = guard;
            rx.await.unwrap()
        });
        local.block_on(&rt, yield_now());
        senders_tx.send(tx).unwrap();
        drop(local);
        assert_eq!(drops.get(), 1);
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
    }
    drop(senders_tx);
    waking.join().unwrap();
}

#[test]
#[should_panic(expected = "`spawn_local` called from outside of a `task::LocalSet`")]
fn spawn_local_outside_a_set_panics() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        spawn_local(async {});
    });
}

#[test]
#[should_panic(expected = "Cannot start a runtime from within a runtime")]
fn block_on_inside_a_set_panics() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let inner = LocalSet::new();
        inner.block_on(&rt, async {});
    });
}

#[test]
fn spawn_local_works_under_an_enter_guard_only_while_it_lives() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let handle = {
        let _guard = local.enter();
        spawn_local(async { 3 })
    };
    let outside = std::panic::catch_unwind(|| {
        spawn_local(async {});
    });
    assert!(outside.is_err());
    assert_eq!(local.block_on(&rt, handle).unwrap(), 3);
}

#[test]
fn block_on_a_multi_worker_runtime_while_worker_tasks_run() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let local = LocalSet::new();
    let results = Rc::new(RefCell::new(Vec::new()));
    let set_thread = std::thread::current().id();
    let worker_threads = Arc::new(Mutex::new(Vec::new()));
    local.block_on(&rt, async {
        let mut handles = Vec::new();
        for i in 0..100u64 {
            let results = results.clone();
            let worker_threads = worker_threads.clone();
            handles.push(spawn_local(async move {
                let square = wq::spawn(async move {
                    worker_threads
                        .lock()
                        .unwrap()
                        .push(std::thread::current().id());
                    i * i
                })
                .await
                .unwrap();
                assert_eq!(std::thread::current().id(), set_thread);
                results.borrow_mut().push(square);
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });
    let mut results = results.borrow().clone();
    results.sort_unstable();
    assert_eq!(results, (0..100u64).map(|i| i * i).collect::<Vec<_>>());
    let worker_threads = worker_threads.lock().unwrap();
    assert_eq!(worker_threads.len(), 100);
    assert!(worker_threads.iter().all(|&id| id != set_thread));
}

#[wq::test(start_paused = true)]
async fn sleeps_inside_local_tasks_fire_in_deadline_order() {
    let local = LocalSet::new();
    let order = Rc::new(RefCell::new(Vec::new()));
    let start = wq::time::Instant::now();
    for ms in [30, 10, 20] {
        let order = order.clone();
        local.spawn_local(async move {
            wq::time::sleep(Duration::from_millis(ms)).await;
            order.borrow_mut().push(ms);
        });
    }
    local.await;
    assert_eq!(*order.borrow(), [10, 20, 30]);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[wq::test]
async fn run_until_inside_an_async_context() {
    let local = LocalSet::new();
    let value = Rc::new(Cell::new(0));
    local
        .run_until({
            let value = value.clone();
            async move {
                spawn_local(async move { value.set(8) }).await.unwrap();
            }
        })
        .await;
    assert_eq!(value.get(), 8);
}

#[test]
fn a_set_polled_beside_other_futures_yields_after_a_bounded_tick() {
    /// The most tasks one poll of a set runs (tokio's number).
    const PER_TICK: usize = 61;

    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let spins = Rc::new(Cell::new(0));
    local.spawn_local({
        let spins = spins.clone();
        async move {
            loop {
                spins.set(spins.get() + 1);
                yield_now().await;
            }
        }
    });
    // Without a bound, the first poll of `run_until` would never return.
    let sibling_done = rt.block_on(async {
        let sibling = async {
            yield_now().await;
            true
        };
        let run = local.run_until(pending::<()>());
        futures::pin_mut!(run, sibling);
        match futures::future::select(run, sibling).await {
            futures::future::Either::Right((done, _)) => done,
            futures::future::Either::Left(_) => unreachable!(),
        }
    });
    assert!(sibling_done);
    // Two polls of the set, one tick each.
    assert_eq!(spins.get(), 2 * PER_TICK);
}

#[test]
fn nested_sets_keep_their_own_tasks() {
    let rt = wq::Runtime::new().unwrap();
    let outer = LocalSet::new();
    let ran = Rc::new(RefCell::new(Vec::new()));
    outer.block_on(&rt, {
        let ran = ran.clone();
        async move {
            let inner = LocalSet::new();
            let ran_inner = ran.clone();
            let [inner_task] = inner
                .run_until(async move {
                    // Spawns onto `inner`, the set entered here.
                    [spawn_local(
                        async move { ran_inner.borrow_mut().push("inner") },
                    )]
                })
                .await;
            assert_eq!(format!("{inner:?}"), "LocalSet { tasks: 1, queued: 1 }");
            inner.run_until(inner_task).await.unwrap();
            // Back in `outer`.
            let ran_outer = ran.clone();
            spawn_local(async move { ran_outer.borrow_mut().push("outer") })
                .await
                .unwrap();
            drop(inner);
        }
    });
    assert_eq!(*ran.borrow(), ["inner", "outer"]);
}

/// A future that stores its waker for a test to wake by hand.
struct Parked(Rc<RefCell<Option<Waker>>>, Rc<Cell<bool>>);

impl Future for Parked {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.1.get() {
            return Poll::Ready(());
        }
        *self.0.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn a_wake_on_the_owner_outside_the_set_still_runs_the_task() {
    let rt = wq::Runtime::new().unwrap();
    let local = LocalSet::new();
    let slot = Rc::new(RefCell::new(None::<Waker>));
    let ready = Rc::new(Cell::new(false));
    let task = local.spawn_local(Parked(slot.clone(), ready.clone()));
    let (slot2, ready2) = (slot.clone(), ready.clone());
    rt.block_on(async {
        let run = local.run_until(task);
        // Beside the set, not inside it: wakes the task from this thread.
        let poke = async move {
            while slot2.borrow().is_none() {
                yield_now().await;
            }
            ready2.set(true);
            slot2.borrow_mut().take().unwrap().wake();
        };
        let (result, ()) = futures::join!(run, poke);
        result.unwrap();
    });
    assert!(ready.get());
}

#[test]
fn a_set_in_a_thread_local_drops_its_tasks_when_the_thread_exits() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    struct SharedDropCount(Arc<AtomicUsize>);
    impl Drop for SharedDropCount {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    thread_local! {
        static SET: LocalSet = LocalSet::new();
    }
    let drops = Arc::new(AtomicUsize::new(0));
    std::thread::spawn({
        let drops = drops.clone();
        move || {
            let guard = SharedDropCount(drops);
            SET.with(|set| {
                set.spawn_local(async move {
                    let _guard = guard;
                    let _not_send = Rc::new(());
                    pending::<()>().await
                })
            });
        }
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(SeqCst), 1);
}

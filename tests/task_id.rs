//! `wq::task::id` and `try_id`: the id of the task being run, on every
//! kind of task.

#[macro_use]
mod support;

use std::future::pending;
use std::sync::mpsc;

use wq::task::{spawn_local, try_id, yield_now, Id, LocalSet};

on_both_flavors! {
    #[test]
    fn id_inside_a_task_is_its_join_handle_id() {
        let rt = rt();
        rt.block_on(async {
            let handle = wq::spawn(async {
                let before = wq::task::id();
                yield_now().await;
                (before, wq::task::id(), try_id())
            });
            let id = handle.id();
            let (before, after, tried) = handle.await.unwrap();
            assert_eq!((before, after, tried), (id, id, Some(id)));
            assert_eq!(before.to_string(), id.to_string());
        });
    }

    #[test]
    fn concurrent_tasks_each_see_their_own_id() {
        let rt = rt();
        rt.block_on(async {
            let handles: Vec<_> = (0..32)
                .map(|_| {
                    wq::spawn(async {
                        let mut ids = Vec::new();
                        for _ in 0..5 {
                            ids.push(wq::task::id());
                            yield_now().await;
                        }
                        ids
                    })
                })
                .collect();
            for handle in handles {
                let id = handle.id();
                assert_eq!(handle.await.unwrap(), vec![id; 5]);
            }
        });
    }

    #[test]
    fn id_inside_spawn_blocking_is_its_join_handle_id() {
        let rt = rt();
        let handle = rt.spawn_blocking(wq::task::id);
        let id = handle.id();
        assert_eq!(rt.block_on(handle).unwrap(), id);
        let nested = rt.block_on(rt.spawn(async {
            let blocking = wq::task::spawn_blocking(try_id);
            let blocking_id = blocking.id();
            (blocking.await.unwrap(), blocking_id, wq::task::id())
        }));
        let (inside, blocking_id, outer) = nested.unwrap();
        assert_eq!(inside, Some(blocking_id));
        assert_ne!(blocking_id, outer);
    }

    #[test]
    fn id_inside_local_tasks_is_their_join_handle_id() {
        let rt = rt();
        let local = LocalSet::new();
        let early = local.spawn_local(async { wq::task::id() });
        let early_id = early.id();
        let (root, early_seen, spawned, spawned_id) = local.block_on(&rt, async {
            let spawned = spawn_local(async {
                yield_now().await;
                wq::task::id()
            });
            let spawned_id = spawned.id();
            (try_id(), early.await.unwrap(), spawned.await.unwrap(), spawned_id)
        });
        // The future of `block_on` (here, of `run_until`) is not a task.
        assert_eq!(root, None);
        assert_eq!(early_seen, early_id);
        assert_eq!(spawned, spawned_id);
    }

    #[test]
    fn id_inside_workqueue_tasks_is_their_join_handle_id() {
        let rt = rt();
        let queue = wq::Workqueue::builder("ids")
            .ordered()
            .handle(rt.handle())
            .build()
            .unwrap();
        let handles: Vec<_> = (0..4).map(|_| queue.spawn(async { wq::task::id() })).collect();
        for handle in handles {
            let id = handle.id();
            assert_eq!(rt.block_on(handle).unwrap(), id);
        }
    }

    #[test]
    fn id_is_set_while_an_aborted_task_is_dropped() {
        struct IdOnDrop(mpsc::Sender<Option<Id>>);

        impl Drop for IdOnDrop {
            fn drop(&mut self) {
                self.0.send(try_id()).unwrap();
            }
        }

        let rt = rt();
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let handle = rt.spawn(async move {
            let _guard = IdOnDrop(tx);
            started_tx.send(()).unwrap();
            pending::<()>().await
        });
        let id = handle.id();
        rt.block_on(started_rx).unwrap();
        handle.abort();
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
        assert_eq!(rx.try_recv(), Ok(Some(id)));
    }

    #[test]
    fn no_id_in_the_future_of_block_on() {
        let rt = rt();
        let (root, after_a_task) = rt.block_on(async {
            let root = try_id();
            wq::spawn(async {}).await.unwrap();
            (root, try_id())
        });
        assert_eq!((root, after_a_task), (None, None));
    }
}

#[test]
fn no_id_on_a_plain_thread() {
    assert_eq!(try_id(), None);
    assert_eq!(std::thread::spawn(try_id).join().unwrap(), None);
}

#[test]
#[should_panic(expected = "Can't get a task id when not inside a task")]
fn id_outside_a_task_panics() {
    wq::task::id();
}

#[test]
#[should_panic(expected = "Can't get a task id when not inside a task")]
fn id_in_the_future_of_block_on_panics() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async { wq::task::id() });
}

/// A task runs a `LocalSet` inside its own polls: each local task sees its
/// own id, and the outer task's comes back when the set's poll returns,
/// within the same poll of the outer task.
#[test]
fn id_is_restored_after_a_nested_local_set_poll() {
    let rt = wq::Runtime::new().unwrap();
    let outer_set = LocalSet::new();
    let outer = outer_set.spawn_local(async {
        let outer_id = wq::task::id();
        let mut inner_set = LocalSet::new();
        let inner = inner_set.spawn_local(async { wq::task::id() });
        let inner_id = inner.id();
        // One poll of the set runs the inner task to completion.
        assert!(futures::poll!(&mut inner_set).is_ready());
        let after_set_poll = wq::task::id();
        let (in_run_until, nested) = inner_set
            .run_until(async {
                let nested = spawn_local(async {
                    yield_now().await;
                    wq::task::id()
                });
                let nested_id = nested.id();
                // The future of `run_until` is polled by the outer task.
                (wq::task::id(), (nested.await.unwrap(), nested_id))
            })
            .await;
        let ids = (outer_id, after_set_poll, in_run_until, wq::task::id());
        (ids, (inner.await.unwrap(), inner_id), nested)
    });
    let outer_id = outer.id();
    let (ids, inner, nested) = outer_set.block_on(&rt, outer).unwrap();
    assert_eq!(ids, (outer_id, outer_id, outer_id, outer_id));
    assert_eq!(inner.0, inner.1);
    assert_eq!(nested.0, nested.1);
    assert_ne!(inner.1, outer_id);
    assert_ne!(nested.1, outer_id);
}

/// The same, with a set driven to completion by a synchronous executor
/// inside a pool task's poll.
#[test]
fn id_is_restored_after_a_local_set_driven_inside_a_worker_task() {
    let rt = wq::Runtime::new().unwrap();
    let handle = rt.spawn(async {
        let set = LocalSet::new();
        let inner = set.spawn_local(async { wq::task::id() });
        let inner_id = inner.id();
        let inner = futures::executor::block_on(set.run_until(inner)).unwrap();
        (inner, inner_id, wq::task::id())
    });
    let id = handle.id();
    let (inner, inner_id, after) = rt.block_on(handle).unwrap();
    assert_eq!(inner, inner_id);
    assert_ne!(inner_id, id);
    assert_eq!(after, id);
}

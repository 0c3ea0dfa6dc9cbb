//! Task-local storage: `wq::task_local!`, `LocalKey` and `TaskLocalFuture`.

#[macro_use]
mod support;

use std::cell::Cell;
use std::future::{pending, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;

use wq::task::{yield_now, LocalSet};

wq::task_local! {
    static NUMBER: u32;
    static NAME: String;
}

/// Several declarations, with visibility and attributes, in a module.
mod keys {
    wq::task_local! {
        /// A documented, public key.
        pub static PUBLIC: u64;

        #[allow(dead_code)]
        pub(crate) static CRATE: &'static str;

        static PRIVATE: u8
    }

    pub fn private_in_scope() -> u8 {
        PRIVATE.sync_scope(8, || PRIVATE.get())
    }
}

/// The panic message of `payload`.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().unwrap().to_string(),
    }
}

/// Counts the drops of a value.
#[derive(Debug)]
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

wq::task_local! {
    static COUNTED: DropCount;
}

on_both_flavors! {
    #[test]
    fn value_is_kept_across_awaits() {
        let rt = rt();
        let reads = rt.block_on(rt.spawn(NUMBER.scope(7, async {
            let mut reads = Vec::new();
            for i in 0..50 {
                if i % 10 == 0 {
                    wq::time::sleep(std::time::Duration::from_millis(1)).await;
                } else {
                    yield_now().await;
                }
                reads.push(NUMBER.get());
            }
            reads
        })));
        assert_eq!(reads.unwrap(), vec![7; 50]);
    }

    #[test]
    fn concurrent_tasks_each_see_their_own_value() {
        let rt = rt();
        let outputs = rt.block_on(async {
            let handles: Vec<_> = (0..64u32)
                .map(|i| {
                    wq::spawn(NUMBER.scope(i, async move {
                        let mut seen = Vec::new();
                        for _ in 0..10 {
                            yield_now().await;
                            seen.push(NUMBER.get());
                        }
                        seen
                    }))
                })
                .collect();
            let mut outputs = Vec::new();
            for handle in handles {
                outputs.push(handle.await.unwrap());
            }
            outputs
        });
        for (i, seen) in outputs.into_iter().enumerate() {
            assert_eq!(seen, vec![i as u32; 10]);
        }
    }

    #[test]
    fn nested_scopes_of_one_key_shadow_and_restore() {
        let log = rt().block_on(NUMBER.scope(1, async {
            let mut log = vec![NUMBER.get()];
            let inner = NUMBER.scope(2, async {
                yield_now().await;
                let mut inner = vec![NUMBER.get()];
                NUMBER
                    .scope(3, async {
                        yield_now().await;
                        inner.push(NUMBER.get());
                    })
                    .await;
                inner.push(NUMBER.get());
                inner
            });
            log.extend(wq::spawn(inner).await.unwrap());
            yield_now().await;
            log.push(NUMBER.get());
            log
        }));
        assert_eq!(log, [1, 2, 3, 2, 1]);
    }

    #[test]
    fn nested_scopes_of_two_keys_are_both_set() {
        let rt = rt();
        let (inside, after) = rt.block_on(rt.spawn(NUMBER.scope(5, async {
            let inside = NAME
                .scope("five".to_string(), async {
                    yield_now().await;
                    (NUMBER.get(), NAME.get())
                })
                .await;
            (inside, (NUMBER.get(), NAME.try_with(|name| name.clone()).is_err()))
        })))
        .unwrap();
        assert_eq!(inside, (5, "five".to_string()));
        assert_eq!(after, (5, true));
    }

    #[test]
    fn tasks_do_not_inherit_their_spawners_value() {
        let rt = rt();
        let (spawned, blocking) = rt.block_on(NUMBER.scope(9, async {
            let spawned = wq::spawn(async { NUMBER.try_with(|n| *n) });
            let blocking = wq::task::spawn_blocking(|| NUMBER.try_with(|n| *n));
            (spawned.await.unwrap(), blocking.await.unwrap())
        }));
        assert!(spawned.is_err());
        assert!(blocking.is_err());
    }

    #[test]
    fn value_is_dropped_exactly_once_when_the_scope_completes() {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = rt();
        let during = rt.block_on(rt.spawn(COUNTED.scope(DropCount(drops.clone()), {
            let drops = drops.clone();
            async move {
                yield_now().await;
                COUNTED.with(|_| drops.load(SeqCst))
            }
        })));
        assert_eq!(during.unwrap(), 0);
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn value_is_dropped_exactly_once_when_the_task_is_aborted() {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = rt();
        let handle = rt.spawn(COUNTED.scope(DropCount(drops.clone()), pending::<()>()));
        handle.abort();
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn value_is_available_while_an_aborted_inner_future_is_dropped() {
        /// Records the key's value when dropped.
        struct ReadOnDrop(mpsc::Sender<Option<u32>>);

        impl Drop for ReadOnDrop {
            fn drop(&mut self) {
                self.0.send(NUMBER.try_with(|n| *n).ok()).unwrap();
            }
        }

        let rt = rt();
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let handle = rt.spawn(NUMBER.scope(11, async move {
            let _guard = ReadOnDrop(tx);
            started_tx.send(()).unwrap();
            pending::<()>().await
        }));
        rt.block_on(started_rx).unwrap();
        handle.abort();
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
        assert_eq!(rx.try_recv(), Ok(Some(11)));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_panicking_poll_leaves_no_value_behind() {
        let rt = rt();
        rt.block_on(async {
            let err = wq::spawn(NUMBER.scope(13, async {
                yield_now().await;
                panic!("inside the scope")
            }))
            .await
            .unwrap_err();
            assert!(err.is_panic());
            // The next tasks, on whichever thread, see no value.
            let mut handles = Vec::new();
            for _ in 0..8 {
                handles.push(wq::spawn(async { NUMBER.try_with(|n| *n) }));
            }
            for handle in handles {
                assert!(handle.await.unwrap().is_err());
            }
        });
    }

    #[test]
    fn scopes_work_in_local_tasks() {
        wq::task_local! {
            static SHARED: Rc<Cell<u32>>;
        }

        let rt = rt();
        let local = LocalSet::new();
        let cell = Rc::new(Cell::new(0));
        let (first, second) = local.block_on(&rt, {
            let cell = cell.clone();
            async move {
                let a = wq::task::spawn_local(SHARED.scope(cell.clone(), async {
                    yield_now().await;
                    SHARED.with(|shared| shared.set(shared.get() + 1));
                    NUMBER.try_with(|n| *n).is_err()
                }));
                let b = wq::task::spawn_local(NUMBER.scope(3, async {
                    yield_now().await;
                    NUMBER.get()
                }));
                (a.await.unwrap(), b.await.unwrap())
            }
        });
        assert!(first);
        assert_eq!(second, 3);
        assert_eq!(cell.get(), 1);
    }
}

#[test]
fn value_follows_the_future_to_another_thread() {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let mut future = Box::pin(NAME.scope("moved".to_string(), async move {
        let first = (NAME.get(), thread::current().id());
        go_rx.await.unwrap();
        let second = (NAME.get(), thread::current().id());
        (first, second)
    }));
    let waker = futures::task::noop_waker();
    assert!(future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    // Swapped out after the poll: this thread no longer sees it.
    assert!(NAME.try_with(|name| name.clone()).is_err());
    go_tx.send(()).unwrap();
    let finisher = thread::spawn(move || futures::executor::block_on(future));
    let finisher_id = finisher.thread().id();
    let (first, second) = finisher.join().unwrap();
    assert_eq!(first, ("moved".to_string(), thread::current().id()));
    assert_eq!(second, ("moved".to_string(), finisher_id));
}

#[test]
fn keys_declared_together_with_visibility_and_attributes() {
    let rt = wq::Runtime::new().unwrap();
    let read = rt.block_on(keys::PUBLIC.scope(64, async {
        keys::CRATE
            .scope("crate", async { (keys::PUBLIC.get(), keys::CRATE.get()) })
            .await
    }));
    assert_eq!(read, (64, "crate"));
    assert_eq!(keys::private_in_scope(), 8);
}

#[test]
fn sync_scope_sets_shadows_and_restores() {
    let log = NUMBER.sync_scope(1, || {
        let mut log = vec![NUMBER.get()];
        log.push(NUMBER.sync_scope(2, || NUMBER.get()));
        log.push(NUMBER.get());
        log
    });
    assert_eq!(log, [1, 2, 1]);
    assert!(NUMBER.try_with(|n| *n).is_err());
}

#[test]
fn sync_scope_restores_the_outer_value_when_its_closure_panics() {
    let after = NUMBER.sync_scope(1, || {
        let caught = catch_unwind(|| NUMBER.sync_scope(2, || panic!("in the inner scope")));
        assert_eq!(message(caught.unwrap_err()), "in the inner scope");
        NUMBER.get()
    });
    assert_eq!(after, 1);
    assert!(NUMBER.try_with(|n| *n).is_err());
}

#[test]
fn a_scope_future_restores_the_outer_value_when_its_poll_panics() {
    let after = NUMBER.sync_scope(1, || {
        let caught = catch_unwind(|| {
            futures::executor::block_on(NUMBER.scope(2, async { panic!("in the inner poll") }))
        });
        assert_eq!(message(caught.unwrap_err()), "in the inner poll");
        NUMBER.get()
    });
    assert_eq!(after, 1);
}

#[test]
fn try_with_outside_a_scope_is_an_access_error() {
    let err = NUMBER.try_with(|n| *n).unwrap_err();
    assert_eq!(err.to_string(), "task-local value not set");
    assert_eq!(format!("{err:?}"), "AccessError");
    let rt = wq::Runtime::new().unwrap();
    let (in_block_on, in_task) = rt.block_on(async {
        let in_task = wq::spawn(async { NUMBER.try_with(|n| *n) }).await.unwrap();
        (NUMBER.try_with(|n| *n), in_task)
    });
    assert_eq!(in_block_on, Err(err));
    assert_eq!(in_task, Err(err));
}

#[test]
#[should_panic(expected = "cannot access a task-local storage value without setting it first")]
fn with_outside_a_scope_panics() {
    NUMBER.with(|n| *n);
}

#[test]
fn get_outside_a_scope_panics_with_tokios_message() {
    let rt = wq::Runtime::new().unwrap();
    let err = rt.block_on(rt.spawn(async { NUMBER.get() })).unwrap_err();
    let message = message(err.into_panic());
    assert!(
        message.starts_with("cannot access a task-local storage value without setting it first"),
        "{message}"
    );
    assert!(message.contains("task-local value is not set"), "{message}");
}

#[test]
fn entering_a_scope_inside_with_of_the_same_key_panics() {
    const BORROWED: &str =
        "cannot enter a task-local scope while the task-local storage is borrowed";
    NUMBER.sync_scope(1, || {
        let caught = catch_unwind(|| NUMBER.with(|_| NUMBER.sync_scope(2, || ())));
        assert!(message(caught.unwrap_err()).starts_with(BORROWED));
        let caught = catch_unwind(|| {
            NUMBER.with(|_| futures::executor::block_on(NUMBER.scope(2, async {})))
        });
        assert!(message(caught.unwrap_err()).starts_with(BORROWED));
        // The outer scope is intact.
        assert_eq!(NUMBER.get(), 1);
        // Another key is fine inside `with`.
        let name = NUMBER.with(|_| NAME.sync_scope("other".to_string(), || NAME.get()));
        assert_eq!(name, "other");
    });
}

#[test]
fn dropping_a_pending_scope_drops_the_inner_future_with_the_value_set() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    struct ReadOnDrop(Arc<Mutex<Vec<Option<u32>>>>);
    impl Drop for ReadOnDrop {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(NUMBER.try_with(|n| *n).ok());
        }
    }
    {
        let guard = ReadOnDrop(seen.clone());
        let mut future = pin!(NUMBER.scope(21, async move {
            let _guard = guard;
            pending::<()>().await
        }));
        let waker = futures::task::noop_waker();
        let polled = future.as_mut().poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Pending);
    }
    assert_eq!(*seen.lock().unwrap(), [Some(21)]);
    assert!(NUMBER.try_with(|n| *n).is_err());
}

#[test]
fn a_completed_inner_future_is_dropped_inside_the_scope() {
    let seen = Arc::new(Mutex::new(None));
    struct ReadOnDrop(Arc<Mutex<Option<Option<u32>>>>);
    impl Drop for ReadOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(NUMBER.try_with(|n| *n).ok());
        }
    }
    let guard = ReadOnDrop(seen.clone());
    // Held by the future, not used by it: dropped with it.
    futures::executor::block_on(NUMBER.scope(4, async move {
        let _kept = &guard;
    }));
    assert_eq!(*seen.lock().unwrap(), Some(Some(4)));
}

#[test]
fn take_value_takes_it_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut future =
        pin!(COUNTED.scope(DropCount(drops.clone()), async { COUNTED.with(|_| "read") }));
    assert_eq!(futures::executor::block_on(future.as_mut()), "read");
    let value = future.as_mut().take_value().unwrap();
    assert!(future.as_mut().take_value().is_none());
    assert_eq!(drops.load(SeqCst), 0);
    drop(value);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn take_value_before_completion_leaves_the_rest_unset() {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let mut future = pin!(NUMBER.scope(6, async move {
        let before = NUMBER.try_with(|n| *n).ok();
        go_rx.await.unwrap();
        (before, NUMBER.try_with(|n| *n).ok())
    }));
    let waker = futures::task::noop_waker();
    assert!(future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(future.as_mut().take_value(), Some(6));
    go_tx.send(()).unwrap();
    assert_eq!(futures::executor::block_on(future), (Some(6), None));
}

#[test]
fn polling_a_completed_scope_panics() {
    let mut future = pin!(NUMBER.scope(1, async {}));
    futures::executor::block_on(future.as_mut());
    let waker = futures::task::noop_waker();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _ = future.as_mut().poll(&mut Context::from_waker(&waker));
    }));
    assert_eq!(
        message(caught.unwrap_err()),
        "`TaskLocalFuture` polled after completion"
    );
}

#[test]
fn debug_formats() {
    let future = NUMBER.scope(3, async {});
    assert_eq!(
        format!("{future:?}"),
        "TaskLocalFuture { value: Some(3), completed: false }"
    );
    assert_eq!(format!("{:?}", &NUMBER), "LocalKey { .. }");
}

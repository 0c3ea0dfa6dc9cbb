//! Runtime behaviour that must hold for every flavor: each test below runs
//! on a current-thread runtime, on a multi-thread runtime with one worker,
//! and on one with two (tokio's `rt_common.rs` pattern).

// These tests build whole runtimes, which loom's model checker cannot drive.
#![cfg(not(loom))]

mod support;

macro_rules! rt_test {
    ($($tests:tt)*) => {
        mod current_thread {
            $($tests)*

            fn rt() -> wq::Runtime {
                wq::Builder::new_current_thread().build().unwrap()
            }

            fn paused_rt() -> wq::Runtime {
                wq::Builder::new_current_thread().start_paused(true).build().unwrap()
            }
        }

        mod multi_thread_1 {
            $($tests)*

            fn rt() -> wq::Runtime {
                wq::Builder::new().workers(1).build().unwrap()
            }

            fn paused_rt() -> wq::Runtime {
                wq::Builder::new().workers(1).start_paused(true).build().unwrap()
            }
        }

        mod multi_thread_2 {
            $($tests)*

            fn rt() -> wq::Runtime {
                wq::Builder::new().workers(2).build().unwrap()
            }

            fn paused_rt() -> wq::Runtime {
                wq::Builder::new().workers(2).start_paused(true).build().unwrap()
            }
        }
    };
}

rt_test! {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::support::Counters;

    #[test]
    fn block_on_returns_the_output() {
        assert_eq!(rt().block_on(async { 40 + 2 }), 42);
    }

    #[test]
    fn every_spawned_task_completes_and_drops_exactly_once() {
        let rt = rt();
        let counters = Counters::default();
        let sum = rt.block_on(async {
            let handles: Vec<_> = (0..1_000u64)
                .map(|i| wq::spawn(counters.track(async move { i })))
                .collect();
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 999 * 1_000 / 2);
        assert_eq!(counters.completions(), 1_000);
        assert_eq!(counters.drops(), 1_000);
        assert_eq!(rt.handle().metrics().num_alive_tasks(), 0);
    }

    #[test]
    fn spawns_from_outside_run_and_join() {
        let rt = rt();
        let from_runtime = rt.spawn(async { 1 });
        let handle = rt.handle().clone();
        let from_thread = std::thread::spawn(move || handle.spawn(async { 2 }))
            .join()
            .unwrap();
        let sum = rt.block_on(async { from_runtime.await.unwrap() + from_thread.await.unwrap() });
        assert_eq!(sum, 3);
    }

    #[test]
    fn nested_spawns_form_a_chain() {
        fn chain(left: u32) -> wq::task::JoinHandle<u32> {
            wq::spawn(async move {
                if left == 0 {
                    0
                } else {
                    chain(left - 1).await.unwrap() + 1
                }
            })
        }
        assert_eq!(rt().block_on(async { chain(200).await.unwrap() }), 200);
    }

    #[test]
    fn yielding_tasks_take_turns() {
        let rt = rt();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Both start their turns once both are running: without it, a
        // worker may finish the first before the second is even spawned.
        let start = Arc::new(tokio::sync::Barrier::new(2));
        rt.block_on(async {
            let tasks: Vec<_> = (0..2)
                .map(|id| {
                    let log = log.clone();
                    let start = start.clone();
                    wq::spawn(async move {
                        start.wait().await;
                        for _ in 0..3 {
                            log.lock().unwrap().push(id);
                            wq::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 6);
        // Neither ran all its turns before the other started.
        let first_of_1 = log.iter().position(|&id| id == 1).unwrap();
        let last_of_0 = log.iter().rposition(|&id| id == 0).unwrap();
        assert!(first_of_1 < last_of_0, "{log:?}");
    }

    #[test]
    fn abort_cancels_and_drops_once() {
        let rt = rt();
        let counters = Counters::default();
        let result = rt.block_on(async {
            let task = wq::spawn(counters.track(std::future::pending::<()>()));
            wq::task::yield_now().await;
            task.abort();
            task.await
        });
        assert!(result.unwrap_err().is_cancelled());
        assert_eq!(counters.drops(), 1);
        assert_eq!(counters.completions(), 0);
    }

    #[test]
    fn a_panicking_task_fails_alone() {
        let rt = rt();
        let (failed, after) = rt.block_on(async {
            let failed = wq::spawn(async { panic!("boom") }).await;
            (failed, wq::spawn(async { 7 }).await.unwrap())
        });
        let err = failed.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
        assert_eq!(after, 7);
    }

    #[test]
    fn sleep_timeout_and_interval() {
        let rt = rt();
        rt.block_on(async {
            let start = wq::time::Instant::now();
            wq::time::sleep(Duration::from_millis(20)).await;
            assert!(start.elapsed() >= Duration::from_millis(20));

            let slow = wq::time::sleep(Duration::from_secs(10));
            assert!(wq::time::timeout(Duration::from_millis(10), slow).await.is_err());

            let mut interval = wq::time::interval(Duration::from_millis(5));
            for _ in 0..4 {
                interval.tick().await;
            }
            assert!(start.elapsed() >= Duration::from_millis(35));
        });
    }

    #[test]
    fn a_paused_clock_auto_advances() {
        let rt = paused_rt();
        let elapsed = rt.block_on(async {
            let start = wq::time::Instant::now();
            let sleeper = wq::spawn(wq::time::sleep(Duration::from_secs(3_600)));
            wq::time::sleep(Duration::from_secs(60)).await;
            sleeper.await.unwrap();
            start.elapsed()
        });
        assert_eq!(elapsed, Duration::from_secs(3_600));
    }

    #[test]
    fn tcp_echo_round_trip() {
        use futures::{AsyncReadExt as _, AsyncWriteExt as _};

        let rt = rt();
        rt.block_on(async {
            let listener = wq::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = wq::spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 5];
                stream.read_exact(&mut buf).await.unwrap();
                stream.write_all(&buf).await.unwrap();
            });
            let mut client = wq::net::TcpStream::connect(addr).await.unwrap();
            client.write_all(b"hello").await.unwrap();
            let mut echoed = vec![0; 5];
            client.read_exact(&mut echoed).await.unwrap();
            assert_eq!(echoed, b"hello");
            server.await.unwrap();
        });
    }

    #[test]
    fn a_wake_from_another_thread_reaches_a_task() {
        let rt = rt();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = rt.spawn(async move { rx.await.unwrap() });
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send(5).unwrap();
        });
        assert_eq!(rt.block_on(waiter).unwrap(), 5);
        sender.join().unwrap();
    }

    /// `tokio::sync` needs no tokio runtime: its primitives work from wq
    /// tasks.
    #[test]
    fn tokio_sync_primitives_work_on_wq() {
        let rt = rt();
        let total = rt.block_on(async {
            // mpsc: 4 producers, one consumer.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(8);
            for p in 0..4u64 {
                let tx = tx.clone();
                wq::spawn(async move {
                    for i in 0..100 {
                        tx.send(p * 1_000 + i).await.unwrap();
                    }
                });
            }
            drop(tx);
            let mut received = 0;
            while rx.recv().await.is_some() {
                received += 1;
            }
            assert_eq!(received, 400);

            // Mutex held across an await by 10 tasks.
            let counter = Arc::new(tokio::sync::Mutex::new(0u64));
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let counter = counter.clone();
                    wq::spawn(async move {
                        for _ in 0..10 {
                            let mut guard = counter.lock().await;
                            wq::task::yield_now().await;
                            *guard += 1;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(*counter.lock().await, 100);

            // Semaphore: at most 2 holders at once.
            let semaphore = Arc::new(tokio::sync::Semaphore::new(2));
            let holders = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (semaphore, holders, most) = (semaphore.clone(), holders.clone(), most.clone());
                    wq::spawn(async move {
                        let _permit = semaphore.acquire().await.unwrap();
                        let now = holders.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        wq::time::sleep(Duration::from_millis(2)).await;
                        holders.fetch_sub(1, SeqCst);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(most.load(SeqCst), 2);

            // Notify and oneshot.
            let notify = Arc::new(tokio::sync::Notify::new());
            let waiter = wq::spawn({
                let notify = notify.clone();
                async move { notify.notified().await }
            });
            wq::task::yield_now().await;
            notify.notify_one();
            waiter.await.unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            wq::spawn(async move { tx.send(3u64).unwrap() });
            received + rx.await.unwrap()
        });
        assert_eq!(total, 403);
    }

    #[test]
    fn handle_current_and_enter() {
        let rt = rt();
        {
            let _guard = rt.enter();
            let handle = wq::Handle::current();
            let task = wq::spawn(async { 9 });
            assert_eq!(handle.block_on(task).unwrap(), 9);
        }
        assert!(wq::Handle::try_current().is_err());
        rt.block_on(async {
            let outer = wq::spawn(async {
                let inner = wq::Handle::current().spawn(async { 4 });
                inner.await.unwrap()
            });
            assert_eq!(outer.await.unwrap(), 4);
        });
    }

    #[test]
    fn tasks_left_by_one_block_on_finish_in_the_next() {
        let rt = rt();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut left = None;
        rt.block_on(async {
            left = Some(wq::spawn(async move { rx.await.is_ok() }));
            wq::task::yield_now().await;
        });
        let left = left.unwrap();
        tx.send(()).unwrap();
        assert!(rt.block_on(left).unwrap());
    }

    #[test]
    fn shutdown_drops_pending_tasks_once_and_resolves_their_handles() {
        let rt = rt();
        let counters = Counters::default();
        let handles: Vec<_> = rt.block_on(async {
            (0..10)
                .map(|_| wq::spawn(counters.track(std::future::pending::<()>())))
                .collect()
        });
        drop(rt);
        assert_eq!(counters.drops(), 10);
        for handle in handles {
            assert!(futures::executor::block_on(handle).unwrap_err().is_cancelled());
        }
    }

    #[test]
    fn blocking_work_returns_its_value() {
        let rt = rt();
        let (a, b) = rt.block_on(async {
            let a = wq::task::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(5));
                1
            });
            let b = wq::spawn(async { wq::blocking(|| 2) });
            (a.await.unwrap(), b.await.unwrap())
        });
        assert_eq!((a, b), (1, 2));
    }

    #[test]
    fn join_set_collects_every_result() {
        let rt = rt();
        let mut results = rt.block_on(async {
            let mut set = wq::task::JoinSet::new();
            for i in 0..20 {
                set.spawn(async move { i });
            }
            let mut results = Vec::new();
            while let Some(result) = set.join_next().await {
                results.push(result.unwrap());
            }
            results
        });
        results.sort_unstable();
        assert_eq!(results, (0..20).collect::<Vec<_>>());
    }
}

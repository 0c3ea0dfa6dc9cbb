//! The cooperative budget: a task looping over always-ready leaf futures
//! yields every 128 of them, so a third task on the same worker runs.
//!
//! Each loop stops when it sees the third task's flag, or at a cap far
//! beyond the budget: a loop that reaches the cap never yielded. The
//! runtimes have one worker and no monitor, so only the budget can let the
//! third task in.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;

use futures::io::{AsyncReadExt, AsyncWriteExt};

const CAP: usize = 200_000;

fn runtimes() -> Vec<(&'static str, wq::Runtime)> {
    vec![
        (
            "current_thread",
            wq::Builder::new_current_thread()
                .monitor(false)
                .build()
                .unwrap(),
        ),
        (
            "multi_thread, 1 worker",
            wq::Builder::new()
                .workers(1)
                .max_workers(1)
                .monitor(false)
                .build()
                .unwrap(),
        ),
    ]
}

/// Runs `looper(flag)` in a task that first spawns the task that sets
/// `flag` (queued on the same worker, behind the looper); returns how many
/// iterations the looper ran before it saw the flag (or `CAP`).
fn race<L, F>(rt: &wq::Runtime, looper: L) -> usize
where
    L: FnOnce(Arc<AtomicBool>) -> F + Send + 'static,
    F: std::future::Future<Output = usize> + Send + 'static,
{
    let flag = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        wq::spawn(async move {
            let setter = {
                let flag = flag.clone();
                wq::spawn(async move { flag.store(true, SeqCst) })
            };
            let iterations = looper(flag).await;
            setter.await.unwrap();
            iterations
        })
        .await
        .unwrap()
    })
}

/// A Unix socket pair written and read in turn: always ready.
async fn socket_loop(flag: Arc<AtomicBool>) -> usize {
    let (mut a, mut b) = wq::net::UnixStream::pair().unwrap();
    let mut byte = [0u8; 1];
    for i in 0..CAP {
        if flag.load(SeqCst) {
            return i;
        }
        a.write_all(&[i as u8]).await.unwrap();
        b.read_exact(&mut byte).await.unwrap();
        assert_eq!(byte[0], i as u8);
    }
    CAP
}

/// A tokio mpsc channel refilled by its own consumer, wrapped in
/// `cooperative`: always ready.
async fn channel_loop(flag: Arc<AtomicBool>) -> usize {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..CAP {
        if flag.load(SeqCst) {
            return i;
        }
        tx.send(i).unwrap();
        let got = wq::task::coop::cooperative(rx.recv()).await;
        assert_eq!(got, Some(i));
    }
    CAP
}

#[test]
fn always_ready_sockets_do_not_starve_a_third_task() {
    for (flavor, rt) in runtimes() {
        let n = race(&rt, socket_loop);
        assert!(n < CAP, "{flavor}: the socket loop never yielded");
        // At least one leaf future per iteration: the loop yields within
        // its first budget, and sees the flag in the iteration after.
        assert!(n <= 129, "{flavor}: yielded only after {n} iterations");
    }
}

#[test]
fn a_cooperative_channel_does_not_starve_a_third_task() {
    for (flavor, rt) in runtimes() {
        let n = race(&rt, channel_loop);
        // The 129th unit finds the budget spent: the loop yields there and
        // sees the flag in the next iteration.
        assert_eq!(n, 129, "{flavor}");
    }
}

#[test]
fn consume_budget_lets_other_tasks_run() {
    for (flavor, rt) in runtimes() {
        let n = race(&rt, |flag| async move {
            let mut acc = 0u64;
            for i in 0..CAP {
                if flag.load(SeqCst) {
                    return i;
                }
                acc = acc.wrapping_mul(31).wrapping_add(i as u64);
                wq::task::consume_budget().await;
            }
            std::hint::black_box(acc);
            CAP
        });
        // The 129th unit finds the budget spent: the loop yields there and
        // sees the flag in the next iteration.
        assert_eq!(n, 129, "{flavor}");
    }
}

#[test]
fn unconstrained_never_yields() {
    for (flavor, rt) in runtimes() {
        let n = race(&rt, |flag| async move {
            wq::task::unconstrained(channel_loop(flag)).await
        });
        assert_eq!(n, CAP, "{flavor}: an unconstrained loop yielded");
    }
}

/// In one poll, finished `JoinHandle`s are ready exactly 128 times; the
/// 129th returns `Pending` (and wakes the task), as in tokio.
#[test]
fn the_budget_is_128_per_poll() {
    for (flavor, rt) in runtimes() {
        let ready_in_one_poll = rt.block_on(async {
            wq::spawn(async {
                let mut handles: Vec<_> = (0..300).map(|i| wq::spawn(async move { i })).collect();
                while !handles.iter().all(|h| h.is_finished()) {
                    wq::task::yield_now().await;
                }
                // A fresh poll, with a fresh budget.
                wq::task::yield_now().await;
                let mut ready = 0;
                let mut polled_once = false;
                std::future::poll_fn(|cx| {
                    if polled_once {
                        return Poll::Ready(());
                    }
                    polled_once = true;
                    for handle in handles.iter_mut() {
                        match std::pin::Pin::new(handle).poll(cx) {
                            Poll::Ready(result) => {
                                result.unwrap();
                                ready += 1;
                            }
                            Poll::Pending => break,
                        }
                    }
                    // Woken by the leaf future that found the budget spent.
                    Poll::Pending
                })
                .await;
                ready
            })
            .await
            .unwrap()
        });
        assert_eq!(ready_in_one_poll, 128, "{flavor}");
    }
}

/// A timeout around a future that spends the whole budget at every poll
/// still fires: its delay is polled exempt from the budget once the inner
/// future spent it (tokio does the same). Without that the delay found the
/// budget spent at every poll and never registered its timer.
#[test]
fn a_timeout_fires_around_a_future_that_spends_the_budget() {
    for (flavor, rt) in runtimes() {
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let spin = async {
                loop {
                    wq::task::consume_budget().await;
                }
            };
            let result = wq::time::timeout(std::time::Duration::from_millis(20), spin).await;
            let _ = tx.send(result.is_err());
        });
        let fired = match flavor {
            // A current-thread runtime runs its tasks only inside block_on.
            "current_thread" => rt.block_on(async {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    if let Ok(fired) = rx.try_recv() {
                        break Some(fired);
                    }
                    if std::time::Instant::now() > deadline {
                        break None;
                    }
                    wq::task::yield_now().await;
                }
            }),
            _ => rx.recv_timeout(std::time::Duration::from_secs(10)).ok(),
        };
        rt.shutdown_background();
        assert_eq!(
            fired,
            Some(true),
            "{flavor}: timeout(20 ms) did not fire within 10 s"
        );
    }
}

//! Workqueues: max_active, ordered queues, flush, drain, delayed work,
//! abort of waiting tasks, and the builder's errors.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use futures::FutureExt;
use support::Counters;

/// Raises `max` to `value` if it is higher.
fn record_max(max: &AtomicUsize, value: usize) {
    max.fetch_max(value, SeqCst);
}

/// max_active = 3 with 20 tasks that each hold their slot until released:
/// never more than 3 in flight, the rest wait on the inactive FIFO, and all
/// 20 complete.
#[wq::test(workers = 2)]
async fn max_active_bounds_tasks_in_flight() {
    let queue = wq::Workqueue::builder("bounded")
        .max_active(3)
        .build()
        .unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let high_water = Arc::new(AtomicUsize::new(0));
    let mut releases = Vec::new();
    let mut handles = Vec::new();
    for i in 0..20 {
        let (tx, rx) = oneshot::channel::<()>();
        releases.push(tx);
        let (in_flight, high_water) = (in_flight.clone(), high_water.clone());
        handles.push(queue.spawn(async move {
            let now = in_flight.fetch_add(1, SeqCst) + 1;
            record_max(&high_water, now);
            rx.await.unwrap();
            in_flight.fetch_sub(1, SeqCst);
            i
        }));
    }
    // Admission happens at spawn: 3 active, 17 waiting.
    let stats = queue.stats();
    assert_eq!((stats.active, stats.inactive, stats.total), (3, 17, 20));
    // The three active tasks start; nobody else does while they hold.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while in_flight.load(SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the active tasks never started"
        );
        wq::time::sleep(Duration::from_millis(1)).await;
    }
    wq::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(in_flight.load(SeqCst), 3);
    for release in releases {
        release.send(()).unwrap();
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), i);
    }
    assert_eq!(high_water.load(SeqCst), 3);
    let stats = queue.stats();
    assert_eq!((stats.active, stats.inactive, stats.completed), (0, 0, 20));
}

/// An ordered queue: 1,000 tasks that await timers complete in queue order,
/// and no two ever overlap.
#[wq::test(workers = 2, start_paused = true)]
async fn ordered_queue_runs_one_at_a_time_in_order() {
    let queue = wq::Workqueue::builder("ordered").ordered().build().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..1000u64)
        .map(|i| {
            let (in_flight, order) = (in_flight.clone(), order.clone());
            queue.spawn(async move {
                assert_eq!(in_flight.fetch_add(1, SeqCst), 0, "task {i} overlapped");
                // Later tasks sleep less: they would overtake if they could.
                wq::time::sleep(Duration::from_millis(3 - i % 3)).await;
                order.lock().unwrap().push(i);
                in_flight.fetch_sub(1, SeqCst);
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

/// `flush` waits for the tasks queued before it, not for later ones.
#[wq::test(workers = 2)]
async fn flush_waits_for_earlier_tasks_only() {
    let queue = wq::Workqueue::builder("flushed").build().unwrap();
    let (release_early, early) = oneshot::channel::<()>();
    let early = queue.spawn(async move { early.await.unwrap() });
    // The flush covers what was queued when `flush` is called.
    let flush = wq::spawn(queue.flush());
    let (_hold_late, late) = oneshot::channel::<()>();
    let late = queue.spawn(async move {
        let _ = late.await;
    });
    for _ in 0..10 {
        wq::task::yield_now().await;
    }
    assert!(
        !flush.is_finished(),
        "flush returned before an earlier task finished"
    );
    release_early.send(()).unwrap();
    early.await.unwrap();
    // The later task is still pending; the flush returns anyway.
    flush.await.unwrap();
    assert!(!late.is_finished());
    late.abort();
    assert!(late.await.unwrap_err().is_cancelled());
}

/// While a drain runs, spawns from outside the queue are refused with an
/// error naming it, and chained spawns from the queue's own tasks are
/// accepted and waited for.
#[wq::test(workers = 2)]
async fn drain_refuses_outside_work_and_accepts_chained_work() {
    let queue = wq::Workqueue::builder("draining").build().unwrap();
    let (release, released) = oneshot::channel::<()>();
    let chained_ran = Arc::new(AtomicUsize::new(0));
    let first = {
        let (queue2, chained_ran) = (queue.clone(), chained_ran.clone());
        queue.spawn(async move {
            released.await.unwrap();
            let chained = queue2
                .try_spawn(async move {
                    chained_ran.fetch_add(1, SeqCst);
                })
                .expect("a queue's own task may chain work during a drain");
            drop(chained);
        })
    };
    // The drain refuses outside work from the moment `drain` is called.
    let drain = wq::spawn(queue.drain());
    let err = queue.try_spawn(async {}).unwrap_err();
    assert!(err.to_string().contains("`draining` is draining"), "{err}");
    release.send(()).unwrap();
    first.await.unwrap();
    drain.await.unwrap();
    assert_eq!(
        chained_ran.load(SeqCst),
        1,
        "the drain returned before chained work ran"
    );
    // After the drain, anyone may queue again.
    queue.try_spawn(async {}).unwrap().await.unwrap();
}

/// A task waiting for a slot can be aborted: it resolves as cancelled while
/// the active task still holds the slot, and its future is dropped without
/// ever being polled.
#[wq::test(workers = 2)]
async fn aborting_a_waiting_task_cancels_it_unpolled() {
    let queue = wq::Workqueue::builder("single")
        .max_active(1)
        .build()
        .unwrap();
    let (release, released) = oneshot::channel::<()>();
    let holder = queue.spawn(async move { released.await.unwrap() });
    let counters = Counters::default();
    let waiting = queue.spawn(counters.track(async {}));
    let after = queue.spawn(async { "after" });
    assert_eq!(queue.stats().inactive, 2);
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert_eq!(counters.polls(), 0);
    assert_eq!(counters.drops(), 1);
    assert!(!holder.is_finished());
    release.send(()).unwrap();
    holder.await.unwrap();
    // The slot went on to the next waiting task.
    assert_eq!(after.await.unwrap(), "after");
    assert_eq!(queue.stats().completed, 3);
}

/// Counts itself out of `in_flight` when dropped, slowly: the destructor
/// of a task's future is still that task running.
struct SlowDrop(Arc<AtomicUsize>);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(50));
        self.0.fetch_sub(1, SeqCst);
    }
}

/// An aborted task's slot goes to the next task only once its future has
/// been dropped: the next task of an ordered queue starts after the aborted
/// one's destructors have run, not while they run. Likewise when a task
/// panics (its future is then dropped as it unwinds).
#[test]
fn the_next_task_starts_after_an_aborted_task_is_dropped() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let queue = rt.block_on(async { wq::Workqueue::builder("ord").ordered().build().unwrap() });
    for abort in [true, false] {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let first = {
            let in_flight = in_flight.clone();
            queue.spawn(async move {
                in_flight.fetch_add(1, SeqCst);
                let _guard = SlowDrop(in_flight.clone());
                started_tx.send(()).unwrap();
                if !abort {
                    wq::task::yield_now().await;
                    panic!("the first task panics");
                }
                std::future::pending::<()>().await
            })
        };
        let second = {
            let in_flight = in_flight.clone();
            queue.spawn(async move { in_flight.load(SeqCst) })
        };
        started_rx.recv().unwrap();
        if abort {
            first.abort();
        }
        assert_eq!(
            rt.block_on(second).unwrap(),
            0,
            "the second task started while the first was being dropped (abort: {abort})"
        );
        let err = rt.block_on(first).unwrap_err();
        assert!(if abort {
            err.is_cancelled()
        } else {
            err.is_panic()
        });
    }
}

/// A waiting task aborted while its first poll is in progress is not
/// polled either: if the slot it waits for comes during that poll (the
/// holder finished), the future is left for the next poll, which sees the
/// abort. Other threads take the queue's lock in a loop (`set_max_active`)
/// so that polls wait for it, which widens the window; before the fix this
/// failed within a few hundred rounds.
#[test]
fn a_waiting_task_aborted_during_its_poll_is_not_polled() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let queue = rt.block_on(async { wq::Workqueue::builder("one").max_active(1).build().unwrap() });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lockers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, queue) = (stop.clone(), queue.clone());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    queue.set_max_active(1).unwrap();
                }
            })
        })
        .collect();
    let counters = Counters::default();
    rt.block_on(async {
        for _ in 0..3000 {
            let (release, released) = oneshot::channel::<()>();
            let holder = queue.spawn(async move { released.await.unwrap() });
            let victims: Vec<_> = (0..4)
                .map(|_| {
                    let victim = queue.spawn(counters.track(async {}));
                    victim.abort();
                    victim
                })
                .collect();
            release.send(()).unwrap();
            for victim in victims {
                assert!(victim.await.unwrap_err().is_cancelled());
            }
            holder.await.unwrap();
            assert_eq!(counters.polls(), 0, "an aborted waiting task was polled");
        }
    });
    stop.store(true, SeqCst);
    for locker in lockers {
        locker.join().unwrap();
    }
    assert_eq!(counters.drops(), 3000 * 4);
}

/// Delayed work is queued when its timer fires: before that, `flush` does
/// not wait for it.
#[wq::test(workers = 2, start_paused = true)]
async fn delayed_work_is_queued_when_its_timer_fires() {
    let queue = wq::Workqueue::builder("delayed").build().unwrap();
    let start = wq::time::Instant::now();
    let delayed = queue.spawn_after(Duration::from_secs(10), async move { start.elapsed() });
    queue
        .flush()
        .now_or_never()
        .expect("flush waited for unqueued delayed work");
    assert_eq!(queue.stats().total, 0);
    assert_eq!(delayed.await.unwrap(), Duration::from_secs(10));
    assert_eq!(queue.stats().total, 1);
}

/// Raising max_active starts waiting tasks; an ordered queue refuses it.
#[wq::test(workers = 2)]
async fn set_max_active_starts_waiting_tasks() {
    let queue = wq::Workqueue::builder("resizable")
        .max_active(1)
        .build()
        .unwrap();
    let (release, released) = oneshot::channel::<()>();
    let holder = queue.spawn(async move { released.await.unwrap() });
    let second = queue.spawn(async { 2 });
    assert_eq!(queue.stats().inactive, 1);
    queue.set_max_active(2).unwrap();
    assert_eq!(
        second.await.unwrap(),
        2,
        "raising max_active did not start it"
    );
    assert!(!holder.is_finished());
    release.send(()).unwrap();
    holder.await.unwrap();

    let err = queue.set_max_active(0).unwrap_err();
    assert!(err.to_string().contains("`max_active`"), "{err}");
    let ordered = wq::Workqueue::builder("ord").ordered().build().unwrap();
    let err = ordered.set_max_active(4).unwrap_err();
    assert!(err.to_string().contains("ordered"), "{err}");
}

/// Invalid settings are errors naming the field.
#[test]
fn builder_errors_name_the_field() {
    let err = wq::Workqueue::builder("w")
        .max_active(1)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no runtime"), "{err}");

    let rt = wq::Runtime::new().unwrap();
    let build = |b: wq::WorkqueueBuilder| b.handle(rt.handle()).build().unwrap_err().to_string();
    assert!(build(wq::Workqueue::builder("w").max_active(0)).contains("`max_active`"));
    assert!(build(wq::Workqueue::builder("w").max_active(2049)).contains("1..=2048"));
    assert!(build(wq::Workqueue::builder("")).contains("`name`"));
    assert!(build(wq::Workqueue::builder("w").ordered().max_active(4)).contains("`max_active`"));
    assert!(build(wq::Workqueue::builder("w").affinity_strict(true)).contains("`affinity_strict`"));
    let ok = wq::Workqueue::builder("w")
        .unbound(wq::Scope::Cache)
        .affinity_strict(true)
        .handle(rt.handle())
        .build()
        .unwrap();
    assert_eq!(ok.name(), "w");
}

/// The system workqueues exist once per runtime.
#[wq::test]
async fn system_workqueues_are_shared() {
    assert_eq!(wq::system().name(), "system");
    let a = wq::system_highpri();
    let b = wq::system_highpri();
    assert_eq!(a.name(), "system_highpri");
    a.spawn(async {}).await.unwrap();
    assert_eq!(b.stats().completed, 1, "two handles on one queue");
    assert_eq!(wq::system_long().name(), "system_long");
    assert_eq!(wq::system_unbound().name(), "system_unbound");
}

/// `wq::spawn`, `Handle::spawn` and `JoinSet` queue on `wq::system()`:
/// its stats count their tasks and its flush waits for them; it has no
/// limit, and refuses one.
#[wq::test(workers = 2)]
async fn wq_spawn_goes_through_the_system_queue() {
    let system = wq::system();
    assert_eq!(system.stats().max_active, usize::MAX, "no limit by default");
    let before = system.stats();
    let handles: Vec<_> = (0..1000).map(|i| wq::spawn(async move { i })).collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), i);
    }
    wq::Handle::current().spawn(async {}).await.unwrap();
    let mut set = wq::task::JoinSet::new();
    set.spawn(async {});
    set.join_next().await.unwrap().unwrap();
    system.flush().await;
    let after = system.stats();
    // The test's own future runs in block_on, not as a task.
    assert_eq!(after.total - before.total, 1002);
    assert_eq!(after.completed - before.completed, 1002);
    assert_eq!(after.active, 0);

    // flush on `system` waits for a `wq::spawn` task queued before it.
    let (release, released) = oneshot::channel::<()>();
    let early = wq::spawn(async move { released.await.unwrap() });
    let flush = wq::spawn(system.flush());
    for _ in 0..10 {
        wq::task::yield_now().await;
    }
    assert!(
        !flush.is_finished(),
        "flush passed a pending wq::spawn task"
    );
    release.send(()).unwrap();
    early.await.unwrap();
    flush.await.unwrap();

    // No limit can be set on it.
    let err = system.set_max_active(2).unwrap_err();
    assert!(err.to_string().contains("`max_active`"), "{err}");
}

/// Draining `system()` refuses `wq::spawn` from outside its tasks (with a
/// panic naming the queue) and accepts chained `wq::spawn`s from them.
#[wq::test(workers = 2)]
async fn draining_system_refuses_outside_wq_spawn() {
    let chained = Arc::new(AtomicUsize::new(0));
    let (release, released) = oneshot::channel::<()>();
    let first = {
        let chained = chained.clone();
        wq::spawn(async move {
            released.await.unwrap();
            let chained = chained.clone();
            wq::spawn(async move {
                chained.fetch_add(1, SeqCst);
            });
        })
    };
    let drain = wq::system().drain();
    let refused = std::panic::catch_unwind(|| wq::spawn(async {})).unwrap_err();
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(message.contains("`system` is draining"), "{message}");
    release.send(()).unwrap();
    drain.await;
    assert_eq!(
        chained.load(SeqCst),
        1,
        "the drain waited for the chained task"
    );
    first.await.unwrap();
    // The drain is over: spawning works again.
    wq::spawn(async {}).await.unwrap();
}

/// More flushes wait at once than the queue has flush colours (16), each
/// on a different set of tasks: no flush returns before the task queued
/// just before it, the first 15 return as soon as their own tasks are done,
/// and all return once every task is (the later ones waited, as documented,
/// for the tasks queued while no colour was free).
#[wq::test(workers = 2)]
async fn more_waiting_flushes_than_colours() {
    let queue = wq::Workqueue::builder("colours").build().unwrap();
    let mut releases = Vec::new();
    let mut flushes = Vec::new();
    for _ in 0..40 {
        let (release, released) = oneshot::channel::<()>();
        releases.push(release);
        queue.spawn(async move {
            let _ = released.await;
        });
        flushes.push(wq::spawn(queue.flush()));
    }
    for _ in 0..10 {
        wq::task::yield_now().await;
    }
    // Release the tasks one by one, in order.
    for (i, release) in releases.into_iter().enumerate() {
        assert!(
            flushes[i..].iter().all(|f| !f.is_finished()),
            "a flush returned before task {i}, queued before it, finished"
        );
        release.send(()).unwrap();
        if i < 15 {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !flushes[i].is_finished() {
                assert!(std::time::Instant::now() < deadline, "flush {i} hangs");
                wq::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    for flush in flushes {
        flush.await.unwrap();
    }
    assert_eq!(queue.stats().completed, 40);
}

/// Four threads spawn on a queue with max_active 4 while a fifth flushes in
/// a loop: the limit is never exceeded, every task completes exactly once,
/// and every flush returns only after every task spawned before its call
/// (as recorded by the spawner) has finished.
#[test]
fn concurrent_spawns_and_flushes_keep_the_limit_and_the_flush_promise() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 2000;
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let queue = rt.block_on(async {
        wq::Workqueue::builder("contended")
            .max_active(4)
            .build()
            .unwrap()
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let high_water = Arc::new(AtomicUsize::new(0));
    // Per thread: how many tasks it has spawned, and how many finished.
    let spawned: Arc<Vec<AtomicUsize>> =
        Arc::new((0..THREADS).map(|_| AtomicUsize::new(0)).collect());
    let finished: Arc<Vec<AtomicUsize>> =
        Arc::new((0..THREADS).map(|_| AtomicUsize::new(0)).collect());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flusher = {
        let (queue, spawned, finished, done) = (
            queue.clone(),
            spawned.clone(),
            finished.clone(),
            done.clone(),
        );
        let handle = rt.handle().clone();
        std::thread::spawn(move || {
            let mut flushes = 0;
            while !done.load(SeqCst) {
                // Tasks are numbered per thread in spawn order and finish
                // in any order: at least `seen` of them existed at the call.
                let seen: Vec<usize> = spawned.iter().map(|s| s.load(SeqCst)).collect();
                handle.block_on(queue.flush());
                for (t, &seen) in seen.iter().enumerate() {
                    let finished = finished[t].load(SeqCst);
                    assert!(finished >= seen, "flush returned with {finished} of thread {t}'s first {seen} tasks finished");
                }
                flushes += 1;
            }
            flushes
        })
    };
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let (queue, in_flight, high_water) =
                (queue.clone(), in_flight.clone(), high_water.clone());
            let (spawned, finished) = (spawned.clone(), finished.clone());
            std::thread::spawn(move || {
                let mut handles = Vec::with_capacity(PER_THREAD);
                for i in 0..PER_THREAD {
                    let (in_flight, high_water, finished) =
                        (in_flight.clone(), high_water.clone(), finished.clone());
                    handles.push(queue.spawn(async move {
                        record_max(&high_water, in_flight.fetch_add(1, SeqCst) + 1);
                        if i % 7 == 0 {
                            wq::task::yield_now().await;
                        }
                        in_flight.fetch_sub(1, SeqCst);
                        finished[t].fetch_add(1, SeqCst);
                        i
                    }));
                    spawned[t].fetch_add(1, SeqCst);
                }
                handles
            })
        })
        .collect();
    for spawner in spawners {
        for (i, handle) in spawner.join().unwrap().into_iter().enumerate() {
            assert_eq!(rt.block_on(handle).unwrap(), i);
        }
    }
    done.store(true, SeqCst);
    assert!(flusher.join().unwrap() > 0);
    let total: usize = finished.iter().map(|f| f.load(SeqCst)).sum();
    assert_eq!(total, THREADS * PER_THREAD);
    assert!(
        high_water.load(SeqCst) <= 4,
        "max_active exceeded: {}",
        high_water.load(SeqCst)
    );
    let stats = queue.stats();
    assert_eq!(
        (stats.total, stats.completed, stats.active, stats.inactive),
        (8000, 8000, 0, 0)
    );
}

/// A cpu_intensive queue's task does not count toward concurrency: with one
/// worker and no monitor, a task spawned after a 200 ms computation on such
/// a queue runs while the computation goes on.
#[test]
fn cpu_intensive_tasks_do_not_hold_the_pool() {
    let rt = wq::Builder::new()
        .workers(1)
        .monitor(false)
        .build()
        .unwrap();
    let queue = wq::Workqueue::builder("crunch")
        .cpu_intensive()
        .handle(rt.handle())
        .build()
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let cruncher = {
        let done = done.clone();
        queue.spawn(async move {
            started_tx.send(()).unwrap();
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(200) {
                std::hint::spin_loop();
            }
            done.store(true, SeqCst);
        })
    };
    started_rx.recv().unwrap();
    let other = {
        let done = done.clone();
        rt.spawn(async move { !done.load(SeqCst) })
    };
    assert!(
        rt.block_on(other).unwrap(),
        "waited for the cpu_intensive task"
    );
    rt.block_on(cruncher).unwrap();
}

/// A work item that counts its runs and checks it never overlaps itself;
/// each run waits for `gate` to be opened (a permit per run).
fn counted_work(
    runs: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
) -> (wq::Work, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let work = {
        let in_flight = in_flight.clone();
        wq::Work::new(move || {
            let (runs, gate, in_flight) = (runs.clone(), gate.clone(), in_flight.clone());
            async move {
                assert_eq!(
                    in_flight.fetch_add(1, SeqCst),
                    0,
                    "the work item ran twice at once"
                );
                gate.acquire().await.unwrap().forget();
                runs.fetch_add(1, SeqCst);
                in_flight.fetch_sub(1, SeqCst);
            }
        })
    };
    (work, in_flight)
}

/// A `max_active(1)` queue whose only slot is held by a task until
/// `release` is sent, so that what is queued next stays pending.
fn held_queue(name: &str) -> (wq::Workqueue, oneshot::Sender<()>, wq::task::JoinHandle<()>) {
    let queue = wq::Workqueue::builder(name).max_active(1).build().unwrap();
    let (release, released) = oneshot::channel::<()>();
    let holder = queue.spawn(async move { released.await.unwrap() });
    (queue, release, holder)
}

/// `Work::queue` returns false while the item is pending and it runs once;
/// queued again while running, it runs once more afterwards, never twice at
/// once.
#[wq::test(workers = 2)]
async fn work_item_queues_once_and_never_overlaps() {
    let (queue, release, holder) = held_queue("items");
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (work, in_flight) = counted_work(runs.clone(), gate.clone());
    assert!(work.queue(&queue));
    assert!(!work.queue(&queue), "queued twice while pending");
    assert!(work.is_pending());
    release.send(()).unwrap();
    holder.await.unwrap();
    // Wait until the run has started (it is then no longer pending).
    while in_flight.load(SeqCst) == 0 {
        wq::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(work.is_running() && !work.is_pending());
    // Queued while running: pending again, runs after the current run.
    assert!(work.queue(&queue));
    assert!(!work.queue(&queue));
    gate.add_permits(2);
    work.flush().await;
    // The flush covered the pending run too.
    assert_eq!(runs.load(SeqCst), 2);
    assert!(!work.is_pending() && !work.is_running());
}

/// `cancel` removes a pending run; `cancel_sync` also waits for a run in
/// progress, and returns only when the item is neither pending nor running.
#[wq::test(workers = 2)]
async fn work_item_cancel_and_cancel_sync() {
    let (queue, release, holder) = held_queue("cancelled");
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (work, in_flight) = counted_work(runs.clone(), gate.clone());
    assert!(work.queue(&queue));
    assert!(work.cancel());
    assert!(!work.cancel(), "nothing left to cancel");
    release.send(()).unwrap();
    holder.await.unwrap();
    queue.flush().await;
    assert_eq!(runs.load(SeqCst), 0, "a cancelled run ran");

    // Now a run in progress, plus one pending behind it.
    assert!(work.queue(&queue));
    while in_flight.load(SeqCst) == 0 {
        wq::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(work.queue(&queue));
    let cancel = {
        let work = work.clone();
        wq::spawn(async move { work.cancel_sync().await })
    };
    wq::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !cancel.is_finished(),
        "cancel_sync returned while a run was in progress"
    );
    gate.add_permits(1);
    assert!(cancel.await.unwrap(), "a run was pending");
    assert!(!work.is_pending() && !work.is_running());
    assert_eq!(runs.load(SeqCst), 1, "only the run in progress finished");
}

/// `DelayedWork`: `modify` moves a pending run's deadline, `cancel` stops it
/// before its timer fires.
#[wq::test(workers = 2, start_paused = true)]
async fn delayed_work_modify_and_cancel() {
    let queue = wq::Workqueue::builder("timers").build().unwrap();
    let ran_at = Arc::new(Mutex::new(Vec::new()));
    let start = wq::time::Instant::now();
    let work = {
        let ran_at = ran_at.clone();
        wq::DelayedWork::new(move || {
            let ran_at = ran_at.clone();
            async move { ran_at.lock().unwrap().push(start.elapsed()) }
        })
    };
    assert!(work.queue_after(&queue, Duration::from_secs(5)));
    assert!(
        !work.queue_after(&queue, Duration::from_secs(1)),
        "already pending"
    );
    assert!(work.modify(&queue, Duration::from_secs(8)), "was pending");
    wq::time::sleep(Duration::from_secs(6)).await;
    assert!(ran_at.lock().unwrap().is_empty(), "ran at the old deadline");
    work.flush().await;
    assert_eq!(*ran_at.lock().unwrap(), vec![Duration::from_secs(8)]);

    assert!(
        !work.modify(&queue, Duration::from_secs(3)),
        "was not pending"
    );
    assert!(work.cancel());
    wq::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        ran_at.lock().unwrap().len(),
        1,
        "a cancelled delayed run ran"
    );
}

/// A task body that signals once it runs, then sleeps `d` without telling
/// wq, then sets the returned flag.
fn unannotated_blocker(
    d: Duration,
) -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    Arc<std::sync::atomic::AtomicBool>,
    std::sync::mpsc::Receiver<()>,
) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (inside_tx, inside_rx) = std::sync::mpsc::channel();
    let task = {
        let done = done.clone();
        async move {
            inside_tx.send(()).unwrap();
            std::thread::sleep(d);
            done.store(true, SeqCst);
        }
    };
    (task, done, inside_rx)
}

/// Highpri tasks run on separate workers: with the normal pool saturated
/// (its only worker blocked, no monitor to notice), a highpri task still
/// runs at once.
#[test]
fn highpri_tasks_are_not_delayed_by_a_saturated_normal_pool() {
    let rt = wq::Builder::new()
        .workers(1)
        .monitor(false)
        .thread_name("hp-test")
        .build()
        .unwrap();
    let metrics = rt.handle().metrics();
    assert_eq!(
        metrics.num_highpri_workers(),
        0,
        "created before any highpri queue"
    );
    let urgent = wq::Workqueue::builder("urgent")
        .highpri()
        .handle(rt.handle())
        .build()
        .unwrap();
    let (blocker, blocker_done, inside) = unannotated_blocker(Duration::from_millis(300));
    let blocker = rt.spawn(blocker);
    inside.recv().unwrap();
    let task = {
        let done = blocker_done.clone();
        urgent.spawn(async move {
            let name = std::thread::current().name().map(str::to_owned);
            (!done.load(SeqCst), name)
        })
    };
    let (ran_first, thread) = rt.block_on(task).unwrap();
    assert!(ran_first, "the highpri task waited for the normal pool");
    assert_eq!(thread.as_deref(), Some("hp-testH"));
    assert!(metrics.num_highpri_workers() >= 1);
    assert!(metrics.highpri_nice_applied().is_some());
    rt.block_on(blocker).unwrap();
}

/// The monitor watches the high-priority pool too: a highpri task blocked
/// without annotation does not hold back the next highpri task.
#[test]
fn monitor_watches_the_highpri_pool() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let urgent = wq::Workqueue::builder("urgent")
        .highpri()
        .handle(rt.handle())
        .build()
        .unwrap();
    let (blocker, blocker_done, inside) = unannotated_blocker(Duration::from_millis(300));
    let blocker = urgent.spawn(blocker);
    inside.recv().unwrap();
    let next = {
        let done = blocker_done.clone();
        urgent.spawn(async move { !done.load(SeqCst) })
    };
    assert!(
        rt.block_on(next).unwrap(),
        "waited behind the blocked highpri worker"
    );
    assert!(rt.handle().metrics().blocked_detections() >= 1);
    rt.block_on(blocker).unwrap();
}

/// The CPUs the calling thread may run on, from /proc (Linux).
fn allowed_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

/// Unbound queues run on per-pod pools: with strict affinity and the `Cpu`
/// scope, a task's worker may run on exactly one CPU; with the `System`
/// scope there is one pod, number 0.
#[test]
fn unbound_queues_run_on_pod_pools() {
    let rt = wq::Builder::new()
        .workers(2)
        .thread_name("ub")
        .build()
        .unwrap();
    let per_cpu = wq::Workqueue::builder("per-cpu")
        .unbound(wq::Scope::Cpu)
        .affinity_strict(true)
        .handle(rt.handle())
        .build()
        .unwrap();
    let (name, allowed) = rt
        .block_on(per_cpu.spawn(async {
            let name = std::thread::current().name().map(str::to_owned);
            (name, allowed_cpus())
        }))
        .unwrap();
    let name = name.unwrap();
    assert!(name.starts_with("ubU"), "not an unbound worker: {name}");
    if let Some(allowed) = allowed {
        assert!(name["ubU".len()..].parse::<usize>().is_ok(), "{name}");
        assert!(
            !allowed.contains(',') && !allowed.contains('-'),
            "a strict per-CPU worker may run on {allowed}"
        );
    }

    let system = wq::Workqueue::builder("everywhere")
        .unbound(wq::Scope::System)
        .handle(rt.handle())
        .build()
        .unwrap();
    let handles: Vec<_> = (0..100)
        .map(|i| system.spawn(async move { (i, std::thread::current().name().map(str::to_owned)) }))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let (j, name) = rt.block_on(handle).unwrap();
        assert_eq!(i, j);
        assert_eq!(name.as_deref(), Some("ubU0"));
    }
}

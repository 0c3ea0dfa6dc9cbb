//! Shutdown racing the runtime's other activity: dropping the runtime (and,
//! separately, `shutdown_timeout`) while other threads spawn into it, while
//! tasks block (in `wq::blocking` and without a word), while thousands of
//! timers fall due, and while a `mem_reclaim` queue's rescuer runs tasks.
//! Each race is repeated; every handle must resolve (to its value or a
//! cancellation, never hanging), every future must be dropped exactly once,
//! every spawn after the shutdown must return a cancelled handle, and a
//! blocking closure that started must run to its end.
//!
//! Each test runs under a watchdog that aborts the process, naming the
//! test, if it does not finish in time (a hang would otherwise never end).

mod support;

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::{Counters, Latch};
use wq::task::{JoinError, JoinHandle, JoinSet};

/// How long one test may take before the watchdog aborts the process.
const LIMIT: Duration = Duration::from_secs(30);

/// Aborts the process if not dropped within `LIMIT` (dropping the sender
/// disarms it).
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    fn new(test: &'static str) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(LIMIT) {
                eprintln!("{test}: did not finish within {LIMIT:?} (hang)");
                std::process::abort();
            }
        });
        Watchdog { _disarm: tx }
    }
}

/// Resolves a handle without the runtime (it may be gone).
fn join<T>(handle: JoinHandle<T>) -> Result<T, JoinError> {
    futures::executor::block_on(handle)
}

/// Waits until `counters` have seen `n` drops (a worker still inside a
/// poll when `shutdown_timeout` returned drops what it holds as it exits),
/// then checks that there are exactly `n`.
fn all_dropped(counters: &Counters, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.drops() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} futures dropped",
            counters.drops()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(counters.drops(), n, "{what}: futures dropped");
}

/// A small deterministic generator (SplitMix64), one per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// How the runtime goes away.
#[derive(Clone, Copy, Debug)]
enum End {
    Drop,
    Timeout,
}

fn end(rt: wq::Runtime, how: End) {
    match how {
        End::Drop => drop(rt),
        End::Timeout => rt.shutdown_timeout(Duration::from_millis(20)),
    }
}

// ---------------------------------------------------------------------------
// Spawning from other threads

/// What a spawner thread's task does; each may complete or be cancelled
/// by the shutdown, except `Pending`, which only a cancellation ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Job {
    Value,
    Yields,
    Sleep,
    Pending,
}

type BoxFut = Pin<Box<dyn Future<Output = u64> + Send>>;

fn job_future(job: Job, v: u64) -> BoxFut {
    match job {
        Job::Value => Box::pin(async move { v }),
        Job::Yields => Box::pin(async move {
            for _ in 0..3 {
                wq::task::yield_now().await;
            }
            v
        }),
        Job::Sleep => Box::pin(async move {
            wq::time::sleep(Duration::from_millis(1)).await;
            v
        }),
        Job::Pending => Box::pin(pending()),
    }
}

/// What the members of a join set do, and their values.
type Members = Vec<(Job, u64)>;

/// What one spawner thread saw.
#[derive(Default)]
struct Spawned {
    /// Handles of tasks spawned before the thread saw the shutdown end,
    /// with what they do and the value they complete with.
    handles: Vec<(JoinHandle<u64>, Job, u64)>,
    /// Join sets, with what their members do and their values.
    sets: Vec<(JoinSet<u64>, Members)>,
    /// Spawns once the shutdown had returned: all must be cancelled at once.
    late: Vec<JoinHandle<u64>>,
}

/// Threads spawn through `Handle` clones (and onto a workqueue with a
/// `max_active` limit, through clones of it) in a tight loop while the
/// runtime shuts down, and go on after it has: every handle resolves, to
/// its value or a cancellation (a pending task only to a cancellation),
/// every future is dropped exactly once, the spawns after the shutdown
/// return handles already cancelled, without polling their futures, and
/// the workqueue's counts balance.
fn spawners_race_the_shutdown(how: End) {
    const THREADS: u64 = 3;
    let _watchdog = Watchdog::new("spawners_race_the_shutdown");
    for round in 0..60u64 {
        let rt = wq::Builder::new()
            .workers(2)
            .max_workers(4)
            .build()
            .unwrap();
        let queue = wq::Workqueue::builder("limited")
            .max_active(2)
            .handle(rt.handle())
            .build()
            .unwrap();
        let counters = Counters::default();
        let late_counters = Counters::default();
        let spawned = Arc::new(AtomicUsize::new(0));
        let shut = Arc::new(AtomicBool::new(false));
        let started = Arc::new(std::sync::Barrier::new(THREADS as usize + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (handle, queue) = (rt.handle().clone(), queue.clone());
                let (counters, late_counters) = (counters.clone(), late_counters.clone());
                let (spawned, shut, started) = (spawned.clone(), shut.clone(), started.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(round * 1000 + t);
                    let mut out = Spawned::default();
                    started.wait();
                    let mut after = 0;
                    // Until a few dozen spawns after the shutdown returned.
                    while after < 50 {
                        let done = shut.load(SeqCst);
                        let job = [Job::Value, Job::Yields, Job::Sleep, Job::Pending]
                            [rng.below(4) as usize];
                        let v = rng.below(1_000_000);
                        let on_queue = rng.below(4) == 0;
                        if done {
                            after += 1;
                            let future = late_counters.track(job_future(job, v));
                            out.late.push(match on_queue {
                                true => queue.spawn(future),
                                false => handle.spawn(future),
                            });
                            continue;
                        }
                        spawned.fetch_add(1, SeqCst);
                        if rng.below(8) == 0 {
                            let mut set = JoinSet::new();
                            let mut members = Vec::new();
                            for _ in 0..rng.below(3) + 1 {
                                let v = rng.below(1_000_000);
                                members.push((job, v));
                                set.spawn_on(counters.track(job_future(job, v)), &handle);
                            }
                            // The first one was counted above.
                            spawned.fetch_add(members.len() - 1, SeqCst);
                            out.sets.push((set, members));
                        } else {
                            let future = counters.track(job_future(job, v));
                            let task = match on_queue {
                                true => queue.spawn(future),
                                false => handle.spawn(future),
                            };
                            out.handles.push((task, job, v));
                        }
                    }
                    out
                })
            })
            .collect();
        started.wait();
        // Let them get going, for a varying while.
        std::thread::sleep(Duration::from_micros(200 + 300 * (round % 7)));
        end(rt, how);
        shut.store(true, SeqCst);
        let mut oks = 0;
        let mut total = 0;
        for thread in threads {
            let out = thread.join().expect("spawner thread");
            for (handle, job, v) in out.handles {
                total += 1;
                match join(handle) {
                    Ok(got) => {
                        assert_eq!(got, v, "round {round}: {job:?}");
                        assert_ne!(job, Job::Pending, "round {round}: a pending task completed");
                        oks += 1;
                    }
                    Err(e) => assert!(e.is_cancelled(), "round {round}: {job:?}: {e:?}"),
                }
            }
            for (mut set, members) in out.sets {
                let mut joined = 0;
                while let Some(result) = futures::executor::block_on(set.join_next()) {
                    joined += 1;
                    total += 1;
                    match result {
                        Ok(got) => {
                            assert!(
                                members
                                    .iter()
                                    .any(|&(job, v)| v == got && job != Job::Pending),
                                "round {round}: set member gave {got}"
                            );
                            oks += 1;
                        }
                        Err(e) => assert!(e.is_cancelled(), "round {round}: {e:?}"),
                    }
                }
                assert_eq!(joined, members.len(), "round {round}: set members joined");
            }
            for handle in out.late {
                assert!(
                    handle.is_finished(),
                    "round {round}: a late spawn is not done"
                );
                assert!(join(handle).unwrap_err().is_cancelled(), "round {round}");
            }
        }
        assert_eq!(total, spawned.load(SeqCst), "round {round}: handles");
        all_dropped(&counters, total, &format!("round {round}"));
        assert_eq!(
            counters.completions(),
            oks,
            "round {round}: completed vs Ok"
        );
        assert_eq!(
            late_counters.polls(),
            0,
            "round {round}: a late spawn was polled"
        );
        let stats = queue.stats();
        assert_eq!(
            (stats.active, stats.inactive, stats.total),
            (0, 0, stats.completed),
            "round {round}: {stats:?}"
        );
        assert_eq!(
            late_counters.drops(),
            (THREADS * 50) as usize,
            "round {round}: late spawns dropped"
        );
    }
}

#[test]
fn drop_while_other_threads_spawn() {
    spawners_race_the_shutdown(End::Drop);
}

#[test]
fn shutdown_timeout_while_other_threads_spawn() {
    spawners_race_the_shutdown(End::Timeout);
}

// ---------------------------------------------------------------------------
// Blocking tasks

/// Tasks block at the shutdown: in `wq::blocking`, in `spawn_blocking`
/// closures, and in plain sleeps inside a poll. `shutdown_timeout` returns
/// within its bound; dropping the runtime waits for them. Either way, every
/// blocking closure that started runs to its end and its task completes
/// with its value (the shutdown cannot cut a poll short); one that never
/// started is dropped unrun and its handle cancelled; every future is
/// dropped exactly once.
fn blocking_tasks_at_the_shutdown(how: End) {
    const TASKS: usize = 12;
    let _watchdog = Watchdog::new("blocking_tasks_at_the_shutdown");
    for round in 0..10u64 {
        let rt = wq::Builder::new()
            .workers(2)
            .max_workers(6)
            .build()
            .unwrap();
        let counters = Counters::default();
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for i in 0..TASKS as u64 {
            let (started, finished) = (started.clone(), finished.clone());
            let work = move || {
                started.fetch_add(1, SeqCst);
                std::thread::sleep(Duration::from_millis(100 + 10 * (i % 4)));
                finished.fetch_add(1, SeqCst);
                i
            };
            let handle = match (i + round) % 3 {
                0 => rt.spawn(counters.track(async move { wq::blocking(work) })),
                1 => rt.spawn(counters.track(async move { work() })),
                // Not a tracked future: its closure is run by the task.
                _ => {
                    let guard = counters.track(async {});
                    rt.spawn_blocking(move || {
                        let _guard = guard;
                        work()
                    })
                }
            };
            handles.push((i, handle));
        }
        // Some have started (more than the pool's target: the others took
        // their place), some may still be queued.
        while started.load(SeqCst) < 3 {
            std::thread::yield_now();
        }
        let start = Instant::now();
        end(rt, how);
        let took = start.elapsed();
        let ran = started.load(SeqCst);
        match how {
            // It gave up waiting: sections of 100 ms or more that started
            // before it were still running.
            End::Timeout => assert!(
                finished.load(SeqCst) < ran && took < Duration::from_secs(1),
                "round {round}: shutdown_timeout(20 ms) took {took:?}, {} of {ran} blocking \
                 sections had ended",
                finished.load(SeqCst)
            ),
            End::Drop => assert_eq!(
                finished.load(SeqCst),
                ran,
                "round {round}: the drop returned before a blocking section ended"
            ),
        }
        // Every blocking section that started runs to its end.
        let deadline = Instant::now() + Duration::from_secs(10);
        while finished.load(SeqCst) < started.load(SeqCst) {
            assert!(
                Instant::now() < deadline,
                "round {round}: a blocking section never ended"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut oks = 0;
        for (i, handle) in handles {
            match join(handle) {
                Ok(got) => {
                    assert_eq!(got, i, "round {round}");
                    oks += 1;
                }
                Err(e) => assert!(e.is_cancelled(), "round {round}: task {i}: {e:?}"),
            }
        }
        // Those that started completed (their section ended the poll, or
        // the closure its task); the rest never ran.
        assert_eq!(oks, started.load(SeqCst), "round {round}: Ok vs started");
        assert_eq!(finished.load(SeqCst), started.load(SeqCst), "round {round}");
        all_dropped(&counters, TASKS, &format!("round {round}"));
    }
}

#[test]
fn drop_while_tasks_block() {
    blocking_tasks_at_the_shutdown(End::Drop);
}

#[test]
fn shutdown_timeout_while_tasks_block() {
    blocking_tasks_at_the_shutdown(End::Timeout);
}

// ---------------------------------------------------------------------------
// Timers

/// Thousands of sleeps, timeouts and delayed workqueue tasks fall due
/// around the shutdown: each task completes (never before its deadline) or
/// is cancelled, each future is dropped once, no timer is left registered,
/// and the workqueue's counts balance.
fn timers_at_the_shutdown(how: End) {
    const TASKS: u64 = 2000;
    let _watchdog = Watchdog::new("timers_at_the_shutdown");
    for round in 0..30u64 {
        let rt = wq::Builder::new()
            .workers(2)
            .max_workers(4)
            .build()
            .unwrap();
        let queue = wq::Workqueue::builder("delayed")
            .max_active(8)
            .handle(rt.handle())
            .build()
            .unwrap();
        let counters = Counters::default();
        let early = Arc::new(AtomicUsize::new(0));
        let metrics = rt.handle().metrics();
        let mut rng = Rng(round);
        // Due within 0-8 ms of now; the shutdown comes at about 4 ms.
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let d = Duration::from_micros(rng.below(8000));
                let early = early.clone();
                let check = move |start: Instant| {
                    if start.elapsed() < d {
                        early.fetch_add(1, SeqCst);
                    }
                };
                let handle = match i % 4 {
                    0 => rt.spawn(counters.track(async move {
                        let start = Instant::now();
                        wq::time::sleep(d).await;
                        check(start);
                        i
                    })),
                    1 => rt.spawn(counters.track(async move {
                        let start = Instant::now();
                        let _ = wq::time::timeout(d, pending::<()>()).await;
                        check(start);
                        i
                    })),
                    2 => rt.spawn(counters.track(async move {
                        let mut interval = wq::time::interval(d + Duration::from_micros(100));
                        interval.tick().await;
                        interval.tick().await;
                        i
                    })),
                    _ => queue.spawn_after(d, counters.track(async move { i })),
                };
                (i, handle)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(4));
        end(rt, how);
        let mut oks = 0;
        for (i, handle) in handles {
            match join(handle) {
                Ok(got) => {
                    assert_eq!(got, i, "round {round}");
                    oks += 1;
                }
                Err(e) => assert!(e.is_cancelled(), "round {round}: {e:?}"),
            }
        }
        assert_eq!(early.load(SeqCst), 0, "round {round}: timers fired early");
        all_dropped(&counters, TASKS as usize, &format!("round {round}"));
        assert_eq!(
            counters.completions(),
            oks,
            "round {round}: completed vs Ok"
        );
        assert!(
            support::eventually(Duration::from_secs(10), || metrics.num_alive_tasks() == 0),
            "round {round}: tasks left"
        );
        assert_eq!(
            metrics.num_pending_timers(),
            0,
            "round {round}: timers left"
        );
        let stats = queue.stats();
        assert_eq!(
            (stats.active, stats.inactive, stats.total),
            (0, 0, stats.completed),
            "round {round}: {stats:?}"
        );
    }
}

#[test]
fn drop_while_timers_fire() {
    timers_at_the_shutdown(End::Drop);
}

#[test]
fn shutdown_timeout_while_timers_fire() {
    timers_at_the_shutdown(End::Timeout);
}

// ---------------------------------------------------------------------------
// The rescuer

/// Both workers of a runtime that may not grow are blocked, and a
/// `mem_reclaim` queue's tasks, which yield and sleep, are being run one
/// poll at a time by its rescuer, while other threads spawn more onto the
/// queue; then the runtime shuts down (the blocked workers are released a
/// little later, from another thread). Every handle resolves, every future
/// is dropped once, the queue's counts balance, and the rescuer's thread
/// goes away.
fn rescuer_at_the_shutdown(how: End) {
    const TASKS: u64 = 40;
    let _watchdog = Watchdog::new("rescuer_at_the_shutdown");
    for round in 0..20u64 {
        let rt = wq::Builder::new()
            .workers(2)
            .max_workers(2)
            .build()
            .unwrap();
        // Distinct from the other variant's (tests run at once), and short
        // enough for a thread name: `wq-R-` and the queue's.
        let name = format!("rs{}{round}", if let End::Drop = how { 'D' } else { 'T' });
        let queue = wq::Workqueue::builder(name.clone())
            .mem_reclaim()
            .handle(rt.handle())
            .build()
            .unwrap();
        let latch = Latch::default();
        let entered = Arc::new(AtomicUsize::new(0));
        let blockers: Vec<_> = (0..2)
            .map(|_| {
                let (latch, entered) = (latch.clone(), entered.clone());
                rt.spawn(async move {
                    wq::blocking(|| {
                        entered.fetch_add(1, SeqCst);
                        latch.wait_at_most(Duration::from_secs(10))
                    })
                })
            })
            .collect();
        let metrics = rt.handle().metrics();
        while entered.load(SeqCst) < 2 || metrics.num_running_workers() != 0 {
            std::thread::yield_now();
        }
        let counters = Counters::default();
        let rescued_polls = Arc::new(AtomicUsize::new(0));
        let spawn = |queue: &wq::Workqueue, i: u64| {
            let rescued_polls = rescued_polls.clone();
            queue.spawn(counters.track(async move {
                for _ in 0..3 {
                    rescued_polls.fetch_add(1, SeqCst);
                    wq::task::yield_now().await;
                }
                wq::time::sleep(Duration::from_micros(300)).await;
                i
            }))
        };
        let mut handles: Vec<_> = (0..TASKS).map(|i| (i, spawn(&queue, i))).collect();
        // The rescuer is at work: early in its first lap, or later, when
        // some tasks are asleep (their timers fired by the monitor thread,
        // no worker being left to) and others have completed.
        let polls = 5 + 5 * round as usize;
        while rescued_polls.load(SeqCst) < polls {
            std::thread::yield_now();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let spawner = {
            let (queue, stop, counters) = (queue.clone(), stop.clone(), counters.clone());
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                let mut i = TASKS;
                while !stop.load(SeqCst) {
                    handles.push((i, queue.spawn(counters.track(async move { i }))));
                    i += 1;
                    std::thread::sleep(Duration::from_micros(50));
                }
                handles
            })
        };
        let opener = {
            let latch = latch.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(15));
                latch.open();
            })
        };
        end(rt, how);
        stop.store(true, SeqCst);
        opener.join().unwrap();
        handles.extend(spawner.join().unwrap());
        for blocker in blockers {
            // The latch opened: a blocker's poll ends with its section.
            assert!(join(blocker).unwrap(), "round {round}: a blocker gave up");
        }
        let n = handles.len();
        let mut oks = 0;
        for (i, handle) in handles {
            match join(handle) {
                Ok(got) => {
                    assert_eq!(got, i, "round {round}");
                    oks += 1;
                }
                Err(e) => assert!(e.is_cancelled(), "round {round}: {e:?}"),
            }
        }
        all_dropped(&counters, n, &format!("round {round}"));
        assert_eq!(
            counters.completions(),
            oks,
            "round {round}: completed vs Ok"
        );
        let stats = queue.stats();
        assert!(stats.rescued >= polls as u64, "round {round}: {stats:?}");
        assert_eq!(
            (stats.active, stats.inactive, stats.total),
            (0, 0, stats.completed),
            "round {round}: {stats:?}"
        );
        drop(queue);
        let rescuer = format!("wq-R-{name}");
        if support::threads_named(&rescuer).is_some() {
            assert!(
                support::eventually(Duration::from_secs(10), || {
                    support::threads_named(&rescuer) == Some(0)
                }),
                "round {round}: the rescuer thread stayed"
            );
        }
    }
}

#[test]
fn drop_while_the_rescuer_runs() {
    rescuer_at_the_shutdown(End::Drop);
}

#[test]
fn shutdown_timeout_while_the_rescuer_runs() {
    rescuer_at_the_shutdown(End::Timeout);
}

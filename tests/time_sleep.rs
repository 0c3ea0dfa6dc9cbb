//! Sleep, timeout and the timer wheel through the public API.

mod support;

use std::future::{pending, Future};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use support::Counters;
use wq::time::{sleep, sleep_until, timeout, Instant};

#[wq::test]
async fn sleep_waits_at_least_its_duration() {
    let start = std::time::Instant::now();
    sleep(Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[wq::test]
async fn sleep_until_a_past_deadline_is_ready_at_once() {
    let past = Instant::now() - Duration::from_millis(1);
    assert!(sleep_until(past).now_or_never().is_some());
}

/// 10,000 random deadlines fire in deadline order, each within the first
/// millisecond tick at or after its deadline (paused clock: exact).
#[wq::test(start_paused = true)]
async fn ten_thousand_random_deadlines_fire_in_order() {
    const N: u64 = 10_000;
    let start = Instant::now();
    let fired = Arc::new(Mutex::new(Vec::with_capacity(10_000)));
    let mut handles = Vec::new();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..N {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Up to ~70 minutes, to cross several wheel levels; sub-ms offsets.
        let deadline = start + Duration::from_micros(x % 4_200_000_000);
        let fired = fired.clone();
        handles.push(wq::spawn(async move {
            sleep_until(deadline).await;
            let now = Instant::now();
            fired.lock().unwrap().push((deadline, now, i));
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let fired = fired.lock().unwrap();
    assert_eq!(fired.len(), 10_000);
    for &(deadline, woke, i) in fired.iter() {
        assert!(woke >= deadline, "timer {i} fired early");
        assert!(
            woke - deadline < Duration::from_millis(1),
            "timer {i} fired late"
        );
    }
    // Completion order follows deadline order (to the millisecond tick).
    for pair in fired.windows(2) {
        assert!(pair[0].1 <= pair[1].1);
    }
}

#[wq::test]
async fn timeout_returns_elapsed_and_drops_the_inner_future() {
    let counters = Counters::default();
    let result = timeout(Duration::from_millis(5), counters.track(pending::<()>())).await;
    let err = result.unwrap_err();
    assert_eq!(err.to_string(), "deadline has elapsed");
    assert_eq!(counters.drops(), 1);
    assert_eq!(timeout(Duration::from_secs(10), async { 3 }).await, Ok(3));
}

#[wq::test]
async fn cancelled_timers_leave_no_entries() {
    let metrics = wq::Handle::current().metrics();
    let base = metrics.num_pending_timers();
    let mut sleeps: Vec<_> = (0..100_000u64)
        .map(|i| Box::pin(sleep(Duration::from_secs(60 + i % 600))))
        .collect();
    for s in sleeps.iter_mut() {
        assert!(s.as_mut().now_or_never().is_none());
    }
    assert_eq!(metrics.num_pending_timers(), base + 100_000);
    drop(sleeps);
    assert_eq!(metrics.num_pending_timers(), base);
}

#[wq::test(start_paused = true)]
async fn an_hour_long_sleep_finishes_at_once_when_paused() {
    let wall = std::time::Instant::now();
    let start = Instant::now();
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    assert!(wall.elapsed() < Duration::from_secs(10));
}

#[wq::test(start_paused = true)]
async fn advance_moves_the_clock_and_fires_due_timers() {
    let start = Instant::now();
    // The deadline is fixed when the sleep is created, here.
    let ten = sleep(Duration::from_secs(10));
    let sleeper = wq::spawn(async move {
        ten.await;
        Instant::now()
    });
    wq::time::advance(Duration::from_secs(4)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    assert!(!sleeper.is_finished());
    let woke = sleeper.await.unwrap();
    assert_eq!(woke - start, Duration::from_secs(10));
}

/// While a blocking closure runs, the paused clock does not jump.
#[wq::test(start_paused = true)]
async fn blocking_inhibits_auto_advance() {
    let start = Instant::now();
    let sleeper = wq::spawn(sleep(Duration::from_secs(3600)));
    let during = wq::spawn(async move {
        wq::blocking(|| std::thread::sleep(Duration::from_millis(100)));
        Instant::now()
    })
    .await
    .unwrap();
    assert_eq!(during, start);
    sleeper.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
}

#[wq::test]
async fn reset_moves_the_deadline() {
    let mut s = std::pin::pin!(sleep(Duration::from_secs(3600)));
    assert!(s.as_mut().now_or_never().is_none());
    let soon = Instant::now() + Duration::from_millis(2);
    s.as_mut().reset(soon);
    assert_eq!(s.deadline(), soon);
    s.as_mut().await;
    assert!(Instant::now() >= soon);
}

/// Polls a one-hour sleep once (registering it), resets it to `deadline`
/// and returns `Pending` without polling it again; then waits for the task
/// to be woken, or for a 60 s timeout to poll it (paused clock). Returns
/// the time waited and the polls made.
async fn reset_without_another_poll(deadline: Instant) -> (Duration, u32) {
    let start = Instant::now();
    let mut s = Box::pin(sleep(Duration::from_secs(3600)));
    let mut polls = 0;
    let waited = std::future::poll_fn(|cx| {
        polls += 1;
        if polls == 1 {
            assert!(s.as_mut().poll(cx).is_pending());
            s.as_mut().reset(deadline);
            return std::task::Poll::Pending;
        }
        s.as_mut().poll(cx)
    });
    timeout(Duration::from_secs(60), waited)
        .await
        .expect("the reset sleep completes when polled again");
    (start.elapsed(), polls)
}

/// `reset` moves a sleep waiting on its timer at once, as tokio's does: the
/// task is woken at the new deadline though it does not poll the sleep
/// between the reset and then. (Were the move left to the next poll, the
/// task would sleep until the 60 s timeout.)
#[wq::test(start_paused = true)]
async fn reset_wakes_the_task_at_the_new_deadline_without_another_poll() {
    let soon = Instant::now() + Duration::from_millis(20);
    let (waited, polls) = reset_without_another_poll(soon).await;
    assert_eq!(waited, Duration::from_millis(20));
    assert_eq!(polls, 2, "one poll to register, one once woken");
}

/// `reset` to a deadline that has passed wakes the task at once.
#[wq::test(start_paused = true)]
async fn reset_to_a_past_deadline_wakes_the_task_at_once() {
    let (waited, polls) = reset_without_another_poll(Instant::now()).await;
    assert_eq!(waited, Duration::ZERO);
    assert_eq!(polls, 2);
}

/// A sleep that completed stays complete when polled again (after its
/// first poll it asks its timer entry, not the clock), and `reset` makes it
/// wait for the new deadline.
#[wq::test(start_paused = true)]
async fn a_completed_sleep_stays_ready_until_reset() {
    let mut s = std::pin::pin!(sleep(Duration::from_millis(10)));
    assert!(
        s.as_mut().now_or_never().is_none(),
        "registered on the first poll"
    );
    s.as_mut().await;
    assert!(
        s.as_mut().now_or_never().is_some(),
        "polled again once fired"
    );
    let later = Instant::now() + Duration::from_secs(60);
    s.as_mut().reset(later);
    assert!(
        s.as_mut().now_or_never().is_none(),
        "reset to a later deadline"
    );
    s.as_mut().await;
    assert!(Instant::now() >= later);
    assert!(
        s.as_mut().now_or_never().is_some(),
        "polled again once fired"
    );
}

/// A timer takes the driver of the runtime current where it is created,
/// also on a worker thread of another runtime (whose own driver reference
/// its timers otherwise share): created in a task of `a` while `b`, whose
/// clock is paused, is entered, an hour-long sleep fires as soon as `b`
/// is idle and auto-advances; on `a`'s timers it would take an hour.
#[test]
fn a_sleep_created_on_another_runtimes_worker_uses_the_current_runtime() {
    let a = wq::Builder::new().workers(1).build().unwrap();
    let b = wq::Builder::new()
        .workers(1)
        .start_paused(true)
        .build()
        .unwrap();
    let b_handle = b.handle().clone();
    let slept = a.block_on(a.spawn(async move {
        let sleep = {
            let _b = b_handle.enter();
            sleep(Duration::from_secs(3600))
        };
        // On `a`'s timers (created outside the guard): real time.
        timeout(Duration::from_secs(30), sleep).await
    }));
    assert!(
        slept.unwrap().is_ok(),
        "the hour-long sleep on b's paused clock did not fire within 30 s"
    );
}

#[test]
#[should_panic(expected = "there is no wq runtime current on this thread")]
fn sleep_outside_a_runtime_panics() {
    drop(sleep(Duration::from_millis(1)));
}

/// On a quiet runtime with spare idle workers, every timer fires: the idle
/// worker that drives the timers must not be culled at a deadline, leaving
/// the rest parked. Checked from a plain thread (a stuck runtime cannot be
/// trusted to time itself out).
#[test]
fn timers_fire_on_a_quiet_runtime_with_spare_workers() {
    for run in 0..20u64 {
        let rt = wq::Builder::new().workers(2).build().unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let _guard = rt.enter();
            for i in 0..100u64 {
                let done = done.clone();
                let ms = 1 + (i * 37 + run * 11) % 100;
                drop(wq::spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }));
            }
        }
        assert!(
            support::eventually(Duration::from_secs(10), || {
                done.load(std::sync::atomic::Ordering::SeqCst) == 100
            }),
            "run {run}: only {} of 100 sleepers woke; {:?}",
            done.load(std::sync::atomic::Ordering::SeqCst),
            rt.handle().metrics()
        );
    }
}

/// How much `read` grows while one task sleeps 2 ms `sleeps` times in a
/// row on `rt`, calling `at_wakeup` in the poll of each wakeup, read with
/// every worker idle before and after (and a moment after that: a last
/// monitor tick may follow the last worker going idle).
fn across_a_sleep_loop(
    rt: &wq::Runtime,
    sleeps: u64,
    at_wakeup: fn(),
    read: impl Fn() -> u64,
) -> u64 {
    let metrics = rt.handle().metrics();
    let settled = || {
        assert!(
            support::eventually(Duration::from_secs(10), || {
                metrics.num_idle_workers() == metrics.num_workers()
            }),
            "workers still running: {metrics:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        read()
    };
    let before = settled();
    let sleeper = rt.spawn(async move {
        for _ in 0..sleeps {
            sleep(Duration::from_millis(2)).await;
            at_wakeup();
        }
    });
    rt.block_on(sleeper).unwrap();
    settled() - before
}

/// The idle worker that fires a timer runs the task it wakes itself, as
/// the reactor's driver does with the tasks of its events: a task that
/// sleeps in a loop costs one park of one worker per sleep, not a second
/// worker's wakeup as well (kicked to run the task, parked after it).
#[test]
fn a_task_woken_by_a_timer_runs_on_the_worker_that_fired_it() {
    const SLEEPS: u64 = 50;
    let rt = wq::Builder::new()
        .workers(2)
        .monitor(false)
        .build()
        .unwrap();
    let metrics = rt.handle().metrics();
    let parked = across_a_sleep_loop(
        &rt,
        SLEEPS,
        || {},
        || {
            (0..metrics.num_workers())
                .map(|i| metrics.worker_park_count(i))
                .sum()
        },
    );
    // One park per sleep, on the timer worker, and a few to settle. A kick
    // of the other worker for each would make it about twice that.
    assert!(
        parked < SLEEPS * 3 / 2,
        "{parked} parks for {SLEEPS} sleeps: {metrics:?}"
    );
}

/// A worker that starts running while the monitor sleeps asks for the
/// monitor's wake a tick period (500 us) later and takes it back when it
/// goes idle first: a task that sleeps in a loop and runs for microseconds
/// at each wakeup does not wake the monitor each time.
#[test]
fn short_runs_after_idle_do_not_wake_the_monitor() {
    const SLEEPS: u64 = 50;
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let woke = across_a_sleep_loop(&rt, SLEEPS, || {}, || metrics.monitor_wakeups());
    // A wake per sleep without the take-back; a worker descheduled for a
    // period in the middle of a run (a loaded machine) costs one.
    assert!(
        woke < SLEEPS / 2,
        "the monitor woke {woke} times for {SLEEPS} short runs: {metrics:?}"
    );
}

/// Spins for `d` of wall time, inside the calling poll.
fn spin_for(d: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A run that starts while the monitor sleeps asks for its look lazily, 5
/// ms after the start, so that setting and taking back the wake do not
/// reprogram the CPU's timer: a run of one 1 ms poll (longer than a tick
/// period, 500 us) that queues no task (none can wait behind it) does not
/// wake the monitor. With the look a period after the start, every run
/// woke it. Only runs whose poll took under 3 ms of wall time count: on a
/// loaded machine a preempted one may last past the lazy look, and then
/// rightly wakes the monitor.
#[test]
fn a_lone_poll_shorter_than_the_lazy_look_does_not_wake_the_monitor() {
    const RUNS: u64 = 40;
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let task = rt.spawn({
        let metrics = metrics.clone();
        async move {
            let (mut quick, mut woke) = (0, 0);
            for _ in 0..RUNS * 5 {
                sleep(Duration::from_millis(2)).await;
                let (start, before) = (std::time::Instant::now(), metrics.monitor_wakeups());
                spin_for(Duration::from_millis(1));
                let after = metrics.monitor_wakeups();
                if start.elapsed() < Duration::from_millis(3) {
                    quick += 1;
                    woke += after - before;
                    if quick == RUNS {
                        break;
                    }
                }
            }
            (quick, woke)
        }
    });
    let (quick, woke) = rt.block_on(task).unwrap();
    assert!(quick >= RUNS / 4, "only {quick} runs took under 3 ms");
    assert!(
        woke * 4 < quick,
        "the monitor woke {woke} times during {quick} runs: {metrics:?}"
    );
}

/// A task queued during such a run could wait behind one of its polls
/// that gets stuck: it brings the look forward to a period after the
/// start. Here each run spawns a task before a 2 ms spin, so the
/// monitor wakes during every run (its look comes 500 us after the start,
/// while the spin goes on).
#[test]
fn a_task_queued_during_a_run_brings_the_monitors_look_forward() {
    const SLEEPS: u64 = 40;
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let at_wakeup = || {
        drop(wq::spawn(async {}));
        spin_for(Duration::from_millis(2));
    };
    let woke = across_a_sleep_loop(&rt, SLEEPS, at_wakeup, || metrics.monitor_wakeups());
    assert!(
        woke >= SLEEPS / 2,
        "the monitor woke {woke} times for {SLEEPS} runs"
    );
}

#[wq::test]
async fn pause_and_resume_the_clock() {
    wq::time::pause();
    let frozen = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(Instant::now(), frozen);
    wq::time::advance(Duration::from_millis(7)).await;
    assert_eq!(Instant::now(), frozen + Duration::from_millis(7));
    wq::time::resume();
    wq::time::pause();
    wq::time::advance(Duration::from_secs(3600)).await;
    let advanced = Instant::now();
    wq::time::resume();
    // Time runs on from where it was frozen: never backwards.
    std::thread::sleep(Duration::from_millis(5));
    let after = Instant::now();
    assert!(after >= advanced + Duration::from_millis(5));
    assert!(after < advanced + Duration::from_secs(60));
}

#[wq::test]
#[should_panic(expected = "`wq::time::resume` called without `pause`")]
async fn resume_without_pause_panics() {
    wq::time::resume();
}

/// Sleeps longer than the wheel's range (2^36 ms, about 2.2 years) are
/// clamped in the wheel and fire at its far end: the sleep must then see
/// that its deadline is still ahead and wait on. Another timer firing first
/// makes the driver look at the wheel's (clamped) earliest deadline.
#[wq::test(start_paused = true)]
async fn a_sleep_beyond_the_wheel_range_does_not_end_early() {
    let three_years = Duration::from_secs(3 * 365 * 86_400);
    let start = Instant::now();
    let long = wq::spawn(async move {
        sleep(three_years).await;
        Instant::now()
    });
    let deadline = start + three_years + Duration::from_secs(1);
    let within = wq::spawn(timeout(three_years, sleep_until(deadline)));
    wq::task::yield_now().await;
    sleep(Duration::from_millis(1)).await;
    assert_eq!(Instant::now() - start, Duration::from_millis(1));
    assert_eq!(long.await.unwrap() - start, three_years);
    assert!(within.await.unwrap().is_err());
    assert_eq!(Instant::now() - start, three_years);
}

/// After `resume`, time runs on from the frozen instant, advances
/// included: the real time that passed while paused is not added.
#[wq::test]
async fn resume_runs_on_from_the_frozen_instant() {
    wq::time::pause();
    let frozen = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    wq::time::advance(Duration::from_millis(10)).await;
    wq::time::resume();
    let passed = Instant::now() - frozen;
    assert!(
        passed >= Duration::from_millis(10) && passed < Duration::from_millis(110),
        "after 200 ms paused and an advance of 10 ms, the clock moved {passed:?}"
    );
}

/// A oneshot sent from a plain thread `after_ms` of real time from now: the
/// runtime waits on something its timers know nothing of.
fn sent_from_outside(after_ms: u64) -> futures::channel::oneshot::Receiver<()> {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(after_ms));
        let _ = tx.send(());
    });
    rx
}

/// A paused clock advances only to the deadlines of live timers: a sleep
/// dropped after it registered, or a timeout whose future won, leaves the
/// clock where it is while the runtime waits on a thread outside it (as
/// tokio's).
#[wq::test(start_paused = true)]
async fn a_paused_clock_does_not_jump_to_a_cancelled_deadline() {
    let start = Instant::now();
    {
        let mut dropped = std::pin::pin!(sleep(Duration::from_secs(3600)));
        assert!(dropped.as_mut().now_or_never().is_none());
    }
    sent_from_outside(50).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::ZERO);
    timeout(Duration::from_secs(86_400), wq::task::yield_now())
        .await
        .unwrap();
    sent_from_outside(50).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::ZERO);
}

/// A sleep registered while the clock is paused fires in real time once
/// the clock resumes: `resume` wakes the timer worker, which slept until
/// nudged (without that, until its 300 s idle timeout).
#[wq::test(start_paused = true, flavor = "multi_thread")]
async fn a_sleep_fires_after_resume() {
    let sleeper = wq::spawn(sleep(Duration::from_millis(50)));
    // The sleeper registers and the workers go idle; this thread stays busy.
    std::thread::sleep(Duration::from_millis(100));
    wq::time::resume();
    let resumed = std::time::Instant::now();
    sleeper.await.unwrap();
    let took = resumed.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the sleep fired {took:?} after resume"
    );
}

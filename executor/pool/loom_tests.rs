//! Loom models of the pool's concurrency protocol (`README.md` beside this
//! file), run on the real `Idle` and `Parker`.
//!
//! Run them with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom_
//! ```
//!
//! The larger models bound preemptions (2 to 5, see `builder`);
//! `LOOM_MAX_PREEMPTIONS` overrides the bound for all of them.
//!
//! The thread sequences below copy the ones `worker.rs` and `mod.rs` perform
//! (`notify_work`, `idle_and_park`, `BlockingGuard::enter`, `try_retire`, the
//! searcher chain). The queues are abstracted as one counter of pending
//! runnables (the injector and every worker's deque together): `has_work` is
//! "the counter is not zero", taking a runnable is a decrement. The searcher
//! chain checks `has_work` over every queue, exactly what is modelled.
//!
//! A lost wakeup shows up as a loom deadlock (a worker parked forever while
//! the thread waiting for its work blocks too).
//!
//! The timed park is not modelled (under loom a timed wait never times
//! out, see `crate::loom`): the culling model starts where the wait has
//! timed out. The manager step a woken worker takes before running
//! (creating a spare thread) is modelled on its own, in section 8.

use std::time::Duration;

use loom::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use loom::sync::atomic::{fence, AtomicBool, AtomicUsize};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::idle::{Idle, Kick};
use super::park::Parker;
use super::stamp::PollStamp;
use crate::loom::bounded_model;

/// What other threads touch of a worker (`WorkerShared`, without the queue).
#[derive(Debug)]
struct WorkerShared {
    parker: Parker,
    /// Set by a kicker before it unparks: the wakeup means "run" (a wakeup
    /// for any other reason does not set it).
    kicked: AtomicBool,
}

/// A worker handle for `Idle<W>`, compared by identity (as `WorkerRef` is).
#[derive(Clone, Debug)]
struct W(Arc<WorkerShared>);

impl W {
    fn new() -> W {
        W(Arc::new(WorkerShared {
            parker: Parker::new(),
            kicked: AtomicBool::new(false),
        }))
    }
}

impl PartialEq for W {
    fn eq(&self, other: &W) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The shared side of a pool: the bookkeeping under test and the abstracted
/// queues.
struct PoolModel {
    idle: Idle<W>,
    /// Pending runnables, all queues together.
    queue: AtomicUsize,
    /// Runnables taken by workers so far.
    taken: AtomicUsize,
    /// `Shared::closed`.
    closed: AtomicBool,
    /// Wakes issued with nothing taken yet (see `loom_kick_exactly_one`).
    early_wakes: AtomicUsize,
    /// Every `Kick::Wake`, from anyone.
    wakes: AtomicUsize,
    /// Workers that came back from a detected poll: each may take the
    /// running count above the target until it retires.
    rejoined: AtomicUsize,
    /// For the thread that waits until all work is taken.
    done: Mutex<usize>,
    done_cv: Condvar,
}

impl PoolModel {
    fn new(target: usize) -> PoolModel {
        PoolModel {
            idle: Idle::new(target),
            queue: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            early_wakes: AtomicUsize::new(0),
            wakes: AtomicUsize::new(0),
            rejoined: AtomicUsize::new(0),
            done: Mutex::new(0),
            done_cv: Condvar::new(),
        }
    }

    /// `Shared::has_work`.
    fn has_work(&self) -> bool {
        self.queue.load(SeqCst) != 0
    }

    /// Pops one runnable from the queues, if any.
    fn try_take(&self) -> bool {
        let mut n = self.queue.load(SeqCst);
        while n != 0 {
            match self.queue.compare_exchange(n, n - 1, SeqCst, SeqCst) {
                Ok(_) => {
                    self.taken.fetch_add(1, SeqCst);
                    return true;
                }
                Err(actual) => n = actual,
            }
        }
        false
    }

    /// `Shared::wake_one`: kick, then unpark after the idle lock is released.
    /// Returns whether a worker was woken.
    fn wake_one(&self) -> bool {
        match self.idle.kick() {
            Kick::Wake(worker) => {
                self.wakes.fetch_add(1, SeqCst);
                if self.taken.load(SeqCst) == 0 {
                    self.early_wakes.fetch_add(1, SeqCst);
                }
                assert!(
                    self.idle.nr_running() <= self.idle.target() + self.rejoined.load(SeqCst),
                    "kick woke a worker beyond the target"
                );
                worker.0.kicked.store(true, Release);
                worker.0.parker.unpark();
                true
            }
            Kick::NotNeeded | Kick::NoIdle => false,
        }
    }

    /// `Pool::schedule` from outside the pool, then `Shared::notify_work`.
    fn push_and_notify(&self) {
        self.queue.fetch_add(1, SeqCst);
        fence(SeqCst);
        if self.closed.load(SeqCst) {
            return;
        }
        if self.idle.need_more_worker() {
            self.wake_one();
        }
    }

    /// A worker ran a runnable: tell whoever waits for all of them.
    fn ran_one(&self) {
        let mut done = self.done.lock().unwrap();
        *done += 1;
        self.done_cv.notify_all();
    }

    /// Blocks until `n` runnables have run.
    fn wait_ran(&self, n: usize) {
        let mut done = self.done.lock().unwrap();
        while *done < n {
            done = self.done_cv.wait(done).unwrap();
        }
    }

    /// `Pool::close`: set `closed`, fence, unpark every worker.
    fn close(&self, workers: &[W]) {
        self.closed.store(true, SeqCst);
        fence(SeqCst);
        for worker in workers {
            worker.0.parker.unpark();
        }
    }
}

/// What the idle path decided before parking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Idled {
    /// The pool is closed: exit without parking.
    Exit,
    /// On the idle list, about to park.
    Park,
}

/// Where a worker was when it saw the pool closed and exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exited {
    /// Counted in `nr_running`.
    Running,
    /// On the idle list.
    Idle,
}

/// The thread-local side of a worker (`Local`).
struct Worker {
    me: W,
    searching: bool,
}

impl Worker {
    /// `Local::next_task` over the abstracted queues: own queue and injector,
    /// then (becoming a searcher if allowed) stealing.
    fn next_task(&mut self, pool: &PoolModel) -> bool {
        if pool.try_take() {
            return true;
        }
        if !self.searching {
            if !pool.idle.transition_to_searching() {
                return false;
            }
            self.searching = true;
        }
        pool.try_take()
    }

    /// What `Local::run` does once `next_task` returned a runnable, before
    /// running it: the searcher chain.
    fn found_work(&mut self, pool: &PoolModel) {
        let was_searching = std::mem::replace(&mut self.searching, false);
        if was_searching && pool.idle.transition_from_searching() && pool.has_work() {
            pool.wake_one();
        }
    }

    /// `Local::idle_and_park` up to the park: join the idle list, fence,
    /// re-check.
    fn enter_idle(&mut self, pool: &PoolModel, left_running: bool) -> Idled {
        let was_searching = std::mem::replace(&mut self.searching, false);
        pool.idle
            .enter_idle(self.me.clone(), was_searching, left_running);
        fence(SeqCst);
        if pool.closed.load(SeqCst) {
            return Idled::Exit;
        }
        if pool.has_work() {
            pool.wake_one();
        }
        Idled::Park
    }

    /// The park of `Local::idle_and_park`. Returns false if the worker must
    /// exit (closed); otherwise it was woken by a kick, which counted it
    /// running and searching.
    fn park(&mut self, pool: &PoolModel) -> bool {
        loop {
            self.me.0.parker.park();
            if pool.closed.load(SeqCst) {
                return false;
            }
            if self.me.0.kicked.swap(false, Acquire) {
                self.searching = true;
                return true;
            }
        }
    }

    /// `Local::idle_and_park`, whole. Returns false if the worker must exit.
    fn idle_and_park(&mut self, pool: &PoolModel, left_running: bool) -> bool {
        match self.enter_idle(pool, left_running) {
            Idled::Exit => false,
            Idled::Park => self.park(pool),
        }
    }

    /// `Local::run` for a worker that starts parked on the idle list (it is
    /// already on it: the model's setup did `enter_idle`), until the pool is
    /// closed.
    fn run_from_idle(mut self, pool: &PoolModel) -> Exited {
        if !self.park(pool) {
            return Exited::Idle;
        }
        self.run(pool)
    }

    /// `Local::run` for a worker counted running, until the pool is closed.
    /// Returns where the worker was when it saw the pool closed.
    fn run(mut self, pool: &PoolModel) -> Exited {
        loop {
            if pool.closed.load(SeqCst) {
                return Exited::Running;
            }
            if self.next_task(pool) {
                self.found_work(pool);
                pool.ran_one();
                if pool.idle.try_retire() && !self.idle_and_park(pool, true) {
                    return Exited::Idle;
                }
            } else if !self.idle_and_park(pool, false) {
                return Exited::Idle;
            }
        }
    }
}

/// Puts `worker` on the idle list as a new worker does (not counted running),
/// with an empty queue: its re-check finds nothing.
fn start_idle(pool: &PoolModel, worker: &W) {
    pool.idle.enter_idle(worker.clone(), false, true);
}

/// Brings a worker to "running" the only way the pool does: put it idle and
/// kick it. It is then counted running and searching; the model does not
/// unpark it (the wakeup is taken as consumed).
fn start_running(pool: &PoolModel, worker: &W) {
    start_idle(pool, worker);
    match pool.idle.kick() {
        Kick::Wake(w) => assert!(w == *worker, "kick woke another worker"),
        other => panic!("setup kick did not wake the worker: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. Parker: the token protocol.
// ---------------------------------------------------------------------------

/// An `unpark` from another thread, before or after `park`, makes `park`
/// return; whatever the unparker wrote before it is visible afterwards.
#[test]
fn loom_parker_unpark_before_or_after_park() {
    loom::model(|| {
        let parker = Arc::new(Parker::new());
        let data = Arc::new(loom::cell::UnsafeCell::new(0usize));
        let t = {
            let parker = parker.clone();
            let data = data.clone();
            thread::spawn(move || {
                // SAFETY: the parked thread reads it only after `park`
                // returns, which the Release/Acquire token orders after this
                // write; loom reports a race otherwise.
                data.with_mut(|p| unsafe { *p = 1 });
                parker.unpark();
            })
        };
        parker.park();
        // SAFETY: see above.
        let seen = data.with(|p| unsafe { *p });
        assert_eq!(seen, 1);
        t.join().unwrap();
    });
}

/// Two unparks (concurrent with each other and with the park), one park: the
/// park returns, and the parker never meets a state it does not expect (it
/// would panic).
#[test]
fn loom_parker_two_unparks_one_park() {
    loom::model(|| {
        let parker = Arc::new(Parker::new());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let parker = parker.clone();
                thread::spawn(move || parker.unpark())
            })
            .collect();
        parker.park();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// A parker is reused: two rounds of ping-pong between two parkers, so that
/// a late `notify_one` of a previous round meets the next `park`.
#[test]
fn loom_parker_reuse_ping_pong() {
    loom::model(|| {
        let a = Arc::new(Parker::new());
        let b = Arc::new(Parker::new());
        let t = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    a.unpark();
                    b.park();
                }
            })
        };
        for _ in 0..2 {
            a.park();
            b.unpark();
        }
        t.join().unwrap();
    });
}

/// `park_timeout` (what idle workers use) returns true when unparked; under
/// loom it never times out.
#[test]
fn loom_parker_park_timeout_notified() {
    loom::model(|| {
        let parker = Arc::new(Parker::new());
        let t = {
            let parker = parker.clone();
            thread::spawn(move || parker.unpark())
        };
        assert!(parker.park_timeout(Duration::from_secs(300)));
        t.join().unwrap();
    });
}

/// A model of the reactor a driver worker sleeps in: one poll at a time
/// (the poll lock), a pending wake event that whoever polls consumes (as
/// mio's eventfd waker), and a wait for that event (loom has no clock: a
/// poll that waits, waits for a wake).
#[derive(Debug)]
struct ModelReactor {
    poll: Mutex<()>,
    event: Mutex<bool>,
    event_cv: Condvar,
}

impl ModelReactor {
    fn new() -> ModelReactor {
        ModelReactor {
            poll: Mutex::new(()),
            event: Mutex::new(false),
            event_cv: Condvar::new(),
        }
    }

    /// A running worker's `turn_now`: polls without waiting if nobody else
    /// polls, consuming a pending wake.
    fn turn_now(&self) {
        if let Ok(_poll) = self.poll.try_lock() {
            *self.event.lock().unwrap() = false;
        }
    }
}

impl crate::net::reactor::ReactorPark for ModelReactor {
    fn park_turn(&self, _timeout: Duration, woken: &dyn Fn() -> bool) -> usize {
        let _poll = self.poll.lock().unwrap();
        if woken() {
            *self.event.lock().unwrap() = false;
            return 0;
        }
        let mut event = self.event.lock().unwrap();
        while !*event {
            event = self.event_cv.wait(event).unwrap();
        }
        *event = false;
        0
    }

    fn wake(&self) {
        *self.event.lock().unwrap() = true;
        self.event_cv.notify_all();
    }
}

/// The driver worker sleeps in the reactor while a kicker unparks it and a
/// running worker polls without waiting (which may consume the kicker's
/// wake event while the driver waits for the poll). The driver must wake
/// with the token: a lost wake is a loom deadlock.
#[test]
fn loom_parker_in_reactor_wake_not_lost() {
    loom::model(|| {
        // The parker holds a std `Arc` (not loom's): loom tracks what is
        // inside, not the count.
        let reactor = std::sync::Arc::new(ModelReactor::new());
        let parker = Arc::new(Parker::with_reactor(Some(reactor.clone())));
        let kicker = {
            let parker = parker.clone();
            thread::spawn(move || parker.unpark())
        };
        let runner = {
            let reactor = reactor.clone();
            thread::spawn(move || reactor.turn_now())
        };
        let (notified, _) = parker.park_in_reactor(Duration::from_secs(300));
        assert!(notified);
        kicker.join().unwrap();
        runner.join().unwrap();
    });
}

// ---------------------------------------------------------------------------
// 2. No lost wakeup: a producer against a worker going idle.
// ---------------------------------------------------------------------------

/// Target 1, one worker counted running that finds no work and goes idle
/// (`idle_and_park`) while a producer pushes one runnable (`notify_work`).
/// The worker must end up taking it: either it sees it before idling, or it
/// sees it after its fence and kicks (itself), or the producer sees it idle
/// and kicks it. `initially_searching`: the worker was just woken (counted
/// searching) or had run tasks before (it must become a searcher itself).
fn producer_vs_idler(initially_searching: bool) {
    bounded_model(4).check(move || {
        let pool = Arc::new(PoolModel::new(1));
        let me = W::new();
        start_running(&pool, &me);
        if !initially_searching {
            // It found and ran a runnable since its wakeup.
            let _ = pool.idle.transition_from_searching();
        }
        assert_eq!(pool.idle.nr_running(), 1);

        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        };

        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut worker = Worker {
                    me,
                    searching: initially_searching,
                };
                // Until it has taken the one runnable: parking forever here
                // is the lost wakeup, which loom reports as a deadlock.
                loop {
                    if worker.next_task(&pool) {
                        worker.found_work(&pool);
                        break;
                    }
                    assert!(worker.idle_and_park(&pool, false), "not closed");
                }
            })
        };

        producer.join().unwrap();
        worker.join().unwrap();

        assert_eq!(pool.taken.load(SeqCst), 1);
        assert_eq!(pool.queue.load(SeqCst), 0);
        // The worker runs (the runnable), off the idle list, not searching.
        assert_eq!(pool.idle.nr_running(), 1);
        assert_eq!(pool.idle.nr_idle(), 0);
        assert_eq!(pool.idle.nr_searching(), 0);
        // At most one wakeup for it: by the producer or by itself.
        assert!(pool.wakes.load(SeqCst) <= 1);
    });
}

#[test]
fn loom_no_lost_wakeup_producer_vs_searching_idler() {
    producer_vs_idler(true);
}

#[test]
fn loom_no_lost_wakeup_producer_vs_idler() {
    producer_vs_idler(false);
}

// ---------------------------------------------------------------------------
// 3. Blocking hand-off.
// ---------------------------------------------------------------------------

/// Target 1. Worker A runs with one runnable queued on it; worker B is idle.
/// A enters `blocking` (`BlockingGuard::enter`: hand the queue over, leave
/// `nr_running`, fence, kick if work is queued): B must be woken and take the
/// runnable. Meanwhile A returns (`worker_running`). Each then calls
/// `try_retire` once after its step: exactly one of them retires, so that
/// `target` workers run at the end.
#[test]
fn loom_blocking_hand_off() {
    bounded_model(5).check(|| {
        let pool = Arc::new(PoolModel::new(1));
        let a = W::new();
        let b = W::new();
        start_running(&pool, &a);
        // A has found work since its wakeup: one runnable is in its queue.
        let _ = pool.idle.transition_from_searching();
        pool.queue.fetch_add(1, SeqCst);
        start_idle(&pool, &b);
        assert_eq!(pool.idle.nr_running(), 1);
        assert_eq!(pool.idle.nr_idle(), 1);

        let retired = Arc::new(AtomicUsize::new(0));

        // A retiring worker goes idle (`idle_and_park(true)`). The model stops
        // it before the park: it must then still be on the idle list, with
        // nobody having popped it (checked at the end through `nr_idle`).
        let retire = |pool: &PoolModel, worker: &mut Worker, retired: &AtomicUsize| {
            if pool.idle.try_retire() {
                retired.fetch_add(1, SeqCst);
                assert_eq!(worker.enter_idle(pool, true), Idled::Park);
            }
        };

        let thread_a = {
            let pool = pool.clone();
            let retired = retired.clone();
            thread::spawn(move || {
                let mut worker = Worker {
                    me: a,
                    searching: false,
                };
                // BlockingGuard::enter (the hand-over moves the runnable
                // between queues: the counter does not change).
                pool.idle.worker_sleeping();
                fence(SeqCst);
                if !pool.closed.load(SeqCst) && pool.has_work() {
                    pool.wake_one();
                }
                // ... the blocking closure runs, then the guard drops:
                pool.idle.worker_running();
                // The task that blocked finishes.
                retire(&pool, &mut worker, &retired);
            })
        };

        let thread_b = {
            let pool = pool.clone();
            let retired = retired.clone();
            thread::spawn(move || {
                let mut worker = Worker {
                    me: b,
                    searching: false,
                };
                assert!(worker.park(&pool), "not closed");
                assert!(worker.next_task(&pool), "B woken but found no work");
                worker.found_work(&pool);
                // B runs the runnable.
                retire(&pool, &mut worker, &retired);
            })
        };

        thread_a.join().unwrap();
        thread_b.join().unwrap();

        assert_eq!(pool.taken.load(SeqCst), 1);
        assert_eq!(pool.wakes.load(SeqCst), 1, "exactly B was woken, once");
        assert_eq!(retired.load(SeqCst), 1, "exactly one of A, B retires");
        assert_eq!(pool.idle.nr_running(), 1);
        assert_eq!(pool.idle.nr_idle(), 1);
        assert_eq!(pool.idle.nr_searching(), 0);
    });
}

/// Target 1. Worker A runs with nothing queued; worker B is idle. A enters
/// `blocking` while a producer pushes one runnable (`notify_work`): the two
/// fences pair, so either A sees the runnable and kicks, or the producer sees
/// A out of `nr_running` and kicks. B is woken exactly once and takes it.
#[test]
fn loom_no_lost_wakeup_producer_vs_blocker() {
    bounded_model(4).check(|| {
        let pool = Arc::new(PoolModel::new(1));
        let a = W::new();
        let b = W::new();
        start_running(&pool, &a);
        let _ = pool.idle.transition_from_searching();
        start_idle(&pool, &b);

        let thread_a = {
            let pool = pool.clone();
            thread::spawn(move || {
                // BlockingGuard::enter; A stays blocked.
                pool.idle.worker_sleeping();
                fence(SeqCst);
                if !pool.closed.load(SeqCst) && pool.has_work() {
                    pool.wake_one();
                }
            })
        };
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        };
        let thread_b = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut worker = Worker {
                    me: b,
                    searching: false,
                };
                assert!(worker.park(&pool), "not closed");
                assert!(worker.next_task(&pool), "B woken but found no work");
                worker.found_work(&pool);
            })
        };

        thread_a.join().unwrap();
        producer.join().unwrap();
        thread_b.join().unwrap();

        assert_eq!(pool.taken.load(SeqCst), 1);
        assert_eq!(pool.wakes.load(SeqCst), 1);
        // B runs; A is blocked (not counted); nobody idle.
        assert_eq!(pool.idle.nr_running(), 1);
        assert_eq!(pool.idle.nr_idle(), 0);
        assert_eq!(pool.idle.nr_searching(), 0);
    });
}

// ---------------------------------------------------------------------------
// 4. try_retire race.
// ---------------------------------------------------------------------------

/// Target 1, three workers counted running (two came back from `blocking`
/// while a third had been woken in their place). All three finish a task and
/// call `try_retire` at once: exactly two retire, never below the target.
#[test]
fn loom_try_retire_race() {
    bounded_model(4).check(|| {
        let pool = Arc::new(PoolModel::new(1));
        let workers = [W::new(), W::new(), W::new()];
        // W0 runs, blocks; W1 is woken in its place, blocks; W2 is woken in
        // its place; W0 and W1 return.
        for w in &workers {
            start_running(&pool, w);
            let _ = pool.idle.transition_from_searching();
            if *w != workers[2] {
                pool.idle.worker_sleeping();
            }
        }
        pool.idle.worker_running();
        pool.idle.worker_running();
        assert_eq!(pool.idle.nr_running(), 3);
        assert_eq!(pool.idle.nr_idle(), 0);

        let threads: Vec<_> = workers
            .into_iter()
            .map(|me| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut worker = Worker {
                        me,
                        searching: false,
                    };
                    let retired = pool.idle.try_retire();
                    if retired {
                        // Nothing is queued: it would park for good.
                        assert_eq!(worker.enter_idle(&pool, true), Idled::Park);
                    }
                    retired
                })
            })
            .collect();
        let retired = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&r| r)
            .count();

        assert_eq!(retired, 2);
        assert_eq!(pool.idle.nr_running(), 1);
        assert_eq!(pool.idle.nr_idle(), 2);
        assert_eq!(pool.wakes.load(SeqCst), 0);
    });
}

// ---------------------------------------------------------------------------
// 5. Kick exactly one.
// ---------------------------------------------------------------------------

/// Target 2, two idle workers, none running. Two producers each push one
/// runnable and run `notify_work` at once. Only one worker may be woken while
/// the first woken one has not found work yet (it is searching, which stops
/// every other kick); the second worker may be woken afterwards (by the
/// second producer or by the searcher chain). Both runnables are taken, the
/// target is never exceeded, and at the end every worker is in exactly one
/// place: on the idle list or counted running.
#[test]
fn loom_kick_exactly_one() {
    bounded_model(2).check(|| {
        let pool = Arc::new(PoolModel::new(2));
        let workers = [W::new(), W::new()];
        for w in &workers {
            start_idle(&pool, w);
        }
        assert_eq!(pool.idle.nr_running(), 0);
        assert_eq!(pool.idle.nr_idle(), 2);

        let worker_threads: Vec<_> = workers
            .iter()
            .map(|me| {
                let pool = pool.clone();
                let worker = Worker {
                    me: me.clone(),
                    searching: false,
                };
                thread::spawn(move || worker.run_from_idle(&pool))
            })
            .collect();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        };
        // This thread is the other producer.
        pool.push_and_notify();

        // A lost wakeup leaves this wait (and the workers) blocked forever.
        pool.wait_ran(2);
        producer.join().unwrap();
        pool.close(&workers);
        for t in worker_threads {
            t.join().unwrap();
        }

        assert_eq!(pool.taken.load(SeqCst), 2);
        assert_eq!(pool.queue.load(SeqCst), 0);
        assert_eq!(
            pool.early_wakes.load(SeqCst),
            1,
            "exactly one worker woken before any runnable was taken"
        );
        assert!(pool.wakes.load(SeqCst) >= 1);
        assert!(pool.idle.nr_running() <= pool.idle.target());
        assert_eq!(pool.idle.nr_idle() + pool.idle.nr_running(), 2);
    });
}

/// The searcher chain spreads a burst: target 2, two idle workers, two
/// producers push one runnable each. A worker that takes a runnable runs it
/// "for long" (until both runnables have been taken), so both runnables must
/// be taken by two different workers: either the second producer sees no
/// searcher and kicks, or the last searcher sees the second runnable after
/// taking the first and kicks.
#[test]
fn loom_searcher_chain_spreads_work() {
    bounded_model(2).check(|| {
        let pool = Arc::new(PoolModel::new(2));
        let workers = [W::new(), W::new()];
        for w in &workers {
            start_idle(&pool, w);
        }

        let worker_threads: Vec<_> = workers
            .iter()
            .map(|me| {
                let pool = pool.clone();
                let mut worker = Worker {
                    me: me.clone(),
                    searching: false,
                };
                thread::spawn(move || {
                    if !worker.park(&pool) {
                        return;
                    }
                    loop {
                        if pool.closed.load(SeqCst) {
                            return;
                        }
                        if worker.next_task(&pool) {
                            worker.found_work(&pool);
                            pool.ran_one();
                            // The runnable runs until the other one is
                            // taken too.
                            pool.wait_ran(2);
                            return;
                        }
                        if !worker.idle_and_park(&pool, false) {
                            return;
                        }
                    }
                })
            })
            .collect();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        };
        pool.push_and_notify();

        pool.wait_ran(2);
        producer.join().unwrap();
        pool.close(&workers);
        for t in worker_threads {
            t.join().unwrap();
        }
        assert_eq!(pool.taken.load(SeqCst), 2);
        assert_eq!(pool.idle.nr_running(), 2);
        assert_eq!(pool.idle.nr_idle(), 0);
    });
}

// ---------------------------------------------------------------------------
// 6. Detection of stuck polls (the monitor's `Pool::detach_stuck`).
// ---------------------------------------------------------------------------

/// `Pool::detach_stuck`, as the monitor calls it with what it observed.
fn detach_stuck(pool: &PoolModel, stamp: &PollStamp) -> bool {
    let seen = stamp.observe();
    if !stamp.try_detect(seen) {
        return false;
    }
    pool.idle.worker_sleeping();
    assert!(pool.idle.nr_running() <= 2, "nr_running wrapped below zero");
    fence(SeqCst);
    if !pool.closed.load(SeqCst) && pool.has_work() {
        pool.wake_one();
    }
    true
}

/// Target 1. Worker A is in a poll (counted running) with one runnable in
/// its queue; B is idle. The monitor detects A's poll while the poll ends.
/// Whichever wins, the counters balance: A rejoins exactly when it was
/// detected, the runnable is taken (by A or by B, woken for it: no lost
/// wakeup), and at the end every worker is counted where it really is.
#[test]
fn loom_detect_vs_poll_end() {
    bounded_model(3).check(|| {
        let pool = Arc::new(PoolModel::new(1));
        let a = W::new();
        let b = W::new();
        start_running(&pool, &a);
        let _ = pool.idle.transition_from_searching();
        pool.queue.fetch_add(1, SeqCst);
        start_idle(&pool, &b);
        let stamp = Arc::new(PollStamp::new());
        stamp.begin(1, 7, 0);

        let thread_a = {
            let pool = pool.clone();
            let stamp = stamp.clone();
            let me = a.clone();
            thread::spawn(move || {
                // `Local::run_task`: the poll ends.
                if stamp.end(1) {
                    pool.rejoined.fetch_add(1, SeqCst);
                    pool.idle.worker_running();
                }
                let worker = Worker {
                    me,
                    searching: false,
                };
                if pool.idle.try_retire() {
                    let mut worker = worker;
                    if !worker.idle_and_park(&pool, true) {
                        return Exited::Idle;
                    }
                    return worker.run(&pool);
                }
                worker.run(&pool)
            })
        };
        let thread_b = {
            let pool = pool.clone();
            let worker = Worker {
                me: b.clone(),
                searching: false,
            };
            thread::spawn(move || worker.run_from_idle(&pool))
        };
        let detected = detach_stuck(&pool, &stamp);

        // A lost wakeup leaves this wait (and the workers) blocked forever.
        pool.wait_ran(1);
        pool.close(&[a.clone(), b.clone()]);
        let exits = [(thread_a.join().unwrap(), a), (thread_b.join().unwrap(), b)];

        assert_eq!(pool.taken.load(SeqCst), 1);
        // A worker kicked just before the close exits from its park without
        // consuming the kick: it is counted running (harmless in the pool,
        // where a stale kick makes a worker look for work once more).
        let stale_kicks = exits
            .iter()
            .filter(|(e, w)| *e == Exited::Idle && w.0.kicked.load(SeqCst))
            .count();
        let running = exits.iter().filter(|(e, _)| *e == Exited::Running).count() + stale_kicks;
        let idle = exits.len() - running;
        assert_eq!(pool.idle.nr_running(), running, "detected: {detected}");
        assert_eq!(pool.idle.nr_idle(), idle);
        // A worker may also exit running while still searching.
        assert!(pool.idle.nr_searching() <= running);
    });
}

/// A pool of one worker, A, counted running and inside poll 1.
fn one_worker_in_a_poll() -> (Arc<PoolModel>, Arc<PollStamp>) {
    let pool = Arc::new(PoolModel::new(1));
    start_running(&pool, &W::new());
    let _ = pool.idle.transition_from_searching();
    let stamp = Arc::new(PollStamp::new());
    stamp.begin(1, 7, 0);
    (pool, stamp)
}

/// A `wq::blocking` section of worker A's poll, as `BlockingGuard` does it.
fn blocking_section(pool: &PoolModel, stamp: &PollStamp) {
    // `BlockingGuard::enter`.
    let left_running = stamp.annotate();
    if left_running {
        pool.idle.worker_sleeping();
    }
    // ... the blocking closure; then the guard drops: counted again before
    // the stamp looks examinable again.
    if left_running {
        pool.idle.worker_running();
    }
    stamp.unannotate();
}

/// Target 1. Worker A, in a poll, enters and leaves `wq::blocking` and then
/// ends the poll, while the monitor tries to detect the poll. At most one of
/// the two takes A out of `nr_running`, and A is counted again at the end,
/// exactly once.
#[test]
fn loom_detect_vs_blocking_annotation() {
    bounded_model(4).check(|| {
        let (pool, stamp) = one_worker_in_a_poll();

        let thread_a = {
            let pool = pool.clone();
            let stamp = stamp.clone();
            thread::spawn(move || {
                blocking_section(&pool, &stamp);
                // The poll ends.
                if stamp.end(1) {
                    pool.idle.worker_running();
                }
            })
        };
        let detected = detach_stuck(&pool, &stamp);
        thread_a.join().unwrap();

        assert_eq!(pool.idle.nr_running(), 1, "detected: {detected}");
        assert_eq!(pool.wakes.load(SeqCst), 0, "nothing queued, nobody woken");
    });
}

/// Target 1. Worker A's poll enters `wq::blocking` twice and then ends,
/// while the monitor tries to detect the poll twice with what it observed
/// once (a stale `Seen` for the second try). However they interleave, A is
/// taken out of `nr_running` at most once per leave and counted once at the
/// end, and the poll is detected at most once.
#[test]
fn loom_detect_twice_vs_two_blocking_sections() {
    bounded_model(3).check(|| {
        let (pool, stamp) = one_worker_in_a_poll();

        let thread_a = {
            let pool = pool.clone();
            let stamp = stamp.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    blocking_section(&pool, &stamp);
                }
                if stamp.end(1) {
                    pool.idle.worker_running();
                }
            })
        };
        let seen = stamp.observe();
        let mut detections = 0;
        for _ in 0..2 {
            if stamp.try_detect(seen) {
                detections += 1;
                pool.idle.worker_sleeping();
                assert!(pool.idle.nr_running() <= 1, "nr_running wrapped below zero");
            }
        }
        thread_a.join().unwrap();

        assert!(detections <= 1, "one poll detected {detections} times");
        assert_eq!(pool.idle.nr_running(), 1, "detections: {detections}");
    });
}

// ---------------------------------------------------------------------------
// 7. The `block_on` thread as a worker (current-thread pools).
// ---------------------------------------------------------------------------

/// `flag.swap(false)` as the worker does it (`kicked`, `Root::woken`),
/// written as the equivalent CAS: loom 0.7 lets a concurrent plain store
/// land between the read and the write of a `swap` (tokio-rs/loom#254),
/// which would show here as a lost kick that real hardware cannot lose.
fn take_flag(flag: &AtomicBool) -> bool {
    flag.compare_exchange(true, false, SeqCst, SeqCst).is_ok()
}

/// A current-thread pool (target 1) whose only worker is a `block_on`
/// thread (`worker::block_on`), idle and parked, while a waker of its root
/// future (`Root::wake_by_ref`: set `woken`, unpark) and a producer
/// (`notify_work`, which kicks the same worker) act at once. The thread
/// must end up both polling its root and taking the runnable, whichever
/// way its wakeup came: a kick, a root wake it claims itself for
/// (`Idle::claim_root`), or both; and the counters must balance: it is the
/// one running worker, and never counted twice.
fn root_wake(with_producer: bool) {
    bounded_model(4).check(move || {
        let pool = Arc::new(PoolModel::new(1));
        let me = W::new();
        start_idle(&pool, &me);
        let woken = Arc::new(AtomicBool::new(false));

        let root_waker = {
            let (woken, me) = (woken.clone(), me.clone());
            thread::spawn(move || {
                woken.store(true, SeqCst);
                me.0.parker.unpark();
            })
        };
        let producer = with_producer.then(|| {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        });

        // The `block_on` thread, from its park in `idle_and_park`.
        let mut worker = Worker {
            me: me.clone(),
            searching: false,
        };
        let (mut polled_root, mut took) = (false, !with_producer);
        let mut running = false;
        while !(polled_root && took) {
            if !running {
                // The park loop, with `block_on`'s addition before each
                // park.
                loop {
                    if woken.load(SeqCst) && pool.idle.claim_root(&me) {
                        break;
                    }
                    me.0.parker.park();
                    if take_flag(&me.0.kicked) {
                        break;
                    }
                }
                worker.searching = true;
                running = true;
                assert_eq!(pool.idle.nr_running(), 1, "counted running once");
            }
            if take_flag(&woken) {
                polled_root = true;
                continue;
            }
            if worker.next_task(&pool) {
                worker.found_work(&pool);
                took = true;
                continue;
            }
            if polled_root && took {
                break;
            }
            // Nothing yet (the root or the runnable is still to come):
            // back to the idle list, as `block_on` does.
            match worker.enter_idle(&pool, false) {
                Idled::Park => running = false,
                Idled::Exit => unreachable!("never closed here"),
            }
            // A root wake that came before we joined the list left `woken`
            // set: we claim before parking.
        }
        root_waker.join().unwrap();
        if let Some(producer) = producer {
            producer.join().unwrap();
        }
        assert_eq!(pool.idle.nr_running(), 1);
        assert_eq!(pool.idle.nr_idle(), 0);
    });
}

#[test]
fn loom_root_wake_vs_kick() {
    root_wake(true);
}

/// The root wake alone: without `Idle::claim_root` nothing would take the
/// idle `block_on` thread off the list (no producer kicks it), and loom
/// finds it parked forever.
#[test]
fn loom_root_wake_alone() {
    root_wake(false);
}

// ---------------------------------------------------------------------------
// 8. The manager and culling: the idle list's hand-offs.
// ---------------------------------------------------------------------------

/// Target 1, `max_workers` 2. Worker A was just woken and, as manager
/// (`maybe_create_worker`), creates the spare N, whose thread joins the idle
/// list as every new worker does (`idle_and_park(true)`: counted idle, not
/// running; fence; re-check the queues). Meanwhile A blocks
/// (`BlockingGuard::enter`) and a producer pushes one runnable. A's kick may
/// come before N is on the list (`Kick::NoIdle`): then N's own re-check
/// after its fence sees the runnable and kicks itself. N takes it, whatever
/// the order; the reservation never exceeds `max_workers`.
#[test]
fn loom_manager_spare_takes_the_blockers_place() {
    bounded_model(3).check(|| {
        let pool = Arc::new(PoolModel::new(1));
        let a = W::new();
        assert!(pool.idle.reserve_worker(2));
        start_running(&pool, &a);
        let _ = pool.idle.transition_from_searching();

        let thread_a = {
            let pool = pool.clone();
            thread::spawn(move || {
                // `maybe_create_worker`: no spare is idle, so A manages.
                assert!(pool.idle.try_become_manager(2));
                assert_eq!(pool.idle.nr_workers(), 2);
                let n = W::new();
                let spare = {
                    let pool = pool.clone();
                    let n = n.clone();
                    thread::spawn(move || {
                        // The new worker's `run`: straight to the idle list.
                        let mut worker = Worker {
                            me: n,
                            searching: false,
                        };
                        if !worker.idle_and_park(&pool, true) {
                            return;
                        }
                        worker.run(&pool);
                    })
                };
                pool.idle.manager_done(true);
                // A runs its task, which blocks; A stays blocked.
                pool.idle.worker_sleeping();
                fence(SeqCst);
                if !pool.closed.load(SeqCst) && pool.has_work() {
                    pool.wake_one();
                }
                (spare, n)
            })
        };
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        };
        producer.join().unwrap();
        let (spare, n) = thread_a.join().unwrap();
        pool.wait_ran(1);
        pool.close(&[n]);
        spare.join().unwrap();

        assert_eq!(pool.taken.load(SeqCst), 1);
        assert_eq!(pool.idle.nr_workers(), 2, "A and N, never more");
        // No second manager could start while A managed, nor after: the
        // pool is at `max_workers`.
        assert!(!pool.idle.try_become_manager(2));
    });
}

/// Two workers woken at once both find no spare idle and try to manage:
/// exactly one becomes manager and reserves a slot; after it is done, the
/// other may, but only below `max_workers`.
#[test]
fn loom_one_manager_at_a_time() {
    loom::model(|| {
        let pool = Arc::new(PoolModel::new(2));
        assert!(pool.idle.reserve_worker(3));
        assert!(pool.idle.reserve_worker(3));
        let managers = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                let managers = managers.clone();
                thread::spawn(move || {
                    if pool.idle.try_become_manager(3) {
                        // Alone in the role until `manager_done`.
                        assert_eq!(managers.fetch_add(1, SeqCst), 0, "two managers");
                        managers.fetch_sub(1, SeqCst);
                        pool.idle.manager_done(true);
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        let created = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&c| c)
            .count();
        // The first reaches the cap (3): the second cannot create another.
        assert_eq!(created, 1);
        assert_eq!(pool.idle.nr_workers(), 3);
    });
}

/// Target 1, four idle workers (none busy: the kernel's rule says too many
/// idle). The most recently idled, D, finds its timed wait expired and tries
/// to cull itself (`Idle::try_cull`) while a producer pushes a runnable and
/// kicks, which picks D first. Either the kick wins (D is off the list, so
/// the cull refuses, and D runs), or the cull wins (D exits, uncounted, and
/// the kick picks C). The runnable is taken exactly once, and a culled
/// worker is never also woken.
#[test]
fn loom_cull_vs_kick() {
    bounded_model(3).check(|| {
        let pool = Arc::new(PoolModel::new(1));
        let workers: Vec<W> = (0..4).map(|_| W::new()).collect();
        for w in &workers {
            assert!(pool.idle.reserve_worker(4));
            start_idle(&pool, w);
        }
        let (c, d) = (workers[2].clone(), workers[3].clone());

        let thread_d = {
            let pool = pool.clone();
            let d = d.clone();
            thread::spawn(move || {
                // Back from a park that timed out (`notified` false): a kick
                // that landed meanwhile is seen first, as in `idle_and_park`.
                let mut worker = Worker {
                    me: d.clone(),
                    searching: false,
                };
                loop {
                    if pool.closed.load(SeqCst) {
                        return false;
                    }
                    if take_flag(&d.0.kicked) {
                        worker.searching = true;
                        worker.run(&pool);
                        return false;
                    }
                    if pool.idle.try_cull(&d, Duration::ZERO) {
                        return true;
                    }
                    d.0.parker.park();
                }
            })
        };
        let thread_c = {
            let pool = pool.clone();
            let c = c.clone();
            thread::spawn(move || {
                Worker {
                    me: c,
                    searching: false,
                }
                .run_from_idle(&pool);
            })
        };
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.push_and_notify())
        };
        producer.join().unwrap();
        pool.wait_ran(1);
        pool.close(&workers);
        let culled = thread_d.join().unwrap();
        thread_c.join().unwrap();

        assert_eq!(pool.taken.load(SeqCst), 1);
        assert_eq!(pool.wakes.load(SeqCst), 1, "one kick for one runnable");
        assert_eq!(pool.idle.nr_workers(), if culled { 3 } else { 4 });
    });
}

// ---------------------------------------------------------------------------
// 9. The observer's sleep against a worker starting to run.
// ---------------------------------------------------------------------------

/// The observer's side of `Pool::observer_may_doze` (and of
/// `observer_may_sleep`, which adds the starvation veto): publish `asleep`,
/// then look at `nr_running`. Returns whether it may sleep.
fn observer_may_doze(pool: &PoolModel, asleep: &AtomicBool) -> bool {
    asleep.store(true, SeqCst);
    fence(SeqCst);
    if pool.idle.nr_running() > 0 {
        asleep.store(false, SeqCst);
        return false;
    }
    true
}

/// The observer sleeps (under loom a timed doze never times out, so it
/// waits for a wake) while `woken` is not set.
fn observer_sleep(woken: &(Mutex<bool>, Condvar)) {
    let mut woken_now = woken.0.lock().unwrap();
    while !*woken_now {
        woken_now = woken.1.wait(woken_now).unwrap();
    }
}

/// A worker is kicked while the observer goes to sleep (a doze or a deep
/// sleep): either the observer sees it running and stays awake, or the
/// kicker's `wake_polls_observer` sees the flag and wakes it, exactly once.
/// Without either fence loom finds the observer asleep with the worker
/// running (loom models SeqCst accesses as AcqRel, so the fences are what
/// it checks; the C++ model's single order of SeqCst operations would
/// already forbid that outcome, and the fences make it explicit).
/// A worker counted running while the observer sleeps on unwoken would be
/// a loom deadlock here (the observer thread never returns), and in the
/// runtime a poll that gets stuck with nobody looking.
#[test]
fn loom_observer_doze_sees_a_worker_start() {
    loom::model(|| {
        let pool = Arc::new(PoolModel::new(1));
        let worker = W::new();
        start_idle(&pool, &worker);
        let asleep = Arc::new(AtomicBool::new(false));
        let woken = Arc::new((Mutex::new(false), Condvar::new()));
        let wakes = Arc::new(AtomicUsize::new(0));

        let observer = {
            let (pool, asleep, woken) = (pool.clone(), asleep.clone(), woken.clone());
            thread::spawn(move || {
                if observer_may_doze(&pool, &asleep) {
                    observer_sleep(&woken);
                    // `Pool::observer_awake`.
                    asleep.store(false, SeqCst);
                }
                // Awake: the next look sees the running worker.
                assert_eq!(pool.idle.nr_running(), 1);
            })
        };
        // The kicker: `Shared::wake_one` raises `nr_running`, then
        // `wake_polls_observer` (`wake_observer`: fence, flag).
        pool.queue.fetch_add(1, SeqCst);
        assert!(pool.wake_one(), "the idle worker is kicked");
        fence(SeqCst);
        if asleep.load(SeqCst) && asleep.swap(false, SeqCst) {
            wakes.fetch_add(1, SeqCst);
            *woken.0.lock().unwrap() = true;
            woken.1.notify_one();
        }
        observer.join().unwrap();
        assert!(wakes.load(SeqCst) <= 1);
    });
}

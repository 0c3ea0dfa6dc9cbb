//! Concurrency management: the counters and the idle list.
//!
//! This is the user-space `worker_pool` bookkeeping of cmwq. It knows nothing
//! about queues or threads; the pool tells it about transitions and asks it
//! which worker to wake. See `README.md` beside this file for the protocol and
//! the proof sketch of why no wakeup is lost.
//!
//! Counters (all `SeqCst` read-modify-writes, read with `SeqCst` loads by the
//! wake decisions, which pair with the fences in `Pool::notify_work` and the
//! idle path of the worker):
//! - `nr_running`: workers counted by concurrency management: executing a task
//!   or looking for one. Not counted: idle workers, workers inside
//!   `wq::blocking`.
//! - `nr_searching`: running workers currently looking for work. At most half of
//!   the running workers search at once.
//! - `nr_idle`: length of the idle list (written under the lock, read without).
//!
//! The idle list itself, the worker count and the manager flag live under
//! `state`'s lock.

use std::time::{Duration, Instant};

use crate::loom::atomic::AtomicUsize;
use crate::loom::atomic::Ordering::SeqCst;
use crate::loom::Mutex;

/// The idle list and the worker count.
#[derive(Debug)]
pub(crate) struct IdleList<W> {
    /// Idle workers, the most recently idled last (woken first: cache hot).
    /// Each with the instant it went idle.
    idle: Vec<(W, Instant)>,
    /// Threads that exist (created, not yet exited), including the manager's
    /// reservation for the one being created.
    pub(crate) nr_workers: usize,
    /// A worker is creating another (at most one manager per pool).
    pub(crate) manager: bool,
}

#[derive(Debug)]
pub(crate) struct Idle<W> {
    /// The concurrency target: how many workers should run at once.
    target: usize,
    nr_running: AtomicUsize,
    nr_searching: AtomicUsize,
    nr_idle: AtomicUsize,
    state: Mutex<IdleList<W>>,
}

/// What `Idle::kick` decided.
#[must_use]
#[derive(Debug)]
pub(crate) enum Kick<W> {
    /// Wake this worker (after any lock is released). It has already been
    /// counted as running and searching.
    Wake(W),
    /// Enough workers run or one is searching already: nothing to do.
    NotNeeded,
    /// More workers are needed but none is idle.
    NoIdle,
}

impl<W: PartialEq + Clone> Idle<W> {
    pub(crate) fn new(target: usize) -> Idle<W> {
        Idle {
            target,
            nr_running: AtomicUsize::new(0),
            nr_searching: AtomicUsize::new(0),
            nr_idle: AtomicUsize::new(0),
            state: Mutex::new(IdleList {
                idle: Vec::new(),
                nr_workers: 0,
                manager: false,
            }),
        }
    }

    pub(crate) fn target(&self) -> usize {
        self.target
    }

    pub(crate) fn nr_running(&self) -> usize {
        self.nr_running.load(SeqCst)
    }

    pub(crate) fn nr_idle(&self) -> usize {
        self.nr_idle.load(SeqCst)
    }

    pub(crate) fn nr_searching(&self) -> usize {
        self.nr_searching.load(SeqCst)
    }

    /// `need_more_worker` without the queue test (the caller has just seen or
    /// pushed work): fewer than `target` run, and nobody is already looking.
    pub(crate) fn need_more_worker(&self) -> bool {
        self.nr_searching.load(SeqCst) == 0 && self.nr_running.load(SeqCst) < self.target
    }

    /// Wakes exactly one idle worker, the most recently idled, if the pool
    /// needs one. The worker is picked (and counted as running and searching)
    /// under the lock; the caller wakes it after the lock is released.
    pub(crate) fn kick(&self) -> Kick<W> {
        if !self.need_more_worker() {
            return Kick::NotNeeded;
        }
        let mut state = self.state.lock();
        // Re-check under the lock: another kicker may have just woken one.
        if !self.need_more_worker() {
            return Kick::NotNeeded;
        }
        match state.idle.pop() {
            Some((worker, _)) => {
                self.nr_idle.fetch_sub(1, SeqCst);
                self.nr_running.fetch_add(1, SeqCst);
                self.nr_searching.fetch_add(1, SeqCst);
                Kick::Wake(worker)
            }
            None => Kick::NoIdle,
        }
    }

    /// A running worker wants to look for work. Returns false when enough
    /// workers already search (at most half of the running ones, and at
    /// least one).
    pub(crate) fn transition_to_searching(&self) -> bool {
        let searching = self.nr_searching.load(SeqCst);
        if 2 * searching >= self.nr_running.load(SeqCst).max(1) {
            return false;
        }
        self.nr_searching.fetch_add(1, SeqCst);
        true
    }

    /// A searching worker found work. Returns true if it was the last
    /// searcher: then the caller must kick if work remains, so that a burst
    /// of work is spread (the searcher chain).
    #[must_use]
    pub(crate) fn transition_from_searching(&self) -> bool {
        self.nr_searching.fetch_sub(1, SeqCst) == 1
    }

    /// The worker blocks (`wq_worker_sleeping`): it leaves `nr_running`.
    /// The caller then kicks if work is pending.
    pub(crate) fn worker_sleeping(&self) {
        self.nr_running.fetch_sub(1, SeqCst);
    }

    /// The blocked worker runs again (`wq_worker_running`). The pool may now
    /// run more than `target` workers: surplus ones retire (`try_retire`).
    pub(crate) fn worker_running(&self) {
        self.nr_running.fetch_add(1, SeqCst);
    }

    /// cmwq's `keep_working`, inverted: if more than `target` workers run,
    /// take this one out of `nr_running` and return true; the caller then
    /// enters the idle list with `left_running = true`. A single CAS, so two
    /// surplus workers cannot both retire below the target.
    pub(crate) fn try_retire(&self) -> bool {
        let mut running = self.nr_running.load(SeqCst);
        while running > self.target {
            match self
                .nr_running
                .compare_exchange(running, running - 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => running = actual,
            }
        }
        false
    }

    /// The worker found no work (or retired) and joins the idle list.
    /// After this returns the caller fences and re-checks the queues (see the
    /// README), then parks.
    pub(crate) fn enter_idle(&self, worker: W, searching: bool, left_running: bool) {
        let mut state = self.state.lock();
        state.idle.push((worker, Instant::now()));
        self.nr_idle.fetch_add(1, SeqCst);
        if searching {
            self.nr_searching.fetch_sub(1, SeqCst);
        }
        if !left_running {
            self.nr_running.fetch_sub(1, SeqCst);
        }
    }

    /// An idle worker's wait timed out. If it has been on the idle list for
    /// at least `idle_timeout` and the pool has too many idle workers
    /// (`too_many_workers`: more than 2 idle and `(idle - 2) * 4 >= busy`),
    /// it is taken off and uncounted; it must then exit. Returns false if it
    /// must stay (or was woken meanwhile: its parker then holds a token).
    /// A wait shorter than `idle_timeout` (the timer worker sleeps until the
    /// next deadline) never culls.
    pub(crate) fn try_cull(&self, worker: &W, idle_timeout: Duration) -> bool {
        let mut state = self.state.lock();
        let nr_idle = state.idle.len();
        let nr_busy = state.nr_workers - nr_idle;
        let too_many = nr_idle > 2 && (nr_idle - 2) * 4 >= nr_busy;
        if !too_many {
            return false;
        }
        let Some(pos) = state.idle.iter().position(|(w, _)| w == worker) else {
            return false;
        };
        if state.idle[pos].1.elapsed() < idle_timeout {
            return false;
        }
        state.idle.remove(pos);
        self.nr_idle.fetch_sub(1, SeqCst);
        state.nr_workers -= 1;
        true
    }

    /// The idle worker `me` found work by itself (the I/O events it
    /// dispatched while idle): it leaves the idle list and is counted
    /// running and searching, as if kicked, if the pool needs a worker.
    /// False if it is not needed, or no longer idle (a kicker took it off
    /// the list just now: its parker holds the token).
    pub(crate) fn claim(&self, me: &W) -> bool {
        if !self.need_more_worker() {
            return false;
        }
        let mut state = self.state.lock();
        if !self.need_more_worker() {
            return false;
        }
        let Some(pos) = state.idle.iter().position(|(w, _)| w == me) else {
            return false;
        };
        state.idle.remove(pos);
        self.nr_idle.fetch_sub(1, SeqCst);
        self.nr_running.fetch_add(1, SeqCst);
        self.nr_searching.fetch_add(1, SeqCst);
        true
    }

    /// A `block_on` thread serving as a worker whose root future was woken
    /// takes itself off the idle list, whether or not the pool needs a
    /// worker: its own future must run. Counted running and searching, as
    /// a kick counts the worker it wakes. False if it is not on the list
    /// (a kick took it off first: then it runs anyway).
    pub(crate) fn claim_root(&self, me: &W) -> bool {
        let mut state = self.state.lock();
        let Some(pos) = state.idle.iter().position(|(w, _)| w == me) else {
            return false;
        };
        state.idle.remove(pos);
        self.nr_idle.fetch_sub(1, SeqCst);
        self.nr_running.fetch_add(1, SeqCst);
        self.nr_searching.fetch_add(1, SeqCst);
        true
    }

    /// A `block_on` thread joins the pool as a running worker (its slot
    /// reserved with `reserve_worker`).
    pub(crate) fn join_running(&self) {
        let _state = self.state.lock();
        self.nr_running.fetch_add(1, SeqCst);
    }

    /// The longest-idle worker (the one kicks reach last), if any.
    pub(crate) fn oldest_idle(&self) -> Option<W> {
        self.state.lock().idle.first().map(|(w, _)| w.clone())
    }

    /// Takes the manager role if the pool lacks a spare idle worker and may
    /// grow. The reservation (`nr_workers + 1`) is made now; the caller
    /// creates the thread and calls `manager_done`.
    pub(crate) fn try_become_manager(&self, max_workers: usize) -> bool {
        if self.nr_idle.load(SeqCst) != 0 {
            return false;
        }
        let mut state = self.state.lock();
        if !state.idle.is_empty() || state.manager || state.nr_workers >= max_workers {
            return false;
        }
        state.manager = true;
        state.nr_workers += 1;
        true
    }

    /// The manager finished; `created` says whether the reserved worker exists.
    pub(crate) fn manager_done(&self, created: bool) {
        let mut state = self.state.lock();
        state.manager = false;
        if !created {
            state.nr_workers -= 1;
        }
    }

    /// Reserves a worker slot without the manager role (initial workers).
    pub(crate) fn reserve_worker(&self, max_workers: usize) -> bool {
        let mut state = self.state.lock();
        if state.nr_workers >= max_workers {
            return false;
        }
        state.nr_workers += 1;
        true
    }

    /// Gives back a reservation whose thread could not be created, or a worker
    /// that exits without being on the idle list.
    pub(crate) fn release_worker(&self) {
        self.state.lock().nr_workers -= 1;
    }

    /// A worker leaving at shutdown: off the idle list if it is there.
    pub(crate) fn remove(&self, worker: &W) {
        let mut state = self.state.lock();
        if let Some(pos) = state.idle.iter().position(|(w, _)| w == worker) {
            state.idle.remove(pos);
            self.nr_idle.fetch_sub(1, SeqCst);
        }
        state.nr_workers -= 1;
    }

    pub(crate) fn nr_workers(&self) -> usize {
        self.state.lock().nr_workers
    }
}

//! Mayday: what a starving pool does for the tasks that must not wait.
//!
//! A pool starves when work is queued and no worker is left to take it or
//! to create another (`Pool::is_starving`). The pool has no thread of its
//! own to notice: a thread outside it (the monitor) calls `Pool::tend`
//! every few milliseconds while it starves, which is the kernel's mayday
//! timer. `tend` retries the worker creation (the cooldown permitting);
//! once the pool has starved for `MAYDAY_INITIAL_TIMEOUT` it calls the
//! mayday hook with the rescuer tags of the queued runnables, and again
//! every `MAYDAY_INTERVAL` while it still starves.
//!
//! Starvation is sampled: the observer calls `tend` every 10 ms while a
//! pool starves (and when woken), and the episode's start is the first
//! sample that found it starving, forgotten at the first that did not. A
//! starvation that ends and a new one that begins between two samples look
//! like one episode, so its mayday may come up to one sample period early;
//! it never comes later than 10 ms plus one sample period after the
//! observer learnt of the starvation.
//!
//! Whoever registered the hook (the rescuer layer) then takes matching
//! runnables one at a time with `Pool::take_rescued` and runs them on its
//! own thread. The pool knows nothing of who rescues: a tag is a number in
//! the runnable's metadata.
//!
//! # The cursor
//!
//! The kernel's rescuer scans the pool's worklist from a cursor to the next
//! item of its workqueue, runs it, and rescans from the cursor. A
//! `crossbeam_deque::Injector` can only be popped at the head and pushed at
//! the tail, so here the scan *rotates* the queue: each runnable examined
//! that is not the rescuer's goes back at the tail, and the head of the
//! queue is where the cursor would be. A *lap* (`Pool::rescue_lap`) bounds
//! a scan to the runnables queued when it started, so every scan is
//! O(queued) and one rescuer's laps never examine a runnable twice.
//! Rotation changes the order in which the pool's other runnables are
//! taken, which nothing relies on: a pool with several workers takes its
//! queues in no fixed order, and workqueue order is kept by admission.

use std::sync::atomic::{fence, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use super::{manager, Pool, Shared};
use crate::task::Runnable;

/// How long a pool starves before it calls for rescue (the kernel's
/// `MAYDAY_INITIAL_TIMEOUT`).
pub(crate) const MAYDAY_INITIAL_TIMEOUT: Duration = Duration::from_millis(10);

/// How often a pool that still starves calls again (`MAYDAY_INTERVAL`).
pub(crate) const MAYDAY_INTERVAL: Duration = Duration::from_millis(100);

/// The mayday timer's state: only `tend` touches it.
#[derive(Debug, Default)]
pub(super) struct MaydayTimer {
    /// When the pool was first seen starving, in the current episode.
    since: Option<Instant>,
    /// The last call for rescue in this episode.
    last: Option<Instant>,
}

impl Pool {
    /// The mayday timer, run by a thread outside the pool (the monitor)
    /// every few milliseconds: if the pool starves, retries creating a
    /// worker (the cooldown permitting) and, once it has starved for
    /// `MAYDAY_INITIAL_TIMEOUT` and then every `MAYDAY_INTERVAL`, calls the
    /// mayday hook with the rescuer tags of the queued runnables. If every
    /// worker is blocked while timers are pending (`timers_stranded`), fires
    /// the due ones here, since no worker will. Returns whether the pool
    /// needs tending again soon (it starves, or its timers are stranded).
    pub(crate) fn tend(&self) -> bool {
        let shared = &self.shared;
        let stranded = shared.timers_stranded();
        if stranded {
            // What they wake is queued here, and may make the pool starve.
            shared.timers().process();
            shared.poll_io_now();
        }
        if !self.is_starving() {
            *shared.mayday.lock() = MaydayTimer::default();
            return stranded;
        }
        manager::maybe_create_worker(shared);
        if !self.is_starving() {
            *shared.mayday.lock() = MaydayTimer::default();
            return stranded;
        }
        let now = Instant::now();
        {
            let mut timer = shared.mayday.lock();
            let since = *timer.since.get_or_insert(now);
            if now.saturating_duration_since(since) < MAYDAY_INITIAL_TIMEOUT
                || timer
                    .last
                    .is_some_and(|last| now.saturating_duration_since(last) < MAYDAY_INTERVAL)
            {
                return true;
            }
            timer.last = Some(now);
        }
        if let Some(hook) = &shared.config.mayday {
            let tags = self.queued_rescuers();
            if !tags.is_empty() {
                hook(self, &tags);
            }
        }
        true
    }

    /// Starts a rescue lap: moves what the workers' own queues hold to the
    /// injector (their workers are blocked or busy; a returning worker finds
    /// it there) and returns how many runnables the lap may examine.
    pub(crate) fn rescue_lap(&self) -> usize {
        let shared = &self.shared;
        let mut moved = false;
        for worker in shared.workers.read().iter() {
            for stealer in [&worker.stealer, &worker.lifo_stealer, &worker.yield_stealer] {
                loop {
                    match stealer.steal() {
                        Steal::Success(runnable) => {
                            shared.injector.push(runnable);
                            moved = true;
                        }
                        Steal::Empty => break,
                        Steal::Retry => continue,
                    }
                }
            }
        }
        if moved {
            shared.notify_work();
        }
        shared.injector.len()
    }

    /// Takes the next runnable tagged `rescuer` within the lap (`lap`
    /// counts down the runnables the lap may still examine); the others
    /// examined go back at the tail. `None` when the lap is over.
    pub(crate) fn take_rescued(&self, rescuer: u64, lap: &mut usize) -> Option<Runnable> {
        let shared = &self.shared;
        let mut rotated = Rotation::new(shared);
        while *lap > 0 {
            *lap -= 1;
            let runnable = shared.steal_injector()?;
            if runnable.metadata().rescuer == rescuer {
                return Some(runnable);
            }
            rotated.requeue(runnable);
        }
        None
    }

    /// `kick_pool`: wakes an idle worker if the pool needs one to run (a
    /// rescuer leaving the pool calls it, so that concurrency does not stay
    /// at zero if a worker became available meanwhile).
    pub(crate) fn kick(&self) {
        let shared = &self.shared;
        fence(SeqCst);
        if !shared.is_closed() && shared.has_work() {
            shared.wake_one();
        }
    }

    /// The distinct rescuer tags of the queued runnables (one lap).
    fn queued_rescuers(&self) -> Vec<u64> {
        let shared = &self.shared;
        let mut tags = Vec::new();
        let mut lap = self.rescue_lap();
        let mut rotated = Rotation::new(shared);
        while lap > 0 {
            lap -= 1;
            let Some(runnable) = shared.steal_injector() else {
                break;
            };
            let tag = runnable.metadata().rescuer;
            if tag != crate::task::NO_RESCUER && !tags.contains(&tag) {
                tags.push(tag);
            }
            rotated.requeue(runnable);
        }
        tags
    }
}

/// Runnables put back at the injector's tail by a scan. While one is off
/// the queue, a worker that looks finds less work than there is, and may go
/// idle: so once the scan is over, the pool is notified as for new work
/// (`notify_work`: a kick if a worker is needed, and, if the pool closed
/// meanwhile, a drain that drops what was put back).
struct Rotation<'a> {
    shared: &'a Shared,
    requeued: bool,
}

impl<'a> Rotation<'a> {
    fn new(shared: &'a Shared) -> Rotation<'a> {
        Rotation {
            shared,
            requeued: false,
        }
    }

    fn requeue(&mut self, runnable: Runnable) {
        self.shared.injector.push(runnable);
        self.requeued = true;
    }
}

impl Drop for Rotation<'_> {
    fn drop(&mut self) {
        if self.requeued {
            self.shared.notify_work();
        }
    }
}

impl Shared {
    fn steal_injector(&self) -> Option<Runnable> {
        loop {
            match self.injector.steal() {
                Steal::Success(runnable) => return Some(runnable),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }
}

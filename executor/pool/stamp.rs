//! The poll stamp: what a worker publishes about the poll it is in, for an
//! observer (the monitor) to find polls that got stuck.
//!
//! Two words per worker, in one cache line of its own. The worker writes
//! the first at every poll start and end, with plain stores (no
//! read-modify-write, no fence instruction, no syscall, no clock read); the
//! observer reads it a few thousand times a second at most:
//!
//! ```text
//!  63 ..................... 3   2          1          0
//! [ seq: polls started      | ANNOTATED | DETECTED | IN_POLL ]
//! ```
//!
//! - `IN_POLL`: the worker is inside a task's poll; `seq` tells polls apart.
//!   `seq | IN_POLL` is the poll's *token*.
//! - `ANNOTATED`: the worker is inside `wq::blocking`, out of `nr_running` by
//!   its own hand.
//! - `DETECTED`: the worker learnt, inside `wq::blocking`, that the observer
//!   had taken it out of `nr_running` during this poll (see below).
//!
//! The second word, `detected`, is the observer's: it stores there the
//! token of the poll it detects (found blocked or hogging), then decides.
//! Either side may take the token out again (a CAS to 0), which settles a
//! race between them: at most one of the two takes the worker out of
//! `nr_running` per poll, and the worker re-enters exactly when the
//! observer took it out.
//!
//! The decision is a Dekker pattern: the observer stores the token, then
//! looks at the poll word; the worker stores the poll word (the poll's end,
//! or `ANNOTATED`), then looks at the token. The fences that make one of
//! them see the other are asymmetric (`loom::barrier`): a compiler fence on
//! the worker's side, a process-wide `membarrier` on the observer's, which
//! detects a poll a handful of times a second at most. The worker's end of
//! a poll used to be an atomic swap (a locked instruction on x86, about
//! 7 ns): 9 % of a `yield_now` round on two workers.
//!
//! The README beside this file has the proof; `loom_tests.rs` models it
//! (with `SeqCst` fences on both sides, which the asymmetric pair orders
//! like).

use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::barrier;
use crossbeam_utils::CachePadded;

const IN_POLL: u64 = 1;
const DETECTED: u64 = 1 << 1;
const ANNOTATED: u64 = 1 << 2;
const SEQ_SHIFT: u32 = 3;

/// A poll's token: its word without the flags the worker adds during it.
fn token(word: u64) -> u64 {
    word & !(DETECTED | ANNOTATED)
}

/// A worker's poll stamp. See the module documentation.
#[derive(Debug)]
pub(crate) struct PollStamp {
    line: CachePadded<Line>,
}

#[derive(Debug)]
struct Line {
    /// `seq | ANNOTATED | DETECTED | IN_POLL`. Written by the worker only.
    word: AtomicU64,
    /// The token of the poll the observer detected, or 0. Set by the
    /// observer only; taken back (to 0) by either side.
    detected: AtomicU64,
    /// The id of the task in the current (or last) poll. Written (Release,
    /// after the previous poll's end) before the word, and read like a
    /// seqlock's data: an observer that read a later poll's id sees the word
    /// changed when it re-reads it, and discards the id.
    task: AtomicU64,
    /// The task's workqueue (its `QueueId`), written before `task` and read
    /// with it.
    queue: AtomicU32,
}

/// A poll as the observer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    word: u64,
}

impl Seen {
    /// Which poll this is: different polls of a worker have different seqs.
    pub(crate) fn seq(self) -> u64 {
        self.word >> SEQ_SHIFT
    }

    /// The worker is inside a task's poll.
    pub(crate) fn in_poll(self) -> bool {
        self.word & IN_POLL != 0
    }

    /// The worker is inside `wq::blocking`.
    pub(crate) fn is_annotated(self) -> bool {
        self.word & ANNOTATED != 0
    }

    /// The worker is in a poll and counted by concurrency management: it may
    /// be examined (and detected).
    pub(crate) fn is_examinable(self) -> bool {
        self.word & (IN_POLL | DETECTED | ANNOTATED) == IN_POLL
    }
}

impl PollStamp {
    pub(crate) fn new() -> PollStamp {
        // Polls are watched: choose the barrier before any worker polls.
        barrier::init();
        PollStamp {
            line: CachePadded::new(Line {
                word: AtomicU64::new(0),
                detected: AtomicU64::new(0),
                task: AtomicU64::new(0),
                queue: AtomicU32::new(0),
            }),
        }
    }

    /// Worker: a poll of task `task` of workqueue `queue` starts; `seq` is
    /// this worker's count of polls started, including this one.
    #[inline]
    pub(crate) fn begin(&self, seq: u64, task: u64, queue: u32) {
        let line = &*self.line;
        line.queue.store(queue, Ordering::Relaxed);
        line.task.store(task, Ordering::Release);
        line.word
            .store((seq << SEQ_SHIFT) | IN_POLL, Ordering::Release);
    }

    /// Worker: the poll ended. Returns true if the observer detected it, in
    /// which case the worker is out of `nr_running` and must re-enter.
    #[inline]
    pub(crate) fn end(&self, seq: u64) -> bool {
        let line = &*self.line;
        // Our own last store: only the worker writes the word.
        let word = line.word.load(Ordering::Relaxed);
        line.word.store(seq << SEQ_SHIFT, Ordering::Release);
        if word & DETECTED != 0 {
            // Taken inside `wq::blocking` already.
            return true;
        }
        // Pairs with the observer's heavy barrier in `try_detect`: either
        // it sees the poll ended, or we see its token.
        barrier::light();
        self.take_token(token(word))
    }

    /// Worker: takes the observer's token of the poll `token` if it is
    /// there, deciding that the observer took the worker out of
    /// `nr_running` during that poll.
    fn take_token(&self, token: u64) -> bool {
        let detected = &self.line.detected;
        // Outside a stamped poll (polls not watched) there is no token: 0
        // is `detected`'s "none".
        token & IN_POLL != 0
            && detected.load(Ordering::Relaxed) == token
            && detected
                .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Worker: entering `wq::blocking`. Returns true if the worker must leave
    /// `nr_running` now, false if the observer already took it out during
    /// this poll.
    pub(crate) fn annotate(&self) -> bool {
        let line = &*self.line;
        let word = line.word.load(Ordering::Relaxed);
        line.word.store(word | ANNOTATED, Ordering::Release);
        if word & DETECTED != 0 {
            // Out since an earlier `wq::blocking` of this poll.
            return false;
        }
        // As in `end`: either the observer sees `ANNOTATED`, or we see its
        // token.
        barrier::light();
        if self.take_token(token(word)) {
            line.word
                .store(word | ANNOTATED | DETECTED, Ordering::Release);
            return false;
        }
        true
    }

    /// Worker: leaving `wq::blocking`.
    pub(crate) fn unannotate(&self) {
        let word = self.line.word.load(Ordering::Relaxed);
        self.line.word.store(word & !ANNOTATED, Ordering::Release);
    }

    /// Observer: what the worker is doing now, and the id of the task it
    /// polls (meaningful only if the same `Seen` is observed before and
    /// after reading it: see `task`). A poll the observer detected is seen
    /// `DETECTED` until it ends.
    pub(crate) fn observe(&self) -> Seen {
        let line = &*self.line;
        let word = line.word.load(Ordering::Acquire);
        let detected = word & IN_POLL != 0 && line.detected.load(Ordering::Relaxed) == token(word);
        Seen {
            word: if detected { word | DETECTED } else { word },
        }
    }

    /// Observer: the task of the poll `seen` and its workqueue, or `None`
    /// if the worker has moved on since.
    pub(crate) fn task_of(&self, seen: Seen) -> Option<(u64, u32)> {
        let line = &*self.line;
        let queue = line.queue.load(Ordering::Relaxed);
        let task = line.task.load(Ordering::Relaxed);
        // Synchronizes with the Release store of a later poll's id (written
        // after its queue), if that is what we read: then the re-read below
        // sees that poll's word.
        crate::loom::atomic::fence(Ordering::Acquire);
        let now = line.word.load(Ordering::Relaxed);
        (now & !DETECTED == seen.word & !DETECTED).then_some((task, queue))
    }

    /// Observer: decides that the poll `seen` is detected, unless it ended
    /// or the worker entered `wq::blocking` since `seen` was observed (or
    /// it was detected already). On success the caller then takes the
    /// worker out of `nr_running` (the worker may already have put itself
    /// back: the count is one too high for that moment, never too low).
    /// One observer per stamp.
    pub(crate) fn try_detect(&self, seen: Seen) -> bool {
        let line = &*self.line;
        if !seen.is_examinable() || line.detected.load(Ordering::Relaxed) == seen.word {
            // Not examinable, or detected already (a `seen` from before).
            return false;
        }
        line.detected.store(seen.word, Ordering::Relaxed);
        // Pairs with the worker's light barrier in `end` and `annotate`.
        barrier::heavy();
        if line.word.load(Ordering::Relaxed) == seen.word {
            // Still in that poll, unannotated: the worker's next store to
            // the word comes after our barrier, so it will see the token.
            return true;
        }
        // The poll ended or entered `wq::blocking`: take the token back,
        // unless the worker took it first (it then counts itself as
        // detected, and so must we).
        line.detected
            .compare_exchange(seen.word, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::PollStamp;

    #[test]
    fn blocking_outside_a_watched_poll_leaves_nr_running() {
        // Polls not stamped: the word stays 0 and there is no token.
        let stamp = PollStamp::new();
        assert!(stamp.annotate(), "must leave nr_running itself");
        stamp.unannotate();
        assert!(!stamp.observe().in_poll());
    }

    #[test]
    fn a_detection_that_stands_is_seen_once_by_the_poll_end() {
        let stamp = PollStamp::new();
        stamp.begin(1, 7, 0);
        let seen = stamp.observe();
        assert!(seen.is_examinable());
        assert!(stamp.try_detect(seen));
        assert!(
            !stamp.observe().is_examinable(),
            "detected polls are not examinable"
        );
        assert!(!stamp.try_detect(seen), "detected twice");
        assert!(stamp.end(1), "the worker must rejoin");
        // The next poll starts clean.
        stamp.begin(2, 8, 0);
        assert!(stamp.observe().is_examinable());
        assert!(!stamp.end(2));
    }

    #[test]
    fn a_poll_that_ended_is_not_detected() {
        let stamp = PollStamp::new();
        stamp.begin(1, 7, 0);
        let seen = stamp.observe();
        assert!(!stamp.end(1));
        assert!(!stamp.try_detect(seen));
        stamp.begin(2, 7, 0);
        assert!(
            !stamp.end(2),
            "a token taken back must not reach a later poll"
        );
    }

    #[test]
    fn blocking_in_a_detected_poll_does_not_leave_twice() {
        let stamp = PollStamp::new();
        stamp.begin(1, 7, 0);
        assert!(stamp.try_detect(stamp.observe()));
        assert!(!stamp.annotate(), "already out of nr_running");
        stamp.unannotate();
        assert!(!stamp.annotate(), "a second blocking section: still out");
        stamp.unannotate();
        assert!(!stamp.observe().is_examinable());
        assert!(stamp.end(1), "rejoins when the poll ends");
    }

    #[test]
    fn a_poll_inside_blocking_is_not_detected() {
        let stamp = PollStamp::new();
        stamp.begin(1, 7, 0);
        let seen = stamp.observe();
        assert!(stamp.annotate());
        assert!(
            !stamp.try_detect(seen),
            "stale observation of an annotated poll"
        );
        assert!(!stamp.try_detect(stamp.observe()));
        stamp.unannotate();
        assert!(!stamp.end(1));
    }
}

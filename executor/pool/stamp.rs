//! The poll stamp: what a worker publishes about the poll it is in, for an
//! observer (the monitor) to find polls that got stuck.
//!
//! One word per worker, in its own cache line, written by the worker at
//! every poll start and end (a plain store and a swap: no syscall, no clock
//! read) and read by the observer a few thousand times a second at most.
//!
//! ```text
//!  63 ..................... 3   2          1          0
//! [ seq: polls started      | ANNOTATED | DETECTED | IN_POLL ]
//! ```
//!
//! - `IN_POLL`: the worker is inside a task's poll; `seq` tells polls apart.
//! - `DETECTED`: the observer took the worker out of `nr_running` during this
//!   poll (it was found blocked or hogging). Set only by the observer, by a
//!   CAS from exactly `seq | IN_POLL`; cleared by the worker's swap at the end
//!   of the poll, which tells the worker to re-enter `nr_running`.
//! - `ANNOTATED`: the worker is inside `wq::blocking`, out of `nr_running` by
//!   its own hand. Set and cleared only by the worker (`fetch_or` and
//!   `fetch_and`, because the observer may CAS concurrently).
//!
//! At most one of the two takes the worker out of `nr_running` per poll: the
//! observer's CAS fails if `ANNOTATED` is set, and `wq::blocking` entered
//! after a detection sees `DETECTED` and does not leave again. The README
//! beside this file has the proof; `loom_tests.rs` models it.

use crate::loom::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

const IN_POLL: u64 = 1;
const DETECTED: u64 = 1 << 1;
const ANNOTATED: u64 = 1 << 2;
const SEQ_SHIFT: u32 = 3;

/// A worker's poll stamp. See the module documentation.
#[derive(Debug)]
pub(crate) struct PollStamp {
    word: CachePadded<AtomicU64>,
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
        PollStamp {
            word: CachePadded::new(AtomicU64::new(0)),
            task: AtomicU64::new(0),
            queue: AtomicU32::new(0),
        }
    }

    /// Worker: a poll of task `task` of workqueue `queue` starts; `seq` is
    /// this worker's count
    /// of polls started, including this one. A plain store suffices: outside
    /// a poll nobody else writes the word (the observer's CAS expects
    /// `IN_POLL`).
    #[inline]
    pub(crate) fn begin(&self, seq: u64, task: u64, queue: u32) {
        self.queue.store(queue, Ordering::Relaxed);
        self.task.store(task, Ordering::Release);
        self.word
            .store((seq << SEQ_SHIFT) | IN_POLL, Ordering::Release);
    }

    /// Worker: the poll ended. Returns true if the observer detected it, in
    /// which case the worker is out of `nr_running` and must re-enter.
    ///
    /// The swap is the one read-modify-write on the poll path. It decides the
    /// race with the observer's CAS: whichever comes first in the word's
    /// modification order wins, and the loser sees it.
    #[inline]
    pub(crate) fn end(&self, seq: u64) -> bool {
        let prev = self.word.swap(seq << SEQ_SHIFT, Ordering::AcqRel);
        prev & DETECTED != 0
    }

    /// Worker: entering `wq::blocking`. Returns true if the worker must leave
    /// `nr_running` now, false if the observer already took it out during
    /// this poll.
    pub(crate) fn annotate(&self) -> bool {
        let prev = self.word.fetch_or(ANNOTATED, Ordering::AcqRel);
        prev & DETECTED == 0
    }

    /// Worker: leaving `wq::blocking`.
    pub(crate) fn unannotate(&self) {
        self.word.fetch_and(!ANNOTATED, Ordering::AcqRel);
    }

    /// Observer: what the worker is doing now, and the id of the task it
    /// polls (meaningful only if the same `Seen` is observed before and
    /// after reading it: see `task`).
    pub(crate) fn observe(&self) -> Seen {
        Seen {
            word: self.word.load(Ordering::Acquire),
        }
    }

    /// Observer: the task of the poll `seen` and its workqueue, or `None`
    /// if the worker has moved on since.
    pub(crate) fn task_of(&self, seen: Seen) -> Option<(u64, u32)> {
        let queue = self.queue.load(Ordering::Relaxed);
        let task = self.task.load(Ordering::Relaxed);
        // Synchronizes with the Release store of a later poll's id (written
        // after its queue), if that is what we read: then the re-read below
        // sees that poll's word.
        fence(Ordering::Acquire);
        (self.word.load(Ordering::Relaxed) == seen.word).then_some((task, queue))
    }

    /// Observer: marks the poll `seen` as detected. Fails if the poll ended
    /// or the worker entered `wq::blocking` since `seen` was observed. On
    /// success the caller then takes the worker out of `nr_running` (the
    /// worker may already have put itself back: the count is one too high
    /// for that moment, never too low).
    pub(crate) fn try_detect(&self, seen: Seen) -> bool {
        seen.is_examinable()
            && self
                .word
                .compare_exchange(
                    seen.word,
                    seen.word | DETECTED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

//! Task identifiers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// An opaque, unique identifier of a task, for as long as the process runs.
///
/// Ids are never reused. They appear in [`JoinError`](crate::task::JoinError)
/// messages and in the runtime's reports.
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// let a = rt.spawn(async {});
/// let b = rt.spawn(async {});
/// assert_ne!(a.id(), b.id());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    pub(crate) fn next() -> Id {
        // Uniqueness is all that is needed: Relaxed.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id(NEXT.fetch_add(1, Relaxed))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    /// The id whose `as_u64` is `raw`.
    pub(crate) fn from_u64(raw: u64) -> Id {
        Id(raw)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

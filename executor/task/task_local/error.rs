//! `AccessError`: a task-local value read outside its scope.

use std::error::Error;
use std::fmt;

/// Returned by [`LocalKey::try_with`](super::LocalKey::try_with) outside a
/// scope of the key. Displays as tokio's: "task-local value not set".
///
/// ```
/// wq::task_local! {
///     static DEPTH: u32;
/// }
///
/// let err = DEPTH.try_with(|depth| *depth).unwrap_err();
/// assert_eq!(err.to_string(), "task-local value not set");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError(pub(super) ());

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessError")
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("task-local value not set")
    }
}

impl Error for AccessError {}

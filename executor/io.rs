//! I/O beyond sockets: [`AsyncFd`] for any file descriptor (as tokio's
//! `tokio::io::unix::AsyncFd`, also at `wq::io::unix`).

#[cfg(unix)]
pub use crate::net::async_fd::{AsyncFd, AsyncFdReadyGuard, TryIoError};

/// Unix-specific I/O, at tokio's path.
#[cfg(unix)]
pub mod unix {
    pub use crate::net::async_fd::{AsyncFd, AsyncFdReadyGuard, TryIoError};
}

//! Networking on the runtime's I/O reactor: TCP, UDP and Unix sockets with
//! tokio's method names, and `futures::io::{AsyncRead, AsyncWrite}` on the
//! streams (and `tokio::io::{AsyncRead, AsyncWrite}` with the `tokio-io`
//! feature).
//!
//! Sockets are mio's (non-blocking, registered with the reactor of the
//! runtime current when they are created). An operation tries the socket
//! first and waits for readiness only after `WouldBlock`; see
//! `reactor.rs` for how readiness is tracked and cleared.

#[cfg(unix)]
pub(crate) mod async_fd;
pub(crate) mod reactor;
mod split;
pub mod tcp;
#[cfg(feature = "tokio-io")]
mod tokio_io;
mod udp;
#[cfg(unix)]
pub mod unix;

use std::io;
use std::sync::Arc;

use mio::event::Source;
use mio::Interest;

use reactor::{Reactor, Registration};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};

/// A mio source registered with the current runtime's reactor; deregistered
/// before it closes.
#[derive(Debug)]
pub(crate) struct PollEvented<S: Source> {
    source: S,
    registration: Registration,
}

impl<S: Source> PollEvented<S> {
    /// Registers `source` with the reactor of the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a runtime context, as tokio does.
    #[track_caller]
    pub(crate) fn new(mut source: S, interest: Interest) -> io::Result<PollEvented<S>> {
        let registration = current_reactor().register(&mut source, interest)?;
        Ok(PollEvented {
            source,
            registration,
        })
    }

    pub(crate) fn source(&self) -> &S {
        &self.source
    }

    pub(crate) fn registration(&self) -> &Registration {
        &self.registration
    }
}

impl<S: Source> Drop for PollEvented<S> {
    fn drop(&mut self) {
        // Before the socket closes (when `source` drops after this).
        let _ = self.registration.deregister(&mut self.source);
    }
}

/// The reactor of the current runtime.
#[track_caller]
fn current_reactor() -> Arc<Reactor> {
    crate::runtime::current_reactor().unwrap_or_else(|| {
        panic!(
            "there is no wq runtime current on this thread: sockets must be created from a \
             task, inside `block_on`, or while an `enter` guard is held"
        )
    })
}

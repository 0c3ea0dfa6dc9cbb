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

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::task::{Context, Poll};

use mio::event::Source;
use mio::Interest;

use reactor::{Direction, Reactor, Registration};
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

    /// Waits until the source may be ready in `direction`, in a place of
    /// its own among the waiting tasks (several may wait at once).
    pub(crate) async fn ready(&self, direction: Direction) -> io::Result<()> {
        let mut waiting = self.registration.waiting(direction);
        std::future::poll_fn(|cx| waiting.poll_ready(cx).map_ok(|_| ())).await
    }

    /// Runs the non-blocking `op` on the source once it is ready in
    /// `direction`, waiting again after each `WouldBlock`, for the future
    /// of an async method: it waits in a place of its
    /// own among the waiting tasks (several may wait at once, and each is
    /// woken by the event), which it frees when it is dropped.
    pub(crate) async fn op<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut waiting = self.registration.waiting(direction);
        std::future::poll_fn(|cx| waiting.poll_io(cx, || op(&self.source))).await
    }

    /// Runs the non-blocking `op` on the source without waiting.
    pub(crate) fn try_op<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.registration.try_io(direction, || op(&self.source))
    }
}

/// Byte streams (TCP, Unix): reads and writes through `&S`. A read or
/// write that moves fewer bytes than asked clears the readiness it ran on
/// (see [`Registration::poll_transfer`]), except a vectored write.
impl<S: Source> PollEvented<S>
where
    for<'a> &'a S: Read + Write,
{
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.registration
            .poll_transfer(cx, Direction::Read, len, || (&self.source).read(buf))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.registration
            .poll_transfer(cx, Direction::Write, buf.len(), || {
                (&self.source).write(buf)
            })
    }

    /// One `writev` of `bufs`. A short one does not clear the readiness:
    /// `writev` takes at most `IOV_MAX` slices (1024 on Linux), so it may
    /// write less than all of `bufs` with room left in the socket's buffer,
    /// and the next write would then wait for an event that never comes.
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.registration
            .poll_io(cx, Direction::Write, || (&self.source).write_vectored(bufs))
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_op(Direction::Read, |mut source| source.read(buf))
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_op(Direction::Write, |mut source| source.write(buf))
    }
}

/// Reads into memory that is not initialized yet (tokio's `ReadBuf`),
/// through `recv(2)`, which only writes: zeroing the buffer first would
/// cost a `memset` of all of it per read.
#[cfg(unix)]
impl<S: Source + std::os::fd::AsFd> PollEvented<S> {
    pub(crate) fn poll_recv_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.registration
            .poll_transfer(cx, Direction::Read, len, || {
                socket2::SockRef::from(&self.source).recv(buf)
            })
    }
}

impl<S: Source> Drop for PollEvented<S> {
    fn drop(&mut self) {
        // Before the socket closes (when `source` drops after this).
        let _ = self.registration.deregister(&mut self.source);
    }
}

/// `AsRawFd` and `AsFd` for a socket type wrapping a `PollEvented`, as
/// tokio's have (to set options through `socket2::SockRef`, say).
macro_rules! as_fd {
    ($($socket:ty),+) => {$(
        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $socket {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.io.source())
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsFd for $socket {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.io.source())
            }
        }
    )+};
}
pub(crate) use as_fd;

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

//! The halves of a split stream (TCP or Unix): borrowed ones from `split`,
//! owned ones from `into_split`, as tokio's `tcp` and `unix` modules have.
//! Each direction has its own waker in the reactor, so the two halves are
//! used from two futures (or tasks) at once without a lock.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};

/// A stream that can be split: the reads, writes and shutdown its halves
/// need, through a shared reference.
pub trait Stream: fmt::Debug + Send + Sync + 'static {
    /// The stream's address type.
    type Addr;
    #[doc(hidden)]
    fn poll_read_half(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    #[doc(hidden)]
    fn poll_write_half(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    #[doc(hidden)]
    fn shutdown_write(&self) -> io::Result<()>;
    #[doc(hidden)]
    fn local_addr(&self) -> io::Result<Self::Addr>;
    #[doc(hidden)]
    fn peer_addr(&self) -> io::Result<Self::Addr>;
}

/// The read half of a stream's `split`.
#[derive(Debug)]
pub struct ReadHalf<'a, S>(&'a S);

/// The write half of a stream's `split`.
#[derive(Debug)]
pub struct WriteHalf<'a, S>(&'a S);

/// The read half of a stream's `into_split`.
#[derive(Debug)]
pub struct OwnedReadHalf<S: Stream>(Arc<S>);

/// The write half of a stream's `into_split`: shuts the write side down
/// when dropped, as tokio's does.
#[derive(Debug)]
pub struct OwnedWriteHalf<S: Stream> {
    stream: Arc<S>,
    shutdown_on_drop: bool,
}

/// The halves given to `reunite` came from different streams; they are
/// handed back.
#[derive(Debug)]
pub struct ReuniteError<S: Stream>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S: Stream> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl<S: Stream> std::error::Error for ReuniteError<S> {}

pub(crate) fn split<S: Stream>(stream: &mut S) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
    (ReadHalf(stream), WriteHalf(stream))
}

pub(crate) fn into_split<S: Stream>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let stream = Arc::new(stream);
    (
        OwnedReadHalf(stream.clone()),
        OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        },
    )
}

impl<S: Stream> OwnedReadHalf<S> {
    /// Puts the halves back together into the stream.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] (with both halves) if they are from different
    /// streams.
    pub fn reunite(self, write: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.0, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        let mut write = write;
        write.shutdown_on_drop = false;
        let stream = write.stream.clone();
        drop(write);
        drop(self);
        Ok(Arc::into_inner(stream).expect("both halves were given back"))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<S::Addr> {
        self.0.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<S::Addr> {
        self.0.local_addr()
    }
}

impl<S: Stream> OwnedWriteHalf<S> {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<S::Addr> {
        self.stream.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<S::Addr> {
        self.stream.local_addr()
    }
}

impl<S: Stream> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.shutdown_write();
        }
    }
}

impl<S: Stream> AsyncRead for ReadHalf<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read_half(cx, buf)
    }
}

impl<S: Stream> AsyncRead for OwnedReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read_half(cx, buf)
    }
}

impl<S: Stream> AsyncWrite for WriteHalf<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_half(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_write())
    }
}

impl<S: Stream> AsyncWrite for OwnedWriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_half(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.shutdown_write())
    }
}

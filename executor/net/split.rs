//! The halves of a split stream (TCP or Unix): borrowed ones from `split`,
//! owned ones from `into_split`, as tokio's `tcp` and `unix` modules have.
//! Each direction has its own waiters in the reactor, so the two halves are
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
    fn poll_write_vectored_half(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    #[doc(hidden)]
    fn poll_recv_uninit_half(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>>;
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

impl<'a, S: Stream> ReadHalf<'a, S> {
    /// The stream read from.
    #[cfg_attr(not(feature = "tokio-io"), allow(dead_code))]
    pub(crate) fn stream(&self) -> &'a S {
        self.0
    }
}

impl<S: Stream> OwnedReadHalf<S> {
    /// The stream read from.
    #[cfg_attr(not(feature = "tokio-io"), allow(dead_code))]
    pub(crate) fn stream(&self) -> &S {
        &self.0
    }

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

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored_half(cx, bufs)
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

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_vectored_half(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.shutdown_write())
    }
}

/// The API every byte stream has, generated once for `TcpStream` and
/// `UnixStream` (each has an `io: PollEvented<_>` field and inherent
/// `local_addr`/`peer_addr` returning `$addr`): readiness waits,
/// `try_read`/`try_write`, `split`/`into_split` with the halves' aliases,
/// and `futures::io::{AsyncRead, AsyncWrite}`.
macro_rules! byte_stream {
    ($stream:ident, $addr:ty) => {
        impl $stream {
            /// Waits until the socket may be readable: then `try_read` may
            /// succeed (or report `WouldBlock` again, after a spurious
            /// wakeup).
            pub async fn readable(&self) -> io::Result<()> {
                self.io.ready(Direction::Read).await
            }

            /// Waits until the socket may be writable.
            pub async fn writable(&self) -> io::Result<()> {
                self.io.ready(Direction::Write).await
            }

            /// Reads what is there without waiting; `WouldBlock` if nothing
            /// is. `Ok(0)` means the peer closed its side.
            pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.io.try_read(buf)
            }

            /// Writes what fits without waiting; `WouldBlock` if nothing
            /// does.
            pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                self.io.try_write(buf)
            }

            /// Splits the stream into a read half and a write half that
            /// borrow it, usable from two futures at once (each direction
            /// has its own waiters). With `futures::io::AsyncReadExt` in
            /// scope, `stream.split()` means that trait's `split` (by
            /// value, behind a lock): call this one as
            #[doc = concat!("`", stringify!($stream), "::split(&mut stream)`.")]
            pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
                super::split::split(self)
            }

            /// Splits the stream into owned halves, which may move to
            /// different tasks. Dropping the write half shuts the write
            /// side down, as tokio's does; `OwnedReadHalf::reunite` puts
            /// them back together.
            pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
                super::split::into_split(self)
            }
        }

        #[doc = concat!("The read half of [`", stringify!($stream), "::split`].")]
        pub type ReadHalf<'a> = super::split::ReadHalf<'a, $stream>;
        #[doc = concat!("The write half of [`", stringify!($stream), "::split`].")]
        pub type WriteHalf<'a> = super::split::WriteHalf<'a, $stream>;
        #[doc = concat!("The read half of [`", stringify!($stream), "::into_split`].")]
        pub type OwnedReadHalf = super::split::OwnedReadHalf<$stream>;
        /// The write half of `into_split`: shuts the write side down when
        /// dropped.
        pub type OwnedWriteHalf = super::split::OwnedWriteHalf<$stream>;
        /// Halves of two different streams given to `OwnedReadHalf::reunite`.
        pub type ReuniteError = super::split::ReuniteError<$stream>;

        impl super::split::Stream for $stream {
            type Addr = $addr;

            fn poll_read_half(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_read(cx, buf)
            }

            fn poll_write_half(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.io.poll_write(cx, buf)
            }

            fn poll_write_vectored_half(
                &self,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_write_vectored(cx, bufs)
            }

            fn poll_recv_uninit_half(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_recv_uninit(cx, buf)
            }

            fn shutdown_write(&self) -> io::Result<()> {
                self.io.source().shutdown(std::net::Shutdown::Write)
            }

            fn local_addr(&self) -> io::Result<$addr> {
                $stream::local_addr(self)
            }

            fn peer_addr(&self) -> io::Result<$addr> {
                $stream::peer_addr(self)
            }
        }

        impl futures::io::AsyncRead for $stream {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_read(cx, buf)
            }
        }

        impl futures::io::AsyncWrite for $stream {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                // Writes go straight to the socket: nothing is buffered.
                Poll::Ready(Ok(()))
            }

            /// Shuts the write side down (the peer reads end of stream).
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(self.io.source().shutdown(std::net::Shutdown::Write))
            }
        }
    };
}

pub(crate) use byte_stream;

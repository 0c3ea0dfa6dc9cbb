//! `tokio::io::{AsyncRead, AsyncWrite}` on the stream types (feature
//! `tokio-io`).
//!
//! Reads go straight into the unfilled part of tokio's `ReadBuf`, which
//! may not be initialized: `recv(2)` only writes to it, so the buffer is
//! not zeroed first (zeroing hyper's read buffer before every read cost
//! 4.5% of an HTTP server's CPU time). Writes are the `futures::io` ones,
//! vectored writes included (hyper then sends a response's head and body
//! in one `writev`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, Stream, WriteHalf};
use super::tcp::TcpStream;

/// Reads what the socket has into `buf`'s unfilled part, waiting if it has
/// nothing.
fn poll_read_buf<S: Stream>(
    stream: &S,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the slice is only handed to `recv`, which writes bytes and
    // never de-initializes any.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = std::task::ready!(stream.poll_recv_uninit_half(cx, unfilled))?;
    // SAFETY: `recv` returned `n`, so it wrote the first `n` bytes of the
    // unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// Implements tokio's `AsyncRead` for a type whose stream `$stream`
/// (an expression of `$this`) reads.
macro_rules! tokio_read {
    ([$($generics:tt)*] $ty:ty, |$this:ident| $stream:expr) => {
        impl<$($generics)*> tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                poll_read_buf($stream, cx, buf)
            }
        }
    };
}

/// Implements tokio's `AsyncWrite` for a type with `futures::io::AsyncWrite`
/// (tokio's `poll_shutdown` is futures' `poll_close`: the write side shuts
/// down).
macro_rules! tokio_write {
    (@ [$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                futures::io::AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                futures::io::AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                futures::io::AsyncWrite::poll_flush(self, cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                futures::io::AsyncWrite::poll_close(self, cx)
            }
        }
    };
    ($($ty:ty),*) => {$(tokio_write!(@ [] $ty);)*};
}

tokio_read!([] TcpStream, |this| this);
tokio_write!(TcpStream);
tokio_read!([S: Stream] ReadHalf<'_, S>, |this| this.stream());
tokio_read!([S: Stream] OwnedReadHalf<S>, |this| this.stream());
tokio_write!(@ [S: Stream] WriteHalf<'_, S>);
tokio_write!(@ [S: Stream] OwnedWriteHalf<S>);

#[cfg(unix)]
tokio_read!([] super::UnixStream, |this| this);
#[cfg(unix)]
tokio_write!(super::UnixStream);

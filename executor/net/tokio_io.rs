//! `tokio::io::{AsyncRead, AsyncWrite}` on the stream types (feature
//! `tokio-io`), written in terms of their `futures::io` implementations.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, Stream, WriteHalf};
use super::tcp::TcpStream;

/// Implements tokio's `AsyncRead` for a type with `futures::io::AsyncRead`.
macro_rules! tokio_read {
    (@ [$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let unfilled = buf.initialize_unfilled();
                let n = std::task::ready!(futures::io::AsyncRead::poll_read(self, cx, unfilled))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    };
    ($($ty:ty),*) => {$(tokio_read!(@ [] $ty);)*};
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

tokio_read!(TcpStream);
tokio_write!(TcpStream);
tokio_read!(@ [S: Stream] ReadHalf<'_, S>);
tokio_read!(@ [S: Stream] OwnedReadHalf<S>);
tokio_write!(@ [S: Stream] WriteHalf<'_, S>);
tokio_write!(@ [S: Stream] OwnedWriteHalf<S>);

#[cfg(unix)]
tokio_read!(super::UnixStream);
#[cfg(unix)]
tokio_write!(super::UnixStream);

//! `tokio::io::{AsyncRead, AsyncWrite}` on the stream types (feature
//! `tokio-io`), written in terms of their `futures::io` implementations.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::tcp::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, TcpStream, WriteHalf};

/// Implements tokio's `AsyncRead` for a type with `futures::io::AsyncRead`.
macro_rules! tokio_read {
    ($($ty:ty),*) => {$(
        impl tokio::io::AsyncRead for $ty {
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
    )*};
}

/// Implements tokio's `AsyncWrite` for a type with `futures::io::AsyncWrite`
/// (tokio's `poll_shutdown` is futures' `poll_close`: the write side shuts
/// down).
macro_rules! tokio_write {
    ($($ty:ty),*) => {$(
        impl tokio::io::AsyncWrite for $ty {
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
    )*};
}

tokio_read!(TcpStream, ReadHalf<'_>, OwnedReadHalf);
tokio_write!(TcpStream, WriteHalf<'_>, OwnedWriteHalf);

#[cfg(unix)]
tokio_read!(super::UnixStream);
#[cfg(unix)]
tokio_write!(super::UnixStream);

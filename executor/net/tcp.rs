//! TCP: [`TcpListener`] and [`TcpStream`] (also at `wq::net`), with
//! tokio's method names, and the halves of a split stream (as in
//! `tokio::net::tcp`).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

use mio::Interest;

use super::reactor::Direction;
use super::PollEvented;

/// The listen backlog of `TcpListener::bind` (tokio's): room for a burst
/// of connections arriving faster than they are accepted.
pub(super) const LISTEN_BACKLOG: i32 = 1024;

/// A TCP socket server, listening for connections.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// let listener = wq::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = wq::spawn(async move {
///     let (mut socket, _) = listener.accept().await.unwrap();
///     let mut buf = [0; 5];
///     socket.read_exact(&mut buf).await.unwrap();
///     socket.write_all(&buf).await.unwrap();
/// });
/// let mut client = wq::net::TcpStream::connect(addr).await.unwrap();
/// client.write_all(b"hello").await.unwrap();
/// let mut echoed = [0; 5];
/// client.read_exact(&mut echoed).await.unwrap();
/// assert_eq!(&echoed, b"hello");
/// server.await.unwrap();
/// # });
/// ```
pub struct TcpListener {
    io: PollEvented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr`, trying each address it resolves to until one
    /// succeeds.
    ///
    /// # Errors
    ///
    /// The error of the last address tried (for example `AddrInUse`), or
    /// `InvalidInput` if `addr` resolves to no address.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            // As tokio and mio do: rebinding a port in TIME_WAIT works.
            #[cfg(not(windows))]
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            TcpListener::from_std(socket.into())
        })
    }

    /// Wraps a listener from the standard library (made non-blocking here).
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    #[track_caller]
    fn from_mio(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: PollEvented::new(listener, Interest::READABLE)?,
        })
    }

    /// Accepts a new connection.
    ///
    /// # Errors
    ///
    /// The OS error, for example `EMFILE` when the process is out of file
    /// descriptors; the listener stays usable.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self
            .io
            .op(Direction::Read, |source| source.accept())
            .await?;
        Ok((TcpStream::from_mio(stream)?, addr))
    }

    /// Polls for a new connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, addr) =
            std::task::ready!(self
                .io
                .registration()
                .poll_io(cx, Direction::Read, || self.io.source().accept()))?;
        Poll::Ready(Ok((TcpStream::from_mio(stream)?, addr)))
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.source().local_addr()
    }

    /// The IP time-to-live of accepted sockets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.source().ttl()
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.source().set_ttl(ttl)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.source().fmt(f)
    }
}

/// A TCP connection. Reads and writes through `futures::io::AsyncRead` and
/// `AsyncWrite` (`futures::io::AsyncReadExt` and `AsyncWriteExt` add
/// `read`, `write_all`...), or without waiting through `try_read` and
/// `try_write` after `readable` and `writable`.
pub struct TcpStream {
    io: PollEvented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each address it resolves to
    /// until one accepts.
    ///
    /// # Errors
    ///
    /// The error of the last address tried (for example
    /// `ConnectionRefused`), or `InvalidInput` if `addr` resolves to no
    /// address.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = resolve(addr)?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(no_address))
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        // A non-blocking connect completes when the socket is writable;
        // then it either has an error or a peer.
        std::future::poll_fn(|cx| stream.io.registration().poll_ready(cx, Direction::Write))
            .await?;
        if let Some(err) = stream.io.source().take_error()? {
            return Err(err);
        }
        stream.io.source().peer_addr()?;
        Ok(stream)
    }

    /// Wraps a connected stream from the standard library (made
    /// non-blocking here).
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    #[track_caller]
    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: PollEvented::new(stream, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.source().local_addr()
    }

    /// The remote address of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.source().peer_addr()
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.source().nodelay()
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.source().set_nodelay(nodelay)
    }

    /// The time-to-live of the packets sent (`IP_TTL`).
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.source().ttl()
    }

    /// Sets the time-to-live of the packets sent (`IP_TTL`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.source().set_ttl(ttl)
    }

    /// How long a close waits for unsent data (`SO_LINGER`); `None` if it
    /// does not wait.
    #[cfg(unix)]
    pub fn linger(&self) -> io::Result<Option<std::time::Duration>> {
        socket2::SockRef::from(self.io.source()).linger()
    }

    /// Sets how long a close waits for unsent data (`SO_LINGER`).
    #[cfg(unix)]
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        socket2::SockRef::from(self.io.source()).set_linger(linger)
    }

    /// Reads received data without taking it off the socket's queue:
    /// the next read returns it again. Waits until some is there.
    ///
    /// ```
    /// # wq::Runtime::new().unwrap().block_on(async {
    /// use futures::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let listener = wq::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let mut client = wq::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    /// let (mut server, _) = listener.accept().await.unwrap();
    /// client.write_all(b"hello").await.unwrap();
    /// let mut peeked = [0; 5];
    /// let n = server.peek(&mut peeked).await.unwrap();
    /// let mut read = [0; 5];
    /// server.read_exact(&mut read[..n]).await.unwrap();
    /// assert_eq!(peeked[..n], read[..n]);
    /// # });
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.op(Direction::Read, |source| source.peek(buf)).await
    }
}

super::split::byte_stream!(TcpStream, SocketAddr);
super::as_fd!(TcpListener, TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.source().fmt(f)
    }
}

/// Resolves `addr`. Addresses given as such, or as strings that parse as
/// one, resolve at once; a host name means a DNS lookup, which blocks the
/// worker, and the monitor takes it out of concurrency management if it
/// takes long (a `wq::blocking` here would cost every connect a worker
/// hand-off).
fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    addr.to_socket_addrs().map(Iterator::collect)
}

fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}

/// The first address `addr` resolves to.
pub(super) fn resolve_one(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    resolve(addr)?.into_iter().next().ok_or_else(no_address)
}

/// Runs `f` on each address `addr` resolves to until it succeeds; the
/// last error otherwise.
pub(super) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in resolve(addr)? {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

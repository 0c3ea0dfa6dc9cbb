//! Unix domain sockets: [`UnixListener`] and [`UnixStream`] (also at
//! `wq::net`), with tokio's method names, and the halves of a split stream
//! (as in `tokio::net::unix`).
//!
//! A path names a socket file; on Linux and Android, as in tokio, a path
//! whose first byte is NUL names instead the abstract address of the bytes
//! after it (no file: the name is freed with the last socket bound to it).

use std::fmt;
use std::io;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};

use mio::Interest;

use super::reactor::Direction;
use super::PollEvented;

/// A Unix socket server, listening for connections.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// let dir = std::env::temp_dir().join(format!("wq-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("echo.sock");
/// let _ = std::fs::remove_file(&path);
/// let listener = wq::net::UnixListener::bind(&path).unwrap();
/// let mut client = wq::net::UnixStream::connect(&path).await.unwrap();
/// let (mut server, _) = listener.accept().await.unwrap();
/// client.write_all(b"hi").await.unwrap();
/// let mut buf = [0; 2];
/// server.read_exact(&mut buf).await.unwrap();
/// assert_eq!(&buf, b"hi");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
pub struct UnixListener {
    io: PollEvented<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the socket file at `path` (which must not exist), or on
    /// Linux and Android, to the abstract address named by the bytes after
    /// a leading NUL byte:
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// use std::os::linux::net::SocketAddrExt;
    ///
    /// let name = format!("wq-doc-{}", std::process::id());
    /// let listener = wq::net::UnixListener::bind(format!("\0{name}")).unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// assert_eq!(addr.as_abstract_name(), Some(name.as_bytes()));
    /// let _client = wq::net::UnixStream::connect(format!("\0{name}")).await.unwrap();
    /// let (_server, _) = listener.accept().await.unwrap();
    /// # });
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a path too long for a socket address, or with a
    /// NUL byte other than the leading one of an abstract name; the OS
    /// error binding.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        // Refused as `connect` would refuse it; socket2 then encodes the
        // same address (it too reads a leading NUL as the abstract namespace).
        socket_addr(path)?;
        // With the TCP listener's backlog: a Unix socket refuses a
        // non-blocking connect (`EAGAIN`) once its backlog is full.
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        socket.bind(&socket2::SockAddr::unix(path)?)?;
        socket.listen(super::tcp::LISTEN_BACKLOG)?;
        UnixListener::from_std(socket.into())
    }

    /// Wraps a listener from the standard library (made non-blocking here).
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: PollEvented::new(
                mio::net::UnixListener::from_std(listener),
                Interest::READABLE,
            )?,
        })
    }

    /// Accepts a new connection.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self
            .io
            .op(Direction::Read, |source| source.accept())
            .await?;
        Ok((UnixStream::from_mio(stream)?, addr))
    }

    /// Polls for a new connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (stream, addr) =
            std::task::ready!(self
                .io
                .registration()
                .poll_io(cx, Direction::Read, || self.io.source().accept()))?;
        Poll::Ready(Ok((UnixStream::from_mio(stream)?, addr)))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.source().local_addr()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.source().fmt(f)
    }
}

/// A Unix socket connection, read and written through
/// `futures::io::{AsyncRead, AsyncWrite}`, or `try_read`/`try_write`.
pub struct UnixStream {
    io: PollEvented<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`, or on Linux and Android, to the
    /// abstract address named by the bytes after a leading NUL byte (see
    /// [`UnixListener::bind`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a path too long for a socket address, or with a
    /// NUL byte other than the leading one of an abstract name; the OS
    /// error connecting.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = socket_addr(path.as_ref())?;
        let stream = UnixStream::from_mio(mio::net::UnixStream::connect_addr(&addr)?)?;
        std::future::poll_fn(|cx| stream.io.registration().poll_ready(cx, Direction::Write))
            .await?;
        if let Some(err) = stream.io.source().take_error()? {
            return Err(err);
        }
        Ok(stream)
    }

    /// A pair of connected sockets.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Wraps a connected stream from the standard library (made
    /// non-blocking here).
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::from_mio(mio::net::UnixStream::from_std(stream))
    }

    #[track_caller]
    fn from_mio(stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: PollEvented::new(stream, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.source().local_addr()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.source().peer_addr()
    }
}

super::split::byte_stream!(UnixStream, SocketAddr);
super::as_fd!(UnixListener, UnixStream);

/// The address `path` names: the abstract one of the bytes after a leading
/// NUL byte on Linux and Android, else the socket file's.
fn socket_addr(path: &Path) -> io::Result<SocketAddr> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;

        if let Some(name) = path.as_os_str().as_bytes().strip_prefix(b"\0") {
            return SocketAddr::from_abstract_name(name);
        }
    }
    SocketAddr::from_pathname(path)
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.source().fmt(f)
    }
}

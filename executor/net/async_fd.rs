//! [`AsyncFd`]: readiness of any file descriptor, from the reactor.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::task::{Context, Poll};

use mio::unix::SourceFd;
use mio::Interest;

use super::reactor::{Direction, ReadyEvent, Registration};

/// A file descriptor registered with the runtime's reactor (tokio's
/// `AsyncFd`): wait until it is readable or writable, then do the I/O
/// yourself, non-blocking, through [`AsyncFdReadyGuard::try_io`].
///
/// The descriptor must be in non-blocking mode. It stays registered until
/// the `AsyncFd` is dropped or [`into_inner`](AsyncFd::into_inner) is
/// called; the inner value closes it afterwards (if it owns it).
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// let (mut a, b) = UnixStream::pair().unwrap();
/// b.set_nonblocking(true).unwrap();
/// let fd = wq::io::AsyncFd::new(b).unwrap();
/// a.write_all(b"hi").unwrap();
/// let mut buf = [0; 2];
/// loop {
///     let mut guard = fd.readable().await.unwrap();
///     match guard.try_io(|inner| inner.get_ref().read(&mut buf)) {
///         Ok(result) => break assert_eq!(result.unwrap(), 2),
///         Err(_would_block) => continue,
///     }
/// }
/// # });
/// ```
pub struct AsyncFd<T: AsRawFd> {
    // Dropped (deregistered) before `inner` is handed back or dropped.
    registration: Option<Registration>,
    inner: Option<T>,
}

/// A readiness seen by [`AsyncFd::readable`] or
/// [`writable`](AsyncFd::writable).
pub struct AsyncFdReadyGuard<'a, T: AsRawFd> {
    fd: &'a AsyncFd<T>,
    event: Option<ReadyEvent>,
}

/// The operation given to [`AsyncFdReadyGuard::try_io`] would have
/// blocked; the readiness it was tried on is cleared.
#[derive(Debug)]
pub struct TryIoError(());

impl<T: AsRawFd> AsyncFd<T> {
    /// Registers `inner`'s descriptor for reading and writing.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    #[track_caller]
    pub fn new(inner: T) -> io::Result<AsyncFd<T>> {
        let fd: RawFd = inner.as_raw_fd();
        let registration = super::current_reactor()
            .register(&mut SourceFd(&fd), Interest::READABLE | Interest::WRITABLE)?;
        Ok(AsyncFd {
            registration: Some(registration),
            inner: Some(inner),
        })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until into_inner")
    }

    /// The wrapped value, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until into_inner")
    }

    /// Deregisters the descriptor and returns the wrapped value.
    pub fn into_inner(mut self) -> T {
        self.deregister();
        self.inner.take().expect("present until into_inner")
    }

    /// Waits until the descriptor may be readable. Several tasks may wait
    /// at once: each is woken by the event.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        self.ready(Direction::Read).await
    }

    /// Waits until the descriptor may be writable. Several tasks may wait
    /// at once: each is woken by the event.
    pub async fn writable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        self.ready(Direction::Write).await
    }

    async fn ready(&self, direction: Direction) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        let mut waiting = self.registration().waiting(direction);
        let event = std::future::poll_fn(|cx| waiting.poll_ready(cx)).await?;
        Ok(AsyncFdReadyGuard {
            fd: self,
            event: Some(event),
        })
    }

    /// Polls for read readiness.
    pub fn poll_read_ready(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'_, T>>> {
        self.poll_ready(cx, Direction::Read)
    }

    /// Polls for write readiness.
    pub fn poll_write_ready(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'_, T>>> {
        self.poll_ready(cx, Direction::Write)
    }

    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'_, T>>> {
        let registration = self.registration();
        let event = std::task::ready!(registration.poll_ready_event(cx, direction))?;
        Poll::Ready(Ok(AsyncFdReadyGuard {
            fd: self,
            event: Some(event),
        }))
    }

    fn registration(&self) -> &Registration {
        self.registration
            .as_ref()
            .expect("registered until into_inner")
    }

    fn deregister(&mut self) {
        if let Some(registration) = self.registration.take() {
            if let Some(inner) = &self.inner {
                let fd = inner.as_raw_fd();
                let _ = registration.deregister(&mut SourceFd(&fd));
            }
        }
    }
}

impl<T: AsRawFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd> Drop for AsyncFd<T> {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<'a, T: AsRawFd> AsyncFdReadyGuard<'a, T> {
    /// Forgets the readiness: the next `readable`/`writable` waits for a
    /// new event. Call it after the I/O reported `WouldBlock`.
    pub fn clear_ready(&mut self) {
        if let Some(event) = self.event.take() {
            self.fd.registration().clear(event);
        }
    }

    /// Keeps the readiness for the next wait (the default when the guard
    /// drops).
    pub fn retain_ready(&mut self) {
        self.event = None;
    }

    /// Runs the non-blocking operation `f`; if it reports `WouldBlock`,
    /// clears the readiness and returns `Err(TryIoError)`, so that the
    /// caller waits again.
    pub fn try_io<R>(
        &mut self,
        f: impl FnOnce(&'a AsyncFd<T>) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match f(self.fd) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                self.clear_ready();
                Err(TryIoError(()))
            }
            result => Ok(result),
        }
    }

    /// The `AsyncFd` this guard is for.
    pub fn get_ref(&self) -> &'a AsyncFd<T> {
        self.fd
    }
}

impl<T: AsRawFd> fmt::Debug for AsyncFdReadyGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFdReadyGuard").finish_non_exhaustive()
    }
}

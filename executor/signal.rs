//! Signals: [`ctrl_c`], and on Unix, streams of any signal
//! ([`unix::signal`]), with tokio's names.
//!
//! Signals belong to the process. The first listener of a signal installs
//! its handler (through `signal-hook`'s safe registrations, which chain to
//! any handler already there): the handler sets the signal's `pending` flag
//! and writes a byte to a process-wide pipe, both async-signal-safe. Every
//! listener watches a duplicate of the pipe's read end on its runtime's
//! reactor. Whichever listener wakes first drains the pipe and turns each
//! pending flag into a new *version* of its signal, waking every listener
//! of that signal, whatever runtime it is on. A listener receives once per
//! version it has not seen: deliveries that arrive while nobody looks are
//! coalesced into one, as with tokio.
//!
//! Each listener owns one entry in its signal's list of waiters, from its
//! creation to its drop: a poll puts its waker there (replacing the one of
//! an earlier poll), a new version takes it out to wake it, and the drop
//! removes the entry. The list holds at most one waker per live listener,
//! so a task that stops listening (a dropped `ctrl_c` in a `select!`)
//! leaves nothing behind.

/// Waits for the next Ctrl-C (`SIGINT` on Unix). The first call installs
/// the handler: from then on, `SIGINT` no longer ends the process by
/// itself.
///
/// # Errors
///
/// If the handler cannot be installed.
///
/// # Panics
///
/// Outside a runtime context.
#[cfg(unix)]
pub async fn ctrl_c() -> std::io::Result<()> {
    let mut signal = unix::signal(unix::SignalKind::interrupt())?;
    signal.recv().await;
    Ok(())
}

/// Unix signals as streams (tokio's `tokio::signal::unix`).
#[cfg(unix)]
pub mod unix {
    use std::io::{self, Read};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::task::{Context, Poll, Waker};

    use slab::Slab;

    use crate::io::AsyncFd;

    /// A signal number, with constructors for the usual ones.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SignalKind(i32);

    impl SignalKind {
        /// Any signal by number (`SIGKILL`, `SIGSTOP` and the fault
        /// signals are refused by [`signal`]).
        pub const fn from_raw(signum: i32) -> SignalKind {
            SignalKind(signum)
        }

        /// The signal number.
        pub const fn as_raw_value(&self) -> i32 {
            self.0
        }

        /// `SIGINT`, Ctrl-C.
        pub const fn interrupt() -> SignalKind {
            SignalKind(libc_consts::SIGINT)
        }

        /// `SIGTERM`.
        pub const fn terminate() -> SignalKind {
            SignalKind(libc_consts::SIGTERM)
        }

        /// `SIGHUP`.
        pub const fn hangup() -> SignalKind {
            SignalKind(libc_consts::SIGHUP)
        }

        /// `SIGQUIT`.
        pub const fn quit() -> SignalKind {
            SignalKind(libc_consts::SIGQUIT)
        }

        /// `SIGUSR1`.
        pub const fn user_defined1() -> SignalKind {
            SignalKind(libc_consts::SIGUSR1)
        }

        /// `SIGUSR2`.
        pub const fn user_defined2() -> SignalKind {
            SignalKind(libc_consts::SIGUSR2)
        }

        /// `SIGCHLD`.
        pub const fn child() -> SignalKind {
            SignalKind(libc_consts::SIGCHLD)
        }

        /// `SIGPIPE`.
        pub const fn pipe() -> SignalKind {
            SignalKind(libc_consts::SIGPIPE)
        }

        /// `SIGWINCH`.
        pub const fn window_change() -> SignalKind {
            SignalKind(libc_consts::SIGWINCH)
        }

        /// `SIGALRM`.
        pub const fn alarm() -> SignalKind {
            SignalKind(libc_consts::SIGALRM)
        }
    }

    use signal_hook::consts::signal as libc_consts;

    /// The highest signal number handled.
    const MAX_SIGNAL: usize = 64;

    /// One signal's process-wide state.
    #[derive(Default)]
    struct Slot {
        /// Set by the handler; turned into a new version by a listener.
        pending: Arc<AtomicBool>,
        /// Deliveries seen by listeners (coalesced).
        version: AtomicU64,
        /// The handler is installed.
        installed: OnceLock<Result<(), String>>,
        /// One entry per live listener (its `Signal::waiter`): the waker
        /// of its last poll, taken out when a new version wakes it.
        waiters: Mutex<Slab<Option<Waker>>>,
    }

    impl Slot {
        fn waiters(&self) -> std::sync::MutexGuard<'_, Slab<Option<Waker>>> {
            self.waiters.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    struct Globals {
        /// The handlers' end of the pipe (non-blocking; each handler writes
        /// through a duplicate).
        sender: UnixStream,
        /// The end listeners duplicate and watch.
        receiver: UnixStream,
        slots: Vec<Slot>,
    }

    fn globals() -> io::Result<&'static Globals> {
        static GLOBALS: OnceLock<Result<Globals, String>> = OnceLock::new();
        let globals = GLOBALS.get_or_init(|| {
            let make = || -> io::Result<Globals> {
                let (sender, receiver) = UnixStream::pair()?;
                sender.set_nonblocking(true)?;
                receiver.set_nonblocking(true)?;
                Ok(Globals {
                    sender,
                    receiver,
                    slots: (0..=MAX_SIGNAL).map(|_| Slot::default()).collect(),
                })
            };
            make().map_err(|err| err.to_string())
        });
        globals
            .as_ref()
            .map_err(|err| io::Error::other(format!("wq: cannot set up signal handling: {err}")))
    }

    /// A stream of one signal's deliveries, on the current runtime.
    #[derive(Debug)]
    pub struct Signal {
        signum: usize,
        /// The last version received.
        seen: u64,
        /// This listener's entry in its slot's `waiters`.
        waiter: usize,
        /// This listener's watch on the pipe.
        pipe: AsyncFd<UnixStream>,
    }

    /// Listens for `kind`, installing its handler on first use. Deliveries
    /// from this call on are received; earlier ones are not.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a signal that cannot be handled (`SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`, or out of range), or the
    /// OS error installing it.
    ///
    /// # Panics
    ///
    /// Outside a runtime context.
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let signum = kind.0;
        let index = usize::try_from(signum)
            .ok()
            .filter(|&n| (1..=MAX_SIGNAL).contains(&n))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("signal {signum} is out of range 1..={MAX_SIGNAL}"),
                )
            })?;
        if signal_hook::consts::FORBIDDEN.contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signum} cannot be handled"),
            ));
        }
        let globals = globals()?;
        let slot = &globals.slots[index];
        let installed = slot.installed.get_or_init(|| {
            // The flag first: when the pipe wakes a listener, the flag is set.
            let install = || -> io::Result<()> {
                signal_hook::flag::register(signum, slot.pending.clone())?;
                signal_hook::low_level::pipe::register(signum, globals.sender.try_clone()?)?;
                Ok(())
            };
            install().map_err(|err| err.to_string())
        });
        if let Err(err) = installed {
            return Err(io::Error::other(format!(
                "cannot install a handler for signal {signum}: {err}"
            )));
        }
        let pipe = AsyncFd::new(globals.receiver.try_clone()?)?;
        Ok(Signal {
            signum: index,
            seen: slot.version.load(SeqCst),
            waiter: slot.waiters().insert(None),
            pipe,
        })
    }

    impl Signal {
        /// Waits for the next delivery. Never returns `None` (the stream
        /// does not end), as tokio's.
        pub async fn recv(&mut self) -> Option<()> {
            std::future::poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Polls for the next delivery.
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            let Ok(globals) = globals() else {
                return Poll::Pending;
            };
            let slot = &globals.slots[self.signum];
            loop {
                if self.take_version(slot) {
                    return Poll::Ready(Some(()));
                }
                // Registered before draining: a listener elsewhere that
                // drains the pipe first wakes us through it.
                let replaced = {
                    let mut waiters = slot.waiters();
                    let entry = &mut waiters[self.waiter];
                    match entry {
                        Some(waker) if waker.will_wake(cx.waker()) => None,
                        _ => entry.replace(cx.waker().clone()),
                    }
                };
                // Dropped unlocked: the last reference to a task may drop
                // its future, and with it another listener of this signal.
                drop(replaced);
                if self.take_version(slot) {
                    return Poll::Ready(Some(()));
                }
                match self.pipe.poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Pending,
                    Poll::Ready(Ok(mut guard)) => {
                        let mut buf = [0u8; 64];
                        let drained = guard.try_io(|pipe| {
                            let mut pipe = pipe.get_ref();
                            loop {
                                match pipe.read(&mut buf) {
                                    Ok(0) => return Ok(()),
                                    Ok(_) => continue,
                                    Err(err) => return Err(err),
                                }
                            }
                        });
                        // `WouldBlock` (drained) clears the readiness.
                        drop(drained);
                        dispatch(globals);
                    }
                }
            }
        }

        /// Receives a version not seen yet, if there is one.
        fn take_version(&mut self, slot: &Slot) -> bool {
            let version = slot.version.load(SeqCst);
            if version != self.seen {
                self.seen = version;
                return true;
            }
            false
        }
    }

    impl Drop for Signal {
        fn drop(&mut self) {
            let Ok(globals) = globals() else {
                return;
            };
            let waker = globals.slots[self.signum].waiters().remove(self.waiter);
            // Dropped unlocked, as in `poll_recv`.
            drop(waker);
        }
    }

    /// Turns every pending flag into a new version and wakes that signal's
    /// listeners.
    fn dispatch(globals: &Globals) {
        for slot in &globals.slots {
            if slot.pending.swap(false, SeqCst) {
                slot.version.fetch_add(1, SeqCst);
                // Each entry stays its listener's; only the waker is taken,
                // and woken unlocked.
                let wakers: Vec<Waker> = slot
                    .waiters()
                    .iter_mut()
                    .filter_map(|(_, waker)| waker.take())
                    .collect();
                wakers.into_iter().for_each(Waker::wake);
            }
        }
    }
}

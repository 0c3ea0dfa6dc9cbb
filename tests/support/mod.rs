//! Helpers shared by the integration tests.
#![allow(dead_code, unused_macros)]

pub mod soak;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Counts how many times futures were polled and dropped.
#[derive(Clone, Default)]
pub struct Counters {
    pub polls: Arc<AtomicUsize>,
    pub drops: Arc<AtomicUsize>,
    pub completions: Arc<AtomicUsize>,
}

impl Counters {
    pub fn polls(&self) -> usize {
        self.polls.load(SeqCst)
    }
    pub fn drops(&self) -> usize {
        self.drops.load(SeqCst)
    }
    pub fn completions(&self) -> usize {
        self.completions.load(SeqCst)
    }

    /// Wraps `future` so that its polls, completion and drop are counted.
    pub fn track<F: Future>(&self, future: F) -> Tracked<F> {
        Tracked {
            future: Box::pin(future),
            counters: self.clone(),
        }
    }
}

pub struct Tracked<F> {
    future: Pin<Box<F>>,
    counters: Counters,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.counters.polls.fetch_add(1, SeqCst);
        let out = self.future.as_mut().poll(cx);
        if out.is_ready() {
            self.counters.completions.fetch_add(1, SeqCst);
        }
        out
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.counters.drops.fetch_add(1, SeqCst);
    }
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Threads of this process whose name starts with `prefix` (Linux only;
/// `None` elsewhere).
pub fn threads_named(prefix: &str) -> Option<usize> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    let mut n = 0;
    for entry in dir.flatten() {
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            if comm.trim_end().starts_with(prefix) {
                n += 1;
            }
        }
    }
    Some(n)
}

/// Warnings and errors logged by the runtime, for tests of its reports.
/// One global subscriber per test binary (the runtime logs from its own
/// threads).
pub fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::default());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Capture(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

struct Capture(&'static Mutex<Vec<u8>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends `sent` over `stream` in 1,000-byte pieces while reading the echo
/// back, shuts the write side down, and returns what came back until end
/// of stream.
pub async fn echo_round_trip<S>(stream: S, sent: &[u8]) -> Vec<u8>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    use futures::io::{AsyncReadExt, AsyncWriteExt};

    let (mut reader, mut writer) = AsyncReadExt::split(stream);
    let write = async {
        for piece in sent.chunks(1000) {
            writer.write_all(piece).await.unwrap();
        }
        writer.close().await.unwrap();
    };
    let read = async {
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        received
    };
    futures::join!(write, read).1
}

/// Echoes what `socket` sends until the peer closes its side, then closes
/// its own.
pub async fn echo_connection<S>(mut socket: S)
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    use futures::io::{AsyncReadExt, AsyncWriteExt};

    let mut buf = vec![0; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        if n == 0 {
            socket.close().await.unwrap();
            return;
        }
        socket.write_all(&buf[..n]).await.unwrap();
    }
}

/// Runs every test given to it on a current-thread runtime and on a
/// multi-thread one of two workers (`rt()` builds the runtime of each).
/// Use with `#[macro_use] mod support;`.
macro_rules! on_both_flavors {
    ($($tests:tt)*) => {
        mod current_thread {
            use super::*;

            fn rt() -> wq::Runtime {
                wq::Builder::new_current_thread().build().unwrap()
            }

            $($tests)*
        }

        mod multi_thread {
            use super::*;

            fn rt() -> wq::Runtime {
                wq::Builder::new_multi_thread().worker_threads(2).build().unwrap()
            }

            $($tests)*
        }
    };
}

/// A gate that blocked threads wait on until someone opens it, giving up
/// after a limit (so that a test fails rather than hangs).
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Latch {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Waits until open (true) or `limit` passed (false).
    pub fn wait_at_most(&self, limit: Duration) -> bool {
        let (open, cv) = &*self.0;
        let guard = open.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, limit, |open| !*open).unwrap();
        *guard
    }
}

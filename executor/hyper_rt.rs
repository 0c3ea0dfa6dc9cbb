//! hyper 1.x on wq (feature `hyper`): [`WqExecutor`] spawns hyper's
//! background tasks with [`wq::spawn`](crate::spawn), [`WqTimer`] gives it
//! wq's timers. Connections are wq sockets wrapped in hyper-util's
//! `TokioIo` (the `tokio-io` feature, which `hyper` turns on, gives them
//! tokio's io traits).
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::Bytes;
//! use hyper_util::rt::TokioIo;
//!
//! #[wq::main]
//! async fn main() {
//!     let listener = wq::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//!     loop {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         wq::spawn(async move {
//!             let service = hyper::service::service_fn(|_request| async {
//!                 Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
//!                     Bytes::from_static(b"hello"),
//!                 )))
//!             });
//!             let _ = hyper::server::conn::http1::Builder::new()
//!                 .timer(wq::hyper_rt::WqTimer::new())
//!                 .serve_connection(TokioIo::new(stream), service)
//!                 .await;
//!         });
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::time::driver::{Driver, TimerHandle};
use crate::time::sleep::poll_deadline;

/// hyper's executor on wq: each future is spawned with
/// [`wq::spawn`](crate::spawn), on the runtime current where hyper calls
/// it (a connection's task).
#[derive(Clone, Copy, Debug, Default)]
pub struct WqExecutor;

impl WqExecutor {
    /// The executor (it holds nothing: any runtime current when hyper
    /// spawns is used).
    pub fn new() -> WqExecutor {
        WqExecutor
    }
}

impl<F> hyper::rt::Executor<F> for WqExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        drop(crate::spawn(future));
    }
}

/// hyper's timer on wq: sleeps are [`wq::time::sleep`](crate::time::sleep)s
/// on the runtime current where hyper asks for them.
///
/// hyper asks a connection's timer for a new sleep at every request (the
/// header read timeout). Each sleep must keep its runtime's timers alive,
/// and taking a reference on the runtime's shared count for every sleep
/// made every request move that count's cache line between the workers.
/// So the timer keeps a small handle of its own on the runtime it first
/// serves, and its sleeps take references on that handle, whose count
/// stays with the connection's task. A timer used on another runtime
/// later gets that runtime's timers, as before (without the shortcut).
/// Give each connection its own timer (`WqTimer::new()` where the
/// connection is served, as below) for the shortcut to stay local.
#[derive(Clone, Default)]
pub struct WqTimer {
    home: OnceLock<Arc<Home>>,
}

/// A timer's handle on the runtime whose timers its sleeps use.
struct Home {
    driver: Arc<Driver>,
}

impl fmt::Debug for WqTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WqTimer").finish_non_exhaustive()
    }
}

impl WqTimer {
    /// The timer (it holds nothing until its first sleep: sleeps use the
    /// runtime current where hyper asks for them).
    pub fn new() -> WqTimer {
        WqTimer::default()
    }

    /// The handle on the current runtime's timers.
    ///
    /// # Panics
    ///
    /// Outside a wq runtime context, as [`sleep`](crate::time::sleep).
    #[track_caller]
    fn home(&self) -> Arc<Home> {
        crate::runtime::with_current_time_driver(|current| {
            let Some(current) = current else {
                panic!(
                    "there is no wq runtime current on this thread: timers must be created \
                     from a task, inside `block_on`, or while an `enter` guard is held"
                )
            };
            if let Some(home) = self.home.get() {
                if Arc::ptr_eq(&home.driver, current) {
                    return home.clone();
                }
            }
            let home = Arc::new(Home {
                driver: current.clone(),
            });
            // Kept if this is the first runtime the timer serves.
            let _ = self.home.set(home.clone());
            home
        })
    }

    #[track_caller]
    fn sleep_at(&self, deadline: crate::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(WqSleep {
            deadline,
            home: self.home(),
            entry: None,
        })
    }
}

/// A wq timer as hyper's `Sleep`: `wq::time::Sleep`'s logic
/// (`poll_deadline`) on the timer's handle.
struct WqSleep {
    deadline: crate::time::Instant,
    home: Arc<Home>,
    entry: Option<TimerHandle>,
}

impl Future for WqSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        poll_deadline(&this.home.driver, this.deadline, &mut this.entry, cx)
    }
}

impl Drop for WqSleep {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.home.driver.cancel(entry);
        }
    }
}

impl hyper::rt::Sleep for WqSleep {}

impl hyper::rt::Timer for WqTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_at(crate::time::Instant::now().saturating_add(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_at(crate::time::Instant::from_std(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<WqSleep>() {
            Some(ours) => {
                let ours = ours.get_mut();
                if let Some(entry) = ours.entry.take() {
                    ours.home.driver.cancel(entry);
                }
                ours.deadline = crate::time::Instant::from_std(new_deadline);
            }
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

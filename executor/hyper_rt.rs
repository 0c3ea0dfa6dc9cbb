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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

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
#[derive(Clone, Copy, Debug, Default)]
pub struct WqTimer;

impl WqTimer {
    /// The timer (it holds nothing: sleeps use the current runtime).
    pub fn new() -> WqTimer {
        WqTimer
    }
}

pin_project! {
    /// A wq sleep as hyper's `Sleep`.
    struct WqSleep {
        #[pin]
        inner: crate::time::Sleep,
    }
}

impl Future for WqSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

impl hyper::rt::Sleep for WqSleep {}

impl hyper::rt::Timer for WqTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(WqSleep {
            inner: crate::time::sleep(duration),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(WqSleep {
            inner: crate::time::sleep_until(crate::time::Instant::from_std(deadline)),
        })
    }

    /// The runtime's clock (paused, advanced or resumed as `wq::time`
    /// says), from which hyper computes its deadlines, as hyper-util's
    /// `TokioTimer` gives tokio's.
    fn now(&self) -> Instant {
        crate::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<WqSleep>() {
            Some(ours) => ours
                .project()
                .inner
                .reset(crate::time::Instant::from_std(new_deadline)),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

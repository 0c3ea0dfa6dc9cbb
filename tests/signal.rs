//! Signals: `ctrl_c` and Unix signal streams receive deliveries, every
//! listener of a signal gets each one, even on another runtime, a
//! listener holds only the waker of its last poll and none once dropped,
//! and signals that cannot be handled are refused with an error.
#![cfg(unix)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use nix::sys::signal::{raise, Signal as NixSignal};
use wq::signal::unix::{signal, SignalKind};

/// Two listeners of SIGUSR1, on two runtimes: one `raise` reaches both.
/// A second delivery is received again.
#[test]
fn every_listener_receives_each_delivery() {
    let a = wq::Runtime::new().unwrap();
    let b = wq::Runtime::new().unwrap();
    let mut on_a = a.block_on(async { signal(SignalKind::user_defined1()).unwrap() });
    let mut on_b = b.block_on(async { signal(SignalKind::user_defined1()).unwrap() });
    let waiter_b = b.spawn(async move {
        on_b.recv().await.unwrap();
        on_b
    });
    raise(NixSignal::SIGUSR1).unwrap();
    a.block_on(async {
        on_a.recv().await.unwrap();
    });
    let mut on_b = b.block_on(waiter_b).unwrap();
    raise(NixSignal::SIGUSR1).unwrap();
    a.block_on(on_a.recv()).unwrap();
    b.block_on(on_b.recv()).unwrap();
}

/// A listener does not receive deliveries from before it was created.
#[test]
fn deliveries_before_the_listener_are_not_received() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut first = signal(SignalKind::user_defined2()).unwrap();
        raise(NixSignal::SIGUSR2).unwrap();
        first.recv().await.unwrap();
        // A listener created now has seen nothing pending.
        let mut late = signal(SignalKind::user_defined2()).unwrap();
        let nothing = wq::time::timeout(Duration::from_millis(50), late.recv()).await;
        assert!(
            nothing.is_err(),
            "received a delivery from before it existed"
        );
        raise(NixSignal::SIGUSR2).unwrap();
        late.recv().await.unwrap();
    });
}

/// `ctrl_c` completes on SIGINT (the handler replaces the default action,
/// so the test process survives it).
#[test]
fn ctrl_c_completes_on_sigint() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        // Installs the handler, so that raising SIGINT cannot end the test
        // process before `ctrl_c` has.
        let _installed = signal(SignalKind::interrupt()).unwrap();
        let mut waiter = wq::spawn(wq::signal::ctrl_c());
        // The waiter listens from its first poll on: raise until it has
        // received one.
        for _ in 0..100 {
            raise(NixSignal::SIGINT).unwrap();
            if let Ok(done) = wq::time::timeout(Duration::from_millis(50), &mut waiter).await {
                done.unwrap().unwrap();
                return;
            }
        }
        panic!("ctrl_c never completed");
    });
}

/// SIGKILL and out-of-range numbers are refused with `InvalidInput`.
#[test]
fn unhandleable_signals_are_refused() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        for raw in [9, 19, 0, 1000] {
            let err = signal(SignalKind::from_raw(raw)).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{raw}: {err}");
        }
    });
}

/// A waker that does nothing when woken: whoever holds a clone of it shows
/// in its `Arc`'s strong count.
struct Counted;

impl Wake for Counted {
    fn wake(self: Arc<Self>) {}
}

/// How many of `wakers` something other than the test still holds.
fn held(wakers: &[Arc<Counted>]) -> usize {
    wakers.iter().filter(|w| Arc::strong_count(w) > 1).count()
}

/// `SIGURG`: sent only for out-of-band socket data, so never delivered
/// while these tests run.
fn never_delivered() -> SignalKind {
    SignalKind::from_raw(NixSignal::SIGURG as i32)
}

/// 1,000 listeners and 1,000 `ctrl_c` futures, each polled once with a
/// waker of its own and dropped: none of the 2,000 wakers is still held.
#[test]
fn dropped_listeners_hold_no_wakers() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let wakers: Vec<Arc<Counted>> = (0..2000).map(|_| Arc::new(Counted)).collect();
        for w in &wakers[..1000] {
            let mut listener = signal(never_delivered()).unwrap();
            let waker = Waker::from(w.clone());
            assert!(listener
                .poll_recv(&mut Context::from_waker(&waker))
                .is_pending());
        }
        for w in &wakers[1000..] {
            // Another test may raise SIGINT meanwhile: pending or not, the
            // future is dropped after one poll.
            let mut ctrl_c = Box::pin(wq::signal::ctrl_c());
            let waker = Waker::from(w.clone());
            let _ = ctrl_c.as_mut().poll(&mut Context::from_waker(&waker));
        }
        assert_eq!(held(&wakers), 0, "wakers of dropped listeners still held");
    });
}

/// A listener polled with 100 wakers in turn holds only the last one, and
/// none once dropped.
#[test]
fn a_listener_holds_only_the_waker_of_its_last_poll() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let wakers: Vec<Arc<Counted>> = (0..100).map(|_| Arc::new(Counted)).collect();
        let mut listener = signal(never_delivered()).unwrap();
        for w in &wakers {
            let waker = Waker::from(w.clone());
            assert!(listener
                .poll_recv(&mut Context::from_waker(&waker))
                .is_pending());
        }
        assert_eq!(held(&wakers), 1);
        assert!(
            Arc::strong_count(&wakers[99]) > 1,
            "the last waker is not held"
        );
        drop(listener);
        assert_eq!(held(&wakers), 0);
    });
}

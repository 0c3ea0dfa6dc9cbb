//! Work items and drains at their edges: `cancel_sync` on an item that
//! re-queues itself, `flush` and `cancel_sync` from the item's own run, a run re-queued on a queue that is draining, and
//! `drain` racing chained work.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use futures::channel::oneshot;
use tokio::sync::Semaphore;

/// A `Work` or a `DelayedWork`, for the tests that hold for both.
#[derive(Clone)]
enum Item {
    Work(wq::Work),
    Delayed(wq::DelayedWork),
}

impl Item {
    /// Queues the item (a `DelayedWork` after 1 ms).
    fn queue(&self, queue: &wq::Workqueue) -> bool {
        match self {
            Item::Work(work) => work.queue(queue),
            Item::Delayed(work) => work.queue_after(queue, Duration::from_millis(1)),
        }
    }

    async fn cancel_sync(&self) -> bool {
        match self {
            Item::Work(work) => work.cancel_sync().await,
            Item::Delayed(work) => work.cancel_sync().await,
        }
    }

    fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        match self {
            Item::Work(work) => Box::pin(work.flush()) as Pin<Box<dyn Future<Output = ()> + Send>>,
            Item::Delayed(work) => Box::pin(work.flush()),
        }
    }

    fn is_pending(&self) -> bool {
        match self {
            Item::Work(work) => work.is_pending(),
            Item::Delayed(work) => work.is_pending(),
        }
    }

    fn is_running(&self) -> bool {
        match self {
            Item::Work(work) => work.is_running(),
            Item::Delayed(work) => work.is_running(),
        }
    }
}

/// What a self-re-queueing item records.
#[derive(Default)]
struct Log {
    /// Runs started.
    runs: AtomicUsize,
    /// What each run's own re-queueing returned.
    requeued: Mutex<Vec<bool>>,
}

/// An item (`delayed` or not) whose every run counts itself, waits for a
/// permit of `gate`, re-queues itself on `target` and, if `panics`, then
/// panics.
fn requeueing_item(
    delayed: bool,
    target: wq::Workqueue,
    gate: Arc<Semaphore>,
    panics: bool,
) -> (Item, Arc<Log>) {
    let log = Arc::new(Log::default());
    let me: Arc<OnceLock<Item>> = Arc::new(OnceLock::new());
    let run = {
        let (log, me) = (log.clone(), me.clone());
        move || {
            let (log, me, target, gate) = (log.clone(), me.clone(), target.clone(), gate.clone());
            async move {
                log.runs.fetch_add(1, SeqCst);
                gate.acquire().await.unwrap().forget();
                let requeued = me.get().unwrap().queue(&target);
                log.requeued.lock().unwrap().push(requeued);
                if panics {
                    panic!("the work item's run failed");
                }
            }
        }
    };
    let item = if delayed {
        Item::Delayed(wq::DelayedWork::new(run))
    } else {
        Item::Work(wq::Work::new(run))
    };
    assert!(me.set(item.clone()).is_ok());
    (item, log)
}

/// Waits until `log` counts `n` runs started.
async fn runs_reach(log: &Log, n: usize) {
    while log.runs.load(SeqCst) < n {
        wq::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `cancel_sync` on an item whose run re-queues itself: while the cancel
/// waits for the run, every queueing fails (the run's own and anyone
/// else's), and on return the item is neither pending nor running and
/// does not run again; afterwards it can be queued as before.
async fn cancel_sync_stops_a_self_requeueing_item(delayed: bool) {
    let queue = wq::Workqueue::builder("requeueing").build().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (item, log) = requeueing_item(delayed, queue.clone(), gate.clone(), false);
    assert!(item.queue(&queue));
    runs_reach(&log, 1).await;
    let mut cancel = std::pin::pin!(item.cancel_sync());
    assert!(
        futures::poll!(cancel.as_mut()).is_pending(),
        "cancel_sync returned while a run was in progress"
    );
    assert!(!item.queue(&queue), "queued while a cancel_sync waits");
    gate.add_permits(1);
    assert!(!cancel.await, "nothing was pending");
    let (pending, running) = (item.is_pending(), item.is_running());
    wq::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        (pending, running, log.runs.load(SeqCst)),
        (false, false, 1),
        "after cancel_sync: (pending, running, runs)"
    );
    assert_eq!(
        *log.requeued.lock().unwrap(),
        vec![false],
        "the run re-queued itself during cancel_sync"
    );

    // The cancel is over: the item queues again, and re-queues itself.
    assert!(item.queue(&queue));
    runs_reach(&log, 2).await;
    gate.add_permits(1);
    runs_reach(&log, 3).await;
    assert_eq!(*log.requeued.lock().unwrap(), vec![false, true]);
    let mut cancel = std::pin::pin!(item.cancel_sync());
    assert!(futures::poll!(cancel.as_mut()).is_pending());
    gate.add_permits(1);
    cancel.await;
    assert!(!item.is_pending() && !item.is_running());
    assert_eq!(*log.requeued.lock().unwrap(), vec![false, true, false]);
}

#[wq::test(workers = 2)]
async fn work_cancel_sync_stops_a_self_requeueing_item() {
    cancel_sync_stops_a_self_requeueing_item(false).await;
}

#[wq::test(workers = 2)]
async fn delayed_work_cancel_sync_stops_a_self_requeueing_item() {
    cancel_sync_stops_a_self_requeueing_item(true).await;
}

/// What a run of `waiting_on_itself`'s item did.
#[derive(Debug, PartialEq)]
enum OwnWait {
    /// The wait returned (it must not: the run is still in progress).
    Returned,
    /// It panicked with this message.
    Panicked(String),
}

/// `flush` (or, with `cancel`, `cancel_sync`) awaited from the item's own
/// run would wait for that run forever: it panics, saying so. The first
/// run catches the panic and reports it; the second lets it unwind, and
/// still ends as a run (not running, a flush from outside returns).
async fn waiting_on_itself(delayed: bool, cancel: bool) {
    use futures::FutureExt;
    let queue = wq::Workqueue::builder("own-run").build().unwrap();
    let me: Arc<OnceLock<Item>> = Arc::new(OnceLock::new());
    let reports = Arc::new(Mutex::new(Vec::new()));
    let run = {
        let (me, reports) = (me.clone(), reports.clone());
        move || {
            let (me, reports) = (me.clone(), reports.clone());
            async move {
                let item = me.get().unwrap().clone();
                let wait = async move {
                    if cancel {
                        item.cancel_sync().await;
                    } else {
                        item.flush().await;
                    }
                };
                if !reports.lock().unwrap().is_empty() {
                    // The second run: the panic ends it.
                    wait.await;
                    return;
                }
                let waited = std::panic::AssertUnwindSafe(wait).catch_unwind().await;
                let report = match waited {
                    Ok(()) => OwnWait::Returned,
                    Err(payload) => OwnWait::Panicked(
                        payload
                            .downcast_ref::<String>()
                            .cloned()
                            .unwrap_or_default(),
                    ),
                };
                reports.lock().unwrap().push(report);
            }
        }
    };
    let item = if delayed {
        Item::Delayed(wq::DelayedWork::new(run))
    } else {
        Item::Work(wq::Work::new(run))
    };
    assert!(me.set(item.clone()).is_ok());
    let method = if cancel { "cancel_sync" } else { "flush" };
    for _ in 0..2 {
        assert!(item.queue(&queue));
        // A run's wait on itself, if it were not refused, would hold this
        // flush forever: the timeout turns that into a failure.
        wq::time::timeout(Duration::from_secs(10), item.flush())
            .await
            .unwrap_or_else(|_| panic!("`{method}` from the item's own run never returned"));
        assert!(!item.is_running() && !item.is_pending());
    }
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "the second run reported: {reports:?}");
    match &reports[0] {
        OwnWait::Panicked(message) => assert!(
            message.contains(&format!(
                "`{method}` was awaited from the work item's own run"
            )),
            "unclear panic message: {message}"
        ),
        OwnWait::Returned => panic!("`{method}` returned inside the run it waits for"),
    }
}

#[wq::test(workers = 2)]
async fn work_flush_from_its_own_run_panics() {
    waiting_on_itself(false, false).await;
}

#[wq::test(workers = 2)]
async fn work_cancel_sync_from_its_own_run_panics() {
    waiting_on_itself(false, true).await;
}

#[wq::test(workers = 2)]
async fn delayed_work_flush_from_its_own_run_panics() {
    waiting_on_itself(true, false).await;
}

#[wq::test(workers = 2)]
async fn delayed_work_cancel_sync_from_its_own_run_panics() {
    waiting_on_itself(true, true).await;
}

/// Panics whose message names a draining workqueue, counted by a panic
/// hook installed once for this test binary (no test here panics with
/// such a message on purpose).
fn drain_refusal_panics() -> usize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if message.contains("is draining") {
                PANICS.fetch_add(1, SeqCst);
            }
            previous(info);
        }));
    });
    PANICS.load(SeqCst)
}

/// A run that re-queues its item on another queue, which is draining by
/// the time the run ends: the queue refuses the new run, which is
/// cancelled (the item ends neither pending nor running, its flush and
/// cancel_sync return), with no panic; the drain is not held up by it.
async fn requeue_on_a_draining_queue(panics: bool) {
    let before = drain_refusal_panics();
    let home = wq::Workqueue::builder("home").build().unwrap();
    let draining = wq::Workqueue::builder("drained").build().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (item, log) = requeueing_item(false, draining.clone(), gate.clone(), panics);
    assert!(item.queue(&home));
    runs_reach(&log, 1).await;

    // `draining` stays busy, so its drain lasts.
    let (release, released) = oneshot::channel::<()>();
    let holder = draining.spawn(async move { released.await.unwrap() });
    let drain = wq::spawn(draining.drain());
    gate.add_permits(1);
    wq::time::timeout(Duration::from_secs(10), item.flush())
        .await
        .expect("the flush of the run never returned");
    assert!(!item.is_pending() && !item.is_running());
    assert_eq!(
        *log.requeued.lock().unwrap(),
        vec![true],
        "queued while running: the next run waits for this one"
    );
    assert!(
        !item.cancel_sync().await,
        "the refused run was still pending"
    );
    home.flush().await;

    release.send(()).unwrap();
    holder.await.unwrap();
    drain.await.unwrap();
    assert_eq!(log.runs.load(SeqCst), 1, "the refused run ran");
    assert_eq!(
        drain_refusal_panics(),
        before,
        "a refused re-queue panicked"
    );
}

#[wq::test(workers = 2)]
async fn requeue_on_a_draining_queue_is_cancelled() {
    requeue_on_a_draining_queue(false).await;
}

/// The same when the run panics after re-queueing: the refusal happens
/// while the run's panic unwinds, and must not panic again.
#[wq::test(workers = 2)]
async fn requeue_on_a_draining_queue_by_a_panicking_run_is_cancelled() {
    requeue_on_a_draining_queue(true).await;
}

/// A task of `queue` that spawns a chain of `depth` more, each from the
/// one before.
fn chain(queue: wq::Workqueue, depth: u32) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if depth > 0 {
            let next = queue.clone();
            drop(queue.spawn(chain(next, depth - 1)));
        }
    })
}

/// `drain` returns only once the queue is empty, chained work included:
/// right after it (its future kept, so nothing from outside can be
/// queued), every task queued has finished.
#[wq::test(workers = 2)]
async fn drain_waits_for_chained_work() {
    let queue = wq::Workqueue::builder("chains")
        .max_active(2048)
        .build()
        .unwrap();
    let mut early = Vec::new();
    for round in 0..1000 {
        for _ in 0..8 {
            drop(queue.spawn(chain(queue.clone(), 200)));
        }
        let mut drain = std::pin::pin!(queue.drain());
        std::future::poll_fn(|cx| drain.as_mut().poll(cx)).await;
        let stats = queue.stats();
        if stats.total != stats.completed || stats.active != 0 {
            early.push((round, stats.total - stats.completed, stats.active));
        }
    }
    assert!(
        early.is_empty(),
        "drain returned with tasks in flight (round, not finished, active): {early:?}"
    );
    assert_eq!(queue.stats().total, 1000 * 8 * 201);
}

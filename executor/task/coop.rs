//! Cooperative scheduling: a task's budget of ready leaf futures per poll.
//!
//! A task that loops over futures that are always ready (a socket with data
//! queued, a channel full of messages, a `JoinHandle` of a finished task)
//! never returns `Pending` by itself, and would keep its worker from every
//! other task queued there. As in tokio, each poll of a task starts with a
//! budget of 128 units; wq's own leaf futures (sockets and [`AsyncFd`]
//! readiness, [`JoinHandle`], sleeps and timeouts, [`JoinSet::join_next`])
//! take one unit each time they are ready, and once the budget is spent
//! they return `Pending` after waking their task, which then goes to the
//! back of its worker's queue (a self-wake is treated as a yield, never as
//! the next task to run). The next poll starts with a fresh budget.
//!
//! Futures that are not wq's (a `tokio::sync` channel, whose own budget only
//! works on a tokio runtime, or a `futures` channel) take part through
//! [`cooperative`]; a loop of pure computation through
//! [`consume_budget`]. [`unconstrained`] exempts a future. What the budget
//! does not cover, a poll that simply runs long, the monitor catches: such a
//! worker leaves concurrency management after `cpu_intensive_threshold`.
//!
//! Outside a task (a plain `block_on` future is one too, polled with a
//! budget) there is no budget and nothing is limited.
//!
//! [`AsyncFd`]: crate::io::AsyncFd
//! [`JoinHandle`]: crate::task::JoinHandle
//! [`JoinSet::join_next`]: crate::task::JoinSet::join_next

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

/// Units of budget a task gets at the start of each poll: tokio's.
pub(crate) const BUDGET: u8 = 128;

thread_local! {
    /// The budget of the task being polled on this thread; `None` outside
    /// a task or inside `unconstrained`.
    static CURRENT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` (one poll of a task) with a fresh budget, restoring the
/// previous one after (polls nest: a `block_on` inside a task, a LocalSet).
#[inline]
pub(crate) fn budget<R>(f: impl FnOnce() -> R) -> R {
    with_budget(Some(BUDGET), f)
}

/// Runs `f` exempt from the budget, restoring it after (for the join
/// calls that cannot wait, such as `JoinSet::try_join_next`).
#[inline]
pub(crate) fn without_budget<R>(f: impl FnOnce() -> R) -> R {
    with_budget(None, f)
}

#[inline]
fn with_budget<R>(budget: Option<u8>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CURRENT.try_with(|cell| cell.set(self.0));
        }
    }
    let previous = CURRENT.with(|cell| cell.replace(budget));
    let _restore = Restore(previous);
    f()
}

/// One unit taken from the budget, given back unless the leaf future that
/// took it reports progress (tokio's `RestoreOnPending`).
#[must_use]
pub(crate) struct Unit(Option<u8>);

impl Unit {
    /// The leaf future is ready: the unit stays spent.
    pub(crate) fn made_progress(mut self) {
        self.0 = None;
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some(before) = self.0 {
            let _ = CURRENT.try_with(|cell| {
                if cell.get().is_some() {
                    cell.set(Some(before));
                }
            });
        }
    }
}

/// Takes a unit of budget, or, if the task has spent its budget, wakes it
/// and returns `Pending` (the leaf future must then return `Pending`).
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<Unit> {
    CURRENT.with(|cell| match cell.get() {
        None => Poll::Ready(Unit(None)),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            cell.set(Some(n - 1));
            Poll::Ready(Unit(Some(n)))
        }
    })
}

/// Whether the current task has budget left (always true outside a task
/// and inside [`unconstrained`]).
///
/// ```
/// # wq::Runtime::new().unwrap().block_on(async {
/// assert!(wq::task::coop::has_budget_remaining());
/// # });
/// ```
pub fn has_budget_remaining() -> bool {
    CURRENT.with(|cell| cell.get() != Some(0))
}

/// Takes one unit of the current task's budget, yielding first if it is
/// spent: a loop of computation that calls it lets the worker's other tasks
/// run every 128 iterations, as if it awaited wq's own leaf futures.
///
/// ```
/// # wq::Runtime::new().unwrap().block_on(async {
/// let mut sum = 0u64;
/// for i in 0..1_000 {
///     sum += i;
///     wq::task::consume_budget().await;
/// }
/// assert_eq!(sum, 499_500);
/// # });
/// ```
pub async fn consume_budget() {
    let mut done = false;
    std::future::poll_fn(|cx| {
        if done {
            return Poll::Ready(());
        }
        let unit = ready!(poll_proceed(cx));
        unit.made_progress();
        done = true;
        Poll::Ready(())
    })
    .await
}

pin_project! {
    /// A future that takes part in the budget: see [`cooperative`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Coop<F> {
        #[pin]
        future: F,
    }
}

/// Makes `future` take one unit of the task's budget each time it is
/// ready, and return `Pending` (after waking the task) when the budget is
/// spent, as wq's own leaf futures do: for futures from other crates, such
/// as `tokio::sync` channels, whose own budget only works on tokio's
/// runtime.
///
/// ```
/// # wq::Runtime::new().unwrap().block_on(async {
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// for i in 0..1_000 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// let mut n = 0;
/// // Yields to the worker's other tasks every 128 messages.
/// while let Some(_) = wq::task::coop::cooperative(rx.recv()).await {
///     n += 1;
/// }
/// assert_eq!(n, 1_000);
/// # });
/// ```
pub fn cooperative<F: Future>(future: F) -> Coop<F> {
    Coop { future }
}

impl<F: Future> Future for Coop<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let unit = ready!(poll_proceed(cx));
        let output = ready!(self.project().future.poll(cx));
        unit.made_progress();
        Poll::Ready(output)
    }
}

pin_project! {
    /// A future exempt from the budget: see [`unconstrained`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Unconstrained<F> {
        #[pin]
        future: F,
    }
}

/// Exempts `future` from the budget: the leaf futures it polls never
/// yield for it. A loop over always-ready futures inside it then holds its
/// worker until it ends (the monitor still finds it if it runs longer than
/// `cpu_intensive_threshold`).
///
/// ```
/// # wq::Runtime::new().unwrap().block_on(async {
/// let handles: Vec<_> = (0..200).map(|i| wq::spawn(async move { i })).collect();
/// let sum = wq::task::unconstrained(async move {
///     let mut sum = 0;
///     for handle in handles {
///         sum += handle.await.unwrap();
///     }
///     sum
/// })
/// .await;
/// assert_eq!(sum, 19_900);
/// # });
/// ```
pub fn unconstrained<F: Future>(future: F) -> Unconstrained<F> {
    Unconstrained { future }
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let future = self.project().future;
        with_budget(None, || future.poll(cx))
    }
}

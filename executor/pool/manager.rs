//! Creating workers (the manager role).
//!
//! At most one worker at a time is the pool's manager. A worker woken from
//! the idle list that finds no spare idle worker left takes the role and
//! creates one before it starts working (`may_start_working` in cmwq): so when
//! it later blocks, a spare already waits on the idle list and nothing is
//! created on the blocking path. Culling is done by idle workers themselves
//! (`worker.rs`), using the kernel's rule in `Idle::try_cull`.
//!
//! Creation may fail (`EAGAIN` under `RLIMIT_NPROC` or a memory limit, or a
//! failure injected with `Builder::spawn_worker_with`). The failure is
//! reported through `tracing` at error level, the pool goes on with the
//! workers it has, and no creation is tried again until `create_cooldown`
//! (1 s, the kernel's `CREATE_COOLDOWN`) has passed.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Instant;

use crossbeam_deque::Worker;

use super::park::Parker;
use super::stamp::PollStamp;
use super::worker::{self, WorkerRef, WorkerShared};
use super::Shared;

/// If the pool lacks a spare idle worker and may grow, create one.
pub(super) fn maybe_create_worker(shared: &Arc<Shared>) {
    // A current-thread pool's threads only help a `block_on` thread that
    // serves as its worker (see `Pool::block_on`): none is created while
    // nobody blocks on it.
    if shared.config.current_thread && shared.joined.load(SeqCst) == 0 {
        return;
    }
    if in_cooldown(shared) || !shared.idle.try_become_manager(shared.config.max_workers) {
        return;
    }
    let result = spawn_worker(shared);
    // A failed creation leaves the pool running with the workers it has;
    // the next worker to wake after the cooldown tries again.
    shared.idle.manager_done(result.is_ok());
    if let Err(err) = result {
        creation_failed(shared, &err);
    }
}

/// Whether a creation failed less than `create_cooldown` ago.
fn in_cooldown(shared: &Shared) -> bool {
    let failures = shared.create_failures.lock();
    failures
        .last
        .is_some_and(|last| last.elapsed() < shared.config.create_cooldown)
}

/// Records a failed creation and reports it.
pub(super) fn creation_failed(shared: &Shared, err: &io::Error) {
    let count = {
        let mut failures = shared.create_failures.lock();
        failures.last = Some(Instant::now());
        failures.count += 1;
        failures.count
    };
    tracing::error!(
        error = %err,
        failures = count,
        workers = shared.idle.nr_workers(),
        cooldown = ?shared.config.create_cooldown,
        "wq: could not create a worker thread; the pool goes on with the workers it has \
         and tries again after the cooldown"
    );
}

/// A new worker's queues and shared part, not yet in the pool's list.
pub(super) fn new_worker(shared: &Shared) -> (worker::Queues, WorkerRef) {
    let queues = worker::Queues {
        deque: Worker::new_fifo(),
        lifo: Worker::new_fifo(),
        yielded: Worker::new_fifo(),
    };
    let me = WorkerRef::new(WorkerShared {
        stealer: queues.deque.stealer(),
        lifo_stealer: queues.lifo.stealer(),
        yield_stealer: queues.yielded.stealer(),
        stamp: PollStamp::new(),
        os_tid: OnceLock::new(),
        // Only the pool that drives the timers has an idle worker sleep in
        // the reactor (with the timer role).
        parker: Parker::with_reactor(match &shared.config.reactor {
            Some(reactor) if shared.config.drives_timers => Some(reactor.clone()),
            _ => None,
        }),
        kicked: AtomicBool::new(false),
        activity: worker::Activity::default(),
    });
    (queues, me)
}

/// Creates one worker thread. The caller has reserved its slot in
/// `nr_workers`. The new worker enters the idle list as it starts.
pub(super) fn spawn_worker(shared: &Arc<Shared>) -> io::Result<()> {
    let (queues, me) = new_worker(shared);
    shared.workers.write().push(me.clone());
    *shared.alive.lock() += 1;

    let thread_shared = shared.clone();
    let thread_me = me.clone();
    let hooked = match &shared.config.spawn_hook {
        Some(hook) => hook(),
        None => Ok(()),
    };
    let spawned = hooked.and_then(|()| thread_name(shared)).and_then(|name| {
        let mut builder = thread::Builder::new().name(name);
        if let Some(size) = shared.config.thread_stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(move || worker::main(thread_shared, queues, thread_me))
    });
    match spawned {
        Ok(_detached) => {
            shared.created.fetch_add(1, Relaxed);
            Ok(())
        }
        Err(err) => {
            shared.workers.write().retain(|w| w != &me);
            *shared.alive.lock() -= 1;
            Err(err)
        }
    }
}

/// The new thread's name, from the builder's name or name function. A name
/// the function returns with a NUL byte, or a panic in it, is a creation
/// error naming the setting, not a panic (std's `thread::Builder` panics on
/// such a name).
fn thread_name(shared: &Shared) -> io::Result<String> {
    let name = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (shared.config.thread_name)()
    }))
    .map_err(|_| invalid_thread_name("the function panicked"))?;
    if name.contains('\0') {
        return Err(invalid_thread_name(&format!(
            "it returned {name:?}, which contains a NUL byte"
        )));
    }
    Ok(name)
}

fn invalid_thread_name(reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid wq::Builder setting `thread_name_fn`: {reason}"),
    )
}

//! Creating workers (the manager role).
//!
//! At most one worker at a time is the pool's manager. A worker woken from
//! the idle list that finds no spare idle worker left takes the role and
//! creates one before it starts working (`may_start_working` in cmwq): so when
//! it later blocks, a spare already waits on the idle list and nothing is
//! created on the blocking path. Culling is done by idle workers themselves
//! (`worker.rs`), using the kernel's rule in `Idle::try_cull`.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::thread;

use crossbeam_deque::Worker;

use super::park::Parker;
use super::stamp::PollStamp;
use super::worker::{self, WorkerRef, WorkerShared};
use super::Shared;

/// If the pool lacks a spare idle worker and may grow, create one.
pub(super) fn maybe_create_worker(shared: &Arc<Shared>) {
    if !shared.idle.try_become_manager(shared.config.max_workers) {
        return;
    }
    let created = spawn_worker(shared).is_ok();
    // A failed creation leaves the pool running with the workers it has;
    // the next worker to wake tries again.
    shared.idle.manager_done(created);
}

/// Creates one worker thread. The caller has reserved its slot in
/// `nr_workers`. The new worker enters the idle list as it starts.
pub(super) fn spawn_worker(shared: &Arc<Shared>) -> io::Result<()> {
    let deque = Worker::new_fifo();
    let yielded = Worker::new_fifo();
    let me = WorkerRef::new(WorkerShared {
        stealer: deque.stealer(),
        yield_stealer: yielded.stealer(),
        stamp: PollStamp::new(),
        os_tid: OnceLock::new(),
        parker: Parker::new(),
        kicked: AtomicBool::new(false),
    });
    shared.workers.write().push(me.clone());
    *shared.alive.lock() += 1;

    let mut builder = thread::Builder::new().name((shared.config.thread_name)());
    if let Some(size) = shared.config.thread_stack_size {
        builder = builder.stack_size(size);
    }
    let thread_shared = shared.clone();
    let thread_me = me.clone();
    match builder.spawn(move || worker::main(thread_shared, deque, yielded, thread_me)) {
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

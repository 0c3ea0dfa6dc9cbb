//! The registry of live tasks.
//!
//! Every task is registered from spawn until its future is dropped. Shutdown
//! closes the registry (no task can register after that) and wakes every
//! registered task: a task woken after shutdown is dropped by its schedule
//! function instead of being queued. That is how a task that waits forever
//! (its waker stored nowhere, or only inside itself) is still dropped exactly
//! once when the runtime goes away.
//!
//! The registry is sharded by task id so that spawns on different workers
//! rarely contend on one lock.

use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;

use parking_lot::Mutex;
use slab::Slab;

use super::Id;

pub(crate) struct Registry {
    shards: Box<[Mutex<Shard>]>,
    mask: usize,
    /// Set (Release) by `close` before it takes any waker, read (Acquire) by
    /// every poll: a task polled after shutdown began is cancelled instead,
    /// even if its runnable was already queued when the shutdown woke it
    /// (that wake is then a no-op, and a worker may still run it).
    closed: AtomicBool,
}

struct Shard {
    tasks: Slab<Entry>,
    /// Set once, at shutdown, under every shard's lock in turn.
    closed: bool,
}

struct Entry {
    id: Id,
    meta: SpawnMeta,
    waker: Waker,
}

/// Where and how a task was spawned, for reports.
#[derive(Clone, Debug)]
pub(crate) struct SpawnMeta {
    pub(crate) location: &'static Location<'static>,
    /// The name given with `wq::task::Builder::name`.
    pub(crate) name: Option<Arc<str>>,
}

/// Where a task is registered; kept by the task to unregister itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    shard: usize,
    slot: usize,
}

impl SpawnMeta {
    /// Spawned by the caller (of a `#[track_caller]` chain), unnamed.
    #[track_caller]
    pub(crate) fn here() -> SpawnMeta {
        SpawnMeta {
            location: Location::caller(),
            name: None,
        }
    }
}

impl Registry {
    pub(crate) fn new(parallelism: usize) -> Registry {
        let n = (parallelism * 4).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    tasks: Slab::new(),
                    closed: false,
                })
            })
            .collect();
        Registry {
            shards,
            mask: n - 1,
            closed: AtomicBool::new(false),
        }
    }

    /// Registers a task under `id`. `make` builds the task given its key and
    /// returns it with its waker; it runs under the shard's lock, so that the
    /// check for `closed` and the insertion are one step. Returns `None`
    /// (without calling `make`) once the registry is closed.
    pub(crate) fn insert<R>(
        &self,
        id: Id,
        meta: SpawnMeta,
        make: impl FnOnce(Key) -> (R, Waker),
    ) -> Option<R> {
        let shard_index = id.as_u64() as usize & self.mask;
        let mut shard = self.shards[shard_index].lock();
        if shard.closed {
            return None;
        }
        let entry = shard.tasks.vacant_entry();
        let key = Key {
            shard: shard_index,
            slot: entry.key(),
        };
        let (task, waker) = make(key);
        entry.insert(Entry { id, meta, waker });
        Some(task)
    }

    /// Unregisters a task. Called exactly once per registered task, when its
    /// future is dropped; a no-op after `close` took the entry.
    pub(crate) fn remove(&self, key: Key) {
        let waker = self.shards[key.shard].lock().tasks.try_remove(key.slot);
        // Drop the waker outside the lock: it may be the last reference to
        // the task's allocation.
        drop(waker);
    }

    /// Closes the registry and returns the wakers of every task still alive.
    /// Slots are never reused after this, since nothing can register.
    pub(crate) fn close(&self) -> Vec<Waker> {
        self.closed.store(true, Ordering::Release);
        let mut wakers = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.closed = true;
            wakers.extend(shard.tasks.drain().map(|entry| entry.waker));
        }
        wakers
    }

    /// Where and how the live task `id` was spawned, if it is alive. Scans
    /// one shard: for reports, not for hot paths.
    pub(crate) fn meta_of(&self, id: Id) -> Option<SpawnMeta> {
        let shard = self.shards[id.as_u64() as usize & self.mask].lock();
        shard
            .tasks
            .iter()
            .find(|(_, entry)| entry.id == id)
            .map(|(_, entry)| entry.meta.clone())
    }

    /// Whether `close` has begun: no task may run any more.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// How many tasks are alive (spawned, future not yet dropped).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().tasks.len()).sum()
    }
}

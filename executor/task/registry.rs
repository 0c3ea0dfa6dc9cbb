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
//!
//! It also keeps the flush colours of *counted* tasks (those of the
//! runtime's `system` workqueue, that is of `wq::spawn`): each shard counts
//! its counted tasks per colour under its own lock, which the spawn and the
//! end of the task take anyway, so the count costs them nothing more. A
//! task is counted (and uncounted) in its own shard, so a colour that no
//! new task can take (a closed one) only ever goes down in every shard: a
//! sum read shard by shard that finds zero is exact. The colour a task takes
//! is read under the shard lock, so a flush that stores a new colour and
//! then visits every shard (locking each) either sees the task or the task
//! sees the new colour. The ring and the waiters are the workqueue layer's
//! (`workqueue/colors.rs`).

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;

use parking_lot::Mutex;
use slab::Slab;

use super::stats::QueueId;
use super::Id;

pub(crate) struct Registry {
    shards: Box<[Mutex<Shard>]>,
    mask: usize,
    /// Set (Release) by `close` before it takes any waker, read (Acquire) by
    /// every poll: a task polled after shutdown began is cancelled instead,
    /// even if its runnable was already queued when the shutdown woke it
    /// (that wake is then a no-op, and a worker may still run it).
    closed: AtomicBool,
    /// The colour counted tasks take now (changed only by flushes, under
    /// their queue's lock).
    color: AtomicU64,
    /// Flushes waiting for counted tasks: a task whose shard count of its
    /// colour drops to zero calls `on_drained` while this is not zero.
    waiters: AtomicUsize,
    on_drained: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// Counted tasks' colours in the ring (the workqueue layer's `COLORS`).
#[cfg(not(loom))]
pub(crate) const FLUSH_COLORS: usize = 16;
#[cfg(loom)]
pub(crate) const FLUSH_COLORS: usize = 2;

fn slot(color: u64) -> usize {
    (color % FLUSH_COLORS as u64) as usize
}

struct Shard {
    tasks: Slab<Entry>,
    /// Set once, at shutdown, under every shard's lock in turn.
    closed: bool,
    /// Counted tasks of this shard not finished, by colour.
    in_flight: [u32; FLUSH_COLORS],
    /// Counted tasks ever registered in this shard.
    queued: u64,
}

thread_local! {
    /// The registry of the counted task this thread is polling (its
    /// address), or 0.
    static POLLING_COUNTED: Cell<usize> = const { Cell::new(0) };
}

struct Entry {
    /// The colour of a counted task.
    color: Option<u64>,
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
    /// The workqueue it was spawned on.
    pub(crate) queue: QueueId,
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
            queue: QueueId::SYSTEM,
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
                    in_flight: [0; FLUSH_COLORS],
                    queued: 0,
                })
            })
            .collect();
        Registry {
            shards,
            mask: n - 1,
            closed: AtomicBool::new(false),
            color: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            on_drained: OnceLock::new(),
        }
    }

    /// Registers a task under `id`. `make` builds the task given its key and
    /// returns it with its waker; it runs under the shard's lock, so that the
    /// check for `closed` and the insertion are one step. Returns `None`
    /// (without calling `make`) once the registry is closed. A `counted`
    /// task takes the current flush colour.
    pub(crate) fn insert<R>(
        &self,
        id: Id,
        meta: SpawnMeta,
        counted: bool,
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
        let color = counted.then(|| self.color.load(Ordering::Acquire));
        entry.insert(Entry {
            color,
            id,
            meta,
            waker,
        });
        if let Some(color) = color {
            shard.in_flight[slot(color)] += 1;
            shard.queued += 1;
        }
        Some(task)
    }

    /// Unregisters a task. Called exactly once per registered task, when its
    /// future is dropped; a no-op after `close` took the entry.
    pub(crate) fn remove(&self, key: Key) {
        let (entry, drained) = {
            let mut shard = self.shards[key.shard].lock();
            let entry = shard.tasks.try_remove(key.slot);
            let color = entry.as_ref().and_then(|entry| entry.color);
            (entry, color.is_some_and(|color| shard.uncount(color)))
        };
        // Drop the waker outside the lock: it may be the last reference to
        // the task's allocation.
        drop(entry);
        if drained {
            self.drained();
        }
    }

    /// Wakes the live task `id` registered at `key`; nothing if it has
    /// finished (its slot may hold another task since) or shutdown took
    /// its registration. For aborts, not for hot paths.
    pub(crate) fn wake(&self, key: Key, id: Id) {
        let waker = {
            let shard = self.shards[key.shard].lock();
            let entry = shard.tasks.get(key.slot).filter(|entry| entry.id == id);
            entry.map(|entry| entry.waker.clone())
        };
        // Woken outside the lock: a wake after shutdown drops the task,
        // which unregisters it.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A shard's count of a colour dropped to zero: if a flush waits, tell
    /// it. (The waiter registers before it reads the counts, under their
    /// locks; this reads `waiters` after unlocking: one sees the other.)
    fn drained(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            if let Some(on_drained) = self.on_drained.get() {
                on_drained();
            }
        }
    }

    /// Closes the registry and returns the wakers of every task still alive.
    /// Slots are never reused after this, since nothing can register.
    pub(crate) fn close(&self) -> Vec<Waker> {
        self.closed.store(true, Ordering::Release);
        let mut wakers = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.closed = true;
            // The tasks are cancelled: flushes stop waiting for them now.
            let entries: Vec<Entry> = shard.tasks.drain().collect();
            for entry in entries {
                if let Some(color) = entry.color {
                    shard.uncount(color);
                }
                wakers.push(entry.waker);
            }
        }
        self.drained();
        wakers
    }

    /// Opens `color` for counted tasks (by a flush, under its queue lock).
    pub(crate) fn open_counted_color(&self, color: u64) {
        self.color.store(color, Ordering::Release);
    }

    /// Counted tasks of `color` (modulo the ring) not finished, summed over
    /// the shards (exact for a closed colour, see the module's comment).
    pub(crate) fn counted_in_flight(&self, color: u64) -> u64 {
        let shards = self.shards.iter();
        shards
            .map(|s| u64::from(s.lock().in_flight[slot(color)]))
            .sum()
    }

    /// Counted tasks ever registered, and those not finished.
    pub(crate) fn counted_totals(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(queued, pending), shard| {
            let shard = shard.lock();
            let in_flight: u64 = shard.in_flight.iter().map(|&n| u64::from(n)).sum();
            (queued + shard.queued, pending + in_flight)
        })
    }

    /// Flushes waiting for counted tasks, for `on_drained`.
    pub(crate) fn counted_waiters(&self) -> &AtomicUsize {
        &self.waiters
    }

    /// Sets what a drained colour calls while a flush waits (once; later
    /// calls are ignored).
    pub(crate) fn set_on_drained(&self, on_drained: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_drained.set(on_drained);
    }

    /// Whether this thread is polling a counted task of this registry.
    pub(crate) fn polling_counted(&self) -> bool {
        POLLING_COUNTED.with(Cell::get) == self as *const Registry as usize
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

    /// Every live task's id and spawn details, shard by shard. For reports
    /// (the watchdog's), not for hot paths.
    pub(crate) fn snapshot(&self) -> Vec<(Id, SpawnMeta)> {
        let mut tasks = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            tasks.extend(shard.tasks.iter().map(|(_, e)| (e.id, e.meta.clone())));
        }
        tasks
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

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// Uncounts a task of `color`; true if that leaves none in this shard.
    fn uncount(&mut self, color: u64) -> bool {
        let count = &mut self.in_flight[slot(color)];
        *count -= 1;
        *count == 0
    }
}

/// Marks the thread as polling a counted task of `registry` until dropped
/// (for `drain`: its spawns are chained work).
pub(crate) struct PollingCounted(usize);

impl PollingCounted {
    pub(crate) fn enter(registry: &Registry) -> PollingCounted {
        let address = registry as *const Registry as usize;
        PollingCounted(POLLING_COUNTED.with(|c| c.replace(address)))
    }
}

impl Drop for PollingCounted {
    fn drop(&mut self) {
        POLLING_COUNTED.with(|c| c.set(self.0));
    }
}

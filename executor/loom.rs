//! The synchronization primitives the executor is built on, swapped for
//! loom's under `cfg(loom)` so the concurrency protocols can be model-checked.
//!
//! Everything in `pool/` that takes part in the park/kick protocol uses these
//! names instead of `std::sync` or `parking_lot` directly.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic;

    use std::time::Duration;

    /// A mutex with `parking_lot`'s API (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable that takes and returns the guard by value, the
    /// shape both `parking_lot` and loom can provide.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Returns the guard and whether the wait timed out.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            let timed_out = self.0.wait_for(&mut guard, timeout).timed_out();
            (guard, timed_out)
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// A pair of fences that together order like two `SeqCst` fences (in a
    /// store-then-load pattern on two threads, at least one of the loads
    /// sees the other thread's store), where the side that runs often pays
    /// only a compiler fence and the rare side a process-wide barrier: the
    /// Linux `membarrier` system call (`MEMBARRIER_CMD_PRIVATE_EXPEDITED`),
    /// which makes every running thread of the process execute a full
    /// memory barrier. Where it is not available (other systems, kernels
    /// before 4.14, a seccomp filter) both sides are `SeqCst` fences.
    pub(crate) mod barrier {
        use std::sync::atomic::{
            compiler_fence, fence, AtomicBool, Ordering::Relaxed, Ordering::SeqCst,
        };
        #[cfg(target_os = "linux")]
        use std::sync::OnceLock;

        /// Whether `membarrier` is registered for this process. Set once,
        /// by `init`, before any thread that calls `light` relies on it.
        static MEMBARRIER: AtomicBool = AtomicBool::new(false);

        /// Chooses the strategy (registering the process for `membarrier`
        /// if it can). Call it before starting the threads that use the
        /// barriers: a `light` that does not see the choice yet is a full
        /// fence, which pairs with either `heavy`.
        pub(crate) fn init() -> bool {
            #[cfg(target_os = "linux")]
            {
                use rustix::thread::{membarrier, membarrier_query, MembarrierCommand as Cmd};
                static CHOSEN: OnceLock<bool> = OnceLock::new();
                *CHOSEN.get_or_init(|| {
                    let supported = membarrier_query();
                    let registered = supported.contains_command(Cmd::PrivateExpedited)
                        && supported.contains_command(Cmd::RegisterPrivateExpedited)
                        && membarrier(Cmd::RegisterPrivateExpedited).is_ok();
                    MEMBARRIER.store(registered, Relaxed);
                    registered
                })
            }
            #[cfg(not(target_os = "linux"))]
            false
        }

        /// The frequent side.
        #[inline]
        pub(crate) fn light() {
            if MEMBARRIER.load(Relaxed) {
                compiler_fence(SeqCst);
            } else {
                fence(SeqCst);
            }
        }

        /// The rare side: a system call, a few microseconds.
        pub(crate) fn heavy() {
            #[cfg(target_os = "linux")]
            if init() {
                use rustix::thread::{membarrier, MembarrierCommand as Cmd};
                // It fails only for an unregistered process, and `init`
                // registered this one.
                membarrier(Cmd::PrivateExpedited).expect(
                    "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration",
                );
                return;
            }
            fence(SeqCst);
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic;

    use std::time::Duration;

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap()
        }

        /// loom has no clock: a timed wait is an untimed one, and never
        /// reports a timeout.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _timeout: Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            (self.wait(guard), false)
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// `SeqCst` fences on both sides: what the asymmetric pair guarantees.
    pub(crate) mod barrier {
        use loom::sync::atomic::{fence, Ordering::SeqCst};

        pub(crate) fn init() -> bool {
            false
        }

        pub(crate) fn light() {
            fence(SeqCst);
        }

        pub(crate) fn heavy() {
            fence(SeqCst);
        }
    }
}

pub(crate) use imp::*;

/// A loom model checker bounded to `preemption_bound` preemptions (the
/// larger models need a bound to finish); `LOOM_MAX_PREEMPTIONS` overrides
/// it.
#[cfg(all(test, loom))]
pub(crate) fn bounded_model(preemption_bound: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemption_bound);
    }
    builder
}

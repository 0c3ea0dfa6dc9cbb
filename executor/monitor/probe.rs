//! Looking at another thread from outside: how much CPU time it has used,
//! and whether the scheduler considers it runnable.
//!
//! Linux only. The CPU time comes from the thread's CPU clock
//! (`clock_gettime` on the clock id `pthread_getcpuclockid` would return,
//! ~0.4 us: the kernel brings a running thread's figure up to date on the
//! read, unlike `/proc/.../schedstat`, which lags by up to a scheduler
//! tick). The run state comes from `/proc/self/task/TID/stat` through a
//! kept-open file (~3.5 us), read only to tell a preempted thread (runnable,
//! waiting for a CPU) from a sleeping one. Its count of voluntary context
//! switches (times it slept) comes from `/proc/self/task/TID/status`,
//! likewise kept open (~4 us), read for polls seen at several ticks only.
//! Elsewhere a probe cannot be made, and the monitor judges by stuck-poll
//! time alone.

use std::time::Duration;

/// What the monitor can learn about one worker thread.
#[derive(Debug)]
pub(crate) struct Probe {
    #[cfg(target_os = "linux")]
    clock: nix::time::ClockId,
    #[cfg(target_os = "linux")]
    stat: Option<std::fs::File>,
    #[cfg(target_os = "linux")]
    status: Option<std::fs::File>,
}

impl Probe {
    /// A probe of the thread `tid` of this process, or `None` if the
    /// platform offers none (or the thread is gone).
    #[cfg(target_os = "linux")]
    pub(crate) fn new(tid: i32) -> Option<Probe> {
        // The kernel's encoding of a per-thread CPU clock id
        // (include/linux/posix-timers_types.h): `~tid << 3`, with
        // CPUCLOCK_PERTHREAD_MASK (4) and CPUCLOCK_SCHED (2). glibc's
        // `pthread_getcpuclockid` builds the same value.
        let clock = nix::time::ClockId::from_raw(((!tid) << 3) | 4 | 2);
        nix::time::clock_gettime(clock).ok()?;
        let stat = std::fs::File::open(format!("/proc/self/task/{tid}/stat")).ok();
        let status = std::fs::File::open(format!("/proc/self/task/{tid}/status")).ok();
        Some(Probe {
            clock,
            stat,
            status,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new(_tid: i32) -> Option<Probe> {
        None
    }

    /// CPU time the thread has used so far, or `None` if it is gone.
    #[cfg(target_os = "linux")]
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        nix::time::clock_gettime(self.clock)
            .ok()
            .map(Duration::from)
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        None
    }

    /// Whether the thread is running or waiting for a CPU (state `R`), as
    /// opposed to sleeping. `None` if that cannot be read.
    #[cfg(target_os = "linux")]
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        use std::os::unix::fs::FileExt;

        let file = self.stat.as_ref()?;
        let mut buf = [0u8; 512];
        let n = file.read_at(&mut buf, 0).ok()?;
        run_state(&buf[..n]).map(|state| state == b'R')
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        None
    }

    /// How many times the thread has slept (its voluntary context
    /// switches: a yield or a preemption is not one). `None` if that
    /// cannot be read.
    #[cfg(target_os = "linux")]
    pub(crate) fn sleeps(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;

        let file = self.status.as_ref()?;
        let mut buf = [0u8; 4096];
        let n = file.read_at(&mut buf, 0).ok()?;
        voluntary_switches(&buf[..n])
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn sleeps(&self) -> Option<u64> {
        None
    }
}

/// The `voluntary_ctxt_switches` field of a `/proc/.../status` file.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn voluntary_switches(status: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = b"voluntary_ctxt_switches:";
    let value = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(FIELD))?
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit());
    let mut n: Option<u64> = None;
    for &digit in value {
        n = Some(
            n.unwrap_or(0)
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?,
        );
    }
    n
}

/// The state letter of a `/proc/.../stat` line: `pid (comm) S ...`. The
/// command name may itself contain `)` or spaces, so the last `)` ends it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn run_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_state_survives_odd_thread_names() {
        assert_eq!(run_state(b"12 (wq-worker) S 1 2 3"), Some(b'S'));
        assert_eq!(run_state(b"12 (a) b) R 1 2 3"), Some(b'R'));
        assert_eq!(run_state(b"12 (x y)  D 1"), Some(b'D'));
        assert_eq!(run_state(b"garbage"), None);
    }

    #[test]
    fn voluntary_switches_are_read_from_their_own_line() {
        let status = b"Name:\twq-worker\nvoluntary_ctxt_switches:\t1234\n\
                       nonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(voluntary_switches(status), Some(1234));
        let reordered = b"nonvoluntary_ctxt_switches:\t56\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(voluntary_switches(reordered), Some(7));
        assert_eq!(
            voluntary_switches(b"nonvoluntary_ctxt_switches:\t56\n"),
            None
        );
        assert_eq!(voluntary_switches(b"voluntary_ctxt_switches:\t\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn probe_sees_cpu_time_and_sleep() {
        use std::sync::mpsc;
        use std::time::Instant;

        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            // Spin for 30 ms of wall time, then sleep until told to end.
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
            go_rx.recv().unwrap();
        });
        let probe = Probe::new(tid_rx.recv().unwrap()).expect("a probe on Linux");
        // The thread spun, then sleeps in recv: eventually its CPU time
        // stops moving and it is not runnable.
        let mut last = probe.cpu_time().unwrap();
        let mut settled = false;
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(10));
            let now = probe.cpu_time().unwrap();
            if now == last && probe.is_runnable() == Some(false) {
                settled = true;
                break;
            }
            last = now;
        }
        assert!(settled, "a thread asleep in recv must look asleep");
        let sleeps = probe.sleeps().expect("a status file on Linux");
        assert!(sleeps >= 1, "it slept in recv");
        assert!(last > Duration::ZERO);
        go_tx.send(()).unwrap();
        thread.join().unwrap();
    }
}

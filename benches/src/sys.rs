//! Figures from the operating system: CPU time of the process or of one
//! thread, resident memory, and the names of the process's threads.

use std::fs;
use std::io;
use std::time::Duration;

/// CPU time (user + system) consumed so far by the whole process, all
/// threads together.
pub fn process_cpu_time() -> Duration {
    cpu_times(libc::RUSAGE_SELF).total()
}

/// User and system CPU time, as `getrusage` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on the threads' behalf.
    pub system: Duration,
}

impl CpuTimes {
    /// User and system time together.
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// CPU time used so far by this process (`RUSAGE_SELF`) or by its
/// children that have been waited for (`RUSAGE_CHILDREN`).
pub fn cpu_times(who: libc::c_int) -> CpuTimes {
    // SAFETY: `rusage` is plain old data, for which all-zero bytes are a
    // valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` that outlives the call.
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(
        rc,
        0,
        "getrusage({who}) failed: {}",
        io::Error::last_os_error()
    );
    CpuTimes {
        user: timeval(usage.ru_utime),
        system: timeval(usage.ru_stime),
    }
}

/// CPU time (user + system) consumed so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: `timespec` is plain old data, for which all-zero bytes are a
    // valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(
        rc,
        0,
        "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: {}",
        io::Error::last_os_error()
    );
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros.into())
}

/// Resident set size of the process, in bytes, from `/proc/self/statm`
/// (resident pages times the page size).
pub fn resident_bytes() -> io::Result<u64> {
    let statm = fs::read_to_string("/proc/self/statm")?;
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/self/statm: {statm:?}")))?;
    Ok(resident * page_size())
}

fn page_size() -> u64 {
    // SAFETY: `sysconf` only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// The names of the process's threads (`/proc/self/task/*/comm`). A thread
/// that exits while they are read is skipped.
pub fn thread_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for task in fs::read_dir("/proc/self/task")? {
        let Ok(task) = task else { continue };
        if let Ok(name) = fs::read_to_string(task.path().join("comm")) {
            names.push(name.trim_end().to_owned());
        }
    }
    Ok(names)
}

/// Hands memory the allocator has cached but no longer uses back to the
/// operating system, so that a following RSS reading starts from what is
/// really in use. Does nothing where the allocator offers no such call.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of glibc's allocator,
    // which is the global allocator of this program.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_process_figures() {
        let before = process_cpu_time();
        let mut x = 0_u64;
        for i in 0..2_000_000_u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(process_cpu_time() >= before);
        assert!(thread_cpu_time() > Duration::ZERO);
        assert!(resident_bytes().unwrap() > 0);
        assert!(!thread_names().unwrap().is_empty());
        release_free_memory();
    }
}

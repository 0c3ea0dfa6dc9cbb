//! A soak's sampler: the process's resident set and thread count, read
//! every second from `/proc/self` on a thread of its own, and the check
//! that neither grew over the soak.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One reading.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub at: f64,
    pub rss_kib: u64,
    pub threads: usize,
}

/// Samples every second until dropped or [`finish`](Sampler::finish)ed.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling (Linux: elsewhere nothing is read).
    pub fn start() -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::Builder::new()
                .name("soak-sampler".into())
                .spawn(move || {
                    let start = Instant::now();
                    let mut next = start;
                    while !stop.load(SeqCst) {
                        if let Some(sample) = read(start) {
                            samples.lock().unwrap().push(sample);
                        }
                        next += Duration::from_secs(1);
                        while !stop.load(SeqCst) && Instant::now() < next {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
                .unwrap()
        };
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the samples.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

fn read(start: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let threads = std::fs::read_dir("/proc/self/task").ok()?.count();
    Some(Sample {
        at: start.elapsed().as_secs_f64(),
        rss_kib,
        threads,
    })
}

/// Per-minute figures of a soak: a table (minute, samples, RSS min /
/// median / max in MiB, threads min / median / max), the samples as CSV,
/// and whether RSS and threads stayed flat: over whole minutes (at least 30
/// samples), the last minute's median RSS is
/// at most the second minute's (the first is warm-up: the allocator's
/// arenas and caches fill) times 1.10 plus 8 MiB, and the last minute's
/// most threads at most the second minute's most plus 2 (threads come and
/// go with the runtimes each run builds, up to their `max_workers`).
pub struct Report {
    pub table: String,
    pub csv: String,
    pub flat: Result<(), String>,
}

pub fn report(samples: &[Sample]) -> Report {
    let mut minutes: Vec<Vec<Sample>> = Vec::new();
    for sample in samples {
        let minute = (sample.at / 60.0) as usize;
        if minutes.len() <= minute {
            minutes.resize(minute + 1, Vec::new());
        }
        minutes[minute].push(*sample);
    }
    minutes.retain(|m| !m.is_empty());
    let mut table = String::from(
        "| minute | samples | RSS min | RSS median | RSS max | threads min | threads median | threads max |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let stats: Vec<(u64, u64, u64, usize, usize, usize)> = minutes
        .iter()
        .map(|m| {
            let mut rss: Vec<u64> = m.iter().map(|s| s.rss_kib).collect();
            let mut threads: Vec<usize> = m.iter().map(|s| s.threads).collect();
            rss.sort_unstable();
            threads.sort_unstable();
            (
                rss[0],
                rss[rss.len() / 2],
                rss[rss.len() - 1],
                threads[0],
                threads[threads.len() / 2],
                threads[threads.len() - 1],
            )
        })
        .collect();
    for (i, (m, s)) in minutes.iter().zip(&stats).enumerate() {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let _ = writeln!(
            table,
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | {} | {} |",
            i + 1,
            m.len(),
            mib(s.0),
            mib(s.1),
            mib(s.2),
            s.3,
            s.4,
            s.5
        );
    }
    let mut csv = String::from("seconds,rss_kib,threads\n");
    for sample in samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{}",
            sample.at, sample.rss_kib, sample.threads
        );
    }
    // Judged on whole minutes: a last one cut short by the deadline has too
    // few samples to say anything.
    let whole: Vec<_> = minutes
        .iter()
        .zip(&stats)
        .filter(|(m, _)| m.len() >= 30)
        .map(|(_, s)| *s)
        .collect();
    let flat = match (whole.get(1), whole.last()) {
        (Some(second), Some(last)) if whole.len() >= 3 => {
            let rss_limit = second.1 as f64 * 1.10 + 8.0 * 1024.0;
            if last.1 as f64 > rss_limit {
                Err(format!(
                    "RSS grew: median {} KiB in the last minute against {} KiB in the second",
                    last.1, second.1
                ))
            } else if last.5 > second.5 + 2 {
                Err(format!(
                    "threads grew: at most {} in the last minute against {} in the second",
                    last.5, second.5
                ))
            } else {
                Ok(())
            }
        }
        _ => Err("a soak needs at least 3 minutes of samples to judge".into()),
    };
    Report { table, csv, flat }
}

//! wq's point in one run: tasks that call blocking code (sleeps, file I/O)
//! next to latency-sensitive tasks, on two workers.
//!
//! A probe thread spawns a tiny task every 2 ms and records how long each
//! waited between spawn and its first poll. Meanwhile four tasks block for
//! 100 ms at a time. The run is done three times:
//!
//! 1. the blocking calls are wrapped in `wq::blocking`: each blocked worker
//!    leaves the running count at once and an idle worker takes its place,
//!    so probes keep running within microseconds;
//! 2. the same calls without any annotation: wq's monitor finds each blocked
//!    worker within about a millisecond and does the same;
//! 3. no annotation and the monitor disabled: the blocked workers still
//!    count as running, so probes wait behind them (as on any fixed pool).
//!
//! Run with `cargo run --release --example blocking`.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BLOCKERS: usize = 4;
const BLOCKS_PER_TASK: usize = 3;
const BLOCK_FOR: Duration = Duration::from_millis(100);
const PROBE_EVERY: Duration = Duration::from_millis(2);

fn main() -> std::io::Result<()> {
    println!(
        "{BLOCKERS} tasks block {BLOCKS_PER_TASK} x {} ms each (sleep + file I/O) on 2 workers;\n\
         probes are spawned every {} ms and we measure how long they wait to run.\n",
        BLOCK_FOR.as_millis(),
        PROBE_EVERY.as_millis()
    );
    let annotated = run(true, true)?;
    let detected = run(false, true)?;
    let fixed = run(false, false)?;
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>8}",
        "", "p50", "p99", "max", "probes"
    );
    print_row("with wq::blocking", &annotated);
    print_row("unannotated, found by the monitor", &detected);
    print_row("unannotated, monitor off", &fixed);
    Ok(())
}

fn run(annotate: bool, monitor: bool) -> std::io::Result<Vec<Duration>> {
    let rt = wq::Builder::new().workers(2).monitor(monitor).build()?;
    let waits = Arc::new(Mutex::new(Vec::new()));
    let dir = std::env::temp_dir();

    let blockers: Vec<_> = (0..BLOCKERS)
        .map(|i| {
            let path = dir.join(format!("wq-example-{}-{i}", std::process::id()));
            rt.spawn(async move {
                for _ in 0..BLOCKS_PER_TASK {
                    let work = || blocking_work(&path);
                    if annotate {
                        wq::blocking(work)?;
                    } else {
                        work()?;
                    }
                    wq::task::yield_now().await;
                }
                std::fs::remove_file(&path)
            })
        })
        .collect();

    // Probe from a plain thread, so the probes' spawn times are not
    // themselves delayed by the pool.
    let handle = rt.handle().clone();
    let probe_waits = waits.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe_done = done.clone();
    let prober = std::thread::spawn(move || {
        while !probe_done.load(std::sync::atomic::Ordering::Relaxed) {
            let spawned = Instant::now();
            let waits = probe_waits.clone();
            drop(handle.spawn(async move {
                waits.lock().unwrap().push(spawned.elapsed());
            }));
            std::thread::sleep(PROBE_EVERY);
        }
    });

    rt.block_on(async {
        for blocker in blockers {
            blocker.await.expect("blocker panicked")?;
        }
        Ok::<(), std::io::Error>(())
    })?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    prober.join().expect("probe thread panicked");
    drop(rt);
    let waits = Arc::try_unwrap(waits).unwrap().into_inner().unwrap();
    Ok(waits)
}

/// 100 ms of blocking: a file write, a read back, and a sleep.
fn blocking_work(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::create(path)?.write_all(&[7u8; 64 * 1024])?;
    let mut buf = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    assert_eq!(buf.len(), 64 * 1024);
    std::thread::sleep(BLOCK_FOR);
    Ok(())
}

fn print_row(label: &str, waits: &[Duration]) {
    let mut sorted = waits.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "{label:<34} {:>10} {:>10} {:>10} {:>8}",
        fmt(at(0.5)),
        fmt(at(0.99)),
        fmt(*sorted.last().unwrap()),
        sorted.len()
    );
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} us", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

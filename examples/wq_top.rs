//! A live view of a runtime's workqueues and pools, like the kernel's
//! `tools/workqueue/wq_monitor.py`: every second, one row per workqueue
//! with the figures of the last second (`total`, `CPUtime`, `CPUitsv`,
//! `CMW`, `mayday`, `rescued` as deltas; `infl` as it is now), and one row
//! per pool.
//!
//! It watches a runtime in its own process, here running a demo load: a
//! queue of short tasks, one whose tasks block without saying so, one
//! whose tasks block inside `wq::blocking`, and one that runs a CPU hog now
//! and then.
//!
//! ```sh
//! cargo run --release --example wq_top            # the table, for 10 s
//! cargo run --release --example wq_top -- 30      # for 30 s
//! cargo run --release --example wq_top -- --json  # one JSON dump a second
//! ```

use std::time::{Duration, Instant};

use wq::{RuntimeMetrics, WorkqueueStats};

fn main() {
    let mut seconds = 10;
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            n => match n.parse() {
                Ok(n) => seconds = n,
                Err(_) => {
                    eprintln!("usage: wq_top [SECONDS] [--json]; got `{n}`");
                    std::process::exit(2);
                }
            },
        }
    }
    let rt = wq::Builder::new().workers(2).build().expect("runtime");
    let metrics = rt.handle().metrics();
    rt.spawn(demo_load());
    let mut previous: Vec<(String, WorkqueueStats)> = Vec::new();
    let start = Instant::now();
    for _ in 0..seconds {
        std::thread::sleep(Duration::from_secs(1));
        if json {
            println!("{}", metrics.to_json());
        } else {
            previous = print_table(&metrics, &previous, start.elapsed());
        }
    }
}

/// Prints one table; returns the figures it printed, for the next deltas.
fn print_table(
    metrics: &RuntimeMetrics,
    previous: &[(String, WorkqueueStats)],
    elapsed: Duration,
) -> Vec<(String, WorkqueueStats)> {
    println!("\n{:.0?}", elapsed);
    println!(
        "{:<16} {:>8} {:>6} {:>9} {:>7} {:>6} {:>6} {:>7}",
        "workqueue", "total", "infl", "CPUtime", "CPUitsv", "CMW", "mayday", "rescued"
    );
    let now: Vec<(String, WorkqueueStats)> = metrics
        .workqueues()
        .into_iter()
        .map(|q| (q.name, q.stats))
        .collect();
    for (name, stats) in &now {
        let before = previous.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        let delta =
            |now: u64, then: fn(&WorkqueueStats) -> u64| now - before.as_ref().map_or(0, then);
        let cpu = stats.cpu_time - before.map_or(Duration::ZERO, |s| s.cpu_time);
        println!(
            "{:<16} {:>8} {:>6} {:>8.1}ms {:>7} {:>6} {:>6} {:>7}",
            name,
            delta(stats.total, |s| s.total),
            stats.active,
            cpu.as_secs_f64() * 1e3,
            delta(stats.cpu_intensive, |s| s.cpu_intensive),
            delta(stats.cm_wakeups, |s| s.cm_wakeups),
            delta(stats.mayday, |s| s.mayday),
            delta(stats.rescued, |s| s.rescued),
        );
    }
    println!(
        "{:<16} {:>8} {:>6} {:>8} {:>8} {:>7} {:>8} {:>7}",
        "pool", "workers", "idle", "running", "blocked", "hogging", "created", "culled"
    );
    for pool in metrics.pools() {
        println!(
            "{:<16} {:>8} {:>6} {:>8} {:>8} {:>7} {:>8} {:>7}",
            pool.label,
            pool.workers,
            pool.idle,
            pool.running,
            pool.blocked,
            pool.cpu_intensive,
            pool.threads_created,
            pool.threads_culled
        );
    }
    now
}

/// The demo: four queues with different habits, forever.
async fn demo_load() {
    let short = wq::Workqueue::builder("short").build().unwrap();
    let sleepy = wq::Workqueue::builder("sleepy").build().unwrap();
    let annotated = wq::Workqueue::builder("annotated")
        .max_active(4)
        .build()
        .unwrap();
    let hogs = wq::Workqueue::builder("hogs").build().unwrap();
    let mut round = 0u64;
    loop {
        for i in 0..200u64 {
            short.spawn(async move { std::hint::black_box(i * i) });
        }
        // Blocks without saying so: the monitor finds it.
        sleepy.spawn(async { std::thread::sleep(Duration::from_millis(20)) });
        annotated.spawn(async { wq::blocking(|| std::thread::sleep(Duration::from_millis(30))) });
        if round.is_multiple_of(20) {
            // 50 ms of spinning in one poll: a CPU hog, reported and counted.
            hogs.spawn(async {
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(50) {
                    std::hint::spin_loop();
                }
            });
        }
        round += 1;
        wq::time::sleep(Duration::from_millis(50)).await;
    }
}

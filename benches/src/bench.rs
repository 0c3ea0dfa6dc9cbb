//! `bench`: compares wq with tokio's multi-thread runtime, side by side.
//!
//! Every figure is a ratio taken within one run: for each workload both
//! runtimes (same worker count) are built once, warmed up, and sampled in
//! alternating pairs; the report gives each runtime's median time and the
//! median of the per-pair wq/tokio ratios (below 1.0, wq is faster). Idle
//! cost and memory are instead measured once per runtime, `hog` and
//! `rescue` on a fresh runtime per run, `http_hello*` in rounds of load
//! against a hyper server on each runtime, and `redis_kv` in rounds of
//! `redis-benchmark` against the `redis_kv` example's server on each. The
//! `monitor_cost/*` entries pair wq with its monitor against wq without,
//! the same way.

mod blocking;
mod footprint;
mod harness;
mod http;
mod machine;
mod redis;
mod report;
mod rescue;
mod rt;
mod stats;
mod suite;
mod sys;
mod tools;
mod topology;
mod workloads;

use std::fs;
use std::io::{self, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use harness::Config;
use machine::Machine;
use report::{
    HogReport, HttpBlockingReport, HttpReport, IdleReport, MemoryReport, MonitorCostReport, Report,
    RescueReport, RunInfo, WorkloadReport,
};
use suite::Entry;
use workloads::{Kind, Workload};

const USAGE: &str = "\
Usage: bench [OPTIONS]

Compares wq with tokio's multi-thread runtime on the same workloads, and
wq with its monitor against wq without (monitor_cost/*).

Options:
  --workers N        worker threads of each runtime (default: available CPUs)
  --samples K        measured pairs per scheduler workload (default: 16)
  --seed-samples K   measured pairs per seed round trip workload (default: 10)
  --timer-samples K  measured pairs per timer and blocking workload, and runs
                     per rescue variant (default: 10)
  --idle-secs N      seconds each runtime is left idle by idle_cost (default: 10)
  --http-secs N      seconds of each load run of http_hello* (default: 10)
  --http-rounds K    rounds of http_hello*, one load run per runtime each
                     (default: 10)
  --http-threads N   client threads of the http_hello* load: wrk -t, and the
                     load generator's (default: 2)
  --filter NAME      run only workloads whose name contains NAME (repeatable)
  --skip NAME        skip workloads whose name contains NAME (repeatable)
  --quick            few short samples, for a smoke test
  --write            also write BENCHMARKS.md and docs/bench-ratios.svg
  --serve RUNTIME    serve the http_hello server on RUNTIME (wq, wq-no-monitor,
                     tokio) until killed, printing its address, for profiling
                     under a load from outside
  --list             list the workloads and exit
  -h, --help         show this help

Always writes benches/results/latest.json and benches/results/ratios.svg.";

/// Parsed command line.
#[derive(Debug, Default)]
struct Options {
    workers: Option<usize>,
    samples: Option<usize>,
    seed_samples: Option<usize>,
    timer_samples: Option<usize>,
    idle_secs: Option<usize>,
    http_secs: Option<usize>,
    http_rounds: Option<usize>,
    http_threads: Option<usize>,
    filters: Vec<String>,
    skips: Vec<String>,
    quick: bool,
    write: bool,
    list: bool,
    serve: Option<String>,
    help: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--workers" => options.workers = Some(positive(&value(arg)?, arg)?),
                "--samples" => options.samples = Some(positive(&value(arg)?, arg)?),
                "--seed-samples" => options.seed_samples = Some(positive(&value(arg)?, arg)?),
                "--timer-samples" => options.timer_samples = Some(positive(&value(arg)?, arg)?),
                "--idle-secs" => options.idle_secs = Some(positive(&value(arg)?, arg)?),
                "--http-secs" => options.http_secs = Some(positive(&value(arg)?, arg)?),
                "--http-rounds" => options.http_rounds = Some(positive(&value(arg)?, arg)?),
                "--http-threads" => {
                    let threads = positive(&value(arg)?, arg)?;
                    if threads > http::HTTP_CONNECTIONS {
                        return Err(format!(
                            "{arg} must be at most {} (the connections the load keeps \
                             open), got {threads}",
                            http::HTTP_CONNECTIONS
                        ));
                    }
                    options.http_threads = Some(threads);
                }
                "--filter" => options.filters.push(value(arg)?),
                "--skip" => options.skips.push(value(arg)?),
                "--quick" => options.quick = true,
                "--write" => options.write = true,
                "--list" => options.list = true,
                "--serve" => options.serve = Some(value(arg)?),
                "-h" | "--help" => options.help = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(options)
    }

    fn config(&self) -> Config {
        let workers = self.workers.unwrap_or_else(|| {
            thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let (samples, seed_samples, warmup, sample_time) = if self.quick {
            (4, 2, Duration::from_millis(50), Duration::from_millis(20))
        } else {
            (16, 10, Duration::from_secs(1), Duration::from_millis(200))
        };
        let (timer_samples, idle_secs) = if self.quick { (2, 2) } else { (10, 10) };
        let (http_rounds, http_secs) = if self.quick { (1, 3) } else { (10, 10) };
        Config {
            workers,
            samples: self.samples.unwrap_or(samples),
            seed_samples: self.seed_samples.unwrap_or(seed_samples),
            timer_samples: self.timer_samples.unwrap_or(timer_samples),
            idle: Duration::from_secs(self.idle_secs.unwrap_or(idle_secs) as u64),
            http_secs: Duration::from_secs(self.http_secs.unwrap_or(http_secs) as u64),
            http_rounds: self.http_rounds.unwrap_or(http_rounds),
            http_client_threads: self.http_threads.unwrap_or(http::HTTP_CLIENT_THREADS),
            warmup,
            sample_time,
        }
    }

    fn selects(&self, entry: Entry) -> bool {
        let name = entry.name();
        (self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str())))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}

fn positive(text: &str, option: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{option} needs a positive integer, got `{text}`")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("bench: {err}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if options.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let selected: Vec<Entry> = Entry::all()
        .into_iter()
        .filter(|&e| options.selects(e))
        .collect();
    if let Some(runtime) = &options.serve {
        let config = options.config();
        return match http::serve_until_killed(runtime, config.workers) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("bench: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if options.list {
        for e in Entry::all() {
            println!("{:<37} {}", e.name(), e.describe());
        }
        return ExitCode::SUCCESS;
    }
    if selected.is_empty() {
        eprintln!("bench: no workload matches the filter (see --list)");
        return ExitCode::FAILURE;
    }

    match run(&options, &selected, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options, selected: &[Entry], args: Vec<String>) -> io::Result<()> {
    let config = options.config();
    let machine = Machine::detect();
    if !machine.optimized {
        eprintln!("bench: warning: unoptimized build; run with --release for real figures");
    }
    eprintln!(
        "bench: {} workload(s), {} workers, {} pairs ({} for seed round trips, {} for timer \
         and blocking workloads)",
        selected.len(),
        config.workers,
        config.samples,
        config.seed_samples,
        config.timer_samples
    );
    if selected
        .iter()
        .any(|e| matches!(e, Entry::Versus(w) if w.kind() == Kind::Server))
    {
        eprintln!(
            "bench: servers (http_hello*, redis_kv): {} round(s) of one load run per runtime \
             ({} s each for http_hello*)",
            config.http_rounds,
            config.http_secs.as_secs()
        );
    }

    // Progress goes to stderr, redrawn in place on a terminal.
    let live = io::stderr().is_terminal();
    let clear = if live { "\r\x1b[2K" } else { "" };
    let mut workloads = Vec::with_capacity(selected.len());
    let mut idle = None;
    let mut memory = None;
    let mut hog = None;
    let mut rescue = None;
    let mut http = None;
    let mut http_blocking = None;
    let mut redis = None;
    let mut monitor_cost = Vec::new();
    for &entry in selected {
        let name = entry.name();
        let mut progress = |step: &str| {
            if live {
                eprint!("{clear}{name}: {step}");
                let _ = io::stderr().flush();
            }
        };
        let workload = match entry {
            Entry::Versus(workload) => workload,
            Entry::MonitorCost(workload) => {
                let cost = harness::monitor_cost(workload, &config, &mut progress)?;
                let summary = MonitorCostReport::new(&cost);
                eprintln!(
                    "{clear}{name}: on/off {} ({}-{})",
                    report::fmt_ratio(summary.ratio_median),
                    report::fmt_ratio(summary.ratio_p25),
                    report::fmt_ratio(summary.ratio_p75)
                );
                monitor_cost.push(summary);
                continue;
            }
        };
        if workload.kind() == Kind::Fresh {
            match workload {
                Workload::Hog => {
                    let measured = blocking::hog(&config, &mut progress)?;
                    let summary = HogReport::new(name.clone(), &measured);
                    eprintln!(
                        "{clear}{name}: completed/s wq {}, tokio {}; wq detected the hog in \
                         {}/{} runs",
                        report::fmt_per_s(summary.wq_completed_per_s),
                        report::fmt_per_s(summary.tokio_completed_per_s),
                        summary.wq_detected_runs,
                        summary.pairs
                    );
                    hog = Some(summary);
                }
                Workload::Rescue => {
                    let measured = rescue::rescue(&config, &mut progress)?;
                    let summary = RescueReport::new(name.clone(), &measured);
                    eprintln!("{clear}{name}: {}", report::rescue_line(&summary));
                    rescue = Some(summary);
                }
                _ => unreachable!("{name} is not run on a fresh runtime"),
            }
            continue;
        }
        if workload.kind() == Kind::Server {
            match workload {
                Workload::HttpHello => match http::ensure_wrk() {
                    Ok(wrk) => {
                        let measured = http::http_hello(&config, &wrk, &mut progress)?;
                        let summary = HttpReport::new(name.clone(), &measured);
                        eprintln!("{clear}{name}: {}", report::http_line(&summary));
                        http = Some(summary);
                    }
                    Err(why) => eprintln!("{clear}{name}: skipped: {why}"),
                },
                Workload::HttpHelloBlocking => {
                    let measured = http::http_hello_blocking(&config, &mut progress)?;
                    let summary = HttpBlockingReport::new(name.clone(), &measured);
                    eprintln!("{clear}{name}: {}", report::http_blocking_line(&summary));
                    http_blocking = Some(summary);
                }
                Workload::RedisKv => match redis::ensure_redis_benchmark() {
                    Ok(benchmark) => {
                        let measured = redis::redis_kv(&config, &benchmark, &mut progress)?;
                        let summary = redis::RedisReport::new(name.clone(), &measured);
                        eprintln!("{clear}{name}: {}", redis::line(&summary));
                        redis = Some(summary);
                    }
                    Err(why) => eprintln!("{clear}{name}: skipped: {why}"),
                },
                _ => unreachable!("{name} is not run against servers"),
            }
            continue;
        }
        if workload.kind() == Kind::Once {
            if live {
                eprint!("{clear}{name}: measuring wq, then tokio");
                let _ = io::stderr().flush();
            }
            match workload {
                Workload::IdleCost => {
                    let measured = footprint::idle_cost(config.workers, config.idle)?;
                    let summary = IdleReport::new(name.clone(), &measured);
                    eprintln!(
                        "{clear}{name}: wq/tokio {} (CPU over {} s: wq {}, tokio {})",
                        report::fmt_opt_ratio(summary.ratio),
                        summary.idle_secs,
                        report::fmt_cpu(summary.wq_cpu_ns),
                        report::fmt_cpu(summary.tokio_cpu_ns)
                    );
                    idle = Some(summary);
                }
                Workload::MemoryPending { tasks } => {
                    let measured = footprint::pending_memory(config.workers, tasks)?;
                    let summary = MemoryReport::new(name.clone(), &measured);
                    eprintln!(
                        "{clear}{name}: wq/tokio {} (per task: wq {:.0} B, tokio {:.0} B)",
                        report::fmt_opt_ratio(summary.ratio),
                        summary.wq_bytes_per_task,
                        summary.tokio_bytes_per_task
                    );
                    memory = Some(summary);
                }
                _ => unreachable!("{name} is measured in pairs"),
            }
            continue;
        }
        let comparison = harness::compare(workload, &config, &mut progress)?;
        let summary = WorkloadReport::new(&comparison);
        eprintln!(
            "{clear}{name}: wq/tokio {} ({}-{})",
            report::fmt_ratio(summary.ratio_median),
            report::fmt_ratio(summary.ratio_p25),
            report::fmt_ratio(summary.ratio_p75)
        );
        workloads.push(summary);
    }

    let scope_pods = workloads
        .iter()
        .any(|w| w.scope.is_some())
        .then(topology::PodCounts::detect);
    let report = Report {
        machine,
        run: RunInfo::new(&config, args),
        workloads,
        idle,
        memory,
        hog,
        rescue,
        http,
        http_blocking,
        redis,
        monitor_cost,
        scope_pods,
    };
    println!("\n{}", report::text(&report));

    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = bench_dir.parent().unwrap_or(bench_dir);
    let results = bench_dir.join("results");
    let svg = report::svg(&report);
    let json = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
    write(&results.join("latest.json"), &json)?;
    write(&results.join("ratios.svg"), &svg)?;
    if options.write {
        let plot = "docs/bench-ratios.svg";
        write(&root.join(plot), &svg)?;
        let mut markdown = report::markdown(&report, plot);
        // The soak runs outside this runner (tests/rt_stress.rs with
        // WQ_STRESS_SOAK_SECS); its last result is kept in
        // benches/soak.md and carried into BENCHMARKS.md.
        if let Ok(soak) = fs::read_to_string(bench_dir.join("soak.md")) {
            markdown.push('\n');
            markdown.push_str(&soak);
        }
        write(&root.join("BENCHMARKS.md"), &markdown)?;
    }
    Ok(())
}

/// Writes `contents` to `path`, creating parent directories, and says so.
fn write(path: &PathBuf, contents: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, contents)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Options::parse(&args)
    }

    #[test]
    fn parses_options() {
        let options = parse(&["--workers", "3", "--filter", "spawn", "--quick"]).unwrap();
        let config = options.config();
        assert_eq!(config.workers, 3);
        assert_eq!(config.samples, 4);
        assert_eq!(config.idle, Duration::from_secs(2));
        assert!(options.selects(Entry::Versus(Workload::SpawnManyLocal)));
        assert!(!options.selects(Entry::Versus(Workload::PingPong)));
    }

    #[test]
    fn skip_drops_matching_workloads() {
        let options = parse(&["--filter", "spawn_many_local", "--skip", "monitor_cost"]).unwrap();
        let names: Vec<String> = Entry::all()
            .into_iter()
            .filter(|&e| options.selects(e))
            .map(Entry::name)
            .collect();
        assert_eq!(names, ["spawn_many_local"]);
    }

    #[test]
    fn timer_options() {
        let options = parse(&["--filter", "timers", "--idle-secs", "3"]).unwrap();
        let config = options.config();
        assert_eq!(config.idle, Duration::from_secs(3));
        assert_eq!(config.timer_samples, 10);
        let names: Vec<String> = Entry::all()
            .into_iter()
            .filter(|&e| options.selects(e))
            .map(Entry::name)
            .collect();
        assert_eq!(names, ["timers_create_cancel"]);
    }

    #[test]
    fn http_threads_default_to_two_and_stay_within_the_connections() {
        let config = parse(&["--filter", "http"]).unwrap().config();
        assert_eq!(config.http_client_threads, 2);
        let config = parse(&["--http-threads", "1"]).unwrap().config();
        assert_eq!(config.http_client_threads, 1);
        let err = parse(&["--http-threads", "65"]).unwrap_err();
        assert!(
            err.contains("--http-threads") && err.contains("at most 64"),
            "{err}"
        );
        assert!(parse(&["--http-threads", "0"]).is_err());
    }

    #[test]
    fn filters_select_the_new_workloads() {
        let selected = |filter: &str| -> Vec<String> {
            let options = parse(&["--filter", filter]).unwrap();
            Entry::all()
                .into_iter()
                .filter(|&e| options.selects(e))
                .map(Entry::name)
                .collect()
        };
        assert_eq!(
            selected("blocking_storm"),
            [
                "blocking_storm_b0",
                "blocking_storm_b1",
                "blocking_storm_b2",
                "blocking_storm_b4"
            ]
        );
        assert_eq!(selected("hog"), ["hog"]);
        assert_eq!(selected("rescue"), ["rescue"]);
        assert_eq!(selected("http"), ["http_hello", "http_hello_blocking"]);
        assert_eq!(selected("http_hello_blocking"), ["http_hello_blocking"]);
        assert_eq!(selected("redis"), ["redis_kv"]);
        assert_eq!(
            selected("seed_scope"),
            [
                "seed_scope_cpu",
                "seed_scope_cpu_strict",
                "seed_scope_smt",
                "seed_scope_cache_shard",
                "seed_scope_cache_shard_strict",
                "seed_scope_cache",
                "seed_scope_numa",
                "seed_scope_system"
            ]
        );
        assert_eq!(
            selected("seed_round_trip"),
            [
                "seed_round_trip_p1",
                "seed_round_trip_p2",
                "seed_round_trip_p4"
            ]
        );
        assert_eq!(selected("monitor_cost").len(), 6);
        assert_eq!(
            selected("chained_spawn"),
            ["chained_spawn", "monitor_cost/chained_spawn"]
        );
    }

    #[test]
    fn a_full_run_includes_rescue() {
        let options = parse(&[]).unwrap();
        assert!(options.selects(Entry::Versus(Workload::Rescue)));
        let skipped = parse(&["--skip", "rescue"]).unwrap();
        assert!(!skipped.selects(Entry::Versus(Workload::Rescue)));
    }

    #[test]
    fn a_full_run_includes_http() {
        let options = parse(&[]).unwrap();
        assert!(options.selects(Entry::Versus(Workload::HttpHello)));
        assert!(options.selects(Entry::Versus(Workload::HttpHelloBlocking)));
    }

    #[test]
    fn http_options() {
        let config = parse(&[]).unwrap().config();
        assert_eq!(
            (config.http_rounds, config.http_secs),
            (10, Duration::from_secs(10))
        );
        let quick = parse(&["--quick"]).unwrap().config();
        assert_eq!(
            (quick.http_rounds, quick.http_secs),
            (1, Duration::from_secs(3))
        );
        let explicit = parse(&["--quick", "--http-secs", "5", "--http-rounds", "2"])
            .unwrap()
            .config();
        assert_eq!(
            (explicit.http_rounds, explicit.http_secs),
            (2, Duration::from_secs(5))
        );
        assert!(parse(&["--http-rounds", "0"]).is_err());
    }

    #[test]
    fn explicit_samples_override_quick() {
        let options = parse(&["--quick", "--samples", "7"]).unwrap();
        assert_eq!(options.config().samples, 7);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--samples"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
    }

    #[test]
    fn workload_names_are_unique() {
        let mut names: Vec<String> = Entry::all().into_iter().map(Entry::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Entry::all().len());
    }
}

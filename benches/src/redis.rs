//! `redis_kv`: the Redis-protocol key-value server of
//! `examples/redis_kv.rs` on both runtimes, loaded by `redis-benchmark`.
//!
//! The server is the example's own code (`examples/redis_kv/server.rs`,
//! included below as [`server`]): RESP2 parsing, the commands and the
//! connection loop, generic over tokio's io traits. Only the accept loops
//! differ: on wq `wq::net::TcpListener` and `wq::spawn`, on tokio
//! `tokio::net::TcpListener` and `tokio::spawn`, both setting
//! `TCP_NODELAY` on every connection. As for `http_hello`, each runtime
//! serves in this process with `--workers` workers on its own ephemeral
//! port of loopback, started on a fresh runtime for each round and shut
//! down after it; a round loads each server once with `redis-benchmark` (a
//! separate process), which runtime goes first alternating from round to
//! round.

#[path = "../../examples/redis_kv/server.rs"]
mod server;

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::harness::Config;
use crate::report::{fmt_ns, fmt_rate, fmt_ratio};
use crate::rt::{Rt, Tokio, Wq, WqRuntime};
use crate::stats::{median, quantile};

/// The program that loads the servers.
pub const REDIS_BENCHMARK: &str = "redis-benchmark";
/// The Debian package it comes in.
pub const REDIS_PACKAGE: &str = "redis-tools";
/// Requests of each test per run (`-n`).
pub const REDIS_REQUESTS: usize = 200_000;
/// Connections (`-c`).
pub const REDIS_CLIENTS: usize = 50;
/// Requests in flight per connection (`-P`).
pub const REDIS_PIPELINE: usize = 1;
/// The tests each run performs (`-t`), in order.
pub const REDIS_TESTS: [&str; 2] = ["SET", "GET"];
/// The key redis-benchmark sets and gets without `-r`.
const BENCHMARK_KEY: &[u8] = b"key:__rand_int__";
/// The size of the values redis-benchmark sets without `-d`.
const BENCHMARK_VALUE_LEN: usize = 3;
/// Where the servers listen: loopback, a port the OS picks.
const LOOPBACK: &str = "127.0.0.1:0";
/// How long an accept loop waits after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// How long a server's runtime waits for its threads at shutdown.
const SERVER_SHUTDOWN: Duration = Duration::from_secs(1);

/// The arguments of every run, without the address.
fn benchmark_args() -> Vec<String> {
    vec![
        "-t".into(),
        REDIS_TESTS.join(",").to_lowercase(),
        "-n".into(),
        REDIS_REQUESTS.to_string(),
        "-c".into(),
        REDIS_CLIENTS.to_string(),
        "-P".into(),
        REDIS_PIPELINE.to_string(),
        "--csv".into(),
    ]
}

/// A runtime that can run the server.
trait ServeRedis: Rt {
    /// Binds a listener on [`LOOPBACK`], spawns its accept loop, which
    /// serves every connection with [`server::serve`] in a task of its
    /// own, and returns the address.
    fn serve_redis(&self, db: server::Db) -> io::Result<SocketAddr>;
}

impl<const MONITOR: bool> ServeRedis for WqRuntime<MONITOR> {
    fn serve_redis(&self, db: server::Db) -> io::Result<SocketAddr> {
        let listener = self.block_on(wq::net::TcpListener::bind(LOOPBACK))?;
        let addr = listener.local_addr()?;
        drop(self.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        drop(wq::spawn(server::serve(stream, db.clone())));
                    }
                    Err(_) => Self::sleep_until(Instant::now() + ACCEPT_BACKOFF).await,
                }
            }
        }));
        Ok(addr)
    }
}

impl ServeRedis for Tokio {
    fn serve_redis(&self, db: server::Db) -> io::Result<SocketAddr> {
        let listener = self.block_on(tokio::net::TcpListener::bind(LOOPBACK))?;
        let addr = listener.local_addr()?;
        drop(self.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        drop(tokio::spawn(server::serve(stream, db.clone())));
                    }
                    Err(_) => Self::sleep_until(Instant::now() + ACCEPT_BACKOFF).await,
                }
            }
        }));
        Ok(addr)
    }
}

/// One runtime's server, running in this process.
struct Server<R> {
    rt: R,
    addr: SocketAddr,
    db: server::Db,
}

impl<R: ServeRedis> Server<R> {
    fn start(workers: usize) -> io::Result<Self> {
        let rt = R::build(workers)?;
        let db = server::Db::default();
        let addr = rt.serve_redis(db.clone())?;
        Ok(Self { rt, addr, db })
    }

    /// One `redis-benchmark` run against the server, checked: the key it
    /// sets must then hold a value of the size it sets.
    fn run(&self, benchmark: &Path) -> io::Result<RedisRun> {
        self.db.lock().unwrap().clear();
        let run = run_benchmark(benchmark, self.addr)?;
        let stored = self.db.lock().unwrap().get(BENCHMARK_KEY).map(|v| v.len());
        if stored != Some(BENCHMARK_VALUE_LEN) {
            return Err(io::Error::other(format!(
                "after {REDIS_BENCHMARK}, the server holds {stored:?} bytes for {}, not {}",
                String::from_utf8_lossy(BENCHMARK_KEY),
                BENCHMARK_VALUE_LEN
            )));
        }
        Ok(run)
    }

    /// Starts a server on a fresh runtime, runs `redis-benchmark` against
    /// it once, and shuts it down, also when the run failed.
    fn fresh_run(workers: usize, benchmark: &Path) -> io::Result<RedisRun> {
        let server = Self::start(workers)?;
        let run = server.run(benchmark);
        server.shutdown();
        run
    }

    fn shutdown(self) {
        self.rt.shutdown_timeout(SERVER_SHUTDOWN);
    }
}

/// One test's figures from one `redis-benchmark --csv` run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TestFigures {
    /// Its `rps` column.
    pub requests_per_s: f64,
    /// Its `p50_latency_ms` column, in nanoseconds, if the version prints
    /// latencies.
    pub p50_ns: Option<f64>,
    /// Its `p99_latency_ms` column, in nanoseconds.
    pub p99_ns: Option<f64>,
}

/// One `redis-benchmark` run: the figures of each of [`REDIS_TESTS`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RedisRun {
    /// `SET`.
    pub set: TestFigures,
    /// `GET`.
    pub get: TestFigures,
}

impl RedisRun {
    fn test(&self, test: &str) -> TestFigures {
        match test {
            "SET" => self.set,
            "GET" => self.get,
            other => unreachable!("no test {other}"),
        }
    }
}

/// The runs of `redis_kv`; `wq[i]` and `tokio[i]` were taken in round `i`.
#[derive(Clone, Debug)]
pub struct RedisComparison {
    /// Worker threads of each runtime.
    pub workers: usize,
    /// `redis-benchmark --version`, as it printed it.
    pub version: String,
    /// The runs against wq's server.
    pub wq: Vec<RedisRun>,
    /// The runs against tokio's server.
    pub tokio: Vec<RedisRun>,
}

/// Measures `redis_kv`: `config.http_rounds` rounds of one
/// `redis-benchmark` run per runtime (wq first in even rounds, tokio first
/// in odd ones), each against a server started for it on a fresh runtime
/// and shut down after it, as `http_hello`'s.
pub fn redis_kv(
    config: &Config,
    benchmark: &Path,
    mut progress: impl FnMut(&str),
) -> io::Result<RedisComparison> {
    let version = Command::new(benchmark)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let rounds = config.http_rounds;
    let mut comparison = RedisComparison {
        workers: config.workers,
        version,
        wq: Vec::with_capacity(rounds),
        tokio: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        let mut on = |runtime: &str| {
            progress(&format!(
                "round {}/{rounds}: {REDIS_BENCHMARK} against {runtime}",
                round + 1
            ));
        };
        if round % 2 == 0 {
            on("wq");
            comparison
                .wq
                .push(Server::<Wq>::fresh_run(config.workers, benchmark)?);
            on("tokio");
            comparison
                .tokio
                .push(Server::<Tokio>::fresh_run(config.workers, benchmark)?);
        } else {
            on("tokio");
            comparison
                .tokio
                .push(Server::<Tokio>::fresh_run(config.workers, benchmark)?);
            on("wq");
            comparison
                .wq
                .push(Server::<Wq>::fresh_run(config.workers, benchmark)?);
        }
    }
    Ok(comparison)
}

/// Runs `redis-benchmark` against `addr` and reads its CSV report. Fails
/// if it fails or reports an error.
fn run_benchmark(benchmark: &Path, addr: SocketAddr) -> io::Result<RedisRun> {
    let output = Command::new(benchmark)
        .args(["-h".to_owned(), addr.ip().to_string()])
        .args(["-p".to_owned(), addr.port().to_string()])
        .args(benchmark_args())
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stderr.to_lowercase().contains("error") {
        return Err(io::Error::other(format!(
            "{REDIS_BENCHMARK} failed ({}): {stdout}{stderr}",
            output.status
        )));
    }
    parse_csv(&stdout).map_err(|err| {
        io::Error::other(format!(
            "cannot read {REDIS_BENCHMARK}'s report ({err}):\n{stdout}"
        ))
    })
}

/// Reads what `redis-benchmark --csv` prints: since Redis 7, a header
/// line (`"test","rps","avg_latency_ms","min_latency_ms",
/// "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`)
/// and one line per test; before, one `"TEST","RPS"` line per test and no
/// latencies.
pub fn parse_csv(output: &str) -> Result<RedisRun, String> {
    let fields = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|f| f.trim().trim_matches('"').to_owned())
            .collect()
    };
    let mut columns: Vec<String> = vec!["test".into(), "rps".into()];
    let mut found: [Option<TestFigures>; 2] = [None; 2];
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let row = fields(line);
        if row[0] == "test" {
            columns = row;
            continue;
        }
        let Some(slot) = REDIS_TESTS.iter().position(|t| *t == row[0]) else {
            continue;
        };
        let value = |name: &str| -> Result<Option<f64>, String> {
            let Some(i) = columns.iter().position(|c| c == name) else {
                return Ok(None);
            };
            let text = row
                .get(i)
                .ok_or_else(|| format!("no `{name}` in `{line}`"))?;
            text.parse::<f64>()
                .map(Some)
                .map_err(|_| format!("`{text}` ({name}) is not a number"))
        };
        let ms = |name: &str| value(name).map(|v| v.map(|ms| ms * 1e6));
        found[slot] = Some(TestFigures {
            requests_per_s: value("rps")?.ok_or("no rps column")?,
            p50_ns: ms("p50_latency_ms")?,
            p99_ns: ms("p99_latency_ms")?,
        });
    }
    let [set, get] = found;
    let missing = |test: &str| format!("no {test} line");
    Ok(RedisRun {
        set: set.ok_or_else(|| missing("SET"))?,
        get: get.ok_or_else(|| missing("GET"))?,
    })
}

/// Finds `redis-benchmark` on `PATH`, or installs `redis-tools` with
/// `apt-get` (see [`crate::tools::find_or_install`]).
pub fn ensure_redis_benchmark() -> Result<PathBuf, String> {
    crate::tools::find_or_install(
        REDIS_BENCHMARK,
        REDIS_PACKAGE,
        "it comes with Redis",
        "redis",
    )
}

/// `redis_kv` figures: what `redis-benchmark` reported, per test the
/// medians over rounds per runtime and the median of the per-round
/// wq/tokio ratios of requests/s.
#[derive(Clone, Debug, Serialize)]
pub struct RedisReport {
    /// Workload name.
    pub name: String,
    /// Worker threads of each runtime.
    pub workers: usize,
    /// The load, as the `redis-benchmark` command line (without the
    /// address).
    pub client: String,
    /// `redis-benchmark --version`.
    pub client_version: String,
    /// Rounds, each one `redis-benchmark` run per runtime.
    pub rounds: usize,
    /// Per test (`SET`, `GET`).
    pub tests: Vec<RedisTestReport>,
    /// Every wq run.
    pub wq_runs: Vec<RedisRun>,
    /// Every tokio run.
    pub tokio_runs: Vec<RedisRun>,
}

/// One test of `redis_kv`, summarised over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct RedisTestReport {
    /// `SET` or `GET`.
    pub test: String,
    /// wq: requests/s, median over rounds.
    pub wq_requests_per_s: f64,
    /// tokio: requests/s, median over rounds.
    pub tokio_requests_per_s: f64,
    /// wq: median latency, median over rounds, nanoseconds (if
    /// `redis-benchmark` printed latencies).
    pub wq_p50_ns: Option<f64>,
    /// tokio: the same.
    pub tokio_p50_ns: Option<f64>,
    /// wq: 99th percentile latency, median over rounds, nanoseconds.
    pub wq_p99_ns: Option<f64>,
    /// tokio: the same.
    pub tokio_p99_ns: Option<f64>,
    /// Requests/s wq/tokio, median of the per-round ratios: **higher is
    /// better**. `None` if tokio served nothing.
    pub requests_ratio: Option<f64>,
    /// 25th and 75th percentiles of the per-round ratios.
    pub requests_ratio_p25_p75: Option<(f64, f64)>,
}

impl RedisReport {
    /// Summarises the runs of `redis_kv`.
    pub fn new(name: String, runs: &RedisComparison) -> Self {
        let med = |values: Vec<f64>| (!values.is_empty()).then(|| median(&values));
        let tests = REDIS_TESTS
            .iter()
            .map(|&test| {
                let of = |runs: &[RedisRun]| -> Vec<TestFigures> {
                    runs.iter().map(|r| r.test(test)).collect()
                };
                let (wq, tokio) = (of(&runs.wq), of(&runs.tokio));
                let rps = |f: &[TestFigures]| f.iter().map(|f| f.requests_per_s).collect();
                let p50 = |f: &[TestFigures]| f.iter().filter_map(|f| f.p50_ns).collect();
                let p99 = |f: &[TestFigures]| f.iter().filter_map(|f| f.p99_ns).collect();
                let ratios: Vec<f64> = wq
                    .iter()
                    .zip(&tokio)
                    .filter(|(_, t)| t.requests_per_s > 0.0)
                    .map(|(w, t)| w.requests_per_s / t.requests_per_s)
                    .collect();
                RedisTestReport {
                    test: test.to_owned(),
                    wq_requests_per_s: med(rps(&wq)).unwrap_or(0.0),
                    tokio_requests_per_s: med(rps(&tokio)).unwrap_or(0.0),
                    wq_p50_ns: med(p50(&wq)),
                    tokio_p50_ns: med(p50(&tokio)),
                    wq_p99_ns: med(p99(&wq)),
                    tokio_p99_ns: med(p99(&tokio)),
                    requests_ratio: med(ratios.clone()),
                    requests_ratio_p25_p75: (!ratios.is_empty())
                        .then(|| (quantile(&ratios, 0.25), quantile(&ratios, 0.75))),
                }
            })
            .collect();
        Self {
            name,
            workers: runs.workers,
            client: format!("{REDIS_BENCHMARK} {}", benchmark_args().join(" ")),
            client_version: runs.version.clone(),
            rounds: runs.wq.len(),
            tests,
            wq_runs: runs.wq.clone(),
            tokio_runs: runs.tokio.clone(),
        }
    }
}

/// `n/a` or the latency.
fn fmt_opt(ns: Option<f64>) -> String {
    ns.map_or_else(|| "n/a".to_owned(), fmt_ns)
}

/// The per-test ratios: `SET 1.02 (per-round p25-p75 0.98-1.05), GET ...`.
fn ratios(r: &RedisReport) -> String {
    let each: Vec<String> = r
        .tests
        .iter()
        .map(|t| {
            let spread = t
                .requests_ratio_p25_p75
                .map_or_else(String::new, |(p25, p75)| {
                    format!(" (per-round p25-p75 {}-{})", fmt_ratio(p25), fmt_ratio(p75))
                });
            let ratio = t.requests_ratio.map_or_else(|| "n/a".to_owned(), fmt_ratio);
            format!("{} {ratio}{spread}", t.test)
        })
        .collect();
    format!(
        "requests/s wq/tokio: {} (higher is better)",
        each.join(", ")
    )
}

/// The one-line summary printed on stderr as the entry finishes.
pub fn line(r: &RedisReport) -> String {
    let each: Vec<String> = r
        .tests
        .iter()
        .map(|t| {
            format!(
                "{} wq {}, tokio {}",
                t.test,
                fmt_rate(t.wq_requests_per_s),
                fmt_rate(t.tokio_requests_per_s)
            )
        })
        .collect();
    format!("requests/s {}; {}", each.join("; "), ratios(r))
}

/// The entry's part of the runner's text table.
pub fn text(r: &RedisReport, out: &mut String) {
    let _ = writeln!(
        out,
        "\n{}: the redis_kv example's server (RESP2) on loopback, {} workers each; `{}` \
         ({}) against each runtime once per round, {} round(s), which runtime goes first \
         alternating; medians over rounds",
        r.name, r.workers, r.client, r.client_version, r.rounds
    );
    let _ = writeln!(
        out,
        "{:<8} {:<8} {:>12} {:>10} {:>10}",
        "test", "runtime", "requests/s", "p50", "p99"
    );
    for t in &r.tests {
        for (runtime, per_s, p50, p99) in [
            ("wq", t.wq_requests_per_s, t.wq_p50_ns, t.wq_p99_ns),
            (
                "tokio",
                t.tokio_requests_per_s,
                t.tokio_p50_ns,
                t.tokio_p99_ns,
            ),
        ] {
            let _ = writeln!(
                out,
                "{:<8} {:<8} {:>12} {:>10} {:>10}",
                t.test,
                runtime,
                fmt_rate(per_s),
                fmt_opt(p50),
                fmt_opt(p99)
            );
        }
    }
    let _ = writeln!(out, "{}", ratios(r));
    let _ = writeln!(
        out,
        "(latency: redis-benchmark's, from sending a request to reading its reply; ratios: \
         median of the per-round ratios)"
    );
}

/// The entry's section of `BENCHMARKS.md`.
pub fn markdown(r: &RedisReport, out: &mut String) {
    let _ = writeln!(out, "\n## Redis protocol: redis_kv under redis-benchmark\n");
    let _ = writeln!(
        out,
        "The key-value server of `examples/redis_kv.rs` (its `redis_kv/server.rs`: RESP2 \
         parsing, the commands and the connection loop, written against tokio's io traits, \
         replies gathered in a `BufWriter` flushed once per batch of pipelined commands, the \
         keys in one `Arc<Mutex<HashMap<Bytes, Bytes>>>`), the same code on both runtimes, \
         each with {workers} workers and in the runner's process; only the accept loop \
         differs: on wq its `TcpListener` and `wq::spawn`, on tokio its `TcpListener` and \
         `tokio::spawn`, `TCP_NODELAY` on every connection. `{client}` ({version}, a separate \
         process: {clients} connections with {pipeline} request in flight on each, first \
         {requests} `SET`s of a {len}-byte value to one key, then {requests} `GET`s of it) \
         loads each server, started on a fresh runtime for the round, once per round, \
         {rounds} round(s), which runtime goes first alternating. Figures are redis-benchmark's: requests/s, and its latency percentiles \
         (from sending a request to reading its reply), medians over rounds. The ratio is \
         the median of the per-round wq/tokio ratios of requests/s: **higher is better**. \
         Not in the plot.\n",
        workers = r.workers,
        client = r.client,
        version = r.client_version,
        clients = REDIS_CLIENTS,
        pipeline = REDIS_PIPELINE,
        requests = crate::workloads::grouped(REDIS_REQUESTS),
        len = BENCHMARK_VALUE_LEN,
        rounds = r.rounds
    );
    let _ = writeln!(out, "| test | | requests/s | p50 | p99 | wq/tokio |");
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
    for t in &r.tests {
        let ratio = t.requests_ratio.map_or_else(|| "n/a".to_owned(), fmt_ratio);
        let _ = writeln!(
            out,
            "| `{}` | wq | **{}** | {} | {} | **{ratio}** |",
            t.test,
            fmt_rate(t.wq_requests_per_s),
            fmt_opt(t.wq_p50_ns),
            fmt_opt(t.wq_p99_ns)
        );
        let _ = writeln!(
            out,
            "| | tokio | **{}** | {} | {} | |",
            fmt_rate(t.tokio_requests_per_s),
            fmt_opt(t.tokio_p50_ns),
            fmt_opt(t.tokio_p99_ns)
        );
    }
    let _ = writeln!(out, "\n{}.", ratios(r));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `redis-benchmark -t set,get -n 20000 -c 20 --csv` (7.0.15,
    /// Debian 12) printed against the example's server on wq, as captured.
    const CSV: &str = "\
\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"
\"SET\",\"142857.14\",\"0.086\",\"0.016\",\"0.079\",\"0.119\",\"0.207\",\"4.119\"
\"GET\",\"141843.97\",\"0.081\",\"0.016\",\"0.079\",\"0.111\",\"0.239\",\"4.135\"
";

    #[test]
    fn reads_redis_benchmark_csv() {
        let run = parse_csv(CSV).unwrap();
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-3);
        assert_eq!(run.set.requests_per_s, 142857.14);
        assert_eq!(run.get.requests_per_s, 141843.97);
        assert!(close(run.set.p50_ns, 79_000.0), "{run:?}");
        assert!(close(run.set.p99_ns, 207_000.0), "{run:?}");
        assert!(close(run.get.p99_ns, 239_000.0), "{run:?}");
    }

    #[test]
    fn reads_the_csv_of_older_versions_and_refuses_incomplete_ones() {
        // Redis 6: no header, no latencies.
        let old = "\"SET\",\"98039.22\"\n\"GET\",\"99009.90\"\n";
        let run = parse_csv(old).unwrap();
        assert_eq!(run.get.requests_per_s, 99009.90);
        assert_eq!((run.set.p50_ns, run.set.p99_ns), (None, None));
        let only_set: String = CSV.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(parse_csv(&only_set).unwrap_err().contains("GET"));
        assert!(parse_csv(&CSV.replace("142857.14", "fast")).is_err());
    }

    #[test]
    fn summarises_rounds() {
        let figures = |rps: f64, p99_ms: f64| TestFigures {
            requests_per_s: rps,
            p50_ns: Some(1e5),
            p99_ns: Some(p99_ms * 1e6),
        };
        let run = |set: f64, get: f64| RedisRun {
            set: figures(set, 0.2),
            get: figures(get, 0.3),
        };
        let comparison = RedisComparison {
            workers: 2,
            version: "redis-benchmark 7.0.15".into(),
            // SET ratios 1.1, 0.9, 1.0; GET ratios 0.5 each.
            wq: vec![run(110.0, 50.0), run(90.0, 50.0), run(100.0, 50.0)],
            tokio: vec![run(100.0, 100.0); 3],
        };
        let report = RedisReport::new("redis_kv".into(), &comparison);
        assert_eq!(
            report.client,
            "redis-benchmark -t set,get -n 200000 -c 50 -P 1 --csv"
        );
        let set = &report.tests[0];
        assert_eq!((set.test.as_str(), set.wq_requests_per_s), ("SET", 100.0));
        assert!((set.requests_ratio.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(set.wq_p99_ns, Some(2e5));
        assert_eq!(report.tests[1].requests_ratio, Some(0.5));

        let mut text_out = String::new();
        text(&report, &mut text_out);
        assert!(
            text_out
                .contains("requests/s wq/tokio: SET 1.00 (per-round p25-p75 0.95-1.05), GET 0.50"),
            "{text_out}"
        );
        let mut md = String::new();
        markdown(&report, &mut md);
        assert!(
            md.contains("## Redis protocol: redis_kv under redis-benchmark"),
            "{md}"
        );
        assert!(
            md.contains("| `GET` | wq | **50.0 /s** | 100 µs | 300 µs | **0.50** |"),
            "{md}"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.contains(r#""client_version":"redis-benchmark 7.0.15""#),
            "{json}"
        );
    }

    /// Both servers answer redis-benchmark, briefly, if it is installed.
    #[test]
    fn redis_benchmark_against_both_servers() {
        let Some(benchmark) = crate::tools::find(REDIS_BENCHMARK) else {
            eprintln!("{REDIS_BENCHMARK} not on PATH ({REDIS_PACKAGE}): skipped");
            return;
        };
        fn check<R: ServeRedis>(benchmark: &Path) {
            let server = Server::<R>::start(2).unwrap();
            let output = Command::new(benchmark)
                .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
                .args(["-t", "set,get", "-n", "2000", "-c", "4", "--csv"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let run = parse_csv(&String::from_utf8_lossy(&output.stdout)).unwrap();
            assert!(run.set.requests_per_s > 0.0 && run.get.requests_per_s > 0.0);
            let stored = server
                .db
                .lock()
                .unwrap()
                .get(BENCHMARK_KEY)
                .map(|v| v.len());
            assert_eq!(stored, Some(BENCHMARK_VALUE_LEN));
            server.shutdown();
        }
        check::<Wq>(&benchmark);
        check::<Tokio>(&benchmark);
    }
}

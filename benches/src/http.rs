//! HTTP (`http_hello`, `http_hello_blocking`): a hyper 1.x HTTP/1.1
//! hello-world server on loopback, the same handler on both runtimes, under
//! load from outside them.
//!
//! The servers run in this process, each on its own runtime and
//! ephemeral port: on wq its `TcpListener`, every connection spawned
//! with `wq::spawn` and served by hyper with `WqTimer`; on tokio its
//! `TcpListener`, `tokio::spawn` and hyper-util's `TokioTimer`. Both
//! runtimes have `--workers` workers and set `TCP_NODELAY` on every
//! connection. A round starts each runtime's server afresh, loads it once
//! and shuts it down, which runtime goes first alternating from round to
//! round.
//!
//! `http_hello` is loaded by `wrk` (a separate process). The handler of
//! `http_hello_blocking` blocks its worker for 1 request in 100, and `wrk`
//! cannot tell requests apart, so that entry is loaded by the small client
//! here ([`load`]), which chooses which of its requests block and times
//! the others.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::harness::Config;
use crate::rt::{MonitorCounts, Rt, Tokio, Wq, WqNoMonitor, WqRuntime};
use crate::stats::percentile_sorted;
use crate::sys::{cpu_times, CpuTimes};
use crate::workloads::STUCK_AFTER;
use libc::{RUSAGE_CHILDREN, RUSAGE_SELF};

/// The body of every response.
pub const HTTP_BODY: &[u8] = b"Hello, world!\n";
/// Connections the load keeps open: `wrk -c`, and the load generator's.
pub const HTTP_CONNECTIONS: usize = 64;
/// Threads the load comes from: `wrk -t`, and the load generator's (each
/// with its share of the connections).
pub const HTTP_CLIENT_THREADS: usize = 2;
/// The path on which the handler blocks.
pub const BLOCK_PATH: &str = "/block";
/// The load generator asks for [`BLOCK_PATH`] for 1 request in this many.
pub const BLOCK_EVERY: u64 = 100;
/// How long the handler blocks its worker on [`BLOCK_PATH`], in
/// `std::thread::sleep`.
pub const BLOCK_FOR: Duration = Duration::from_millis(50);
/// The program that loads `http_hello`.
pub const WRK: &str = "wrk";
/// Where the servers listen: loopback, a port the OS picks.
const LOOPBACK: &str = "127.0.0.1:0";
/// How long a server's accept loop waits after a failed accept (out of
/// descriptors, most likely) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// How long a server's runtime waits for its threads at shutdown.
const SERVER_SHUTDOWN: Duration = Duration::from_secs(1);
/// The most a response's head may take before the load generator gives
/// the response up as malformed.
const MAX_HEAD: usize = 64 * 1024;

/// What a server's handler counts.
#[derive(Debug, Default)]
struct Served {
    /// Requests answered.
    requests: AtomicU64,
    /// Of which, requests for [`BLOCK_PATH`], each of which blocked.
    blocked: AtomicU64,
}

/// The handler both runtimes serve: [`HTTP_BODY`] at once, except on
/// [`BLOCK_PATH`], where it first blocks its worker in
/// `std::thread::sleep(BLOCK_FOR)` with no annotation (wq's monitor has to
/// find it; tokio has no such mechanism). `wrk` only asks for `/`.
async fn hello(
    request: Request<Incoming>,
    served: Arc<Served>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == BLOCK_PATH {
        served.blocked.fetch_add(1, Relaxed);
        thread::sleep(BLOCK_FOR);
    }
    // Counted before the response goes out, so that a client that has its
    // response has it counted.
    served.requests.fetch_add(1, Relaxed);
    Ok(Response::new(Full::new(Bytes::from_static(HTTP_BODY))))
}

/// Serves one connection with hyper's HTTP/1.1 server (default settings,
/// keep-alive) and [`hello`], with `timer` as hyper's timer.
async fn serve_connection<S, T>(stream: S, timer: T, served: Arc<Served>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: hyper::rt::Timer + Send + Sync + 'static,
{
    let service = service_fn(move |request| hello(request, Arc::clone(&served)));
    // A client that closes its connection mid-request (wrk at the end of
    // its run) ends it with an error: nothing to report.
    let _ = http1::Builder::new()
        .timer(timer)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A runtime that can run the HTTP server.
trait Serve: Rt {
    /// Binds a listener on [`LOOPBACK`], spawns its accept loop, which
    /// serves every connection in a task of its own, and returns the
    /// address.
    fn serve(&self, served: Arc<Served>) -> io::Result<SocketAddr>;
}

impl<const MONITOR: bool> Serve for WqRuntime<MONITOR> {
    fn serve(&self, served: Arc<Served>) -> io::Result<SocketAddr> {
        let listener = self.block_on(wq::net::TcpListener::bind(LOOPBACK))?;
        let addr = listener.local_addr()?;
        drop(self.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let timer = wq::hyper_rt::WqTimer::new();
                        drop(wq::spawn(serve_connection(
                            stream,
                            timer,
                            Arc::clone(&served),
                        )));
                    }
                    Err(_) => Self::sleep_until(Instant::now() + ACCEPT_BACKOFF).await,
                }
            }
        }));
        Ok(addr)
    }
}

impl Serve for Tokio {
    fn serve(&self, served: Arc<Served>) -> io::Result<SocketAddr> {
        let listener = self.block_on(tokio::net::TcpListener::bind(LOOPBACK))?;
        let addr = listener.local_addr()?;
        drop(self.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        drop(tokio::spawn(serve_connection(
                            stream,
                            TokioTimer::new(),
                            Arc::clone(&served),
                        )));
                    }
                    Err(_) => Self::sleep_until(Instant::now() + ACCEPT_BACKOFF).await,
                }
            }
        }));
        Ok(addr)
    }
}

/// One runtime's HTTP server, running in this process.
struct Server<R> {
    rt: R,
    addr: SocketAddr,
    served: Arc<Served>,
}

impl<R: Serve> Server<R> {
    /// Builds a runtime with `workers` workers and starts the server on it.
    fn start(workers: usize) -> io::Result<Self> {
        let rt = R::build(workers)?;
        let served = Arc::new(Served::default());
        let addr = rt.serve(Arc::clone(&served))?;
        Ok(Self { rt, addr, served })
    }

    /// What the server has counted so far.
    fn counts(&self) -> ServerCounts {
        ServerCounts {
            requests: self.served.requests.load(Relaxed),
            blocked: self.served.blocked.load(Relaxed),
            monitor: R::monitor_counts(&self.rt.handle()),
        }
    }

    /// Runs `measure` against the server and notes what the server counted
    /// meanwhile.
    fn run<T>(&self, measure: impl FnOnce(SocketAddr) -> io::Result<T>) -> io::Result<Run<T>> {
        let before = self.counts();
        let load = measure(self.addr)?;
        let server = self.counts().since(before);
        Ok(Run { load, server })
    }

    /// Shuts the runtime down (and so the accept loop and any connection
    /// left), waiting at most [`SERVER_SHUTDOWN`] for its threads.
    fn shutdown(self) {
        self.rt.shutdown_timeout(SERVER_SHUTDOWN);
    }
}

/// What a server counted during one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Requests its handler answered.
    pub requests: u64,
    /// Of which, requests for [`BLOCK_PATH`], each of which blocked.
    pub blocked: u64,
    /// What the runtime's monitor counted, for a runtime with one (wq).
    pub monitor: Option<MonitorCounts>,
}

impl ServerCounts {
    /// What was counted between `earlier` and `self`.
    fn since(self, earlier: ServerCounts) -> ServerCounts {
        ServerCounts {
            requests: self.requests - earlier.requests,
            blocked: self.blocked - earlier.blocked,
            monitor: self
                .monitor
                .zip(earlier.monitor)
                .map(|(now, then)| now.since(then)),
        }
    }
}

/// One load run against one server: what the client measured, and what
/// the server counted meanwhile.
#[derive(Clone, Debug)]
pub struct Run<T> {
    /// What the client measured.
    pub load: T,
    /// What the server counted.
    pub server: ServerCounts,
}

/// The runs of one HTTP entry, by runtime; `wq[i]` and `tokio[i]` were
/// taken in round `i`.
#[derive(Clone, Debug)]
pub struct HttpComparison<T> {
    /// Worker threads of each runtime.
    pub workers: usize,
    /// Client threads of the load.
    pub client_threads: usize,
    /// How long each load run lasted.
    pub secs: Duration,
    /// The runs against wq's server.
    pub wq: Vec<Run<T>>,
    /// The runs against tokio's server.
    pub tokio: Vec<Run<T>>,
}

/// Measures `http_hello`: `config.http_rounds` rounds of one `wrk` run
/// ([`run_wrk`]) against each runtime's server, wq first in even rounds
/// and tokio first in odd ones. `wrk` is the program to run (see
/// [`ensure_wrk`]).
pub fn http_hello(
    config: &Config,
    wrk: &Path,
    progress: impl FnMut(&str),
) -> io::Result<HttpComparison<WrkRun>> {
    let (secs, threads) = (config.http_secs, config.http_client_threads);
    in_rounds(config, "wrk", progress, |addr| {
        run_wrk(wrk, addr, secs, threads)
    })
}

/// Measures `http_hello_blocking`: as [`http_hello`], each run by the load
/// generator ([`load`]) instead of `wrk`.
pub fn http_hello_blocking(
    config: &Config,
    progress: impl FnMut(&str),
) -> io::Result<HttpComparison<LoadRun>> {
    let (secs, threads) = (config.http_secs, config.http_client_threads);
    in_rounds(config, "load generator", progress, |addr| {
        load(addr, secs, threads)
    })
}

/// Takes `config.http_rounds` rounds of one `measure` per runtime (wq first
/// in even rounds, tokio first in odd ones), each against a server started
/// for it on a fresh runtime: what one runtime instance happens to be dealt
/// (where its threads run, where its heap lies) is dealt anew every round
/// rather than held for the whole entry.
fn in_rounds<T>(
    config: &Config,
    client: &str,
    mut progress: impl FnMut(&str),
    mut measure: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<HttpComparison<T>> {
    let rounds = config.http_rounds;
    let mut comparison = HttpComparison {
        workers: config.workers,
        client_threads: config.http_client_threads,
        secs: config.http_secs,
        wq: Vec::with_capacity(rounds),
        tokio: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        let mut on = |runtime: &str| {
            progress(&format!(
                "round {}/{rounds}: {client} against {runtime} for {} s",
                round + 1,
                config.http_secs.as_secs()
            ));
        };
        if round % 2 == 0 {
            on("wq");
            comparison
                .wq
                .push(fresh_run::<Wq, T>(config.workers, &mut measure)?);
            on("tokio");
            comparison
                .tokio
                .push(fresh_run::<Tokio, T>(config.workers, &mut measure)?);
        } else {
            on("tokio");
            comparison
                .tokio
                .push(fresh_run::<Tokio, T>(config.workers, &mut measure)?);
            on("wq");
            comparison
                .wq
                .push(fresh_run::<Wq, T>(config.workers, &mut measure)?);
        }
    }
    Ok(comparison)
}

/// Starts a server on a fresh runtime with `workers` workers, runs
/// `measure` against it, and shuts it down, also when the run failed.
fn fresh_run<R: Serve, T>(
    workers: usize,
    measure: impl FnOnce(SocketAddr) -> io::Result<T>,
) -> io::Result<Run<T>> {
    let server = Server::<R>::start(workers)?;
    let run = server.run(measure);
    server.shutdown();
    run
}

/// The runtimes `--serve` can serve on.
pub const SERVE_RUNTIMES: [&str; 3] = ["wq", "wq-no-monitor", "tokio"];

/// Serves the `http_hello` server (the blocking handler included) on
/// `runtime` (one of [`SERVE_RUNTIMES`]) with `workers` workers until the
/// process is killed, after printing its address on stdout: for profiling
/// one runtime under a load from outside (`perf`, `wrk`).
pub fn serve_until_killed(runtime: &str, workers: usize) -> io::Result<()> {
    fn serve<R: Serve>(workers: usize) -> io::Result<()> {
        let server = Server::<R>::start(workers)?;
        println!("{}", server.addr);
        // What the server and its runtime count, every second, on stderr.
        let mut last = server.counts();
        loop {
            thread::sleep(Duration::from_secs(1));
            let now = server.counts();
            eprintln!("{:?}", now.since(last));
            last = now;
        }
    }
    match runtime {
        "wq" => serve::<Wq>(workers),
        "wq-no-monitor" => serve::<WqNoMonitor>(workers),
        "tokio" => serve::<Tokio>(workers),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--serve: unknown runtime `{other}` (one of: {})",
                SERVE_RUNTIMES.join(", ")
            ),
        )),
    }
}

/// Finds `wrk` on `PATH`, or installs it with `apt-get` (see
/// [`crate::tools::find_or_install`]).
pub fn ensure_wrk() -> Result<PathBuf, String> {
    crate::tools::find_or_install(WRK, WRK, "from https://github.com/wg/wrk", "http_hello")
}

/// What one `wrk` run reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WrkRun {
    /// Its `Requests/sec` line: responses over the run's duration.
    pub requests_per_s: f64,
    /// Responses received (`N requests in ...`).
    pub requests: u64,
    /// Latency percentiles of its `--latency` distribution: 50, 75, 90
    /// and 99 %.
    pub p50: Duration,
    /// 75th percentile.
    pub p75: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Socket errors (connect, read, write and timeout together; 0 when
    /// wrk printed none).
    pub socket_errors: u64,
    /// Responses with a status other than 2xx or 3xx.
    pub non_2xx: u64,
    /// CPU used during the run by this process (the loaded server's
    /// runtime; no other server runs meanwhile) and by `wrk`. `None`
    /// when not measured (a report parsed from text).
    pub cpu: Option<RunCpu>,
}

/// CPU time used during one `wrk` run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCpu {
    /// This process: the server under load, its runtime's threads, and the
    /// other runtime idling.
    pub server: CpuTimes,
    /// `wrk`.
    pub client: CpuTimes,
}

/// Loads the server at `addr` with `wrk -tT -c64 -dNs --latency
/// http://ADDR/` (`threads` threads) for `secs` (whole seconds) and reads
/// its report.
fn run_wrk(wrk: &Path, addr: SocketAddr, secs: Duration, threads: usize) -> io::Result<WrkRun> {
    let (server_before, client_before) = (cpu_times(RUSAGE_SELF), cpu_times(RUSAGE_CHILDREN));
    let output = Command::new(wrk)
        .args([
            format!("-t{threads}"),
            format!("-c{HTTP_CONNECTIONS}"),
            format!("-d{}s", secs.as_secs()),
            "--latency".to_owned(),
            format!("http://{addr}/"),
        ])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{WRK} failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let cpu = RunCpu {
        server: cpu_times(RUSAGE_SELF).since(server_before),
        client: cpu_times(RUSAGE_CHILDREN).since(client_before),
    };
    let mut run = parse_wrk(&stdout).map_err(|err| {
        io::Error::other(format!("cannot read {WRK}'s report ({err}):\n{stdout}"))
    })?;
    run.cpu = Some(cpu);
    Ok(run)
}

/// Reads the report `wrk --latency` prints: `Requests/sec`, the request
/// count, the 50/75/90/99 % latency distribution, and the socket error and
/// non-2xx/3xx lines if there are any.
pub fn parse_wrk(output: &str) -> Result<WrkRun, String> {
    let mut requests_per_s = None;
    let mut requests = None;
    let mut percentiles: [Option<Duration>; 4] = [None; 4];
    let mut socket_errors = 0;
    let mut non_2xx = 0;
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_s = Some(number::<f64>(rest, "Requests/sec")?);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            for part in rest.split(',') {
                let count = part.split_whitespace().nth(1).unwrap_or_default();
                socket_errors += number::<u64>(count, "Socket errors")?;
            }
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = number::<u64>(rest, "Non-2xx or 3xx responses")?;
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(number::<u64>(count, "requests in")?);
        } else if let Some((percent, value)) = line.split_once('%') {
            // `50%  250.00us`; the thread statistics also end in a percentage
            // but do not start with one.
            let slot = ["50", "75", "90", "99"]
                .iter()
                .position(|p| *p == percent.trim());
            if let Some(slot) = slot {
                percentiles[slot] = Some(wrk_duration(value.trim())?);
            }
        }
    }
    let [p50, p75, p90, p99] = percentiles;
    let missing = |what: &str| format!("no {what} in wrk's report");
    Ok(WrkRun {
        requests_per_s: requests_per_s.ok_or_else(|| missing("Requests/sec"))?,
        requests: requests.ok_or_else(|| missing("request count"))?,
        p50: p50.ok_or_else(|| missing("50% latency (was --latency given?)"))?,
        p75: p75.ok_or_else(|| missing("75% latency"))?,
        p90: p90.ok_or_else(|| missing("90% latency"))?,
        p99: p99.ok_or_else(|| missing("99% latency"))?,
        socket_errors,
        non_2xx,
        cpu: None,
    })
}

/// Parses `text` (trimmed) as a number, naming `what` if it is not one.
fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{}` in `{what}` is not a number", text.trim()))
}

/// Parses one of wrk's durations: a number with two decimals and a unit,
/// `us`, `ms`, `s`, `m` or `h` (`250.00us`, `5.13ms`, `1.00m`).
fn wrk_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, f64); 5] = [
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let (value, scale) = UNITS
        .iter()
        .find_map(|&(unit, scale)| text.strip_suffix(unit).map(|value| (value, scale)))
        .ok_or_else(|| format!("`{text}` is not a wrk duration"))?;
    let value: f64 = number(value, "latency distribution")?;
    Ok(Duration::from_secs_f64(value * scale))
}

/// What one run of the load generator measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadRun {
    /// How long each client thread issued requests.
    pub window: Duration,
    /// Responses (to either path) received within the window.
    pub completed_in_window: u64,
    /// Requests for `/` issued within the window (all of them were
    /// answered and timed).
    pub fast_requests: usize,
    /// Their median latency.
    pub fast_p50: Duration,
    /// Their 99th percentile latency.
    pub fast_p99: Duration,
    /// Requests for [`BLOCK_PATH`] issued within the window.
    pub block_requests: usize,
    /// Their median latency, if there were any.
    pub block_p50: Option<Duration>,
}

impl LoadRun {
    /// Responses received within the window per second of it.
    pub fn requests_per_s(&self) -> f64 {
        self.completed_in_window as f64 / self.window.as_secs_f64()
    }
}

/// What one connection of the load generator timed.
#[derive(Debug, Default)]
struct ConnectionLog {
    /// Latency of each request for `/`.
    fast: Vec<Duration>,
    /// Latency of each request for [`BLOCK_PATH`].
    block: Vec<Duration>,
    /// Responses received before the window closed.
    completed_in_window: u64,
}

impl ConnectionLog {
    fn append(&mut self, mut other: ConnectionLog) {
        self.fast.append(&mut other.fast);
        self.block.append(&mut other.block);
        self.completed_in_window += other.completed_in_window;
    }
}

/// Loads the server at `addr` with the load generator for `window`.
///
/// `threads` OS threads, each running a current-thread tokio
/// runtime, share [`HTTP_CONNECTIONS`] keep-alive connections. Each thread
/// opens its connections first; once every thread has, each starts its
/// window. Each connection then loops until the window closes: take the
/// next number `n` of a counter shared by all connections, ask for
/// [`BLOCK_PATH`] if `n % BLOCK_EVERY == BLOCK_EVERY - 1` and for `/`
/// otherwise, and time from just before the request is written until the
/// whole response (head and `Content-Length` bytes of body, checked to be
/// a 200 with [`HTTP_BODY`]) has been read. One request at a time per
/// connection (closed loop, like wrk): a request waiting on the server
/// delays that connection's next one. Every request issued within the
/// window is answered and timed; requests/s counts the responses received
/// within it.
pub fn load(addr: SocketAddr, window: Duration, threads: usize) -> io::Result<LoadRun> {
    let counter = AtomicU64::new(0);
    let barrier = Barrier::new(threads);
    let logs: Vec<io::Result<ConnectionLog>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let connections = share(HTTP_CONNECTIONS, threads, thread);
                let (counter, barrier) = (&counter, &barrier);
                scope.spawn(move || client_thread(addr, connections, window, counter, barrier))
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("load generator thread"))
            .collect()
    });
    let mut all = ConnectionLog::default();
    for log in logs {
        all.append(log?);
    }
    summarize(all, window)
}

/// Thread `thread`'s share of `total` items dealt out to `threads`
/// threads: the shares differ by at most one and add up to `total`.
fn share(total: usize, threads: usize, thread: usize) -> usize {
    total * (thread + 1) / threads - total * thread / threads
}

/// Percentiles of what the connections timed.
fn summarize(mut log: ConnectionLog, window: Duration) -> io::Result<LoadRun> {
    if log.fast.is_empty() {
        return Err(io::Error::other(
            "the load generator completed no request within its window",
        ));
    }
    log.fast.sort_unstable();
    log.block.sort_unstable();
    Ok(LoadRun {
        window,
        completed_in_window: log.completed_in_window,
        fast_requests: log.fast.len(),
        fast_p50: percentile_sorted(&log.fast, 0.50),
        fast_p99: percentile_sorted(&log.fast, 0.99),
        block_requests: log.block.len(),
        block_p50: (!log.block.is_empty()).then(|| percentile_sorted(&log.block, 0.50)),
    })
}

/// One thread of the load generator: opens `connections` connections to
/// `addr` on a current-thread tokio runtime, waits at `barrier` for the
/// other threads, then drives them all for `window`.
fn client_thread(
    addr: SocketAddr,
    connections: usize,
    window: Duration,
    counter: &AtomicU64,
    barrier: &Barrier,
) -> io::Result<ConnectionLog> {
    let connected = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| {
            let streams = rt.block_on(futures::future::try_join_all(
                (0..connections).map(|_| connect(addr)),
            ))?;
            Ok((rt, streams))
        });
    // Every thread reaches the barrier, even one that failed, so that the
    // others do not wait for it forever.
    barrier.wait();
    let (rt, streams) = connected?;
    let deadline = Instant::now() + window;
    let host = addr.to_string();
    let logs = rt.block_on(futures::future::try_join_all(
        streams
            .into_iter()
            .map(|stream| drive(stream, &host, deadline, counter)),
    ))?;
    let mut all = ConnectionLog::default();
    for log in logs {
        all.append(log);
    }
    Ok(all)
}

/// Opens one connection of the load generator, with `TCP_NODELAY` as the
/// servers set it.
async fn connect(addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A keep-alive `GET` for `path`.
fn request_bytes(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// Drives one connection until `deadline` (see [`load`]).
async fn drive(
    mut stream: tokio::net::TcpStream,
    host: &str,
    deadline: Instant,
    counter: &AtomicU64,
) -> io::Result<ConnectionLog> {
    let fast = request_bytes("/", host);
    let block = request_bytes(BLOCK_PATH, host);
    let mut log = ConnectionLog::default();
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let blocks = counter.fetch_add(1, Relaxed) % BLOCK_EVERY == BLOCK_EVERY - 1;
        let request = if blocks { &block } else { &fast };
        let sent = Instant::now();
        let exchange = async {
            stream.write_all(request).await?;
            read_response(&mut stream, &mut buf).await
        };
        tokio::time::timeout(STUCK_AFTER, exchange)
            .await
            .map_err(|_| io::Error::other(format!("no response within {STUCK_AFTER:?}")))??;
        let received = Instant::now();
        if received <= deadline {
            log.completed_in_window += 1;
        }
        let latency = received - sent;
        if blocks {
            log.block.push(latency);
        } else {
            log.fast.push(latency);
        }
    }
    Ok(log)
}

/// Reads one response from `stream` into `buf` (which may already hold
/// part of it), checks that it is a 200 with [`HTTP_BODY`], and removes it
/// from `buf`.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut chunk = [0; 4096];
    loop {
        if let Some(response) = parse_response(buf).map_err(invalid)? {
            if response.status != 200 || &buf[response.body.clone()] != HTTP_BODY {
                return Err(invalid(format!(
                    "unexpected response: {}",
                    String::from_utf8_lossy(&buf[..response.body.end])
                )));
            }
            buf.drain(..response.body.end);
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete response at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
struct ParsedResponse {
    /// Its status code.
    status: u16,
    /// Where its body is; the response ends where the body does.
    body: Range<usize>,
}

/// Parses the HTTP/1.1 response at the start of `buf`: `Ok(None)` if it is
/// not complete yet. Only what the servers send is accepted: a status line,
/// headers with a `Content-Length`, and that many bytes of body; not
/// chunked, and not closing the connection (keep-alive).
fn parse_response(buf: &[u8]) -> Result<Option<ParsedResponse>, String> {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(format!("no end of the response head in {MAX_HEAD} bytes"))
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| "the response head is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        ["HTTP/1.1", code, ..] => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line `{line}`"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length `{value}`"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unsupported Transfer-Encoding `{value}`"));
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            return Err("the server closes the connection".to_owned());
        }
    }
    let length = length.ok_or_else(|| "no Content-Length".to_owned())?;
    let start = head_len + 4;
    let body = start..start + length;
    Ok((buf.len() >= body.end).then_some(ParsedResponse { status, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of `wrk -t2 -c64 -d3s --latency` (wrk 4.1.0, Debian 12)
    /// against wq's `examples/hyper_hello.rs`, as captured.
    const WRK_REPORT: &str = "\
Running 3s test @ http://127.0.0.1:41009/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   821.57us    0.94ms  18.54ms   95.93%
    Req/Sec    39.26k     5.33k   48.73k    70.00%
  Latency Distribution
     50%  681.00us
     75%    0.92ms
     90%    1.27ms
     99%    3.56ms
  234529 requests in 3.01s, 20.13MB read
Requests/sec:  78037.63
Transfer/sec:      6.70MB
";

    #[test]
    fn reads_a_wrk_report() {
        let run = parse_wrk(WRK_REPORT).unwrap();
        let us = Duration::from_micros;
        assert_eq!(run.requests_per_s, 78037.63);
        assert_eq!(run.requests, 234529);
        assert_eq!(
            [run.p50, run.p75, run.p90, run.p99],
            [us(681), us(920), us(1270), us(3560)]
        );
        assert_eq!((run.socket_errors, run.non_2xx), (0, 0));
    }

    #[test]
    fn reads_wrk_errors_and_units() {
        let report = WRK_REPORT
            .replace("     50%  681.00us", "     50%  250.00us")
            .replace("     99%    3.56ms", "     99%    1.50s")
            .replace(
                "Requests/sec:",
                "  Socket errors: connect 1, read 2, write 0, timeout 4\n  \
                 Non-2xx or 3xx responses: 5\nRequests/sec:",
            );
        let run = parse_wrk(&report).unwrap();
        assert_eq!(run.p50, Duration::from_micros(250));
        assert_eq!(run.p99, Duration::from_millis(1500));
        assert_eq!((run.socket_errors, run.non_2xx), (7, 5));
        assert_eq!(wrk_duration("1.00m"), Ok(Duration::from_secs(60)));
        assert!(wrk_duration("12").is_err());
    }

    #[test]
    fn a_report_without_latency_distribution_is_refused() {
        let report = WRK_REPORT.replace("     50%  681.00us\n", "");
        let err = parse_wrk(&report).unwrap_err();
        assert!(err.contains("--latency"), "{err}");
    }

    #[test]
    fn connections_are_shared_out() {
        assert_eq!(
            (0..2).map(|t| share(64, 2, t)).collect::<Vec<_>>(),
            [32, 32]
        );
        assert_eq!(
            (0..3).map(|t| share(64, 3, t)).collect::<Vec<_>>(),
            [21, 21, 22]
        );
    }

    #[test]
    fn parses_keep_alive_responses() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\ndate: x\r\n\r\nHello, world!\n";
        let parsed = parse_response(response).unwrap().unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(&response[parsed.body.clone()], HTTP_BODY);
        assert_eq!(parsed.body.end, response.len());
        // Incomplete: the head, then the body.
        assert_eq!(parse_response(&response[..20]), Ok(None));
        assert_eq!(parse_response(&response[..response.len() - 1]), Ok(None));
        // The next response already in the buffer stays there.
        let two = [&response[..], &response[..]].concat();
        assert_eq!(
            parse_response(&two).unwrap().unwrap().body.end,
            response.len()
        );
    }

    #[test]
    fn refuses_what_the_client_does_not_support() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_response(chunked).is_err());
        let close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_response(close).is_err());
        let no_length = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(parse_response(no_length).is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n").is_err());
        let status = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_response(status).unwrap().unwrap().status, 503);
    }

    /// The load generator against both servers, briefly: every request it
    /// timed was answered by the handler, and the handler blocked on
    /// exactly the requests the client sent to the blocking path. Nothing
    /// here depends on how long anything took.
    #[test]
    fn load_generator_against_both_servers() {
        fn check<R: Serve>() {
            let server = Server::<R>::start(2).unwrap();
            let run = server
                .run(|addr| load(addr, Duration::from_millis(300), HTTP_CLIENT_THREADS))
                .unwrap();
            server.shutdown();
            let client = &run.load;
            assert!(client.fast_requests > 0, "{run:?}");
            assert_eq!(
                run.server.requests,
                (client.fast_requests + client.block_requests) as u64,
                "{run:?}"
            );
            assert_eq!(run.server.blocked, client.block_requests as u64, "{run:?}");
            assert_eq!(client.block_p50.is_some(), client.block_requests > 0);
            assert!(client.fast_p99 >= client.fast_p50, "{run:?}");
        }
        check::<Wq>();
        check::<Tokio>();
    }
}

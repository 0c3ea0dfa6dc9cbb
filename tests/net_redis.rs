//! The Redis-protocol key-value server of `examples/redis_kv.rs` (its
//! `server.rs`, the same code the example and the comparison runner
//! serve), on wq: a small RESP client written here checks the commands,
//! pipelining, 200 concurrent connections, binary-safe values and
//! malformed requests; then, where Debian's `redis-tools` is installed,
//! `redis-cli` and `redis-benchmark` against it.
#![cfg(feature = "tokio-io")]

#[path = "../examples/redis_kv/server.rs"]
mod server;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wq::net::{TcpListener, TcpStream};

/// How long any one exchange may take before the test fails instead of
/// hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// The server on a runtime of its own, on an ephemeral port of loopback.
struct Server {
    rt: wq::Runtime,
    addr: SocketAddr,
    db: server::Db,
}

impl Server {
    /// Starts it on a 2-worker runtime: the accept loop spawns
    /// [`server::serve`] for every connection, as the example does.
    fn start() -> Server {
        let rt = wq::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let db = server::Db::default();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = db.clone();
        rt.spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                // A connection that sent a malformed request ends with
                // an error: the tests look at what the client received.
                wq::spawn(server::serve(stream, shared.clone()));
            }
        });
        Server { rt, addr, db }
    }

    /// Runs `test` with a client connected to the server.
    fn with_client<F, T>(&self, test: impl FnOnce(Client) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let addr = self.addr;
        self.rt.block_on(async move {
            let client = Client::connect(addr).await;
            wq::time::timeout(PATIENCE, test(client))
                .await
                .expect("the server did not answer in time")
        })
    }

    fn keys(&self) -> usize {
        self.db.lock().unwrap().len()
    }
}

/// A reply as the client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Value>),
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

fn bulk(data: impl AsRef<[u8]>) -> Value {
    Value::Bulk(data.as_ref().to_vec())
}

fn error(text: &str) -> Value {
    Value::Error(text.into())
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The reply at the start of `buf` and its length, or `None` if it is not
/// all there. Panics on anything that is not RESP2.
fn parse_reply(buf: &[u8]) -> Option<(Value, usize)> {
    let cr = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..cr]).expect("reply line is not UTF-8");
    let next = cr + 2;
    let number = || line.parse::<i64>().expect("not a number");
    match buf[0] {
        b'+' => Some((Value::Simple(line.into()), next)),
        b'-' => Some((Value::Error(line.into()), next)),
        b':' => Some((Value::Integer(number()), next)),
        b'$' if number() == -1 => Some((Value::Nil, next)),
        b'$' => {
            let len = number() as usize;
            if buf.len() < next + len + 2 {
                return None;
            }
            assert_eq!(&buf[next + len..next + len + 2], b"\r\n");
            Some((bulk(&buf[next..next + len]), next + len + 2))
        }
        b'*' => {
            let mut items = Vec::new();
            let mut at = next;
            for _ in 0..number() {
                let (item, len) = parse_reply(&buf[at..])?;
                items.push(item);
                at += len;
            }
            Some((Value::Array(items), at))
        }
        other => panic!("not a RESP2 reply: {:?}", char::from(other)),
    }
}

/// A RESP client over wq's `TcpStream`, with tokio's io traits.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Sends raw bytes.
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads the next reply; `None` if the server closed the connection
    /// before one.
    async fn try_reply(&mut self) -> Option<Value> {
        loop {
            if let Some((value, len)) = parse_reply(&self.buf) {
                self.buf.advance(len);
                return Some(value);
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap() == 0 {
                assert!(self.buf.is_empty(), "cut reply: {:?}", self.buf);
                return None;
            }
        }
    }

    async fn reply(&mut self) -> Value {
        self.try_reply()
            .await
            .expect("the server closed the connection")
    }

    /// Sends one command and reads its reply.
    async fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call_bytes(&args).await
    }

    async fn call_bytes(&mut self, args: &[&[u8]]) -> Value {
        self.send(&encode(args)).await;
        self.reply().await
    }
}

#[test]
fn ping_set_get_del() {
    let server = Server::start();
    server.with_client(|mut c| async move {
        assert_eq!(c.call(&["PING"]).await, Value::Simple("PONG".into()));
        assert_eq!(c.call(&["ping", "hello there"]).await, bulk("hello there"));
        assert_eq!(c.call(&["SET", "greeting", "hello"]).await, ok());
        assert_eq!(c.call(&["GET", "greeting"]).await, bulk("hello"));
        assert_eq!(c.call(&["set", "greeting", "again"]).await, ok());
        assert_eq!(c.call(&["get", "greeting"]).await, bulk("again"));
        assert_eq!(c.call(&["GET", "missing"]).await, Value::Nil);
        assert_eq!(c.call(&["SET", "other", "1"]).await, ok());
        assert_eq!(c.call(&["DBSIZE"]).await, Value::Integer(2));
        assert_eq!(
            c.call(&["DEL", "greeting", "missing", "other", "greeting"])
                .await,
            Value::Integer(2)
        );
        assert_eq!(c.call(&["DEL", "greeting"]).await, Value::Integer(0));
        assert_eq!(c.call(&["GET", "greeting"]).await, Value::Nil);
        assert_eq!(c.call(&["ECHO", "echo"]).await, bulk("echo"));
    });
    assert_eq!(server.keys(), 0);
}

#[test]
fn errors_are_replies_and_the_connection_goes_on() {
    let server = Server::start();
    server.with_client(|mut c| async move {
        assert_eq!(
            c.call(&["COMMAND", "DOCS"]).await,
            error("ERR unknown command 'COMMAND', with args beginning with: 'DOCS' ")
        );
        assert_eq!(
            c.call(&["FLUSHALL"]).await,
            error("ERR unknown command 'FLUSHALL', with args beginning with: ")
        );
        assert_eq!(
            c.call(&["GET"]).await,
            error("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            c.call(&["DEL"]).await,
            error("ERR wrong number of arguments for 'del' command")
        );
        assert_eq!(
            c.call(&["SET", "k", "v", "EX", "10"]).await,
            error("ERR SET option 'EX' is not supported by this server")
        );
        assert_eq!(c.call(&["GET", "k"]).await, Value::Nil, "not set");
        // A line break in an error would break the protocol.
        assert_eq!(
            c.call(&["NO\r\nPE"]).await,
            error("ERR unknown command 'NO  PE', with args beginning with: ")
        );
        // What redis-benchmark asks at start.
        assert_eq!(
            c.call(&["CONFIG", "GET", "save"]).await,
            Value::Array(vec![bulk("save"), bulk("")])
        );
        assert_eq!(
            c.call(&["CONFIG", "GET", "maxmemory"]).await,
            Value::Array(vec![])
        );
        assert_eq!(c.call(&["PING"]).await, Value::Simple("PONG".into()));
        assert_eq!(c.call(&["QUIT"]).await, ok());
        assert_eq!(c.try_reply().await, None, "closed after QUIT");
    });
}

#[test]
fn inline_commands() {
    let server = Server::start();
    server.with_client(|mut c| async move {
        c.send(b"PING\r\nSET inline  value\r\nGET inline\nping hi\r\n\r\n")
            .await;
        assert_eq!(c.reply().await, Value::Simple("PONG".into()));
        assert_eq!(c.reply().await, ok());
        assert_eq!(c.reply().await, bulk("value"));
        assert_eq!(c.reply().await, bulk("hi"));
        // The blank line got no reply: the next reply is this command's.
        assert_eq!(c.call(&["GET", "inline"]).await, bulk("value"));
    });
}

/// 1,000 commands in one write: 500 SETs and 500 GETs interleaved, every
/// reply read back in order.
#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Server::start();
    server.with_client(|mut c| async move {
        let mut batch = Vec::new();
        for i in 0..500 {
            let (key, value) = (format!("key:{i}"), format!("value:{i}"));
            batch.extend(encode(&[b"SET", key.as_bytes(), value.as_bytes()]));
            batch.extend(encode(&[b"GET", key.as_bytes()]));
        }
        c.send(&batch).await;
        for i in 0..500 {
            assert_eq!(c.reply().await, ok(), "SET {i}");
            assert_eq!(c.reply().await, bulk(format!("value:{i}")), "GET {i}");
        }
        // Nothing more came.
        assert_eq!(c.call(&["DBSIZE"]).await, Value::Integer(500));
    });
}

/// 200 connections at once, each setting and reading back its own keys.
#[test]
fn concurrent_connections_keep_their_own_keys() {
    const CONNECTIONS: usize = 200;
    const KEYS: usize = 20;
    let server = Server::start();
    let addr = server.addr;
    server.rt.block_on(async move {
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|n| {
                wq::spawn(async move {
                    let mut c = Client::connect(addr).await;
                    for k in 0..KEYS {
                        let key = format!("conn:{n}:key:{k}");
                        let value = format!("value of {n}/{k}");
                        assert_eq!(c.call(&["SET", &key, &value]).await, ok());
                    }
                    for k in 0..KEYS {
                        let key = format!("conn:{n}:key:{k}");
                        let value = format!("value of {n}/{k}");
                        assert_eq!(c.call(&["GET", &key]).await, bulk(value));
                    }
                })
            })
            .collect();
        for client in clients {
            wq::time::timeout(PATIENCE, client)
                .await
                .expect("a client was not answered in time")
                .unwrap();
        }
    });
    assert_eq!(server.keys(), CONNECTIONS * KEYS);
}

/// A malformed request is answered with an error, after the replies to
/// the commands before it in the same write, and closes that connection
/// only.
#[test]
fn malformed_request_gets_an_error_and_closes_only_its_connection() {
    let server = Server::start();
    server.with_client(|mut other| async move {
        let addr = other.stream.peer_addr().unwrap();
        for (request, expected) in [
            (
                &b"*1\r\n$x\r\n"[..],
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*2\r\n$3\r\nGET\r\n:5\r\n",
                "ERR Protocol error: expected '$', got ':'",
            ),
            (b"*-5x\r\n", "ERR Protocol error: invalid multibulk length"),
        ] {
            let mut bad = Client::connect(addr).await;
            let mut sent = encode(&[b"SET", b"before", b"1"]);
            sent.extend_from_slice(request);
            bad.send(&sent).await;
            assert_eq!(bad.reply().await, ok());
            assert_eq!(bad.reply().await, error(expected));
            assert_eq!(bad.try_reply().await, None, "closed after {expected}");
            assert_eq!(other.call(&["PING"]).await, Value::Simple("PONG".into()));
        }
        let mut fresh = Client::connect(addr).await;
        assert_eq!(fresh.call(&["GET", "before"]).await, bulk("1"));
    });
}

/// Keys and values are bytes: line breaks, NUL and non-UTF-8 bytes go
/// through, and so does a value larger than any one read.
#[test]
fn values_are_binary_safe() {
    let server = Server::start();
    server.with_client(|mut c| async move {
        let key = b"key with spaces\r\n\0";
        let value = b"line\r\nbreak\0nul\xff\xfe\r\n";
        assert_eq!(c.call_bytes(&[b"SET", key, value]).await, ok());
        assert_eq!(c.call_bytes(&[b"GET", key]).await, bulk(value));
        let large: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(c.call_bytes(&[b"SET", b"large", &large]).await, ok());
        assert_eq!(c.call_bytes(&[b"GET", b"large"]).await, bulk(&large));
        assert_eq!(
            c.call_bytes(&[b"DEL", key, b"large"]).await,
            Value::Integer(2)
        );
    });
}

/// `redis-cli` and `redis-benchmark` against the server, if Debian's
/// `redis-tools` is installed (`.ci/run` installs it where it can);
/// otherwise the test says so and passes.
#[test]
fn redis_cli_and_redis_benchmark() {
    let (Some(cli), Some(benchmark)) = (on_path("redis-cli"), on_path("redis-benchmark")) else {
        // Straight to stderr: the test harness would hide a message
        // printed with `eprintln!` from a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "net_redis: skipping redis_cli_and_redis_benchmark: redis-cli and \
             redis-benchmark are not on PATH; install Debian's redis-tools package \
             (`apt-get install redis-tools`) to run it"
        );
        return;
    };
    let server = Server::start();
    let port = server.addr.port().to_string();
    let redis_cli = |args: &[&str]| -> String {
        let output = run(Command::new(&cli)
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args));
        String::from_utf8(output.stdout).unwrap()
    };
    // Not on a terminal, redis-cli prints replies raw: a nil as an empty
    // line, an error followed by an empty line.
    assert_eq!(redis_cli(&["PING"]), "PONG\n");
    assert_eq!(redis_cli(&["PING", "hi"]), "hi\n");
    assert_eq!(redis_cli(&["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(redis_cli(&["GET", "greeting"]), "hello world\n");
    assert_eq!(redis_cli(&["DEL", "greeting", "missing"]), "1\n");
    assert_eq!(redis_cli(&["GET", "greeting"]), "\n");
    assert_eq!(
        redis_cli(&["FROB", "x"]),
        "ERR unknown command 'FROB', with args beginning with: 'x' \n\n"
    );
    assert_eq!(server.keys(), 0);

    // 100 keys, key:000000000000 to key:000000000099, each set over and
    // over with random 3-byte values.
    let output = run(Command::new(&benchmark).args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "set,get",
        "-n",
        "20000",
        "-c",
        "20",
        "-r",
        "100",
        "-q",
    ]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for test in ["SET", "GET"] {
        assert!(
            stdout.contains(&format!("{test}: ")) && stdout.contains("requests per second"),
            "no {test} figure from redis-benchmark:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
        "redis-benchmark reported errors:\n{stdout}\n{stderr}"
    );
    assert_eq!(server.keys(), 100, "redis-benchmark's keys");
    server.with_client(|mut c| async move {
        assert_eq!(c.call(&["DBSIZE"]).await, Value::Integer(100));
        match c.call(&["GET", "key:000000000042"]).await {
            Value::Bulk(value) => assert_eq!(value.len(), 3, "{value:?}"),
            other => panic!("GET key:000000000042: {other:?}"),
        }
        assert_eq!(c.call(&["GET", "key:000000000100"]).await, Value::Nil);
    });
    let value = redis_cli(&["GET", "key:000000000007"]);
    assert_eq!(value.len(), 4, "{value:?}");
}

/// The program `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs `command` to completion, with no input, and checks that it
/// succeeded; kills it if it is still running after [`PATIENCE`].
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while the program runs, so that it cannot block on
    // a full one.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read = |pipe: &mut dyn std::io::Read| {
        let mut all = Vec::new();
        pipe.read_to_end(&mut all).map(|_| all)
    };
    let out = std::thread::spawn(move || read(&mut stdout));
    let err = std::thread::spawn(move || read(&mut stderr));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    };
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

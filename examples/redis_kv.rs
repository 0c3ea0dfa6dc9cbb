//! A Redis-protocol key-value server on wq: `PING`, `GET`, `SET`, `DEL`
//! and a few more over RESP2, pipelining included, for `redis-cli` and
//! `redis-benchmark`. The protocol and the connection loop are in
//! `redis_kv/server.rs`, written against tokio's io traits; this file is
//! the accept loop.
//!
//! Run with `cargo run --release --features tokio-io --example redis_kv`
//! (port 6379 on 127.0.0.1; `-- --port N` or `REDIS_KV_PORT=N` for
//! another), then for instance:
//!
//! ```sh
//! redis-cli -p 6379 SET greeting hello
//! redis-cli -p 6379 GET greeting
//! redis-benchmark -p 6379 -t set,get,ping -q
//! ```
//!
//! Ctrl-C stops it: the listener closes, and the connections still open
//! are dropped with the runtime.

#[path = "redis_kv/server.rs"]
mod server;

use std::io;
use std::time::Duration;

use wq::net::TcpListener;

/// The port when neither `--port` nor `REDIS_KV_PORT` says otherwise:
/// Redis's, which is where `redis-cli` looks by default.
const DEFAULT_PORT: u16 = 6379;

#[wq::main]
async fn main() -> io::Result<()> {
    let port = port().unwrap_or_else(|err| {
        eprintln!("redis_kv: {err}");
        std::process::exit(2);
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("redis_kv listening on {}", listener.local_addr()?);
    let db = server::Db::default();
    let shutdown = wq::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let db = db.clone();
                    wq::spawn(async move {
                        if let Err(err) = server::serve(stream, db).await {
                            eprintln!("{peer}: {err}");
                        }
                    });
                }
                Err(err) => {
                    // Out of descriptors, most likely: back off.
                    eprintln!("accept: {err}");
                    wq::time::sleep(Duration::from_millis(100)).await;
                }
            },
            stopped = &mut shutdown => {
                stopped?;
                let keys = db.lock().map_or(0, |db| db.len());
                println!("shutting down with {keys} keys");
                return Ok(());
            }
        }
    }
}

/// `--port N` on the command line, else `REDIS_KV_PORT`, else
/// [`DEFAULT_PORT`].
fn port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let text = match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(port)) => port,
        (None, _) => match std::env::var("REDIS_KV_PORT") {
            Ok(port) => port,
            Err(_) => return Ok(DEFAULT_PORT),
        },
        _ => return Err("usage: redis_kv [--port N]".into()),
    };
    text.parse()
        .map_err(|_| format!("`{text}` is not a port number"))
}

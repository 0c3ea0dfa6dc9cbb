//! A TCP echo server.
//!
//! Run with `cargo run --example echo [ADDR]` (default `127.0.0.1:8080`),
//! then `nc 127.0.0.1 8080`.
//!
//! The accept loop survives running out of file descriptors (`EMFILE`):
//! it reports the error and backs off for 100 ms (the connections being
//! served free descriptors as they close), instead of spinning on the
//! error or exiting.

use std::io;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use wq::net::{TcpListener, TcpStream};

#[wq::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                wq::spawn(async move {
                    if let Err(err) = echo(stream).await {
                        eprintln!("{peer}: {err}");
                    }
                });
            }
            Err(err) if is_resource_exhaustion(&err) => {
                eprintln!("accept: {err}; retrying in 100 ms");
                wq::time::sleep(Duration::from_millis(100)).await;
            }
            // Errors about one connection (it was reset before we took it):
            // go on with the next.
            Err(err) => eprintln!("accept: {err}"),
        }
    }
}

/// Echoes until the peer closes its side.
async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.close().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// Out of file descriptors or memory: the listener is fine, the process
/// must wait for resources to free.
fn is_resource_exhaustion(err: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(err.raw_os_error(), Some(24 | 23 | 105 | 12))
}

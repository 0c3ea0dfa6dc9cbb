//! A line-based chat server: every line a client sends goes to all the
//! others.
//!
//! Run with `cargo run --example chat [ADDR]` (default `127.0.0.1:8081`),
//! then connect a few `nc 127.0.0.1 8081`.

use std::io;

use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;

#[wq::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let listener = wq::net::TcpListener::bind(&addr).await?;
    println!("chat server on {}", listener.local_addr()?);
    // (sender, line): each client skips its own lines.
    let (lines, _) = broadcast::channel::<(std::net::SocketAddr, String)>(1024);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("accept: {err}");
                wq::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (lines, mut incoming) = (lines.clone(), lines.subscribe());
        wq::spawn(async move {
            let (reader, mut writer) = stream.into_split();
            let _ = lines.send((peer, format!("* {peer} joined\n")));
            let mut reader = BufReader::new(reader).lines();
            let read = async {
                use futures::StreamExt;
                while let Some(Ok(line)) = reader.next().await {
                    let _ = lines.send((peer, format!("{peer}: {line}\n")));
                }
                let _ = lines.send((peer, format!("* {peer} left\n")));
            };
            let write = async {
                loop {
                    match incoming.recv().await {
                        Ok((from, line)) if from != peer => {
                            if writer.write_all(line.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let note = format!("* {n} lines dropped: too slow\n");
                            let _ = writer.write_all(note.as_bytes()).await;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            };
            // The client is done when it stops sending.
            futures::pin_mut!(read, write);
            futures::future::select(read, write).await;
        });
    }
}

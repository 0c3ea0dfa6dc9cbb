//! With the `tokio-io` feature, wq's streams implement tokio's io traits:
//! tokio's own utilities (`tokio::io::copy`, `AsyncReadExt`, split) run on
//! them, on wq. `cargo test --workspace` builds wq with the feature (the
//! benchmark crate enables it).
#![cfg(feature = "tokio-io")]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wq::net::{TcpListener, TcpStream, UnixStream};

/// An echo server written with `tokio::io::copy` over wq's owned halves,
/// and a client using tokio's extension traits and `shutdown`.
#[test]
fn tokio_io_traits_on_tcp() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = wq::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (mut reader, mut writer) = socket.into_split();
            let copied = tokio::io::copy(&mut reader, &mut writer).await.unwrap();
            writer.shutdown().await.unwrap();
            copied
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (mut reader, mut writer) = TcpStream::split(&mut client);
        let write = async {
            writer.write_all(&sent).await.unwrap();
            writer.shutdown().await.unwrap();
        };
        let read = async {
            let mut received = Vec::new();
            reader.read_to_end(&mut received).await.unwrap();
            received
        };
        let ((), received) = futures::join!(write, read);
        assert!(received == sent, "echoed bytes differ");
        assert_eq!(server.await.unwrap(), sent.len() as u64);
    });
}

/// The same traits on a Unix stream pair.
#[test]
fn tokio_io_traits_on_unix() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"tokio traits").await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = String::new();
        b.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "tokio traits");
    });
}

/// A vectored write sends every slice in order in one call (hyper sends a
/// response's head and body this way), and a read into a buffer's spare,
/// uninitialized capacity (`read_buf`) hands back exactly the bytes sent.
#[test]
fn vectored_writes_and_reads_into_uninitialized_memory() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut a, b) = UnixStream::pair().unwrap();
        assert!(tokio::io::AsyncWrite::is_write_vectored(&a));
        let slices = [
            std::io::IoSlice::new(b"head "),
            std::io::IoSlice::new(b""),
            std::io::IoSlice::new(b"and body"),
        ];
        let written = a.write_vectored(&slices).await.unwrap();
        assert_eq!(written, 13, "a 13-byte writev to an empty socket is whole");
        let (mut reader, _writer) = b.into_split();
        let mut received: Vec<u8> = Vec::with_capacity(64);
        while received.len() < 13 {
            let n = reader.read_buf(&mut received).await.unwrap();
            assert!(n > 0, "end of stream after {} bytes", received.len());
        }
        assert_eq!(received, b"head and body");
        a.shutdown().await.unwrap();
        assert_eq!(reader.read_buf(&mut received).await.unwrap(), 0);
    });
}

/// tokio-util's codecs need only tokio's io traits: a `Framed` line codec
/// over wq's `TcpStream`, on both ends, every line checked.
#[test]
fn tokio_util_codecs_run_on_wq_streams() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_util::codec::{Framed, LinesCodec};

    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = wq::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut lines = Framed::new(stream, LinesCodec::new());
            while let Some(line) = lines.next().await {
                lines.send(line.unwrap().to_uppercase()).await.unwrap();
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut lines = Framed::new(stream, LinesCodec::new());
        for i in 0..100 {
            lines.send(format!("line {i}")).await.unwrap();
            assert_eq!(lines.next().await.unwrap().unwrap(), format!("LINE {i}"));
        }
        drop(lines);
        server.await.unwrap();
    });
}

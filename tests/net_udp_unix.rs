//! UDP and Unix sockets on the reactor: echo round trips with every byte
//! checked.

mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use wq::net::{UdpSocket, UnixListener, UnixStream};

/// The bytes client `i` sends in round `r`.
fn payload(i: usize, r: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + r * 13 + j * 7) as u8).collect()
}

/// 1,000 UDP clients at once, 4 datagrams each, against one echo socket.
/// Loopback drops datagrams when a socket's buffer overflows, so a client
/// resends a datagram whose echo has not come back in 200 ms (at most 50
/// times); every echo is checked byte for byte.
#[test]
fn udp_echo_1000_concurrent_clients() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = server.local_addr().unwrap();
        wq::spawn({
            let server = server.clone();
            async move {
                let mut buf = [0u8; 2048];
                loop {
                    let (n, from) = server.recv_from(&mut buf).await.unwrap();
                    // A full send buffer drops the echo; the client resends.
                    let _ = server.send_to(&buf[..n], from).await;
                }
            }
        });
        let resends = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..1000)
            .map(|i| {
                let resends = resends.clone();
                wq::spawn(async move {
                    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    socket.connect(addr).await.unwrap();
                    assert_eq!(socket.peer_addr().unwrap(), addr);
                    let mut buf = [0u8; 2048];
                    for round in 0..4 {
                        let sent = payload(i, round, 512);
                        let mut tries = 0;
                        loop {
                            socket.send(&sent).await.unwrap();
                            let recv = socket.recv(&mut buf);
                            match wq::time::timeout(Duration::from_millis(200), recv).await {
                                Ok(n) => {
                                    assert_eq!(&buf[..n.unwrap()], &sent[..], "client {i}");
                                    break;
                                }
                                Err(_) => {
                                    tries += 1;
                                    resends.fetch_add(1, SeqCst);
                                    assert!(tries < 50, "client {i}: no echo after 50 sends");
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        println!("udp resends: {}", resends.load(SeqCst));
    });
}

/// `connect` fixes the peer: `send` goes to it, `recv` takes only its
/// datagrams (the kernel drops a stranger's), and a second `connect`
/// changes it. An unconnected socket's `send` is an error, not a hang.
/// Two datagrams queued at once are both received, each by one `recv`
/// with room to spare (a short datagram read says nothing about what else
/// is queued, unlike a short stream read).
#[test]
#[cfg(target_os = "linux")]
fn udp_connect_fixes_the_peer() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let err = a.send(b"nowhere").await.unwrap_err();
        // EDESTADDRREQ (89 on Linux), as on tokio: the OS error, unchanged.
        assert_eq!(err.raw_os_error(), Some(89), "{err}");
        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);

        stranger.send_to(b"stranger", b_addr).await.unwrap();
        a.send(b"one").await.unwrap();
        a.send(b"two").await.unwrap();
        let mut buf = [0u8; 64];
        for expected in [&b"one"[..], b"two"] {
            let n = wq::time::timeout(Duration::from_secs(5), b.recv(&mut buf))
                .await
                .expect("a queued datagram was not received")
                .unwrap();
            assert_eq!(&buf[..n], expected);
        }
        let err = b.try_recv(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "the stranger's got through"
        );

        // Reconnected to the stranger: its datagrams now arrive.
        b.connect(stranger.local_addr().unwrap()).await.unwrap();
        stranger.send_to(b"hello", b_addr).await.unwrap();
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        b.send(b"back").await.unwrap();
        let (n, from) = stranger.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], b_addr));
    });
}

/// `try_recv_from` reports `WouldBlock` with nothing queued, and
/// `readable` waits for the next datagram.
#[test]
fn udp_readiness_after_would_block() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 8];
        let err = b.try_recv_from(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let to = b.local_addr().unwrap();
        let sender = wq::spawn(async move {
            wq::time::sleep(Duration::from_millis(20)).await;
            a.writable().await.unwrap();
            a.try_send_to(b"late", to).unwrap();
            a
        });
        loop {
            b.readable().await.unwrap();
            match b.try_recv_from(&mut buf) {
                Ok((n, _)) => {
                    assert_eq!(&buf[..n], b"late");
                    break;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => panic!("{err}"),
            }
        }
        drop(sender.await.unwrap());
    });
}

/// A fresh socket path in a directory of this test's own.
fn socket_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wq-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// 1,000 Unix stream clients at once, 16 KiB each, every byte checked.
#[test]
fn unix_echo_1000_concurrent_connections() {
    let rt = wq::Runtime::new().unwrap();
    let path = socket_path("echo.sock");
    rt.block_on(async {
        let listener = UnixListener::bind(&path).unwrap();
        wq::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                wq::spawn(support::echo_connection(socket));
            }
        });
        let clients: Vec<_> = (0..1000)
            .map(|i| {
                let path = path.clone();
                wq::spawn(async move {
                    let stream = UnixStream::connect(&path).await.unwrap();
                    let sent = payload(i, 0, 16 * 1024);
                    let received = support::echo_round_trip(stream, &sent).await;
                    assert!(received == sent, "client {i}: echoed bytes differ");
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
    });
    std::fs::remove_file(&path).unwrap();
}

/// `pair` gives two connected streams; half-close is seen as end of
/// stream; connecting to a missing path is an error.
#[test]
fn unix_pair_half_close_and_errors() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"one").await.unwrap();
        a.close().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"one");
        b.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        a.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
        let err = UnixStream::connect(socket_path("missing.sock"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

/// On Linux a path starting with a NUL byte names an abstract address, for
/// `bind` and `connect` alike: the connection carries bytes both ways, both
/// ends report the name, a second `bind` of it is refused while the
/// listener lives and succeeds once it is dropped, and a name nobody
/// listens on is refused.
#[cfg(target_os = "linux")]
#[test]
fn unix_abstract_addresses() {
    use std::os::linux::net::SocketAddrExt;

    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let name = format!("wq-test-abstract-{}", std::process::id());
        let path = format!("\0{name}");
        let listener = UnixListener::bind(&path).unwrap();
        let bound = listener.local_addr().unwrap();
        assert_eq!(bound.as_abstract_name(), Some(name.as_bytes()));
        assert!(bound.as_pathname().is_none());

        let mut client = UnixStream::connect(&path).await.unwrap();
        let (mut server, from) = listener.accept().await.unwrap();
        assert!(from.is_unnamed(), "{from:?}");
        let peer = client.peer_addr().unwrap();
        assert_eq!(peer.as_abstract_name(), Some(name.as_bytes()));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");

        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = UnixStream::connect(format!("{path}-nobody"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        drop(listener);
        UnixListener::bind(&path).unwrap();
    });
}

/// `AsyncFd` on a raw non-blocking descriptor: `writable` is ready at once,
/// `readable` waits for data, `try_io` clears readiness on `WouldBlock`,
/// and `into_inner` gives the descriptor back, still usable.
#[test]
fn async_fd_readiness_and_try_io() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdUnixStream;

    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let (a, b) = StdUnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let a = wq::io::AsyncFd::new(a).unwrap();
        let b = wq::io::unix::AsyncFd::new(b).unwrap();
        let mut guard = a.writable().await.unwrap();
        let written = guard.try_io(|fd| fd.get_ref().write(b"fd")).unwrap();
        assert_eq!(written.unwrap(), 2);
        let mut buf = [0u8; 8];
        let n = loop {
            let mut guard = b.readable().await.unwrap();
            match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
                Ok(result) => break result.unwrap(),
                Err(_would_block) => continue,
            }
        };
        assert_eq!(&buf[..n], b"fd");
        // Drained: the next try clears readiness and reports it.
        let mut guard = b.readable().await.unwrap();
        let again = guard.try_io(|fd| fd.get_ref().read(&mut buf));
        assert!(again.is_err(), "read {again:?} from a drained socket");
        let waiting = wq::spawn(async move {
            let mut guard = b.readable().await.unwrap();
            let n = guard
                .try_io(|fd| fd.get_ref().read(&mut [0u8; 8]))
                .unwrap()
                .unwrap();
            (n, b.into_inner())
        });
        wq::time::sleep(Duration::from_millis(20)).await;
        a.get_ref().write_all(b"late").unwrap();
        let (n, mut b) = waiting.await.unwrap();
        assert_eq!(n, 4);
        let mut std_a = a.into_inner();
        std_a.write_all(b"!").unwrap();
        let mut one = [0u8; 1];
        wq::blocking(|| {
            b.set_nonblocking(false).unwrap();
            b.read_exact(&mut one).unwrap();
        });
        assert_eq!(&one, b"!");
    });
}

/// Unix streams split like TCP ones: borrowed halves used from two
/// futures at once, owned halves reunited (and refused across streams),
/// the write half's drop shutting the write side down.
#[test]
fn unix_split_and_into_split() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (mut reader, mut writer) = UnixStream::split(&mut a);
        let write = async { writer.write_all(b"split").await.unwrap() };
        let echo = async {
            let mut buf = [0u8; 5];
            b.read_exact(&mut buf).await.unwrap();
            b.write_all(&buf).await.unwrap();
        };
        let read = async {
            let mut buf = [0u8; 5];
            reader.read_exact(&mut buf).await.unwrap();
            buf
        };
        let ((), (), echoed) = futures::join!(write, echo, read);
        assert_eq!(&echoed, b"split");

        let (c_reader, c_writer) = a.into_split();
        let (d_reader, d_writer) = b.into_split();
        let err = c_reader.reunite(d_writer).unwrap_err();
        let (mut c_reader, mut d_writer) = (err.0, err.1);
        d_writer.write_all(b"owned").await.unwrap();
        let mut buf = [0u8; 5];
        c_reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"owned");
        let mut c = c_reader.reunite(c_writer).unwrap();
        // Dropping the other side's write half: end of stream here.
        drop(d_writer);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(d_reader);
    });
}

//! TCP on the reactor: echo round trips, half-close, readiness after
//! `WouldBlock`, errors, a blocking handler that does not hold up the
//! other connections, and I/O while idle workers are culled.

mod support;

use std::io;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use wq::net::{TcpListener, TcpStream};

/// An echo server on an ephemeral port: echoes each connection until the
/// peer closes its side, then closes its own. Returns the address.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    wq::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            wq::spawn(support::echo_connection(socket));
        }
    });
    addr
}

/// The bytes client `i` sends: distinct per client and position.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// 1,000 clients at once, each sending 16 KiB (in pieces) and reading it
/// back: every byte is checked, and every connection ends with a clean end
/// of stream after the half-close.
#[test]
fn echo_1000_concurrent_connections() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let addr = echo_server().await;
        let clients: Vec<_> = (0..1000)
            .map(|i| {
                wq::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let sent = payload(i, 16 * 1024);
                    let received = support::echo_round_trip(stream, &sent).await;
                    assert!(received == sent, "client {i}: echoed bytes differ");
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
    });
}

/// `try_read` reports `WouldBlock` while nothing is there; `readable`
/// then waits until data arrives, and `try_read` gets it.
#[test]
fn readiness_after_would_block() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), addr);
        let mut buf = [0u8; 16];
        let err = client.try_read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let writer = wq::spawn(async move {
            wq::time::sleep(Duration::from_millis(20)).await;
            server.write_all(b"ready").await.unwrap();
            server
        });
        loop {
            client.readable().await.unwrap();
            match client.try_read(&mut buf) {
                Ok(n) => {
                    assert_eq!(&buf[..n], b"ready");
                    break;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => panic!("{err}"),
            }
        }
        client.writable().await.unwrap();
        assert_eq!(client.try_write(b"x").unwrap(), 1);
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        drop(writer.await.unwrap());
    });
}

/// The peer resets the connection (closes with unread data): the reader
/// gets an error or end of stream, never a hang.
#[test]
fn peer_reset_ends_the_read() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"unread").await.unwrap();
        // Closing with unread data sends a reset.
        wq::time::sleep(Duration::from_millis(10)).await;
        drop(server);
        let mut buf = [0u8; 16];
        match client.read(&mut buf).await {
            Ok(0) => {}
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("read {n} bytes from a closed connection"),
        }
    });
}

/// Errors come back as `io::Error`s: address in use, connection refused.
#[test]
fn bind_and_connect_errors() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = TcpStream::connect("no-such-host.invalid:80")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Other
            ) || err.raw_os_error().is_some()
                || err.to_string().contains("failed to lookup"),
            "{err:?}"
        );
    });
}

/// Serves one-byte echoes on `rt`; the handler of the connection that
/// sends `b'S'` first calls `stall` inside its poll, unannotated, and
/// answers `R` if `stall` returns true (it was released) or `T` (it gave
/// up after 10 s). Waits until `detected` says the monitor found the
/// stalled poll, checks that 20 other connections are served meanwhile,
/// then calls `release` and checks that the stalled handler was released
/// rather than timed out: without the monitor, the others would wait for
/// the release, which comes only after they were served.
fn others_are_served_while_a_handler_stalls(
    rt: &wq::Runtime,
    stall: impl Fn() -> bool + Send + Sync + 'static,
    detected: impl Fn(&wq::RuntimeMetrics) -> bool,
    release: impl FnOnce(),
) {
    let stall = Arc::new(stall);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        wq::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let stall = stall.clone();
                wq::spawn(async move {
                    let mut byte = [0u8; 1];
                    socket.read_exact(&mut byte).await.unwrap();
                    if byte[0] == b'S' {
                        byte[0] = if stall() { b'R' } else { b'T' };
                    }
                    socket.write_all(&byte).await.unwrap();
                });
            }
        });
        let stalled = wq::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"S").await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            byte[0]
        });
        let metrics = wq::Handle::current().metrics();
        for _ in 0..10_000 {
            if detected(&metrics) {
                break;
            }
            wq::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(detected(&metrics), "the stalled handler was never detected");
        for _ in 0..20 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"a").await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"a");
        }
        release();
        assert_eq!(
            stalled.await.unwrap(),
            b'R',
            "the stalled handler timed out: the other connections waited for it"
        );
    });
}

/// A handler that blocks its worker without annotation (a std channel
/// `recv`, until the test releases it, at most 10 s) does not delay the
/// other connections: the monitor finds it blocked, takes its worker out,
/// and another serves them.
#[test]
fn a_blocking_handler_does_not_delay_other_connections() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    others_are_served_while_a_handler_stalls(
        &rt,
        move || {
            let released = released.lock().unwrap();
            released.recv_timeout(Duration::from_secs(10)).is_ok()
        },
        |metrics| metrics.blocked_detections() > 0,
        move || release.send(()).unwrap(),
    );
}

/// A handler that spins on the CPU without yielding (until the test
/// releases it, at most 10 s) on a 1-worker runtime does not stop I/O:
/// the monitor takes the hog's worker out of concurrency management, and
/// another worker polls the reactor and serves the other connections (the
/// failure of tokio #4730 and #6315, where the worker owning the I/O
/// driver is stuck). Detected as a hog, or as blocked if the machine is so
/// loaded that its thread's CPU time cannot be read in time.
#[test]
fn a_spinning_handler_does_not_stop_io() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    let rt = wq::Builder::new().workers(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let spin = release.clone();
    others_are_served_while_a_handler_stalls(
        &rt,
        move || {
            let start = std::time::Instant::now();
            while !spin.load(SeqCst) && start.elapsed() < Duration::from_secs(10) {
                std::hint::spin_loop();
            }
            spin.load(SeqCst)
        },
        |metrics| metrics.hog_detections() + metrics.blocked_detections() > 0,
        move || release.store(true, SeqCst),
    );
}

/// `split` halves work from two futures at once; `into_split` halves from
/// two tasks, the write half shutting the write side down when dropped;
/// `reunite` gives the stream back, and refuses halves of two streams.
#[test]
fn split_and_into_split() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let addr = echo_server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        {
            let (mut reader, mut writer) = TcpStream::split(&mut stream);
            let write = async { writer.write_all(b"split").await.unwrap() };
            let read = async {
                let mut buf = [0u8; 5];
                reader.read_exact(&mut buf).await.unwrap();
                buf
            };
            let ((), echoed) = futures::join!(write, read);
            assert_eq!(&echoed, b"split");
        }
        let (mut reader, mut writer) = stream.into_split();
        let other = TcpStream::connect(addr).await.unwrap();
        let (other_reader, other_writer) = other.into_split();
        let err = reader.reunite(other_writer).unwrap_err();
        let (reader_back, other_writer) = (err.0, err.1);
        drop((other_reader, other_writer));
        reader = reader_back;
        writer.write_all(b"owned").await.unwrap();
        let mut buf = [0u8; 5];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"owned");
        let stream = reader.reunite(writer).unwrap();
        let (mut reader, writer) = stream.into_split();
        // Dropping the write half: the server sees end of stream and closes.
        let writer_task = wq::spawn(async move { drop(writer) });
        writer_task.await.unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    });
}

/// On an idle runtime the worker that sleeps in the reactor runs what an
/// I/O event wakes itself (it claims itself instead of waking another
/// worker). The monitor, asleep while no worker ran, must learn that a
/// worker runs again: a task that then spins in its poll is detected.
#[test]
fn a_task_woken_by_io_on_an_idle_runtime_is_watched() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    let rt = wq::Builder::new().workers(1).build().unwrap();
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let reader = rt.spawn({
        let release = release.clone();
        async move {
            let mut theirs = wq::net::UnixStream::from_std(theirs).unwrap();
            let mut byte = [0u8; 1];
            theirs.read_exact(&mut byte).await.unwrap();
            let start = std::time::Instant::now();
            while !release.load(SeqCst) && start.elapsed() < Duration::from_secs(10) {
                std::hint::spin_loop();
            }
            release.load(SeqCst)
        }
    });
    // The runtime goes idle: its worker sleeps in the reactor, the
    // monitor sleeps too.
    std::thread::sleep(Duration::from_millis(50));
    ours.write_all(b"x").unwrap();
    let metrics = rt.handle().metrics();
    let detected = support::eventually(Duration::from_secs(10), || {
        metrics.hog_detections() + metrics.blocked_detections() > 0
    });
    release.store(true, SeqCst);
    assert!(detected, "the spinning task was never detected");
    assert!(rt.block_on(reader).unwrap());
}

/// The socket options and the descriptor tokio's `TcpStream` offers: TTL,
/// linger, `peek` (the data stays queued for the next read), and
/// `AsRawFd`/`AsFd`, through which `socket2` reads the same option.
#[test]
fn options_peek_and_the_descriptor() {
    use std::os::fd::{AsFd, AsRawFd};
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();

        client.set_ttl(42).unwrap();
        assert_eq!(client.ttl().unwrap(), 42);
        client.set_linger(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(3)));
        client.set_nodelay(true).unwrap();
        let by_fd = socket2::SockRef::from(&client);
        assert!(by_fd.tcp_nodelay().unwrap());
        assert_eq!(by_fd.ttl_v4().unwrap(), 42);
        assert_eq!(client.as_raw_fd(), client.as_fd().as_raw_fd());
        assert_ne!(listener.as_raw_fd(), client.as_raw_fd());

        client.write_all(b"peek me").await.unwrap();
        let mut peeked = [0; 7];
        let mut n = 0;
        while n < 7 {
            n = server.peek(&mut peeked).await.unwrap();
        }
        let mut read = [0; 7];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&peeked, b"peek me");
        assert_eq!(&read, b"peek me");
    });
    assert!(rt.metrics().num_workers() >= 1);
}

/// The idle timeout of the culling test's runtime.
const CULL_IDLE_TIMEOUT: Duration = Duration::from_millis(300);

/// The idle worker that drives the reactor (it sleeps in the reactor's
/// poll) may be culled like any other, and its role must pass to another
/// idle worker at once: the others sleep until their own waits time out,
/// and until then nobody polls the reactor. Here the driver is a spare
/// worker, idle since the storm began; the storm's workers go idle half
/// an idle timeout later, so they time out that much after the driver is
/// culled. Without the hand-over the echo right after that first cull
/// took half the idle timeout (150 ms); with it, well under a millisecond.
#[test]
fn io_is_dispatched_right_after_the_driver_is_culled() {
    let rt = wq::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .idle_timeout(CULL_IDLE_TIMEOUT)
        .build()
        .unwrap();
    let addr = rt.block_on(echo_server());
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    let mut round_trip = |byte: u8| {
        let start = Instant::now();
        client.write_all(&[byte]).unwrap();
        let mut back = [0u8; 1];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back[0], byte);
        start.elapsed()
    };
    round_trip(0);
    for round in 1..=4u8 {
        let storm: Vec<_> = (0..6)
            .map(|_| rt.spawn(async { wq::blocking(|| std::thread::sleep(CULL_IDLE_TIMEOUT / 2)) }))
            .collect();
        rt.block_on(async {
            for blocker in storm {
                blocker.await.unwrap();
            }
        });
        let culled = rt.metrics().pools()[0].threads_culled;
        let deadline = Instant::now() + CULL_IDLE_TIMEOUT * 4;
        while rt.metrics().pools()[0].threads_culled == culled {
            assert!(
                Instant::now() < deadline,
                "round {round}: no worker was culled"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = round_trip(round);
        assert!(
            took < CULL_IDLE_TIMEOUT / 4,
            "round {round}: the echo right after a cull took {took:?}"
        );
        // The other surplus workers are culled meanwhile.
        std::thread::sleep(CULL_IDLE_TIMEOUT);
    }
}

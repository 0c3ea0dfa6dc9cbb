//! Readiness on the reactor: several tasks waiting on one source, a socket
//! error that is consumed, vectored writes of many slices, and sockets
//! whose runtime has shut down. A test whose bug would leave a task
//! waiting forever bounds it with a timeout and fails instead.
#![cfg(unix)]

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use wq::net::{TcpListener, TcpStream, UdpSocket};

/// What an operation on a socket of a runtime that has shut down returns.
const SHUT_DOWN: &str = "wq: the runtime this I/O resource belongs to has shut down";

/// Long enough for every spawned task to have polled its operation once
/// and be waiting in the reactor.
const SETTLE: Duration = Duration::from_millis(100);

/// How long a wait that should end at once may take before the test
/// fails.
const BOUND: Duration = Duration::from_secs(5);

/// Two tasks receive on one shared socket; two datagrams arrive: each task
/// gets one of them.
#[test]
fn net_udp_two_tasks_receiving_on_one_socket_each_get_a_datagram() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = server.local_addr().unwrap();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let server = server.clone();
                wq::spawn(async move {
                    let mut buf = [0u8; 16];
                    let (n, _) = server.recv_from(&mut buf).await.unwrap();
                    buf[..n].to_vec()
                })
            })
            .collect();
        wq::time::sleep(SETTLE).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"one", addr).await.unwrap();
        client.send_to(b"two", addr).await.unwrap();
        let mut got = Vec::new();
        for receiver in receivers {
            let datagram = wq::time::timeout(BOUND, receiver)
                .await
                .expect("a receiver was never woken")
                .unwrap();
            got.push(datagram);
        }
        got.sort();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    });
}

/// Two tasks accept on one shared listener; two clients connect: each
/// task accepts one of them.
#[test]
fn net_tcp_two_acceptors_on_one_listener_each_accept_a_connection() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let acceptors: Vec<_> = (0..2)
            .map(|_| {
                let listener = listener.clone();
                wq::spawn(async move {
                    let (stream, from) = listener.accept().await.unwrap();
                    (stream, from)
                })
            })
            .collect();
        wq::time::sleep(SETTLE).await;
        let mut clients = Vec::new();
        let mut expected: Vec<SocketAddr> = Vec::new();
        for _ in 0..2 {
            let client = TcpStream::connect(addr).await.unwrap();
            expected.push(client.local_addr().unwrap());
            clients.push(client);
        }
        let mut accepted = Vec::new();
        for acceptor in acceptors {
            let (_stream, from) = wq::time::timeout(BOUND, acceptor)
                .await
                .expect("an acceptor was never woken")
                .unwrap();
            accepted.push(from);
        }
        accepted.sort();
        expected.sort();
        assert_eq!(accepted, expected);
    });
}

/// Two tasks wait for one shared stream to be readable; one byte arrives:
/// both are woken.
#[test]
fn net_tcp_two_tasks_waiting_readable_both_wake() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Arc::new(TcpStream::connect(addr).await.unwrap());
        let (mut server, _) = listener.accept().await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let client = client.clone();
                wq::spawn(async move { client.readable().await.unwrap() })
            })
            .collect();
        wq::time::sleep(SETTLE).await;
        server.write_all(b"x").await.unwrap();
        let mut woken = 0;
        for waiter in waiters {
            wq::time::timeout(BOUND, waiter)
                .await
                .expect("a `readable()` waiter was never woken")
                .unwrap();
            woken += 1;
        }
        assert_eq!(woken, 2);
    });
}

/// A connected UDP socket whose peer's port is closed gets an ICMP port
/// unreachable: the next `recv` reports `ConnectionRefused` (which consumes
/// the socket's error). A `recv` after it, with nothing queued, waits: it
/// times out, then receives the datagram a new peer at that address sends.
///
/// On one worker, a `recv` that spun instead of waiting would also starve
/// the timers, so the outcome is awaited from outside the runtime.
#[test]
fn net_udp_recv_after_an_icmp_error_waits_for_the_next_datagram() {
    let rt = wq::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(closed_addr).await.unwrap();
        socket.send(b"ping").await.unwrap();
        let mut buf = [0u8; 16];
        let refused = socket.recv(&mut buf).await.unwrap_err().kind();
        // Nothing queued and no error pending: waits until the timeout.
        let waited = wq::time::timeout(Duration::from_millis(200), socket.recv(&mut buf))
            .await
            .is_err();
        let peer = std::net::UdpSocket::bind(closed_addr).unwrap();
        peer.send_to(b"pong", socket.local_addr().unwrap()).unwrap();
        let n = socket.recv(&mut buf).await.unwrap();
        let _ = tx.send((refused, waited, buf[..n].to_vec()));
    });
    let outcome = rx.recv_timeout(Duration::from_secs(10));
    rt.shutdown_background();
    assert_eq!(
        outcome,
        Ok((io::ErrorKind::ConnectionRefused, true, b"pong".to_vec()))
    );
}

/// A vectored write of more slices than `writev` takes (`IOV_MAX`, 1024
/// on Linux) writes the first 1024 although the socket has room; the
/// write after it goes through at once.
#[test]
fn net_tcp_write_after_a_vectored_write_of_more_than_iov_max_slices_completes() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let bytes = vec![7u8; 2000];
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        let n = client.write_vectored(&slices).await.unwrap();
        assert_eq!(n, 1024);
        let written = wq::time::timeout(BOUND, client.write(b"x")).await;
        assert!(
            matches!(written, Ok(Ok(1))),
            "the write after a short vectored write: {written:?}"
        );
        let mut received = vec![0u8; 1025];
        server.read_exact(&mut received).await.unwrap();
        assert!(received[..1024].iter().all(|&b| b == 7));
        assert_eq!(received[1024], b'x');
    });
}

/// The error of an operation on a socket whose runtime has shut down, as
/// its kind and message.
fn shut_down_error(err: &io::Error) -> (io::ErrorKind, String) {
    (err.kind(), err.to_string())
}

/// A socket used after its runtime was dropped fails with an error, even
/// with a datagram queued, instead of waiting for a reactor nobody polls.
#[test]
fn net_socket_of_a_dropped_runtime_fails_its_next_operation() {
    let first = wq::Runtime::new().unwrap();
    let socket = first.block_on(async { UdpSocket::bind("127.0.0.1:0").await.unwrap() });
    drop(first);
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"late", socket.local_addr().unwrap()).unwrap();
    let second = wq::Runtime::new().unwrap();
    let received = second.block_on(async {
        let mut buf = [0u8; 8];
        wq::time::timeout(BOUND, socket.recv_from(&mut buf)).await
    });
    let err = received
        .expect("the receive waited for a reactor nobody polls")
        .unwrap_err();
    assert_eq!(
        shut_down_error(&err),
        (io::ErrorKind::Other, SHUT_DOWN.to_string())
    );
}

/// A receive waiting on a socket (in a task of another runtime) when the
/// socket's runtime shuts down is woken and fails.
#[test]
fn net_pending_receive_fails_when_the_socket_runtime_shuts_down() {
    let first = wq::Runtime::new().unwrap();
    let socket = first.block_on(async { UdpSocket::bind("127.0.0.1:0").await.unwrap() });
    let second = wq::Runtime::new().unwrap();
    let (tx, rx) = mpsc::channel();
    second.spawn(async move {
        let mut buf = [0u8; 8];
        let received = socket.recv_from(&mut buf).await;
        let _ = tx.send(received.map(|(n, _)| n).map_err(|e| shut_down_error(&e)));
    });
    std::thread::sleep(SETTLE);
    drop(first);
    assert_eq!(
        rx.recv_timeout(BOUND),
        Ok(Err((io::ErrorKind::Other, SHUT_DOWN.to_string())))
    );
}

/// A socket registered with a runtime that has shut down fails to
/// register.
#[test]
fn net_registering_with_a_runtime_that_shut_down_fails() {
    let rt = wq::Runtime::new().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    let _entered = handle.enter();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = UdpSocket::from_std(socket).unwrap_err();
    assert_eq!(
        shut_down_error(&err),
        (io::ErrorKind::Other, SHUT_DOWN.to_string())
    );
}

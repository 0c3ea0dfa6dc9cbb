//! hyper 1.x on wq (feature `hyper`, enabled for `cargo test --workspace`
//! by the benchmark crate): a hyper server on wq answers a hyper client on
//! wq, over keep-alive connections, with wq's executor and timer.
#![cfg(feature = "hyper")]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use wq::hyper_rt::{WqExecutor, WqTimer};
use wq::net::{TcpListener, TcpStream};

async fn hello(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {}", request.uri().path());
    Ok(hyper::Response::new(Full::new(Bytes::from(body))))
}

/// 20 clients, 10 requests each on one keep-alive connection; every
/// response checked.
#[test]
fn hyper_server_answers_hyper_client() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        wq::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                wq::spawn(async move {
                    hyper::server::conn::http1::Builder::new()
                        .timer(WqTimer::new())
                        .header_read_timeout(Duration::from_secs(5))
                        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                        .await
                        .unwrap();
                });
            }
        });
        let clients: Vec<_> = (0..20)
            .map(|client| {
                wq::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let (mut sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .unwrap();
                    hyper::rt::Executor::execute(&WqExecutor::new(), async move {
                        connection.await.unwrap();
                    });
                    for i in 0..10 {
                        // HTTP/1.1: one request at a time, once the
                        // connection has finished with the previous one.
                        sender.ready().await.unwrap();
                        let path = format!("/c{client}/r{i}");
                        let request = hyper::Request::get(path.as_str())
                            .header("host", "localhost")
                            .body(http_body_util::Empty::<Bytes>::new())
                            .unwrap();
                        let response = sender.send_request(request).await.unwrap();
                        assert_eq!(response.status(), 200);
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        assert_eq!(body, format!("hello {path}").as_bytes());
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
    });
}

/// hyper's timer: a server whose client never sends its headers closes
/// the connection after `header_read_timeout`, through `WqTimer`.
#[test]
fn hyper_header_read_timeout_uses_wq_timers() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = wq::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .timer(WqTimer::new())
                .header_read_timeout(Duration::from_millis(50))
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                .await
        });
        let _silent = TcpStream::connect(addr).await.unwrap();
        let outcome = wq::time::timeout(Duration::from_secs(5), server).await;
        let result = outcome.expect("the header timeout never fired").unwrap();
        assert!(result.is_err(), "a connection without headers was served");
    });
}

/// hyper computes its deadlines as `timer.now() + d`: `WqTimer::now` is
/// the runtime's clock, so they follow a paused and advanced one.
#[wq::test(start_paused = true)]
async fn the_hyper_timer_reads_the_runtime_clock() {
    use hyper::rt::Timer;
    wq::time::advance(Duration::from_secs(3600)).await;
    let timer = WqTimer::new();
    let start = wq::time::Instant::now();
    assert_eq!(timer.now(), start.into_std());
    timer
        .sleep_until(timer.now() + Duration::from_secs(30))
        .await;
    assert_eq!(wq::time::Instant::now() - start, Duration::from_secs(30));
}

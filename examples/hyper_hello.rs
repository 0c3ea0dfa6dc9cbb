//! An HTTP/1.1 hello-world server on hyper 1.x, on wq.
//!
//! Run with `cargo run --release --features hyper --example hyper_hello
//! [ADDR]` (default `127.0.0.1:3000`), then `curl 127.0.0.1:3000`.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

async fn hello(
    _request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    Ok(hyper::Response::new(Full::new(Bytes::from_static(
        b"Hello, world!\n",
    ))))
}

#[wq::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = wq::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, most likely: back off.
                eprintln!("accept: {err}");
                wq::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        wq::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(wq::hyper_rt::WqTimer::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                .await;
            if let Err(err) = served {
                eprintln!("connection: {err}");
            }
        });
    }
}

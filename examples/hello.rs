//! Spawn a few tasks and join them.
//!
//! Run with `cargo run --example hello`.

#[wq::main]
async fn main() {
    let mut handles = Vec::new();
    for i in 0..4u64 {
        handles.push(wq::spawn(async move {
            wq::task::yield_now().await;
            format!(
                "hello from task {i} on {}",
                std::thread::current().name().unwrap_or("?")
            )
        }));
    }
    for handle in handles {
        println!("{}", handle.await.expect("task failed"));
    }
}

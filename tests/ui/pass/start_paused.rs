use std::time::Duration;

#[wq::main(start_paused = true)]
async fn main() {
    let start = wq::time::Instant::now();
    wq::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[wq::test(workers = 1, start_paused = false)]
async fn not_paused() {}

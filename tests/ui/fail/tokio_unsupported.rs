#[wq::main(flavor = "current_thread")]
async fn main() {}

#[wq::test(start_paused = true)]
async fn paused() {}

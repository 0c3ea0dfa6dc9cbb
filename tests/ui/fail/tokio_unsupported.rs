#[wq::main(flavor = "current_thread")]
async fn main() {}

#[wq::test(unhandled_panic = "shutdown_runtime")]
async fn paused() {}

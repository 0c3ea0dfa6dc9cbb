#[wq::test(unhandled_panic = "shutdown_runtime")]
async fn paused() {}

fn main() {}

#[wq::main(flavor = "current_thread", workers = 2)]
async fn main() {}

#[wq::test(flavor = "single_thread")]
async fn unknown_flavor() {}

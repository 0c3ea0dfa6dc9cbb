#[wq::main(workers = "two")]
async fn main() {}

#[wq::test(workers = 2.5)]
async fn fractional() {}

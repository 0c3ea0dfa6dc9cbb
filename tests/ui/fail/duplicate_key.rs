#[wq::main(workers = 2, workers = 4)]
async fn main() {}

#[wq::test(crate = "wq", crate = "::wq")]
async fn twice() {}

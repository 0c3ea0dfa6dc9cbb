#[wq::main(wokers = 2)]
async fn main() {}

#[wq::test(crat = "wq")]
async fn typo_in_crate() {}

#[wq::test(threads = 2)]
async fn unrelated_name() {}

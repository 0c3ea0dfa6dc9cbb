#[wq::main]
fn main() {}

#[wq::test]
fn not_async_test() {}

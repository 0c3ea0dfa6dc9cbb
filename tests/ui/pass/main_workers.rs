#[wq::main(workers = 2)]
async fn main() {
    let a = wq::spawn(async { 1 });
    let b = wq::spawn(async { 2 });
    assert_eq!(a.await.unwrap() + b.await.unwrap(), 3);
}

#[wq::main]
async fn main() {
    let answer = wq::spawn(async { 40 + 2 }).await.unwrap();
    assert_eq!(answer, 42);
}

#[wq::test]
async fn plain() {
    assert_eq!(wq::spawn(async { 40 + 2 }).await.unwrap(), 42);
}

#[wq::test(workers = 2)]
async fn with_workers() {}

#[wq::test(crate = "::wq")]
#[ignore]
async fn with_crate_path_and_ignore() -> Result<(), String> {
    Ok(())
}

#[wq::test]
#[should_panic(expected = "boom")]
async fn should_panic() {
    panic!("boom");
}

fn main() {}

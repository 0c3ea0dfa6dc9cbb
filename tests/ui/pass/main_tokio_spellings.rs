// tokio's spellings of the options work unchanged.
#[wq::main(flavor = "multi_thread", worker_threads = 4)]
async fn multi_thread() {
    assert_eq!(
        wq::Handle::current().runtime_flavor(),
        wq::RuntimeFlavor::MultiThread
    );
}

#[wq::main(flavor = "current_thread")]
async fn current_thread() {
    let here = std::thread::current().id();
    assert_eq!(wq::spawn(async { std::thread::current().id() }).await.unwrap(), here);
}

fn main() {
    multi_thread();
    current_thread();
}

// The attribute may be put on any async function; each call runs its own
// runtime, and functions other than `main` may take arguments.

#[wq::main]
async fn double(n: u32) -> u32 {
    wq::spawn(async move { n * 2 }).await.unwrap()
}

fn main() {
    assert_eq!(double(21), 42);
}

// Every problem is reported at once, and the function is still expanded so
// that no further errors follow from it.
#[wq::main(workers = 0, wokers = 2, flavor = "multi_thread")]
async fn main() {
    let _: u32 = 1;
}

#[wq::main]
async fn main(count: u8) {
    let _: u8 = count;
}

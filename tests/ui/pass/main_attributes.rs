/// Documentation and other attributes stay on the function.
#[wq::main]
#[allow(clippy::needless_return)]
pub async fn main() {
    #![allow(unused_variables)]
    let unused = 1;
    return;
}

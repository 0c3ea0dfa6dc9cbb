#[wq::main]
struct Main;

fn main() {}

use std::error::Error;

#[wq::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // `?` and an early `return` both work inside the body.
    let n: u32 = "42".parse()?;
    if n == 42 {
        return Ok(());
    }
    Err("unreachable".into())
}

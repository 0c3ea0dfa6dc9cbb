//! Records the compiler version, so reports name the toolchain that built
//! the runner rather than whichever one is on `PATH` when it runs.

use std::env;
use std::process::Command;

fn main() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "unknown rustc".to_owned(), |v| v.trim().to_owned());
    println!("cargo:rustc-env=WQ_BENCH_RUSTC={version}");
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
}

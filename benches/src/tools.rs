//! The load generators the runner drives (`wrk`, `redis-benchmark`):
//! found on `PATH`, or installed with `apt-get` where that works.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Finds `program` on `PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Finds `program` on `PATH`; if it is not there, tries `apt-get install
/// -y package` (which needs root, on Debian or Ubuntu), and looks again.
/// The error says what was tried and how to install it: `elsewhere` says
/// where the program comes from off Debian, `filter` which `--filter` runs
/// its entries again.
pub fn find_or_install(
    program: &str,
    package: &str,
    elsewhere: &str,
    filter: &str,
) -> Result<PathBuf, String> {
    if let Some(found) = find(program) {
        return Ok(found);
    }
    eprintln!("bench: {program} not found on PATH; trying `apt-get install -y {package}`");
    let installed = Command::new("apt-get")
        .args(["install", "-y", package])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let tried = match installed {
        Ok(status) if status.success() => {
            format!("`apt-get install -y {package}` succeeded, but it is still not there")
        }
        Ok(status) => format!("`apt-get install -y {package}` did not install it ({status})"),
        Err(err) => format!("`apt-get` could not be run ({err})"),
    };
    find(program).ok_or_else(|| {
        format!(
            "{program} is not on PATH, and {tried}. Install it (Debian or Ubuntu: `sudo apt-get \
             install {package}`; elsewhere {elsewhere}) and run again, e.g. with `--filter \
             {filter}`"
        )
    })
}

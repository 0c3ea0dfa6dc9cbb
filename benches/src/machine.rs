//! Describes the machine a report was produced on.

use std::fs;
use std::process::Command;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The machine and toolchain behind a set of figures.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// CPUs available to this process.
    pub cores: usize,
    /// Operating system kernel.
    pub kernel: String,
    /// Compiler that built the runner (and both runtimes).
    pub rustc: String,
    /// Whether the runner was built with optimizations.
    pub optimized: bool,
    /// When the run started, UTC.
    pub date: String,
}

impl Machine {
    /// Gathers the description of the current machine.
    pub fn detect() -> Self {
        Self {
            cpu: cpu_model().unwrap_or_else(|| "unknown CPU".into()),
            cores: thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            kernel: kernel().unwrap_or_else(|| "unknown kernel".into()),
            rustc: env!("WQ_BENCH_RUSTC").to_owned(),
            optimized: !cfg!(debug_assertions),
            date: utc_now(),
        }
    }

    /// One line summary, for reports.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} cores, {}, {}{}",
            self.cpu,
            self.cores,
            self.kernel,
            self.rustc,
            if self.optimized {
                ""
            } else {
                " (UNOPTIMIZED build)"
            }
        )
    }
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned())
}

fn kernel() -> Option<String> {
    if let Ok(release) = fs::read_to_string("/proc/sys/kernel/osrelease") {
        return Some(format!("Linux {}", release.trim()));
    }
    let output = Command::new("uname").arg("-sr").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let minute_of_day = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}

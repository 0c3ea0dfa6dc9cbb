//! The kernel's cpulist format: `"0-3,8,10-11"`, as printed by every
//! `*_list` file in sysfs (`bitmap_print_to_pagebuf` with `list = true`).

use std::fmt;

/// CPU ids at or above this are rejected, so that a corrupt range such as
/// `0-4294967295` cannot make the parser allocate gigabytes. Linux's own
/// limit (`CONFIG_NR_CPUS`) is at most 8192 today.
pub(super) const MAX_CPUS: usize = 1 << 16;

/// Why a cpulist could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CpuListError {
    /// Two commas with nothing between them, or a leading or trailing comma.
    EmptyItem,
    /// An item, or one end of a range, that is not a decimal CPU number.
    /// Holds the offending item.
    InvalidNumber(String),
    /// A range whose start is above its end, like `7-3`.
    ReversedRange {
        /// The first number of the range.
        start: usize,
        /// The second number of the range.
        end: usize,
    },
    /// A CPU id at or above [`MAX_CPUS`].
    TooLarge(usize),
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuListError::EmptyItem => f.write_str("empty item in CPU list"),
            CpuListError::InvalidNumber(item) => {
                write!(f, "`{item}` is not a CPU number or range")
            }
            CpuListError::ReversedRange { start, end } => {
                write!(f, "range `{start}-{end}` ends before it starts")
            }
            CpuListError::TooLarge(cpu) => {
                write!(
                    f,
                    "CPU {cpu} is beyond the supported maximum of {}",
                    MAX_CPUS - 1
                )
            }
        }
    }
}

impl std::error::Error for CpuListError {}

/// Parses a cpulist into its CPU ids, sorted and without duplicates.
///
/// Surrounding whitespace (sysfs files end in a newline) and spaces around
/// items are ignored; an empty or blank list is the empty set (sysfs prints
/// `offline` that way when every CPU is online). The stride form
/// `0-7:2/4` that the kernel accepts on input is never printed by sysfs and
/// is rejected.
pub(crate) fn parse_cpulist(list: &str) -> Result<Vec<usize>, CpuListError> {
    let list = list.trim();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let mut cpus = Vec::new();
    for item in list.split(',') {
        let (start, end) = parse_item(item.trim())?;
        cpus.extend(start..=end);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Parses one item, `N` or `N-M`, into its inclusive bounds.
fn parse_item(item: &str) -> Result<(usize, usize), CpuListError> {
    if item.is_empty() {
        return Err(CpuListError::EmptyItem);
    }
    let (start, end) = match item.split_once('-') {
        Some((start, end)) => (parse_cpu(start.trim(), item)?, parse_cpu(end.trim(), item)?),
        None => {
            let cpu = parse_cpu(item, item)?;
            (cpu, cpu)
        }
    };
    if start > end {
        return Err(CpuListError::ReversedRange { start, end });
    }
    Ok((start, end))
}

/// Parses one CPU number; `item` is the whole item, for the error.
fn parse_cpu(number: &str, item: &str) -> Result<usize, CpuListError> {
    // `usize::from_str` would accept a leading `+`; sysfs never prints one.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::InvalidNumber(item.to_owned()));
    }
    let cpu = number
        .parse::<usize>()
        .map_err(|_| CpuListError::InvalidNumber(item.to_owned()))?;
    if cpu >= MAX_CPUS {
        return Err(CpuListError::TooLarge(cpu));
    }
    Ok(cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_cpus_and_ranges() {
        assert_eq!(
            parse_cpulist("0-3,8,10-11"),
            Ok(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpulist("5"), Ok(vec![5]));
        assert_eq!(parse_cpulist("4-4"), Ok(vec![4]));
        assert_eq!(parse_cpulist("0-1,24-25"), Ok(vec![0, 1, 24, 25]));
    }

    #[test]
    fn whitespace_and_newline_are_ignored() {
        assert_eq!(
            parse_cpulist("0-3,8-11\n"),
            Ok(vec![0, 1, 2, 3, 8, 9, 10, 11])
        );
        assert_eq!(parse_cpulist("  2 , 4 - 5 \n"), Ok(vec![2, 4, 5]));
        assert_eq!(parse_cpulist("\t7\r\n"), Ok(vec![7]));
    }

    #[test]
    fn empty_list_is_the_empty_set() {
        assert_eq!(parse_cpulist(""), Ok(vec![]));
        assert_eq!(parse_cpulist("\n"), Ok(vec![]));
        assert_eq!(parse_cpulist("   "), Ok(vec![]));
    }

    #[test]
    fn output_is_sorted_and_deduplicated() {
        assert_eq!(parse_cpulist("8,0-2,1,2-3"), Ok(vec![0, 1, 2, 3, 8]));
    }

    #[test]
    fn empty_items_are_errors() {
        assert_eq!(parse_cpulist("0,,1"), Err(CpuListError::EmptyItem));
        assert_eq!(parse_cpulist(",0"), Err(CpuListError::EmptyItem));
        assert_eq!(parse_cpulist("0,"), Err(CpuListError::EmptyItem));
        assert_eq!(parse_cpulist("0, ,1"), Err(CpuListError::EmptyItem));
    }

    #[test]
    fn malformed_numbers_are_errors() {
        let invalid = |s: &str| Err(CpuListError::InvalidNumber(s.to_owned()));
        assert_eq!(parse_cpulist("abc"), invalid("abc"));
        assert_eq!(parse_cpulist("0-"), invalid("0-"));
        assert_eq!(parse_cpulist("-3"), invalid("-3"));
        assert_eq!(parse_cpulist("1-2-3"), invalid("1-2-3"));
        assert_eq!(parse_cpulist("+1"), invalid("+1"));
        assert_eq!(parse_cpulist("0x3"), invalid("0x3"));
        assert_eq!(parse_cpulist("0-7:2/4"), invalid("0-7:2/4"));
        assert_eq!(parse_cpulist("0 1"), invalid("0 1"));
        assert_eq!(parse_cpulist("1,two"), invalid("two"));
        // Too long for usize: still an error, not a panic.
        assert_eq!(
            parse_cpulist("99999999999999999999999"),
            invalid("99999999999999999999999")
        );
    }

    #[test]
    fn reversed_ranges_are_errors() {
        assert_eq!(
            parse_cpulist("7-3"),
            Err(CpuListError::ReversedRange { start: 7, end: 3 })
        );
    }

    #[test]
    fn huge_cpu_ids_are_errors() {
        assert_eq!(
            parse_cpulist("0-4294967295"),
            Err(CpuListError::TooLarge(4294967295))
        );
        assert_eq!(parse_cpulist("65536"), Err(CpuListError::TooLarge(65536)));
        assert_eq!(parse_cpulist("65535").map(|v| v.len()), Ok(1));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse_cpulist("3-x").unwrap_err().to_string(),
            "`3-x` is not a CPU number or range"
        );
        assert_eq!(
            parse_cpulist("9-2").unwrap_err().to_string(),
            "range `9-2` ends before it starts"
        );
    }
}

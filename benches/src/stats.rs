//! Order statistics over samples.

use std::time::Duration;

/// The `q` quantile (0.0..=1.0) of already sorted values, interpolating
/// linearly between neighbouring ranks.
pub fn percentile_sorted(sorted: &[Duration], q: f64) -> Duration {
    assert!(!sorted.is_empty(), "percentile of no values");
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    sorted[lo].mul_f64(1.0 - frac) + sorted[hi].mul_f64(frac)
}

/// The `q` quantile of `values` (in any order), interpolating linearly between
/// neighbouring ranks.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    assert!(!values.is_empty(), "quantile of no values");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    sorted[lo] * (1.0 - frac) + sorted[hi] * frac
}

/// The median of `values` (in any order).
pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn quantile_interpolates() {
        let values = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile(&values, 0.0), 0.0);
        assert_eq!(quantile(&values, 0.25), 10.0);
        assert_eq!(quantile(&values, 0.95), 38.0);
        assert_eq!(quantile(&values, 1.0), 40.0);
    }

    #[test]
    fn percentile_of_durations() {
        let sorted: Vec<_> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile_sorted(&sorted, 0.0), Duration::from_micros(1));
        assert_eq!(percentile_sorted(&sorted, 1.0), Duration::from_micros(100));
        let p50 = percentile_sorted(&sorted, 0.5);
        assert!(p50 > Duration::from_micros(50) && p50 < Duration::from_micros(51));
    }
}

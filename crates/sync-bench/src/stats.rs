//! Medians and percentiles over samples (nearest-rank percentiles are
//! `syncctl::lag`'s, which `syncctl lag` prints).

/// The median of `values` (mean of the middle two for an even count), or
/// `None` when there are none. NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

pub use syncctl::lag::percentile_sorted;

/// Sorts `values` and returns its (p50, p99), `None` when empty.
pub fn p50_p99(values: &mut [f64]) -> (Option<f64>, Option<f64>) {
    values.sort_by(f64::total_cmp);
    (
        percentile_sorted(values, 50.0),
        percentile_sorted(values, 99.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p50_p99(&mut v), (Some(50.0), Some(99.0)));
        let mut one = vec![7.0];
        assert_eq!(p50_p99(&mut one), (Some(7.0), Some(7.0)));
        assert_eq!(percentile_sorted(&[], 50.0), None);
    }
}

//! The figures every benchmark reports: percentiles and the process's memory.

/// The `q` quantile (0–1) of `values` by nearest rank: the smallest value at least a `q` share
/// of them is at or below (p50 of 1..=4 is 2, p95 is 4). NaN when there are none.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * s.len() as f64).ceil() as usize;
    s.get(rank.saturating_sub(1).min(s.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

/// p50 and p95.
pub fn p50_p95(values: &[f64]) -> (f64, f64) {
    (percentile(values, 0.5), percentile(values, 0.95))
}

/// Resident memory of process `pid` now (VmRSS), in MiB; NaN when it cannot be read.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map_or(f64::NAN, |k| k / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.95), 4.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert!(rss_mib(std::process::id()) > 1.0);
    }
}

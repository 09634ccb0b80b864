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

/// The inodes of the TCP connections (not listeners) to or from `port`, from /proc/net.
fn connections_on(port: u16) -> std::collections::HashSet<String> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port_of = |address: &str| address.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // Fields: sl, local address, remote address, state (0A: listening), …, inode (10th).
            if let [_, local, remote, state, _, _, _, _, _, inode, ..] = fields[..]
                && state != "0A"
                && (port_of(local) == Some(port) || port_of(remote) == Some(port))
            {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    inodes
}

/// What each of this process's descriptors points at ("socket:[123]", a path…), read once;
/// "?" for one closed while it was read.
pub fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read_link(e.path()).map_or_else(|_| "?".to_string(), |t| t.to_string_lossy().into_owned()))
        .collect()
}

/// How many of `targets` ([`fd_targets`]) are ends of TCP connections to or from `port` (both
/// ends count when the server is in this process too).
pub fn connection_ends(targets: &[String], port: u16) -> usize {
    let inodes = connections_on(port);
    targets.iter().filter(|t| inodes.contains(t.as_str())).count()
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

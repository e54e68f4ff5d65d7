use crate::runtime::latency::Snapshot;
use std::time::Duration;

/// A distribution of scheduling latencies: how long threads waited in a
/// run queue between becoming runnable (woken, a timer due, yielded,
/// preempted) and running.
///
/// Percentiles come from a histogram with eight buckets per power of two,
/// reported as the upper bound of their bucket: at most an eighth above
/// the true value, never above [`max`](Self::max).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyStats {
    /// Waits recorded.
    pub samples: u64,
    /// Their mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The longest.
    pub max: Duration,
    /// Non-empty histogram buckets: (upper bound, waits in the bucket),
    /// ascending.
    pub buckets: Vec<(Duration, u64)>,
}

impl LatencyStats {
    pub(crate) fn from_snapshot(s: &Snapshot) -> LatencyStats {
        let d = Duration::from_nanos;
        LatencyStats {
            samples: s.count,
            mean: d(s.sum_ns.checked_div(s.count).unwrap_or(0)),
            p50: d(s.quantile_ns(0.5)),
            p99: d(s.quantile_ns(0.99)),
            p999: d(s.quantile_ns(0.999)),
            max: d(s.max_ns),
            buckets: s.buckets().map(|(ub, n)| (d(ub), n)).collect(),
        }
    }
}

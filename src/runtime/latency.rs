//! A histogram of durations that one writer fills with relaxed stores and
//! anyone reads: the scheduling latencies of a worker's sampled wake-ups
//! and of a profiled thread.
//!
//! Buckets are logarithmic with eight steps per power of two (each spans
//! an eighth of its lower bound), from 64 ns to about 2^38 ns (4.6
//! minutes); shorter durations go to the first bucket and longer ones to
//! the last. A percentile is reported as its bucket's upper bound, so it
//! errs high by at most an eighth; the maximum is kept exactly.

use std::sync::atomic::{AtomicU64, Ordering};

/// log2 of the first bucket's upper bound (64 ns).
const MIN_SHIFT: u32 = 6;
/// Buckets per power of two: 2^STEP_BITS.
const STEP_BITS: u32 = 3;
const STEPS: u32 = 1 << STEP_BITS;
const BUCKETS: usize = 32 * STEPS as usize;

pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of `ns`.
fn bucket_of(ns: u64) -> usize {
    if ns < 1 << MIN_SHIFT {
        return 0;
    }
    let log = 63 - ns.leading_zeros();
    // The bits after the leading one pick the step within the power.
    let step = ((ns >> (log - STEP_BITS)) & u64::from(STEPS - 1)) as u32;
    (((log - MIN_SHIFT) * STEPS + step) as usize + 1).min(BUCKETS - 1)
}

/// The upper bound, ns, of bucket `i`.
fn upper_of(i: usize) -> u64 {
    if i == 0 {
        return 1 << MIN_SHIFT;
    }
    let i = i as u32 - 1;
    let log = i / STEPS + MIN_SHIFT;
    let step = u64::from(i % STEPS);
    // [(STEPS + step) << (log - STEP_BITS), (STEPS + step + 1) << ..)
    (u64::from(STEPS) + step + 1) << (log - STEP_BITS)
}

impl Histogram {
    pub(crate) const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Adds `other`'s counts, with atomic adds: any number of threads may
    /// merge into one histogram at once (none may `record` into it).
    pub(crate) fn merge(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.count.fetch_add(other.count.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sum_ns.fetch_add(other.sum_ns.load(Ordering::Relaxed), Ordering::Relaxed);
        self.max_ns.fetch_max(other.max_ns.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Adds one duration. Single writer: plain relaxed load and store.
    pub(crate) fn record(&self, ns: u64) {
        let add = |a: &AtomicU64, v: u64| a.store(a.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
        add(&self.buckets[bucket_of(ns)], 1);
        add(&self.count, 1);
        add(&self.sum_ns, ns);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
    }

    /// Adds this histogram's counts into `into`.
    pub(crate) fn add_to(&self, into: &mut Snapshot) {
        for (i, b) in self.buckets.iter().enumerate() {
            into.buckets[i] += b.load(Ordering::Relaxed);
        }
        into.count += self.count.load(Ordering::Relaxed);
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
        into.max_ns = into.max_ns.max(self.max_ns.load(Ordering::Relaxed));
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.add_to(&mut s);
        s
    }
}

/// Counts read from one or more [`Histogram`]s.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    buckets: [u64; BUCKETS],
    pub(crate) count: u64,
    pub(crate) sum_ns: u64,
    pub(crate) max_ns: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot { buckets: [0; BUCKETS], count: 0, sum_ns: 0, max_ns: 0 }
    }
}

impl Snapshot {
    /// The `q` quantile (0..=1), ns: the upper bound of its bucket, never
    /// above the maximum seen; 0 when empty.
    pub(crate) fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_of(i).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// Non-empty buckets as (upper bound ns, count), for export.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| (upper_of(i), n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_lies_below_its_buckets_bound_and_above_the_previous_one() {
        for ns in (0..20_000u64).chain((0..60).map(|s| (1u64 << s) + 12345)) {
            let b = bucket_of(ns);
            assert!(ns < upper_of(b) || b == BUCKETS - 1, "{ns} in bucket {b} bounded by {}", upper_of(b));
            if b > 0 && b < BUCKETS - 1 {
                assert!(ns >= upper_of(b - 1), "{ns} in bucket {b} but below {}", upper_of(b - 1));
                // Each bucket spans at most an eighth of its lower bound.
                assert!(upper_of(b) - upper_of(b - 1) <= upper_of(b - 1) / 8);
            }
        }
    }

    #[test]
    fn quantiles_come_from_the_counts() {
        let h = Histogram::default();
        for _ in 0..99 {
            h.record(1_000);
        }
        h.record(1_000_000);
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.max_ns, 1_000_000);
        let p50 = s.quantile_ns(0.5);
        assert!((1_000..1_125).contains(&p50), "p50 {p50}");
        assert_eq!(s.quantile_ns(0.99), p50, "99 of 100 are 1 µs");
        assert_eq!(s.quantile_ns(1.0), 1_000_000);
        assert_eq!(Snapshot::default().quantile_ns(0.99), 0);
    }
}

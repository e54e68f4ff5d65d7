//! How many memory maps the runtime's stacks may take.
//!
//! The kernel caps the maps (VMAs) of a process at `vm.max_map_count`
//! (65530 by default). An `mprotect`ed guard page splits each stack into
//! two maps, so enough parked threads take them all, and then the
//! application's own next `mmap` fails (glibc serves a 1 MiB allocation
//! with one, and aborts when it cannot). So the runtime maps no stack that
//! would leave fewer than [`map_headroom`] maps to the rest of the program:
//! the thread fails with [`StackError::MapCountLimit`] instead.
//!
//! Counting the process's maps means reading `/proc/self/maps`, a line per
//! map: slow near the limit, and once per failed stack it made parking
//! threads up to the limit crawl (bench/README.md, "Counting memory maps").
//! So the runtime counts the maps of its own stacks with an atomic and
//! samples the process's total rarely: at its first stack, and then only
//! while the estimate is above half the limit, at most once per
//! [`SAMPLE_INTERVAL_MS`]; and before refusing a stack on an estimate that
//! grew by half a headroom or more since the last sample (which matters
//! with guard regions, where the count is an upper bound: such stacks merge
//! into shared maps). Otherwise a stack that does not fit fails at once,
//! from the estimate.
//! Below half the limit a new stack costs a few atomic operations; maps the
//! application itself adds meanwhile are seen at the next sample.

use super::StackError;
use std::io::Read;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::time::Instant;

/// The fewest memory maps the runtime leaves to the rest of the program:
/// it maps no stack that would leave fewer than
/// `max(MIN_MAP_HEADROOM, vm.max_map_count / 50)` maps free.
pub const MIN_MAP_HEADROOM: usize = 1024;

/// The shortest time between two reads of `/proc/self/maps` that the
/// budget makes on its own (a burst of stacks near the limit may read it
/// sooner, see the module docs).
const SAMPLE_INTERVAL_MS: u64 = 1000;

/// `sampled_ms` before the first sample.
const NEVER: u64 = u64::MAX;

/// The maps the runtime leaves free under a limit of `limit`.
pub(crate) fn map_headroom(limit: usize) -> usize {
    MIN_MAP_HEADROOM.max(limit / 50)
}

/// Whether a process holding `in_use` maps may take `more` and still leave
/// `reserve` of `limit` free.
fn leaves(limit: usize, in_use: usize, more: usize, reserve: usize) -> bool {
    in_use.saturating_add(more).saturating_add(reserve) <= limit
}

/// The process's limit and map count, as far as `/proc` tells.
type Sample = Option<(usize, usize)>;

/// The estimate, and when to refresh it.
pub(crate) struct Budget {
    /// `vm.max_map_count` at the last sample; 0 when unknown (no sample
    /// yet, or `/proc` could not be read), which admits every stack.
    limit: AtomicUsize,
    /// The maps the process held at the last sample minus `ours_then`:
    /// the estimate is `base + ours`, one atomic read of each, so that a
    /// sample being stored never shows half old and half new. Negative
    /// when guard-region stacks merged.
    base: AtomicIsize,
    /// Maps our live stacks hold, taken ones included.
    ours: AtomicUsize,
    /// `ours` at the last sample.
    ours_then: AtomicUsize,
    /// When the last sample was taken (ms since the first), or [`NEVER`].
    sampled_ms: AtomicU64,
    /// Counts samples, so that a thread that waited for another's sample
    /// uses it instead of taking its own.
    samples: AtomicU64,
    /// Held while sampling: one sampler at a time.
    sampling: Mutex<()>,
}

impl Budget {
    pub(crate) const fn new() -> Self {
        Budget {
            limit: AtomicUsize::new(0),
            base: AtomicIsize::new(0),
            ours: AtomicUsize::new(0),
            ours_then: AtomicUsize::new(0),
            sampled_ms: AtomicU64::new(NEVER),
            samples: AtomicU64::new(0),
            sampling: Mutex::new(()),
        }
    }

    /// Takes `per` maps for a new stack, or refuses with `MapCountLimit`
    /// when they would leave less than the headroom. `now_ms` and `sample`
    /// are only called above half the limit (and for the first stack).
    pub(crate) fn take(
        &self,
        per: usize,
        now_ms: impl FnOnce() -> u64,
        sample: impl FnOnce() -> Sample,
    ) -> Result<(), StackError> {
        self.ours.fetch_add(per, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Acquire);
        if limit != 0 && self.in_use() <= limit / 2 {
            return Ok(());
        }
        self.take_near_the_limit(per, now_ms(), sample)
    }

    #[cold]
    #[inline(never)]
    fn take_near_the_limit(&self, per: usize, now: u64, sample: impl FnOnce() -> Sample) -> Result<(), StackError> {
        let mut sample = Some(sample);
        let seen = self.samples.load(Ordering::Acquire);
        if self.due(now) {
            self.refresh(now, &mut sample, seen, false);
        }
        let fits = |b: &Self| {
            let limit = b.limit.load(Ordering::Acquire);
            limit == 0 || leaves(limit, b.in_use(), 0, map_headroom(limit))
        };
        if fits(self) {
            return Ok(());
        }
        // About to refuse on an estimate mostly made of our own stacks
        // since the last sample: with guard regions those are counted one
        // map each but merge, so look again (or wait for whoever is
        // looking) before failing the thread.
        let (limit, grown) = (self.limit.load(Ordering::Relaxed), self.grown());
        if grown >= map_headroom(limit) / 2 {
            self.refresh(now, &mut sample, seen, true);
            if fits(self) {
                return Ok(());
            }
        }
        let (limit, in_use) = (self.limit.load(Ordering::Acquire), self.in_use());
        self.ours.fetch_sub(per, Ordering::Relaxed);
        Err(StackError::MapCountLimit { limit, in_use: in_use.saturating_sub(per) })
    }

    /// Gives back the maps of a stack that was unmapped (or never mapped).
    pub(crate) fn give_back(&self, per: usize) {
        self.ours.fetch_sub(per, Ordering::Relaxed);
    }

    /// For an `mmap`/`mprotect` that failed with `ENOMEM`: the limit and
    /// the estimated maps in use, when the estimate puts the process at the
    /// limit (a few maps of slack: ld.so and the allocator map on their
    /// own); `None` when the kernel must have run out of memory instead.
    pub(crate) fn at_limit(&self, now: u64, sample: impl FnOnce() -> Sample) -> Option<(usize, usize)> {
        if self.due(now) {
            self.refresh(now, &mut Some(sample), self.samples.load(Ordering::Acquire), false);
        }
        let limit = self.limit.load(Ordering::Acquire);
        let in_use = self.in_use();
        (limit != 0 && !leaves(limit, in_use, 8, 0)).then_some((limit, in_use))
    }

    /// Samples the process again, unless a sample was taken since the
    /// caller saw `seen` samples (then that one is as fresh). Someone else
    /// sampling right now is waited for when `wait`, else left to it.
    fn refresh(&self, now: u64, sample: &mut Option<impl FnOnce() -> Sample>, seen: u64, wait: bool) {
        let _sampling = match self.sampling.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if wait => self.sampling.lock().unwrap_or_else(|p| p.into_inner()),
            Err(TryLockError::WouldBlock) => return,
        };
        if self.samples.load(Ordering::Acquire) != seen {
            return;
        }
        let Some(sample) = sample.take() else { return };
        let ours = self.ours.load(Ordering::Relaxed);
        if let Some((limit, total)) = sample() {
            self.base.store(total as isize - ours as isize, Ordering::Relaxed);
            self.ours_then.store(ours, Ordering::Relaxed);
            self.limit.store(limit, Ordering::Release);
        }
        self.sampled_ms.store(now, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Release);
    }

    /// The process's maps now, estimated: the last sample, plus what our
    /// stacks took (or minus what they gave back) since.
    fn in_use(&self) -> usize {
        let ours = self.ours.load(Ordering::Relaxed) as isize;
        (self.base.load(Ordering::Relaxed) + ours).max(0) as usize
    }

    /// Maps our stacks took since the last sample.
    fn grown(&self) -> usize {
        self.ours.load(Ordering::Relaxed).saturating_sub(self.ours_then.load(Ordering::Relaxed))
    }

    /// Whether the last sample is old enough to take another.
    fn due(&self, now: u64) -> bool {
        let at = self.sampled_ms.load(Ordering::Relaxed);
        at == NEVER || now.saturating_sub(at) >= SAMPLE_INTERVAL_MS
    }
}

static BUDGET: Budget = Budget::new();

/// Maps one stack takes: two with an `mprotect`ed guard (the guard splits
/// the mapping), one with a guard region (at most: neighbours merge).
fn per_stack() -> usize {
    if super::guard_regions_supported() { 1 } else { 2 }
}

/// Takes the maps of one new stack from the process-wide budget.
pub(crate) fn take() -> Result<(), StackError> {
    BUDGET.take(per_stack(), now_ms, sample)
}

/// Gives back the maps of one stack.
pub(crate) fn give_back() {
    BUDGET.give_back(per_stack())
}

/// See [`Budget::at_limit`].
pub(crate) fn at_limit() -> Option<(usize, usize)> {
    BUDGET.at_limit(now_ms(), sample)
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// `vm.max_map_count` and the number of maps this process holds.
fn sample() -> Sample {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()?;
    Some((limit, count_maps()?))
}

/// Counts the lines of `/proc/self/maps` through a small buffer: near the
/// limit the file is megabytes long, and a large allocation would need a
/// map of its own.
fn count_maps() -> Option<usize> {
    let mut f = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buf = vec![0u8; 64 << 10];
    let mut lines = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_headroom_is_1024_maps_or_2_percent_of_the_limit() {
        assert_eq!(map_headroom(10_000), 1024);
        assert_eq!(map_headroom(65_530), 1310);
        assert_eq!(map_headroom(1 << 20), 20_971);
        assert!(leaves(65_530, 60_000, 2, 1310));
        assert!(leaves(65_530, 64_218, 2, 1310), "exactly the headroom left");
        assert!(!leaves(65_530, 64_219, 2, 1310));
        assert!(!leaves(10, usize::MAX, 2, 0), "no overflow");
    }

    /// A process with `limit` and `other` maps of its own, whose samples
    /// are counted.
    struct Fake {
        limit: usize,
        other: Cell<usize>,
        samples: Cell<u32>,
    }

    impl Fake {
        fn sample<'a>(&'a self, budget: &'a Budget) -> impl FnOnce() -> Sample + 'a {
            move || {
                self.samples.set(self.samples.get() + 1);
                Some((self.limit, self.other.get() + budget.ours.load(Ordering::Relaxed)))
            }
        }
    }

    #[test]
    fn stacks_stop_at_the_headroom_and_failures_do_not_sample_again() {
        let b = Budget::new();
        let p = Fake { limit: 10_000, other: Cell::new(500), samples: Cell::new(0) };
        let mut taken = 0;
        while b.take(2, || 0, p.sample(&b)).is_ok() {
            taken += 1;
        }
        // 500 + 2 * taken maps leave at least 1024 of 10,000.
        assert_eq!(taken, (10_000 - 1024 - 500) / 2);
        let samples = p.samples.get();
        assert_eq!(samples, 2, "the first stack, and the first refusal (the estimate had grown since)");
        for _ in 0..10_000 {
            match b.take(2, || 500, p.sample(&b)) {
                Err(StackError::MapCountLimit { limit: 10_000, in_use }) => assert_eq!(in_use, 500 + 2 * taken),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(p.samples.get(), samples, "failures within the interval use the estimate");
        // A second later, one failure samples again; the rest do not.
        for _ in 0..100 {
            assert!(b.take(2, || 1500, p.sample(&b)).is_err());
        }
        assert_eq!(p.samples.get(), samples + 1);
        // Threads exit: their stacks' maps come back at once.
        for _ in 0..10 {
            b.give_back(2);
        }
        assert!(b.take(2, || 1500, p.sample(&b)).is_ok());
        assert_eq!(b.ours.load(Ordering::Relaxed), 2 * (taken - 9));
    }

    #[test]
    fn the_application_growing_its_own_maps_is_seen_at_the_next_sample() {
        let b = Budget::new();
        let p = Fake { limit: 100_000, other: Cell::new(40_000), samples: Cell::new(0) };
        assert!(b.take(2, || 0, p.sample(&b)).is_ok());
        assert_eq!(p.samples.get(), 1, "the first stack samples");
        for _ in 0..4999 {
            assert!(b.take(2, || 0, p.sample(&b)).is_ok());
        }
        assert_eq!(p.samples.get(), 1, "below half the limit, no sampling at all");
        for t in 1..1000 {
            assert!(b.take(2, || t, p.sample(&b)).is_ok());
        }
        assert_eq!(p.samples.get(), 1, "above half, at most once a second");
        // The application maps most of what is left itself.
        p.other.set(100_000 - 2 * 6000 - 2000);
        assert!(b.take(2, || 999, p.sample(&b)).is_ok(), "not seen yet");
        assert!(b.take(2, || 1000, p.sample(&b)).is_err(), "seen a second after the last sample");
        assert_eq!(p.samples.get(), 2);
    }

    #[test]
    fn an_over_counted_burst_samples_again_instead_of_failing() {
        // Guard-region stacks count 1 each but merge: the process's real
        // count stays flat.
        let b = Budget::new();
        let limit = 10_000;
        let samples = Cell::new(0);
        let sample = || {
            samples.set(samples.get() + 1);
            Some((limit, 300))
        };
        for _ in 0..50_000 {
            b.take(1, || 0, sample).unwrap();
        }
        // One sample per (limit - headroom - 300) stacks, when the estimate
        // reaches the headroom.
        assert_eq!(samples.get(), 1 + 50_000 / (limit - 1024 - 300), "{} samples", samples.get());
    }

    #[test]
    fn a_stack_about_to_be_refused_waits_for_a_sample_in_progress() {
        // Guard-region stacks again: the estimate sits at the headroom, and
        // one thread is sampling (slowly) when another asks for a stack.
        let b = Budget::new();
        let merged = || Some((10_000, 300));
        // 300 maps then, and 10,000 - 1024 - 300 stacks since (counted one
        // map each): the next stack does not fit the estimate.
        for _ in 0..10_000 - 1024 - 300 + 1 {
            b.take(1, || 0, merged).unwrap();
        }
        let (started_tx, started) = std::sync::mpsc::channel();
        let samples = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            let slow = s.spawn(|| {
                b.take(
                    1,
                    || 2000,
                    || {
                        samples.fetch_add(1, Ordering::SeqCst);
                        started_tx.send(()).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Some((10_000, 300))
                    },
                )
            });
            started.recv().unwrap();
            let meanwhile = b.take(
                1,
                || 2000,
                || {
                    samples.fetch_add(1, Ordering::SeqCst);
                    Some((10_000, 300))
                },
            );
            assert!(meanwhile.is_ok(), "refused on a stale estimate: {meanwhile:?}");
            assert!(slow.join().unwrap().is_ok());
        });
        assert_eq!(samples.load(Ordering::SeqCst), 1, "the waiting thread used the other's sample");
    }

    #[test]
    fn enomem_is_the_map_limit_only_near_it() {
        let b = Budget::new();
        assert_eq!(b.at_limit(0, || Some((65_530, 64_000))), None);
        assert_eq!(b.at_limit(1, || unreachable!("sampled within the interval")), None);
        assert_eq!(b.at_limit(1001, || Some((65_530, 65_525))), Some((65_530, 65_525)));
        assert_eq!(b.at_limit(1002, || None), Some((65_530, 65_525)));
        let unknown = Budget::new();
        assert_eq!(unknown.at_limit(0, || None), None);
        assert!(unknown.take(2, || 1, || None).is_ok(), "no /proc: no budget");
    }
}

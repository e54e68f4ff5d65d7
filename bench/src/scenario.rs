//! The scenarios and the peers, as data: what is measured, in which unit,
//! which direction is better.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Ours,
    /// Ours on a `WorkStealingScheduler`.
    OursWs,
    Os,
    May,
    Tokio,
    Corosensei,
    Go,
    Rayon,
}

impl Peer {
    pub const ALL: [Peer; 8] =
        [Peer::Ours, Peer::OursWs, Peer::Os, Peer::May, Peer::Tokio, Peer::Corosensei, Peer::Go, Peer::Rayon];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Ours => "ours",
            Peer::OursWs => "ours-ws",
            Peer::Os => "os",
            Peer::May => "may",
            Peer::Tokio => "tokio",
            Peer::Corosensei => "corosensei",
            Peer::Go => "go",
            Peer::Rayon => "rayon",
        }
    }

    pub fn parse(s: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub struct Scenario {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub lower_is_better: bool,
    /// Measured once per full run, not repeated (it takes tens of seconds).
    pub once: bool,
}

/// Scenarios that measure this runtime's own features: the other peers
/// answer "not applicable" without being started.
pub const OURS_ONLY: &[&str] = &["pool-alloc", "profiling"];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "yield2",
        title: "(a) yield, 2 threads, 1 worker",
        unit: "ns/yield",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "yield100",
        title: "(a) yield, 100 threads, 1 worker",
        unit: "ns/yield",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "spawn1",
        title: "(b) spawn+join 10^5, 1 worker, second burst",
        unit: "ns/thread",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "spawn-all",
        title: "(b) spawn+join 10^5, all workers, second burst",
        unit: "ns/thread",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "pingpong1",
        title: "(c) channel ping-pong, 1 worker",
        unit: "ns/trip",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "pingpong-cross",
        title: "(c) channel ping-pong, 2 workers",
        unit: "ns/trip",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "mutex-uncontended",
        title: "(d) mutex lock+unlock, uncontended",
        unit: "ns/op",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "mutex-contended",
        title: "(d) mutex, 8 threads, all workers",
        unit: "Mops/s",
        lower_is_better: false,
        once: false,
    },
    Scenario {
        id: "sleeper",
        title: "(e) 1 ms sleeper among 2 hogs, p50 lateness",
        unit: "µs",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "prio-wake",
        title: "(f) priority wake-up over hogs, p50",
        unit: "µs",
        lower_is_better: true,
        once: false,
    },
    Scenario { id: "rss", title: "(g) RSS per parked thread", unit: "bytes", lower_is_better: true, once: false },
    Scenario {
        id: "max-threads",
        title: "(g) most parked threads reached",
        unit: "threads",
        lower_is_better: false,
        once: true,
    },
    Scenario {
        id: "floor",
        title: "(h) bare coroutine resume+suspend",
        unit: "ns/trip",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "fairness",
        title: "(i) sibling's share of 1 worker beside a hog, lowest of 5 kinds",
        unit: "%",
        lower_is_better: false,
        once: false,
    },
    Scenario {
        id: "thread-ring",
        title: "(j) token around a ring of 503 threads, 2 workers",
        unit: "ns/hop",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "fork-join",
        title: "(k) fork-join tree of CPU work, speedup of 2 workers over 1",
        unit: "x",
        lower_is_better: false,
        once: false,
    },
    Scenario {
        id: "chameneos",
        title: "(m) chameneos-redux, 10 creatures meeting through a broker, 2 workers",
        unit: "ns/meeting",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "pool-alloc",
        title: "(n) allocate+free of a 64-byte buffer, memory_pools against the allocators",
        unit: "ns/pair",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "profiling",
        title: "(o) yield, 2 profiled threads (ThreadBuilder::enable_profiling), 1 worker",
        unit: "ns/switch",
        lower_is_better: true,
        once: false,
    },
    Scenario {
        id: "imbalance",
        title: "(l) 64 uneven CPU-bound threads spawned by one, speedup of 2 workers over 1",
        unit: "x",
        lower_is_better: false,
        once: false,
    },
];

pub fn find(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.id == id)
}

/// Sizes of a run: full, or `--quick`.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub quick: bool,
}

impl Params {
    /// Total yields in a yield scenario.
    pub fn yields(self) -> u64 {
        if self.quick { 200_000 } else { 2_000_000 }
    }

    /// Threads spawned and joined.
    pub fn spawns(self) -> u64 {
        if self.quick { 20_000 } else { 100_000 }
    }

    pub fn trips(self) -> u64 {
        if self.quick { 20_000 } else { 200_000 }
    }

    pub fn lock_ops(self) -> u64 {
        if self.quick { 2_000_000 } else { 20_000_000 }
    }

    /// Lock operations per thread in the contended case.
    pub fn contended_per_thread(self) -> u64 {
        if self.quick { 20_000 } else { 200_000 }
    }

    /// Sleeps of 1 ms, and the deadline at which the hogs are stopped
    /// however many sleeps were done (a sleeper one of whose waits took
    /// over half of it counts as starved).
    pub fn sleeps(self) -> (usize, std::time::Duration) {
        if self.quick { (200, std::time::Duration::from_secs(1)) } else { (1500, std::time::Duration::from_secs(3)) }
    }

    pub fn wakeups(self) -> usize {
        if self.quick { 100 } else { 1000 }
    }

    /// How long the fairness sibling runs alone, and beside each hog (in
    /// windows taken in turn).
    pub fn fairness_time(self) -> std::time::Duration {
        std::time::Duration::from_millis(if self.quick { 300 } else { 1000 })
    }

    /// Parked threads for the RSS figure (before map-count caps).
    pub fn parked(self) -> usize {
        if self.quick { 10_000 } else { 100_000 }
    }

    /// The steps (running totals) tried for the thread-count ceiling.
    pub fn ceiling_steps(self) -> &'static [usize] {
        if self.quick { &[10_000, 20_000] } else { &[10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000] }
    }

    pub fn floor_trips(self) -> u64 {
        if self.quick { 1_000_000 } else { 10_000_000 }
    }

    /// Hops of the token around the ring (each one a wake-up of the next
    /// thread, mostly on the other worker).
    pub fn ring_hops(self) -> u64 {
        if self.quick { 20_000 } else { 1_000_000 }
    }

    /// Depth of the fork-join tree (2^depth leaves of [`LEAF_ITERS`]
    /// each), and how many times each worker count is timed in one child
    /// (interleaved, medians: the speedup is a quotient of two noisy times).
    pub fn fork_join(self) -> (u32, usize) {
        if self.quick { (6, 1) } else { (12, 3) }
    }

    /// Leaves of work per unit of an imbalance thread (thread `i` does
    /// `i % 8 + 1` units), and rounds per worker count.
    pub fn imbalance(self) -> (u64, usize) {
        if self.quick { (2, 1) } else { (20, 3) }
    }

    /// Meetings of the chameneos scenario.
    pub fn meetings(self) -> u64 {
        if self.quick { 20_000 } else { 200_000 }
    }

    pub fn flag(self) -> Option<&'static str> {
        self.quick.then_some("--quick")
    }
}

/// Threads in the contended-mutex scenario.
pub const CONTENDERS: u64 = 8;
/// Stack size given to every stackful peer where it can be chosen.
pub const STACK_BYTES: usize = 64 * 1024;
/// Threads in the ring (the size of the classic benchmark, and of the
/// issue's figures: 57 ns per hop on 1 worker, about 366 on 2).
pub const RING_THREADS: u64 = 503;
/// Iterations of a fork-join leaf's loop ([`crate::common::leaf`]): about
/// 20 µs here, so that spawn+join (a few hundred ns) is a few percent of a
/// leaf and the speedup measures how the work spreads, not overhead alone.
/// 4096 leaves (depth 12) keep may's live coroutines (all of a breadth-first
/// tree at worst, two maps each) well under `vm.max_map_count`.
pub const LEAF_ITERS: u64 = 8_000;
/// Creatures of the chameneos scenario (the classic's larger game).
pub const CREATURES: u64 = 10;
/// Threads of the imbalance scenario.
pub const IMBALANCE_THREADS: u64 = 64;

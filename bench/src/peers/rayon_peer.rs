//! rayon: a fork-join pool, not threads. Only the fork-join tree applies;
//! it is here as the yardstick of work stealing on that tree.

use crate::common;
use crate::outcome::Outcome;
use crate::scenario::Params;
use std::time::Instant;

pub fn run(scenario: &str, p: Params) -> Outcome {
    match scenario {
        "fork-join" if common::allowed_cpus().len() < 2 => Outcome::na("one CPU only"),
        "fork-join" => {
            let (depth, rounds) = p.fork_join();
            let with = |threads| {
                move || {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool");
                    pool.install(|| {
                        let t = Instant::now();
                        (fork_join(depth, 0), t.elapsed())
                    })
                }
            };
            common::fork_join_outcome(common::fork_join_times(rounds, with(1), with(2))).note(
                "rayon::join (runs one side inline, the other stealable: no thread per node); pool of 1 \
                 against 2",
            )
        }
        _ => Outcome::na("a fork-join pool, not threads: only fork-join applies"),
    }
}

fn fork_join(depth: u32, index: u64) -> u64 {
    if depth == 0 {
        return common::leaf(index);
    }
    let (a, b) = rayon::join(|| fork_join(depth - 1, 2 * index), || fork_join(depth - 1, 2 * index + 1));
    a.wrapping_add(b)
}

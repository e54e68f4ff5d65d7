//! corosensei: bare stackful coroutines, no scheduler. The floor a green
//! thread's switch is compared with; scenarios that need a scheduler are
//! n/a.

use crate::common;
use crate::outcome::Outcome;
use crate::scenario::{Params, STACK_BYTES};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::time::Instant;

const NO_SCHEDULER: &str = "no scheduler: single-threaded coroutines resumed by hand";

pub fn run(scenario: &str, p: Params) -> Outcome {
    match scenario {
        "floor" => Outcome::ok(round_trips(p.floor_trips())).note("resume + suspend (two switches)"),
        "spawn1" => match create_run(p.spawns()).and_then(|first| Ok((first, create_run(p.spawns())?))) {
            Ok((first, ns)) => Outcome::ok(ns)
                .extra("first_burst_ns", first)
                .note("create + run to completion; a fresh 64 KiB mmap stack each (no pool); the second of two runs"),
            Err(e) => Outcome::failed(format!("stack: {e}")),
        },
        "rss" => rss(p),
        "max-threads" => max_threads(p),
        _ => Outcome::na(NO_SCHEDULER),
    }
}

fn round_trips(n: u64) -> f64 {
    let mut c = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        for _ in 0..n {
            y.suspend(());
        }
    });
    let t = Instant::now();
    while let CoroutineResult::Yield(()) = c.resume(()) {}
    common::ns_per(t, n)
}

fn create_run(n: u64) -> std::io::Result<f64> {
    let t = Instant::now();
    let mut sum = 0;
    for i in 0..n {
        let mut c = Coroutine::with_stack(DefaultStack::new(STACK_BYTES)?, move |_: &Yielder<(), ()>, ()| i);
        if let CoroutineResult::Return(v) = c.resume(()) {
            sum += v;
        }
    }
    assert_eq!(sum, n * (n - 1) / 2);
    Ok(common::ns_per(t, n))
}

type Parked = Vec<Coroutine<(), (), (), DefaultStack>>;

/// Adds coroutines, each resumed once to its first suspend, up to `total`.
fn grow(parked: &mut Parked, total: usize) -> Result<usize, (usize, String)> {
    while parked.len() < total {
        let stack = DefaultStack::new(STACK_BYTES).map_err(|e| {
            (
                parked.len(),
                format!(
                    "DefaultStack::new failed: {e} (vm.max_map_count={}, maps in use {})",
                    common::max_map_count(),
                    common::maps_in_use()
                ),
            )
        })?;
        let mut c = Coroutine::with_stack(stack, |y: &Yielder<(), ()>, ()| {
            y.suspend(());
        });
        let _ = c.resume(());
        parked.push(c);
    }
    Ok(total)
}

fn rss(p: Params) -> Outcome {
    let n = p.parked().min(common::map_capacity(2));
    let mut parked = Parked::new();
    let _ = grow(&mut parked, 1);
    let before = common::rss_bytes();
    if let Err((_, why)) = grow(&mut parked, n + 1) {
        return Outcome::failed(why);
    }
    let after = common::rss_bytes();
    // The child exits with them suspended: unwinding 10^5 stacks is not the point.
    std::mem::forget(parked);
    let note = if n < p.parked() {
        format!("{n} suspended coroutines: vm.max_map_count allows no more; 64 KiB stacks")
    } else {
        "suspended coroutines, 64 KiB stacks".into()
    };
    common::rss_outcome(before, after, n, Some(note))
}

fn max_threads(p: Params) -> Outcome {
    let mut parked = Parked::new();
    let o = common::ceiling(p.ceiling_steps(), None, |total| grow(&mut parked, total));
    std::mem::forget(parked);
    o
}

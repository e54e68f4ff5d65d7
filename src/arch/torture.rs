//! Register torture for preemption tests: keeps every register the ISA lets
//! user code hold, plus the flags, live with values derived from a seed for
//! a long loop, then counts how many came back different. A preemption that
//! loses or swaps any part of the state makes the count non-zero.

use super::Isa;

/// Runs the torture loop for `iterations` turns; returns how many registers
/// (or flags) did not survive. `seed` should differ between concurrently
/// running threads so that a swap with a sibling's state shows up.
///
/// ```
/// assert_eq!(preemptive_mlthreading_rust::arch::register_torture(42, 1_000), 0);
/// ```
#[doc(hidden)]
pub fn register_torture(seed: u64, iterations: u64) -> u64 {
    super::Current::torture(seed, iterations.max(1))
}

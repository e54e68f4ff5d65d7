//! One module per peer: each holds that runtime's version of every
//! scenario, so its set-up quirks (may's global config, tokio's runtime
//! flavours, pinning OS threads) stay in one place, and a reader can
//! compare two peers' versions of a scenario side by side.

pub mod coro;
pub mod go;
pub mod may_peer;
pub mod os;
pub mod ours;
pub mod rayon_peer;
pub mod tokio_peer;

use crate::outcome::Outcome;
use crate::scenario::{Params, Peer};

/// Runs one scenario for one in-process peer (everything but Go).
pub fn run(peer: Peer, scenario: &str, p: Params) -> Outcome {
    match peer {
        Peer::Ours => ours::run(scenario, p),
        Peer::OursWs => ours::run_work_stealing(scenario, p),
        Peer::Os => os::run(scenario, p),
        Peer::May => may_peer::run(scenario, p),
        Peer::Tokio => tokio_peer::run(scenario, p),
        Peer::Corosensei => coro::run(scenario, p),
        Peer::Rayon => rayon_peer::run(scenario, p),
        Peer::Go => Outcome::failed("go runs as its own program, not through run-one"),
    }
}

#!/usr/bin/env bash
# Model-checks the lock-free protocols with loom. In `sync`: the wait-list
# park/wake protocol behind Mutex, Condvar, RwLock, Semaphore and channels,
# and LockFreeStack and RcuProtected reclamation. In `runtime`: a green
# thread's park token (park.rs), the inbox other threads pass woken threads
# through (inbox.rs), and the wake-up handshake between a waker and a worker
# that goes to sleep or switches to a lower priority (handshake_model.rs, a
# model of worker/wake.rs), and a thief's steal request against the victim's
# answer (steal_model.rs, a model of worker/steal.rs). A separate target dir keeps the `--cfg loom`
# build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg loom"
export CARGO_TARGET_DIR=target/loom
# Two preemptions per execution is where these models finish in seconds;
# three multiplies the state space by ~100 (tried: minutes per model).
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
cargo test --release --lib "${@:-loom}"

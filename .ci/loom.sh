#!/usr/bin/env bash
# Model-checks the lock-free protocols of `sync` with loom: the wait-list
# park/wake protocol behind Mutex, Condvar, RwLock, Semaphore and channels,
# and LockFreeStack and RcuProtected reclamation. A separate target dir keeps
# the `--cfg loom` build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg loom"
export CARGO_TARGET_DIR=target/loom
# Two preemptions per execution is where these models finish in seconds;
# three multiplies the state space by ~100 (tried: minutes per model).
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
cargo test --release --lib "${@:-loom}"

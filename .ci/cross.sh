#!/usr/bin/env bash
# Cross-tests the crate on another ISA under qemu-user.
#
#   .ci/cross.sh <aarch64|riscv64> [cargo test args...]   unit and integration tests
#   .ci/cross.sh <aarch64|riscv64> --singlestep            the register torture with
#                                                          qemu translating one
#                                                          instruction per block
#   .ci/cross.sh <aarch64|riscv64> --clippy                clippy for that target
#
# Installs the emulator, the cross linker and libc and the Rust target when
# they are missing. Extra arguments go to `cargo test` (test filters,
# `-- --test-threads=1`, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${1:?usage: .ci/cross.sh <aarch64|riscv64> [--singlestep | --clippy | cargo test args...]}"
shift
case "$arch" in
    aarch64)
        target=aarch64-unknown-linux-gnu
        packages=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
        # The default CPU has SVE; nothing here saves SVE state on preemption yet.
        runner="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max,sve=off"
        ;;
    riscv64)
        target=riscv64gc-unknown-linux-gnu
        packages=(qemu-user gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)
        runner="qemu-riscv64 -L /usr/riscv64-linux-gnu"
        ;;
    *)
        echo "cross.sh: unknown ISA '$arch' (aarch64 or riscv64)" >&2
        exit 2
        ;;
esac

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"

if [[ "${1:-}" == "--clippy" ]]; then
    exec cargo clippy --target "$target" --all-targets -- -D warnings
fi

# A hang must cost minutes, not the whole CI budget: test runs (built
# beforehand, so compile time does not count) are killed after this many
# seconds; libtest has already named any test running over 60 s by then.
test_timeout="${PMT_TEST_TIMEOUT:-600}"

if [[ "${1:-}" == "--singlestep" ]]; then
    # qemu delivers an asynchronous signal only between translation blocks,
    # so a tight loop is always interrupted at the same instruction. One
    # instruction per block lets preemption land on every instruction of
    # the torture asm (its set-up, loop and checks). qemu 7.2 calls the flag
    # -singlestep, newer ones -one-insn-per-tb.
    emulator="${runner%% *}"
    if "$emulator" -h | grep -q -- '-one-insn-per-tb'; then
        runner="$runner -one-insn-per-tb"
    else
        runner="$runner -singlestep"
    fi
    # Every instruction costs ~10x more again: the torture scales its work
    # down by PMT_TEST_SLOWDOWN on top of the emulator's factor.
    export PMT_TEST_RUNNER="$runner" PMT_TEST_SLOWDOWN=10
    runner_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUNNER"
    export "$runner_var"="$runner"
    cargo test --target "$target" --test preemption --no-run
    exec timeout -k 30 "$test_timeout" cargo test --target "$target" --test preemption register_torture -- --nocapture
fi

# Tests that start a child process start it through the same emulator.
export PMT_TEST_RUNNER="$runner"
# qemu-user 7.2 has, once in many runs, aborted a panicking test with
# "fatal runtime error: failed to initiate panic" (the unwinder returned a
# garbage code while preemption signals were being delivered); never seen
# natively. A failing run is repeated once, loudly, so an emulator flake is
# visible in the log without turning CI red; a real failure fails twice.
cargo test --target "$target" --lib --tests --no-run
if ! timeout -k 30 "$test_timeout" cargo test --target "$target" --lib --tests "$@"; then
    echo "!! $arch tests failed (or timed out after ${test_timeout} s) under qemu; running them once more to tell an emulator flake from a real failure" >&2
    timeout -k 30 "$test_timeout" cargo test --target "$target" --lib --tests "$@"
    echo "!! FLAKY under qemu: the $arch tests passed on the second run" >&2
fi

# Optimised code is where a thread's address kept across a switch showed
# (tests/memory_pools.rs), and where riscv64's naked functions lost the A
# extension: the unit tests and the pools once more, in release.
cargo test --release --target "$target" --lib --test memory_pools --no-run
timeout -k 30 "$test_timeout" cargo test --release --target "$target" --lib --test memory_pools

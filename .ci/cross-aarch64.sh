#!/usr/bin/env bash
# Runs the crate's unit and integration tests on aarch64 under qemu-user.
# Extra arguments are passed to `cargo test` (test filters, `-- --test-threads=1`, ...).
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

rustup target add aarch64-unknown-linux-gnu

# Linker and runner come from .cargo/config.toml; tests that start a child
# process start it through the same emulator.
export PMT_TEST_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max,sve=off"
cargo test --target aarch64-unknown-linux-gnu --lib --tests "$@"

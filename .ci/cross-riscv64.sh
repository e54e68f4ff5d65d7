#!/usr/bin/env bash
# The riscv64 tests under qemu-user; see .ci/cross.sh.
exec "$(dirname "$0")/cross.sh" riscv64 "$@"

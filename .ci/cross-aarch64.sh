#!/usr/bin/env bash
# The aarch64 tests under qemu-user; see .ci/cross.sh.
exec "$(dirname "$0")/cross.sh" aarch64 "$@"

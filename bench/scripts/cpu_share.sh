#!/usr/bin/env bash
# Who gets the CPU while wrk loads an HTTP server: req/s, p99, and the cores
# used by wrk and by the server (utime + stime from /proc/PID/stat) over the
# first SECS-1 seconds of one run, after a 1 s warm-up.
#
#   bench/scripts/cpu_share.sh ours|go|tokio|may|os WORKERS HOGS CONNS [SECS]
#
# Needs `cargo build --release -p bench` (and bench-go for go) and wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
peer=$1 workers=$2 hogs=$3 conns=$4 secs=${5:-10}
out=$(mktemp)
trap 'rm -f "$out" "$out.wrk"' EXIT
if [[ $peer == go ]]; then
    GOMAXPROCS=$workers target/release/bench-go http-server "$hogs" >"$out" 2>/dev/null &
else
    target/release/bench serve-http "$peer" "$workers" "$hogs" >"$out" 2>/dev/null &
fi
server=$!
for _ in $(seq 50); do grep -q PORT "$out" && break; sleep 0.1; done
port=$(awk '/PORT/{print $2}' "$out")
url=http://127.0.0.1:$port/
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wrk -t2 -c"$conns" -d1s "$url" >/dev/null 2>&1
s0=$(cpu $server)
wrk -t2 -c"$conns" -d"${secs}s" --latency --timeout 2s "$url" >"$out.wrk" &
load=$!
sleep $((secs - 1))
w=$(cpu $load) s1=$(cpu $server)
wait $load
kill $server
wait $server 2>/dev/null || true
awk -v p="$peer" -v w="$w" -v s=$((s1 - s0)) -v t="$(getconf CLK_TCK)" -v d=$((secs - 1)) \
    '/Requests\/sec/{r=$2} / 99%/{q=$2} END{printf "%s: %s req/s, p99 %s; wrk %.2f cores, server %.2f cores\n", p, r, q, w/t/d, s/t/d}' "$out.wrk"

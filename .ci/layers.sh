#!/usr/bin/env bash
# Checks that modules import only downward (src/lib.rs, "Layers"): prints
# every `crate::<module>` path in code (doc comments aside: a link is not an
# import) that names a module of a higher layer, and every top-level module
# missing from the table below, and fails if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
# Bottom up; keep in step with src/lib.rs.
declare -A L=([arch]=1 [cpu_set]=1 [stack]=2 [error]=3 [preempt]=4 [runtime]=5 [sched]=6 [thread]=7 [metrics]=7 [sync]=8 [net]=8 [perf]=9)
bad=0
for f in $(find src -name '*.rs' | sort); do
  [ "$f" = src/lib.rs ] && continue
  top=$(echo "$f" | sed -E 's#src/([a-z_0-9]+)(/|\.rs).*#\1#')
  if [ -z "${L[$top]:-}" ]; then
    echo "unplaced module $top ($f): add it to .ci/layers.sh and src/lib.rs"; bad=1; continue
  fi
  while IFS= read -r line; do
    for m in $(echo "$line" | grep -oE 'crate::[a-z_0-9]+' | sed 's/crate:://' | sort -u); do
      [ -z "${L[$m]:-}" ] && continue
      if [ "${L[$m]}" -gt "${L[$top]}" ]; then echo "upward: $f -> $m: $line"; bad=1; fi
    done
  done < <(grep -nE 'crate::[a-z_]+' "$f" | grep -vE '^[0-9]+:\s*//')
done
[ $bad = 0 ] && echo "layers: every import points down"
exit $bad

#!/usr/bin/env bash
# Two identical biolm jobs side by side against one alone: how much do they slow each other down?
# (docs/performance.md, "Several jobs on one machine").
#
#   bash bench/side_by_side.sh [BIOLM] [THREADS]
#
# BIOLM defaults to build/bin/biolm; THREADS sets OMP_NUM_THREADS for each job (empty: LibTorch's
# default, one thread per core). The job is the HoC demo fine-tune (600 steps, a few seconds alone).
# Prints the wall time of one job alone and of two at once (until both are done).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
biolm="${1:-$root/build/bin/biolm}"
threads="${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
job() {
  (cd "$root" && env ${threads:+OMP_NUM_THREADS=$threads} "$biolm" --log-level warn finetune \
     --config examples/configs/hoc_demo.yaml output="$work/$1" eval.bootstrap=200 > "$work/$1.log" 2>&1) \
    || { echo "job $1 failed:" >&2; tail -n 20 "$work/$1.log" >&2; exit 1; }
}
now() { date +%s.%N; }
t0=$(now); job alone; t1=$(now)
job a & pa=$!; job b & pb=$!
wait "$pa"; wait "$pb"; t2=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v t="${threads:-default}" \
  'BEGIN { printf "threads=%s alone %.1f s, two side by side %.1f s\n", t, b - a, c - b }'

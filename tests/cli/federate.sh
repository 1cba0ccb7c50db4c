#!/usr/bin/env bash
# `biolm federate` end to end on the demo split (examples/configs/federated_ner_demo.yaml):
#  1. in-process, 2 rounds, then resumed to 3: "resumed_from" logged; `biolm report` reads the run;
#  2. federation.processes: true gives the same round-3 global state, byte for byte;
#  3. a round timeout that every worker exceeds: all three are killed and dropped, the run ends.
# Usage: federate.sh BIOLM OUT_DIR (from the repository root).
set -euo pipefail
BIOLM=$1
OUT=$2
rm -rf "$OUT"
mkdir -p "$OUT"
CFG=examples/configs/federated_ner_demo.yaml
run() { "$BIOLM" --log-level warn federate --config "$CFG" eval.bootstrap=20 "$@"; }

run output="$OUT/inproc" federation.rounds=2 >/dev/null
run output="$OUT/inproc" federation.rounds=3 >/dev/null
grep -q '"resumed_from":2' "$OUT/inproc/metrics.jsonl" || { echo "FAIL: no resumed_from record"; exit 1; }
test "$(grep -c '"round":' "$OUT/inproc/metrics.jsonl")" -eq 3 || { echo "FAIL: expected 3 round records"; exit 1; }
"$BIOLM" report --runs "$OUT/inproc" --out "$OUT/report" >/dev/null
grep -q 'dev_f1' "$OUT/report/report.json" || { echo "FAIL: report has no dev_f1 curve"; exit 1; }

run output="$OUT/proc" federation.rounds=3 federation.processes=true >/dev/null
cmp "$OUT/inproc/checkpoints/step-00000003/global.safetensors" "$OUT/proc/checkpoints/step-00000003/global.safetensors" \
  || { echo "FAIL: processes differ from in-process"; exit 1; }

run output="$OUT/timeout" federation.rounds=1 federation.processes=true federation.round_timeout_s=0.001 \
  >/dev/null 2>"$OUT/timeout.log"
grep -q '"failed":3' "$OUT/timeout/metrics.jsonl" || { echo "FAIL: timed-out sites not dropped"; exit 1; }
grep -q 'killed after round_timeout_s' "$OUT/timeout.log" || { echo "FAIL: drop not logged"; exit 1; }
echo "federate checks passed"

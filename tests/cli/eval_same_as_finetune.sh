#!/usr/bin/env bash
# usage: eval_same_as_finetune.sh BIOLM RUN_DIR TASK DATA KEY=VALUE...
# `biolm eval` of RUN_DIR/model on DATA must print the same test accuracy as finetune's
# RUN_DIR/results.json, and model.json must hold every KEY=VALUE given (the settings eval reads
# back). Prints SAME_ACCURACY on success.
set -euo pipefail
biolm=$1 run=$2 task=$3 data=$4
shift 4
acc() { tr -d ' \n' | grep -o '"accuracy":{"ci":\[[^]]*\],"value":[0-9.e-]*' | head -1 | sed 's/.*"value"://'; }
a=$(acc < "$run/results.json")
b=$("$biolm" eval --model "$run/model" --task "$task" --data "$data" --bootstrap 200 | acc)
echo "finetune accuracy $a, eval accuracy $b"
for kv in "$@"; do
  grep -q "\"${kv%%=*}\": *\"${kv#*=}\"" "$run/model/model.json" || { echo "model.json lacks $kv"; exit 1; }
done
[ -n "$a" ] && [ "$a" = "$b" ] && echo SAME_ACCURACY

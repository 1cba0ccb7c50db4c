#!/usr/bin/env bash
# Checks of `biolm generate` for tests/cli/pretrain.cmake: generate_checks.sh BIOLM MODEL_DIR WORK_DIR
#  1. seeded sampling twice: identical lines; another seed: different lines  -> REPRODUCIBLE
#  2. --stop S cuts the greedy completion before the first S (S taken from the completion's own
#     middle, the cut done here by hand)                                     -> CUT_OK
set -euo pipefail
biolm=$1 model=$2 work=$3
mkdir -p "$work"
printf '{"prompt":"53 year old male with"}\n{"prompt":"He was started on"}\n{"prompt":"Plan :"}\n' > "$work/prompts.jsonl"
sample() { "$biolm" generate --model "$model" --prompts "$work/prompts.jsonl" --max-new-tokens 24 --temperature 1.0 --top-k 50 --top-p 0.95 --seed "$1"; }
a=$(sample 7); b=$(sample 7); c=$(sample 8)
echo "$a"
[ "$(echo "$a" | wc -l)" -eq 3 ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] && echo REPRODUCIBLE

completion() { sed -E 's/.*"completion":"([^"]*)".*/\1/'; }
greedy() { "$biolm" generate --model "$model" --prompt "53 year old male with" --max-new-tokens 40 "$@"; }
full=$(greedy | completion)
stop=${full:6:3}
want=${full%%"$stop"*}
out=$(greedy --stop "$stop")
echo "$out"
got=$(echo "$out" | completion)
[ ${#full} -gt 9 ] && [ "$got" = "$want" ] && echo CUT_OK

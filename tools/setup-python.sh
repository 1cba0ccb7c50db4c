#!/usr/bin/env bash
# The pinned reference environment (tools/python/requirements.lock) in a virtual environment:
# torch 2.x, transformers, peft, tokenizers, seqeval, scikit-learn, scipy, sacrebleu, rouge-score,
# nltk, lm-eval, opacus, flwr, bitsandbytes and the real all-MiniLM-L6-v2 checkpoint, all from
# PyPI. Used by the parity suite, the benchmarks' peers and the LibTorch 2.x build; the library
# never needs it at run time.
#
#   tools/setup-python.sh                 # create or update $BIOLM_VENV (default /opt/biolm-deps/venv)
#   BIOLM_SETUP_VENV=0 tools/...          # do nothing (parity tests then skip, or fail under CI=true)
#
# Idempotent: the venv records the SHA-256 of the lock file it was built from and is left alone
# while that matches. Prints the venv's path on its last line.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BIOLM_VENV:-/opt/biolm-deps/venv}"
lock="$root/tools/python/requirements.lock"
if [ "${BIOLM_SETUP_VENV:-1}" = "0" ]; then echo "[setup-python] skipped (BIOLM_SETUP_VENV=0)"; exit 0; fi

python="${BIOLM_PYTHON:-}"
if [ -z "$python" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import venv, ensurepip' 2>/dev/null; then python="$(command -v "$cand")"; break; fi
  done
fi
if [ -z "$python" ]; then
  # Debian's python3 needs python3-venv for ensurepip.
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  python=/usr/bin/python3
fi

want="$(sha256sum "$lock" | cut -d' ' -f1)"
stamp="$venv/.biolm-lock-sha256"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup-python] reference environment up to date: $venv"
  exit 0
fi
start=$(date +%s)
echo "[setup-python] installing the reference environment into $venv (torch 2.x and friends, a few GB)"
if [ ! -x "$venv/bin/python" ]; then "$python" -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$lock"
# The checkpoint must import offline: fail here, not in the tests.
HF_HUB_OFFLINE=1 "$venv/bin/python" "$root/tools/python/reference_env.py" --check
echo "$want" > "$stamp"
echo "[setup-python] done in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1): $venv"

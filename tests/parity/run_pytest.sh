#!/usr/bin/env bash
# One parity script under the reference environment: run_pytest.sh PYTHON SCRIPT.
# Exit 77 (ctest: skipped) when the environment is missing, unless CI=true: then it is a failure.
set -uo pipefail
python="$1"; script="$2"
if [ ! -x "$python" ] || ! "$python" -c 'import torch, transformers, pytest' 2>/dev/null; then
  msg="reference environment missing ($python): run tools/setup-python.sh"
  if [ "${CI:-}" = "true" ]; then echo "parity: FAIL: $msg (CI=true requires it)"; exit 1; fi
  echo "parity: skipped: $msg"; exit 77
fi
mkdir -p "${BIOLM_PARITY_WORK:-work}"
"$python" -m pytest -q -p no:cacheprovider -rs "$script"
rc=$?
# pytest exit 5: nothing collected — a parity file that tests nothing is a defect, not a pass.
if [ "$rc" -eq 5 ]; then echo "parity: FAIL: no test collected in $script"; exit 1; fi
exit "$rc"

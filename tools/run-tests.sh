#!/usr/bin/env bash
# Fresh Debian 12 machine -> dependencies, Release build, the whole test suite through ctest.
# This is the README's second command and exactly what .ci/run calls.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BIOLM_BUILD_DIR:-$root/build}"
jobs="${BIOLM_JOBS:-$(nproc)}"

bash "$root/tools/setup-debian.sh"
bash "$root/tools/setup-python.sh"
start=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
built=$(date +%s)
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 1200
echo "[run-tests] build $((built - start)) s, tests $(( $(date +%s) - built )) s"

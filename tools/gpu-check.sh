#!/usr/bin/env bash
# tools/gpu-check.sh: everything libbiolm claims about GPUs, proven in one run on a GPU machine
# (an NVIDIA H100/H200 whose Python has torch 2.x, transformers and peft; 16 cores; < 10 min).
#
#   1. builds the tree against that Python's torch (Release, -j$(nproc)): the CUDA build
#   2. runs every [cuda] test case (tests/*/ "<module>::cuda"; a GPU that is absent is a failure
#      here, not a skip, unless --dry-run)
#   3. runs the parity suite (ctest -L parity; CPU references vs transformers/peft/...); the GPU
#      parity, fp32 and bf16, is the [cuda] case "CUDA and CPU give the same outputs" of step 2
#   4. runs the CUDA benchmarks through bench/run_bench.sh: GPT-2 124M bf16 training (MFU, goal
#      >= 45 %), Megatron-BERT-345M (GatorTron-base shapes) MLM (MFU), a LLaMA-1B-shape LoRA step
#      against transformers + peft on the same GPU (tokens/s and peak memory; goal >= 1.5x at <=
#      its memory)
#   5. writes $out/gpu-check.json (every result, the goals and whether each was met) and
#      $out/gpu-check.md (the table for docs/performance.md)
#
#   tools/gpu-check.sh [--python PY] [--build-dir DIR] [--out DIR] [--jobs N] [--no-build]
#                      [--steps N] [--dry-run]
#
# --dry-run: the same steps on the CPU with tiny shapes (bench configs tiny/bert, 2 steps, one
# parity file), using an existing build when --no-build is given; ctest runs it as
# tools::gpu_check_dry_run. MFU is model FLOPs (bench's flops_per_token: 6N + attention, as llm.c
# and nanoGPT count) x tokens/s over the GPU's dense bf16 datasheet peak (H100 SXM / H200: 989
# TFLOP/s; H100 PCIe 756); "of matmul" is the same over the bf16 matmul rate measured in the run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${BIOLM_PYTHON:-}"
build=""
out=""
jobs="$(nproc)"
dry=0
no_build=0
steps=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) python="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --no-build) no_build=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$python" ]]; then
  if [[ -x /opt/biolm-deps/venv/bin/python ]]; then python=/opt/biolm-deps/venv/bin/python; else python="$(command -v python3)"; fi
fi
build="${build:-$root/build-gpu}"
out="${out:-$build/gpu-check}"
mkdir -p "$out"
log() { echo "[gpu-check $(date -u +%H:%M:%S)] $*" >&2; }
t0=$(date +%s)

if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "gpu-check: $python cannot import torch (pass --python)" >&2; exit 2
fi
read -r torch_version torch_cuda prefix gpu_name gpu_count < <("$python" - <<'EOF'
import torch
name = torch.cuda.get_device_name(0).replace(" ", "_") if torch.cuda.is_available() else "none"
print(torch.__version__, torch.version.cuda or "none", torch.utils.cmake_prefix_path, name,
      torch.cuda.device_count() if torch.cuda.is_available() else 0)
EOF
)
log "torch $torch_version (CUDA $torch_cuda), GPU: $gpu_name x$gpu_count, dry run: $dry"
if [[ $dry == 0 && "$gpu_count" == 0 ]]; then
  echo "gpu-check: no CUDA device visible to $python; use --dry-run on a CPU machine" >&2; exit 2
fi

# 1. build ------------------------------------------------------------------------------------
if [[ $no_build == 0 ]]; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        -DBIOLM_BUILD_EXAMPLES=OFF -DBIOLM_PARITY_PYTHON="$python" > "$out/configure.log"
  # Only what the steps run: the test executables (ctest registers a <module>::cuda entry for
  # each), the CLI and the parity driver (parity), the bench. No examples.
  targets=(biolm_cli biolm_parity_train_step biolm_bench)
  for d in "$root"/tests/*/; do
    m="$(basename "$d")"
    case "$m" in support|consumer|reference|fuzz|parity) continue ;; esac
    compgen -G "$d*.cpp" > /dev/null && targets+=("test_$m")
  done
  log "building ${targets[*]} (-j$jobs)"
  cmake --build "$build" -j "$jobs" --target "${targets[@]}" > "$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log" >&2; exit 1; }
fi
t_build=$(date +%s)

# 2. [cuda] tests -----------------------------------------------------------------------------
# Each test executable with its [cuda] cases (what ctest's <module>::cuda entries run); exit 77
# means no GPU visible: a skip under --dry-run, a failure on a GPU machine.
cuda_rc=0; n_pass=0; n_skip=0; n_fail=0
: > "$out/cuda-tests.log"
for exe in "$build"/tests/test_*; do
  [[ -x "$exe" && -f "$exe" ]] || continue
  rc=0; (cd "$build/tests" && "$exe" "[cuda]") >> "$out/cuda-tests.log" 2>&1 || rc=$?
  echo "$(basename "$exe") [cuda]: rc $rc" >> "$out/cuda-tests.log"
  if [[ $rc == 0 ]]; then n_pass=$((n_pass + 1))
  elif [[ $rc == 77 && $dry == 1 ]]; then n_skip=$((n_skip + 1))
  else n_fail=$((n_fail + 1)); cuda_rc=1; fi
done
if [[ $((n_pass + n_skip + n_fail)) == 0 ]]; then cuda_rc=1; log "no test executable under $build/tests"; fi
t_cuda=$(date +%s)
log "[cuda] tests: $n_pass passed, $n_skip skipped (no GPU), $n_fail failed"

# 3. parity -----------------------------------------------------------------------------------
parity_args=(-L parity)
if [[ $dry == 1 ]]; then parity_args+=(-R 'parity::metrics'); fi
parity_rc=0
(cd "$build" && ctest "${parity_args[@]}" -j "$(( jobs > 8 ? 8 : jobs ))" --output-on-failure --timeout 600 \
   > "$out/parity.log" 2>&1) || parity_rc=$?
t_parity=$(date +%s)
log "parity: $(grep -E 'tests passed|tests failed' "$out/parity.log" | tail -1) (rc $parity_rc)"

# 4. benchmarks -------------------------------------------------------------------------------
bench_jsonl="$out/bench.jsonl"
if [[ $dry == 1 ]]; then
  bench=(--device cpu --dtype fp32 --threads 2 --steps "${steps:-2}" --warmup 1)
  runs=("tiny:clm_lora" "bert:mlm")
else
  bench=(--device cuda --dtype bf16 --threads "$jobs" --steps "${steps:-10}" --warmup 3)
  runs=("gpt2-124m:clm_full" "megatron-bert-345m:mlm" "llama-1b:clm_lora")
fi
: > "$bench_jsonl"
bench_rc=0
for r in "${runs[@]}"; do
  log "bench ${r%%:*} ${r##*:}"
  bash "$root/bench/run_bench.sh" --bin "$build/bin/biolm-bench" --python "$python" --out "$out/bench-part.jsonl" \
       --configs "${r%%:*}" --cases "${r##*:}" "${bench[@]}" > "$out/bench-${r%%:*}.md" 2>> "$out/bench.log" \
    || { bench_rc=1; log "bench ${r} failed (see $out/bench.log)"; }
  cat "$out/bench-part.jsonl" >> "$bench_jsonl" 2>/dev/null || true
done
rm -f "$out/bench-part.jsonl"
t_bench=$(date +%s)

# 5. summary ----------------------------------------------------------------------------------
report_rc=0
"$python" "$root/tools/python/gpu_check_report.py" --bench "$bench_jsonl" --out "$out" \
  --gpu "$gpu_name" --torch "$torch_version" --cuda "$torch_cuda" --dry-run "$dry" \
  --status "cuda_tests=$cuda_rc" "parity=$parity_rc" "bench=$bench_rc" \
  --seconds "build=$((t_build - t0))" "cuda_tests=$((t_cuda - t_build))" "parity=$((t_parity - t_cuda))" \
            "bench=$((t_bench - t_parity))" "total=$(( $(date +%s) - t0 ))" || report_rc=$?
log "wrote $out/gpu-check.json and $out/gpu-check.md in $(( $(date +%s) - t0 )) s"
cat "$out/gpu-check.md"
if [[ $cuda_rc != 0 || $parity_rc != 0 || $bench_rc != 0 || $report_rc != 0 ]]; then
  log "FAILED: [cuda] tests rc $cuda_rc, parity rc $parity_rc, bench rc $bench_rc, report rc $report_rc (logs in $out)"
  exit 1
fi

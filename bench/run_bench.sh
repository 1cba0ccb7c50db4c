#!/usr/bin/env bash
# bench/run_bench.sh: libbiolm against plain PyTorch, case by case, in one session.
#
# For every config/case it runs biolm-bench, then the PyTorch reference right after (same
# machine, same threads, same steps), writes both JSON lines to the results file and prints a
# table with the ratios (ours / reference tokens/s; peak RSS ours / reference).
#
#   bench/run_bench.sh [--out bench/results/latest.jsonl] [--configs "tiny small bert"]
#                      [--cases "clm_full clm_lora clm_hybrid"] (default: every case of each config;
#                      clm_dp_lora is raced against transformers + peft + Opacus)
#                      [--threads 2] [--steps 10] [--warmup 3] [--device cpu] [--dtype fp32]
#                      [--bin build/bin/biolm-bench] [--python /usr/bin/python3] [--repeat 1]
#                      [--hf "sdpa eager compile"] (transformers variants timed; default sdpa)
#
# On CUDA (--device cuda) the default configs become the CUDA presets; the reference is run with
# --device cuda as well; where transformers and peft import, every LLaMA-style clm_lora case is
# also timed through them (torch_reference.py --impl hf-peft) and gets a table of its own, and so are
# the encoder cases (mlm; tok_full / tok_lora of --configs minilm, which only transformers runs);
# --hf picks the variants: sdpa, eager (attn_implementation) and compile (torch.compile, sdpa).
# --repeat N runs each pair N times and keeps every line; the table shows each side's fastest run
# (by median), and "ratio (min)" compares the fastest single steps, which is the steadier figure on
# a machine shared with other work.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/results/latest.jsonl"
configs=""
cases=""
threads=2
steps=10
warmup=3
device=cpu
dtype=fp32
bin="$root/build/bin/biolm-bench"
python=/usr/bin/python3
repeat=1
hf_variants="sdpa"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --configs) configs="$2"; shift 2 ;;
    --cases) cases="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --hf) hf_variants="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [[ ! -x "$bin" ]]; then
  echo "run_bench.sh: $bin not found; build it first: cmake --build build --target biolm_bench" >&2
  exit 2
fi
if [[ -z "$configs" ]]; then
  if [[ "$device" == cuda* ]]; then configs="gpt2-124m gpt2-350m megatron-bert-345m llama-1b"; else configs="tiny small bert"; fi
fi

cases_for() {
  if [[ -n "$cases" ]]; then echo "$cases"; return; fi
  case "$1" in
    bert|megatron-bert-345m) echo "mlm" ;;
    minilm) echo "tok_full tok_lora" ;;
    llama-1b) echo "clm_lora" ;;
    *) echo "clm_full clm_lora clm_dp_lora clm_hybrid forward generate" ;;
  esac
}

mkdir -p "$(dirname "$out")"
: > "$out"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -n) threads=$threads steps=$steps warmup=$warmup device=$device dtype=$dtype" >&2
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

common=(--threads "$threads" --steps "$steps" --warmup "$warmup")
# Where transformers and peft are importable, clm_lora is also timed through them (LLaMA-style configs).
hf_peft=0
if "$python" -c "import transformers, peft" 2>/dev/null; then hf_peft=1; fi
echo "# transformers + peft LoRA reference: $([[ $hf_peft == 1 ]] && echo yes || echo "not installed, skipped")" >&2
opacus=0
if [[ "$hf_peft" == 1 ]] && "$python" -c "import opacus" 2>/dev/null; then opacus=1; fi
echo "# transformers + peft + Opacus DP-LoRA reference: $([[ $opacus == 1 ]] && echo yes || echo "not installed, skipped")" >&2
for cfg in $configs; do
  for cs in $(cases_for "$cfg"); do
    for ((r = 0; r < repeat; r++)); do
      echo "# $cfg $cs (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      "$bin" --config "$cfg" --case "$cs" "${common[@]}" --device "$device" --dtype "$dtype" >> "$out"
      if [[ "$cs" == clm_dp_lora ]]; then
        # DP-SGD has no plain-PyTorch twin here: its peer is transformers + peft + Opacus.
        if [[ "$opacus" == 1 ]]; then
          "$python" "$here/reference/torch_reference.py" --config "$cfg" --case "$cs" "${common[@]}" \
            --device "$device" --dtype "$dtype" --impl opacus-peft >> "$out"
        fi
        continue
      fi
      if [[ "$cs" != tok_* ]]; then
        "$python" "$here/reference/torch_reference.py" --config "$cfg" --case "$cs" "${common[@]}" \
          --device "$device" --dtype "$dtype" >> "$out"
      fi
      if [[ "$hf_peft" == 1 && "$cfg" != gpt2-* && " clm_full clm_lora mlm tok_full tok_lora " == *" $cs "* ]]; then
        for v in $hf_variants; do
          case "$v" in
            sdpa) extra=() ;;
            eager) extra=(--attn eager) ;;
            compile) extra=(--compile) ;;
            *) echo "run_bench.sh: --hf variant '$v' (sdpa, eager, compile)" >&2; exit 2 ;;
          esac
          "$python" "$here/reference/torch_reference.py" --config "$cfg" --case "$cs" "${common[@]}" \
            --device "$device" --dtype "$dtype" --impl hf-peft "${extra[@]}" >> "$out"
        done
      fi
    done
  done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$python" - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
best = {}
for r in rows:  # fastest run of each (config, case, impl)
    k = (r["config"], r["case"], r["impl"])
    if k not in best or r["tokens_per_s"] > best[k]["tokens_per_s"]:
        best[k] = r
keys = []
for r in rows:
    if (r["config"], r["case"]) not in keys:
        keys.append((r["config"], r["case"]))
def f(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) else "-"
hdr = ("config", "case", "biolm tok/s", "torch tok/s", "ratio", "ratio (min)", "biolm ms", "torch ms",
       "biolm MB", "torch MB", "mem ratio", "biolm %peak", "torch %peak", "trainable")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for cfg, cs in keys:
    a, b = best.get((cfg, cs, "biolm")), best.get((cfg, cs, "pytorch"))
    if a is None or b is None:
        continue
    mem_a = a.get("peak_cuda_mb") or a["peak_rss_mb"]
    mem_b = b.get("peak_cuda_mb") or b["peak_rss_mb"]
    pa = a.get("peak_fraction"); pb = b.get("peak_fraction")
    print("| " + " | ".join([cfg, cs, f(a["tokens_per_s"], ".0f"), f(b["tokens_per_s"], ".0f"),
          f(a["tokens_per_s"] / b["tokens_per_s"], ".2f") + "x",
          f(min(x["step_ms_min"] for x in rows if x["impl"] == "pytorch" and (x["config"], x["case"]) == (cfg, cs)) /
            min(x["step_ms_min"] for x in rows if x["impl"] == "biolm" and (x["config"], x["case"]) == (cfg, cs)), ".2f") + "x",
          f(a["step_ms_median"], ".1f"),
          f(b["step_ms_median"], ".1f"), f(mem_a, ".0f"), f(mem_b, ".0f"), f(mem_a / mem_b, ".2f"),
          f(pa * 100 if pa else None, ".0f"), f(pb * 100 if pb else None, ".0f"),
          str(a["trainable_params"])]) + " |")
hf = [(k, r) for k, r in best.items() if k[2].startswith(("hf-peft", "opacus-peft"))]
if hf:
    print("\n| config | case | peer | biolm tok/s | peer tok/s | ratio | biolm MB | peer MB | mem ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (cfg, cs, impl), h in hf:
        a = best.get((cfg, cs, "biolm"))
        if a is None:
            continue
        mem_a = a.get("peak_cuda_mb") or a["peak_rss_mb"]
        mem_h = h.get("peak_cuda_mb") or h["peak_rss_mb"]
        print("| " + " | ".join([cfg, cs, impl, f(a["tokens_per_s"], ".0f"), f(h["tokens_per_s"], ".0f"),
              f(a["tokens_per_s"] / h["tokens_per_s"], ".2f") + "x", f(mem_a, ".0f"), f(mem_h, ".0f"),
              f(mem_a / mem_h, ".2f")]) + " |")
first = next((r for r in rows if r["impl"] == "biolm"), None)
if first:
    print(f"\nbiolm: torch {first['torch']}, {first['device']}, threads {first['threads']}, "
          f"blas {first['blas']} ({first.get('blas_config', '')}), "
          f"matmul peak {first['matmul_peak_flops'] / 1e9:.0f} GFLOP/s")
EOF
echo "# results: $out" >&2

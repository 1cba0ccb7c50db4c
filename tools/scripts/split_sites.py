#!/usr/bin/env python3
"""Split a CoNLL NER file into non-IID "sites" for the federated demo (docs/federated.md).

Each sentence goes, with probability SKEW, to the site that prefers its first entity's type
(problem -> site_a, test -> site_b, treatment -> site_c) and otherwise to a site drawn uniformly;
sentences without entities are drawn uniformly. Seeded, so the committed files regenerate exactly:

    python3 tools/scripts/split_sites.py data/ner/train.conll data/ner_sites
"""
import random
import sys
from pathlib import Path

SITES = ["site_a", "site_b", "site_c"]
PREFERS = {"problem": "site_a", "test": "site_b", "treatment": "site_c"}
SKEW = 0.7
SEED = 19


def sentences(path):
    block = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def first_type(block):
    for line in block:
        tag = line.split("\t")[-1]
        if tag.startswith("B-"):
            return tag[2:]
    return None


def main(src, out_dir):
    rng = random.Random(SEED)
    out = {s: [] for s in SITES}
    for block in sentences(src):
        pref = PREFERS.get(first_type(block))
        site = pref if pref and rng.random() < SKEW else rng.choice(SITES)
        out[site].append(block)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for site, blocks in out.items():
        text = "\n\n".join("\n".join(b) for b in blocks) + "\n"
        (Path(out_dir) / f"{site}.conll").write_text(text, encoding="utf-8")
        print(f"{site}: {len(blocks)} sentences")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

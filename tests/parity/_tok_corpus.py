"""Real biomedical texts for the tokenizer parity suite, read with plain Python from the shared
data (../shared/data, described in its SOURCES.md). Nothing is copied into the repository.

texts(shared_data) returns a deterministic list of distinct texts from MEDLINE/PubMed XML
(title + abstract), PubMedQA (questions, contexts, long answers), MedQA (questions with their
`\\n` lab tables, options), ChemProt (marker sentences with NBSP / thin spaces), NCBI-disease and
BC5CDR CoNLL sentences, BC5CDR PubTator titles and abstracts, and the BRAT .txt documents.
"""
import glob
import gzip
import json
import os
import random
import xml.etree.ElementTree as ET


def _medline(root):
    out = []
    files = sorted(glob.glob(os.path.join(root, "pubmed_medline_xml", "**", "*.xml*"), recursive=True))
    for path in files:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            tree = ET.parse(f)
        for cit in tree.iter("MedlineCitation"):
            title = "".join(cit.find(".//ArticleTitle").itertext()) if cit.find(".//ArticleTitle") is not None else ""
            parts = ["".join(a.itertext()) for a in cit.iter("AbstractText")]
            if title:
                out.append(title)
            if parts:
                # structured abstracts keep their sections on separate lines
                out.append(title + "\n" + "\n".join(parts) if len(parts) > 1 else title + " " + parts[0])
                out.extend(parts)
    return out


def _pubmedqa(root):
    with open(os.path.join(root, "pubmedqa", "ori_pqal.json"), encoding="utf-8") as f:
        data = json.load(f)
    out = []
    for pmid in sorted(data):
        r = data[pmid]
        out.append(r["QUESTION"])
        out.extend(r["CONTEXTS"])
        out.append(r["LONG_ANSWER"])
    return out


def _medqa(root):
    out = []
    with open(os.path.join(root, "medqa_usmle", "phrases_no_exclude_test.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append(r["question"])
            out.append(" ".join(f"{k}. {v}" for k, v in sorted(r["options"].items())))
    return out


def _chemprot(root):
    out = []
    for split in ("train", "dev", "test"):
        with open(os.path.join(root, "chemprot", f"{split}.txt"), encoding="utf-8") as f:
            out.extend(json.loads(line)["text"] for line in f if line.strip())
    return out


def _conll(path):
    out, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if cur:
                    out.append(" ".join(cur))
                cur = []
                continue
            cur.append(line.split("\t")[0])
    if cur:
        out.append(" ".join(cur))
    return out


def _pubtator(root):
    out = []
    for path in sorted(glob.glob(os.path.join(root, "bc5cdr_pubtator", "*.PubTator.txt"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("|", 2)
                if len(parts) == 3 and parts[1] in ("t", "a"):
                    out.append(parts[2])
    return out


def _brat(root):
    out = []
    for path in sorted(glob.glob(os.path.join(root, "brat_ncbi_disease", "test", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            out.append(f.read())
    return out


def sources(root):
    """{source name: [texts]} in file order."""
    return {
        "medline": _medline(root),
        "pubmedqa": _pubmedqa(root),
        "medqa": _medqa(root),
        "chemprot": _chemprot(root),
        "ncbi_conll": sum((_conll(p) for p in sorted(glob.glob(os.path.join(root, "ncbi_disease_conll", "*.tsv")))), []),
        "bc5cdr_conll": _conll(os.path.join(root, "bc5cdr_conll", "test.tsv")),
        "pubtator": _pubtator(root),
        "brat": _brat(root),
    }


def texts(root, n=12000, seed=16):
    """n distinct real texts: every one with a non-ASCII character, every multi-line one, and a
    seeded sample of the rest, in a deterministic order."""
    seen, everything = set(), []
    for name, items in sources(root).items():
        for t in items:
            if t and t not in seen:
                seen.add(t)
                everything.append(t)
    special = [t for t in everything if any(ord(c) > 127 for c in t) or "\n" in t]
    rest = [t for t in everything if t not in set(special)]
    rng = random.Random(seed)
    rng.shuffle(rest)
    chosen = special + rest[: max(0, n - len(special))]
    return chosen


# Hand-written texts that probe the rules the real texts rarely reach (not counted as real).
EDGE_TEXTS = [
    "Bond length 1.5 \u212b, resistance 4 \u2126, temperature 300 \u212a.",
    "Sj\u00f6gren's syndrome and IL-6 (p < 0.05) \u00b1 2 \u00b5g/ml",
    "The [MASK] binds [CLS] here [SEP] and [UNK] [PAD]",
    "left <|endoftext|> right<|endoftext|><|endoftext|> end",
    "-starts with a dash",
    "--double dash",
    "  two leading spaces and trailing   ",
    "tab\tseparated\r\nwindows line\n\nblank",
    "emoji \U0001F9EC DNA \U0001F600 and CJK \u764c\u75c7 and Hangul \ud55c\uad6d\uc5b4",
    "combining e\u0301 and \u00e9 and \u0130stanbul \u03a3\u039f\u03a3",
    "nbsp\u00a0thin\u2009en\u2002four-per-em\u2005zero-width\u200bjoiner\u200d",
    "control\u0007bell and \u0000nul and \ufffd replacement",
    "ligature \ufb01 and fullwidth \uff21\uff22\uff23 and superscript x\u00b2",
    "it's we're they've I'm he'll she'd IT'S",
    "numbers 1234567 and 3.14159 and \u0663\u0664",
    " ",
    "a",
    "\u00c5ngstr\u00f6m \u00c6 \u00d8 \u00df \u0141\u00f3d\u017a",
]

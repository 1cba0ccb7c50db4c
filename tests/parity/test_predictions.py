"""Predictions files of `biolm finetune` / `biolm eval` read by the official scorers.

ner: the CoNLL columns (token gold pred) that the test split's predictions.conll holds, scored by
seqeval 1.2.2 (default mode, micro F1, and mode="strict" IOB2), equal our results.json F1 to
1e-12; `biolm eval --task ner --predictions FILE` on the saved model writes the same file.
hoc: micro / macro / per-label F1 of results.json equal scikit-learn f1_score on the predictions.
"""
import json
import os
import subprocess

import pytest

from conftest import SOURCE_DIR, run_biolm


def finetune(exe, config, out, *overrides):
    """`biolm finetune` from the source tree with eval.bootstrap=0; returns results.json."""
    proc = subprocess.run([exe, "finetune", "--config", config, f"output={out}", *overrides, "eval.bootstrap=0"],
                          cwd=SOURCE_DIR, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.load(open(out / "results.json"))


def read_conll_columns(path):
    gold, pred, g, p = [], [], [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if g:
                    gold.append(g)
                    pred.append(p)
                g, p = [], []
                continue
            cols = line.split(" ")
            assert len(cols) == 3, f"{path}: expected 'token gold pred', got {line!r}"
            g.append(cols[1])
            p.append(cols[2])
    if g:
        gold.append(g)
        pred.append(p)
    return gold, pred


def test_ner_predictions_conll_scored_by_seqeval(biolm_exe, work):
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    out = work / "ner"
    results = finetune(biolm_exe, "examples/configs/ner_demo.yaml", out, "train.max_steps=60", "train.eval_every=60")
    ours = results["tasks"]["ner"]
    pred_file = out / "predictions.conll"
    assert results["predictions"] == str(pred_file)
    gold, pred = read_conll_columns(pred_file)
    # The gold column is the test file's tag column, sentence by sentence.
    test_tags, cur = [], []
    for line in open(os.path.join(SOURCE_DIR, "data/ner/test.conll")):
        if line.strip():
            cur.append(line.split()[-1])
        elif cur:
            test_tags.append(cur)
            cur = []
    if cur:
        test_tags.append(cur)
    assert gold == test_tags
    assert any(t != "O" for s in pred for t in s), "an all-O prediction would not exercise the scorer"
    assert f1_score(gold, pred) == pytest.approx(ours["f1"], abs=1e-12)
    assert f1_score(gold, pred, mode="strict", scheme=IOB2) == pytest.approx(ours["f1_strict"], abs=1e-12)

    # biolm eval on the saved model writes the same file and reports the same F1.
    again = work / "eval.conll"
    res = run_biolm(biolm_exe, "eval", "--model", out / "model", "--task", "ner", "--data",
                    os.path.join(SOURCE_DIR, "data/ner/test.conll"), "--bootstrap", "0",
                    "--predictions", again)
    assert json.loads(res.stdout)["metrics"]["f1"] == pytest.approx(ours["f1"], abs=1e-12)
    assert open(again).read() == open(pred_file).read()


def test_hoc_multilabel_f1_matches_sklearn(biolm_exe, work):
    """hoc (multi-label, tasks/hoc.cpp): results.json micro/macro/per-label F1 equal scikit-learn's
    f1_score on the indicator matrices of the predictions file and the gold test file."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    out = work / "hoc"
    ours = finetune(biolm_exe, "examples/configs/hoc_demo.yaml", out, "train.max_steps=80",
                    "train.eval_every=80")["tasks"]["hoc"]
    gold = [json.loads(line) for line in open(os.path.join(SOURCE_DIR, "data/hoc_demo/test.jsonl"))]
    pred = [json.loads(line) for line in open(out / "predictions.jsonl")]
    assert [g["id"] for g in gold] == [p["id"] for p in pred]
    train = [json.loads(line) for line in open(os.path.join(SOURCE_DIR, "data/hoc_demo/train.jsonl"))]
    labels = sorted({l for r in train for l in r["labels"]})
    mlb = MultiLabelBinarizer(classes=labels)
    Y = mlb.fit_transform([g["labels"] for g in gold])
    P = mlb.transform([p["labels"] for p in pred])
    assert P.sum() > 0, "no label predicted: the comparison would be trivial"
    assert ours["micro_f1"] == pytest.approx(f1_score(Y, P, average="micro", zero_division=0), abs=1e-12)
    assert ours["macro_f1"] == pytest.approx(f1_score(Y, P, average="macro", zero_division=0), abs=1e-12)
    per = f1_score(Y, P, average=None, zero_division=0)
    for name, v in zip(labels, per):
        assert ours["f1_" + name] == pytest.approx(v, abs=1e-12), name

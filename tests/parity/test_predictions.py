"""Predictions files of `biolm finetune` / `biolm eval` read by the official scorers.

ner: the CoNLL columns (token gold pred) that the test split's predictions.conll holds, scored by
seqeval 1.2.2 (default mode, micro F1, and mode="strict" IOB2), equal our results.json F1 to
1e-12; `biolm eval --task ner --predictions FILE` on the saved model writes the same file.
"""
import json
import os
import subprocess

import pytest

from conftest import SOURCE_DIR, run_biolm


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
    proc = subprocess.run(
        [biolm_exe, "finetune", "--config", "examples/configs/ner_demo.yaml", f"output={out}",
         "train.max_steps=60", "train.eval_every=60", "eval.bootstrap=0"],
        cwd=SOURCE_DIR, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.load(open(out / "results.json"))
    ours = results["tasks"]["ner"]
    pred_file = out / "predictions.conll"
    assert results["predictions"] == str(pred_file)
    gold, pred = read_conll_columns(pred_file)
    n_test = sum(1 for line in open(os.path.join(SOURCE_DIR, "data/ner/test.conll")) if not line.strip()) 
    assert len(gold) >= n_test - 1 and len(gold) > 10
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

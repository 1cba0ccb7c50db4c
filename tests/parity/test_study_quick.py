"""The real-data study's CI version (examples/gatortron/real_study.py --quick) on ../shared/data:
the real all-MiniLM-L6-v2 and an encoder of its shape pretrained from scratch, fine-tuned on
NCBI-disease. Asserts what the study claims at this scale: every run beats chance, the pretrained
start beats from-scratch, and the report (markdown, HTML, JSON, PNG and SVG plots) is written."""
import json
import os
import shutil
import subprocess
import sys

from conftest import SOURCE_DIR


def test_quick_study(biolm_exe, shared_data, tmp_path):
    # Kept after the run (build/tests/parity/work/study-quick) for a reader; a fresh one every time,
    # since the study reuses the runs it finds in its directory.
    out = (os.environ.get("BIOLM_PARITY_WORK") and __import__("pathlib").Path(os.environ["BIOLM_PARITY_WORK"]) / "study-quick") or tmp_path / "study"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, BIOLM=biolm_exe)
    proc = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "examples", "gatortron", "real_study.py"),
                           "--quick", "--out", str(out)], capture_output=True, text=True, env=env, cwd=SOURCE_DIR)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "study check passed" in proc.stdout
    rep = json.load(open(out / "report.json"))
    cells = {(r["start"], r["task"], r["method"]): r for r in rep["table"]}
    mini, scratch = cells[("minilm", "ncbi", "full")], cells[("scratch", "ncbi", "full")]
    # 120 steps of 16 sentences: the pretrained encoder is far ahead of one trained from scratch.
    assert mini["mean"] > 0.5, mini
    assert mini["mean"] > scratch["mean"] + 0.1, (mini, scratch)
    assert rep["data"]["train_texts_equal_to_an_evaluated_sentence"] >= 0
    for name in ("report.md", "report.html", "figures/params_ncbi.png", "figures/params_ncbi.svg",
                 "figures/curves_ncbi.png", "figures/time_memory.svg"):
        assert (out / name).stat().st_size > 0, name
    # The MedQA split (the study's medqa part; only the test file is here): seeded, disjoint, the
    # whole file, original records byte for byte.
    mq = rep["data"]["medqa"]
    assert (mq["train"], mq["dev"], mq["test"]) == (900, 73, 300), mq
    src = open(mq["source"], encoding="utf-8").read().splitlines()
    split = {name: open(out / "data" / f"medqa_{name}.jsonl", encoding="utf-8").read().splitlines()
             for name in ("train", "dev", "test")}
    assert sorted(split["train"] + split["dev"] + split["test"]) == sorted(src)
    assert not set(split["test"]) & (set(split["train"]) | set(split["dev"]))
    answers = [json.loads(x)["answer_idx"] for x in split["test"]]
    assert abs(mq["test_majority_rate"] - max(answers.count(a) for a in "ABCD") / 300) < 1e-12


def test_study_reuses_a_run_only_with_its_recipe(tmp_path):
    """tools/python/study_runs.py: a kept run is reused only while the config gives it the recipe it
    ran with; a stale one is redone from nothing (not resumed), or left out of a --report-only
    report, and the log names what changed."""
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tools", "python"))
    import study_runs

    logged = []
    run = tmp_path / "run"
    record, recipe_path = run / "study_run.json", run / "study_config.json"
    recipe = {"train": {"lr": 1e-3, "max_steps": 350}, "seed": 13}

    def reuse(r, report_only=False):
        return study_runs.reuse("cell", str(record), str(recipe_path), r, logged.append, [str(run)], report_only)

    # Never started: nothing to reuse, nothing removed.
    assert reuse(recipe) is None and not logged
    # Interrupted (recipe written, no record yet) with the same recipe: its checkpoints stay for resuming.
    study_runs.write_recipe(str(recipe_path), recipe)
    (run / "checkpoints").mkdir()
    assert reuse(recipe) is None and (run / "checkpoints").exists() and not logged
    # Finished: reused while the recipe is the same (a JSON round trip is the same recipe).
    record.write_text(json.dumps({"f1": 0.5}))
    assert reuse(json.loads(json.dumps(recipe))) == {"f1": 0.5}
    # The config changed: --report-only leaves it out and removes nothing.
    changed = {"train": {"lr": 3e-3, "max_steps": 350}, "seed": 13}
    assert reuse(changed, report_only=True) is None
    assert record.exists() and "left out of the report" in logged[-1] and "train.lr: 0.001 -> 0.003" in logged[-1]
    # A real run removes the stale record, recipe and outputs, so the run starts afresh.
    assert reuse(changed) is None
    assert not run.exists() and "running it again" in logged[-1], logged
    # A record kept from before recipes were stored has no recipe: stale as well.
    run.mkdir()
    record.write_text("{}")
    assert reuse(recipe) is None and not record.exists() and "no recipe stored" in logged[-1]

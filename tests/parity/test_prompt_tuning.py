"""Prompt tuning learns on a real pretrained body, in the task families whose soft prompt is not a
plain (B,T) prefix: multiple choice, where every option row gets the prompt (docs/peft.md).

all-MiniLM-L6-v2 (the reference environment's package) with its body frozen and a 20-vector soft
prompt plus the head trained, on the synthetic medical multiple-choice questions of data/mcqa
(four options, chance 0.25). Measured 2026-12-06: 60 steps 0.46 [0.36, 0.56], 150 steps 1.000
(loss 1.51 -> 0.08); a random tiny encoder's prompt learns nothing at all (its loss stays at ln 4,
cli::finetune_mcqa_prompt). `biolm eval` on the saved model must reproduce finetune's accuracy."""
import json
import os
import subprocess

from conftest import SOURCE_DIR, read_json


def test_mcqa_prompt_tuning_learns_on_minilm(biolm_exe, minilm_dir, tmp_path):
    out = tmp_path / "mcqa-prompt-minilm"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(
        [biolm_exe, "--log-level", "warn", "finetune", "--config", "examples/configs/mcqa_demo.yaml",
         f"output={out}", f"model.init={minilm_dir}", "peft.method=prompt", "train.lr=3.0e-2",
         "train.max_steps=100", "train.warmup_steps=10", "train.eval_every=0", "eval.bootstrap=200",
         "~model.preset", "~model.hidden_size", "~model.n_heads", "~model.n_kv_heads", "~model.ffn_size",
         "~model.hidden_dropout", "~model.attention_dropout", "~tokenizer.train_on", "~tokenizer.vocab_size"],
        capture_output=True, text=True, env=env, cwd=SOURCE_DIR)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = read_json(out / "results.json")
    assert res["method"] == "prompt"
    # Only the prompt (20 x 384) and the head (pooler 384 x 384 + 384, classifier 385) train.
    assert res["trainable_parameters"] == 20 * 384 + 384 * 384 + 384 + 385, res["trainable_parameters"]
    acc = res["tasks"]["mcqa"]["accuracy"]
    assert acc["ci"][0] > 0.25, acc  # the whole interval above chance
    ev = subprocess.run([biolm_exe, "eval", "--model", str(out / "model"), "--task", "mcqa", "--data",
                         "data/mcqa/test.jsonl", "--seed", "13", "--bootstrap", "200"],
                        capture_output=True, text=True, env=env, cwd=SOURCE_DIR)
    assert ev.returncode == 0, ev.stderr[-2000:]
    ev = json.loads(ev.stdout)
    assert ev["metrics"]["accuracy"] == acc, (ev["metrics"]["accuracy"], acc)

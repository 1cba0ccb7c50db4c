"""`biolm eval` (the zero-/few-shot harness) against EleutherAI lm-evaluation-harness on one tiny
LlamaForCausalLM and the same real items.

The test builds, in its tmp dir and offline:
  - a byte-level BPE tokenizer trained with `tokenizers` on 300 PubMedQA abstracts, saved with
    PreTrainedTokenizerFast in two variants: "bos" (post-processor TemplateProcessing "<s> $A", as
    LLaMA tokenizers) and "nobos" (no post-processor, as GPT-2) — both declare bos_token <s>;
  - a random LlamaForCausalLM (seed 0, 2 layers, width 64, GQA 4/2 heads) saved beside each;
  - 50 PubMedQA items (ori_pqal.json) and 50 MedQA-USMLE items (phrases_no_exclude_test.jsonl),
    plus 20 other PubMedQA items as a few-shot train split, written for both sides;
  - lm-eval task YAMLs (include path in tmp, dataset_path json + data_files) whose doc_to_text /
    doc_to_choice / target_delimiter write biolm's documented prompts (docs/eval.md).
Then lm_eval.simple_evaluate(model="hf", float32, cpu, log_samples=True) and `biolm eval` on the
same directory must give the same prompt, the same acc and acc_norm choice on every item,
per-choice log-likelihoods equal to 1e-4 and the same aggregates to 1e-6, zero-shot (both BOS
variants) and few-shot (lm-eval's sampler, fewshot_seed 1234, reproduced by
`--shot-sampler lm-eval`: a separate 20-item train split for PubMedQA, the evaluation set itself
with the evaluated document left out for MedQA, which exercises both branches of CPython's
random.sample). Measured maxima go to docs/parity.md's table through record_max.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import record_max, run_biolm

N_EVAL = 50
N_SHOT_POOL = 20
LL_TOL = 1e-4   # float32 forward passes of up to ~2k tokens, summed in float32 (lm-eval) vs float64 (biolm)
AGG_TOL = 1e-6  # means of 0/1 over the same 50 items: equal choices give equal aggregates exactly

TASKS_PY = r'''
from lm_eval.tasks.pubmedqa.preprocess_pubmedqa import doc_to_text as pubmedqa_builtin_text  # lm-eval's own

LABELS = ["yes", "no", "maybe"]


def pubmedqa_text(doc):
    # biolm: format_question with a context, ChoiceFormat::Texts (harness.cpp)
    return "Context: " + " ".join(doc["CONTEXTS"]) + "\nQuestion: " + doc["QUESTION"] + "\nAnswer:"


def pubmedqa_target(doc):
    return LABELS.index(doc["final_decision"])


pubmedqa_builtin_target = pubmedqa_target


def _options(doc):
    return [(k, v) for k, v in doc["options"].items() if v is not None]


def medqa_text(doc):
    # biolm: format_question, ChoiceFormat::Letters: "A. text" lines, answered " A"
    lines = "".join(f"{k}. {v}\n" for k, v in _options(doc))
    return "Question: " + doc["question"] + "\n" + lines + "Answer:"


def medqa_choices(doc):
    return [k for k, _ in _options(doc)]


def medqa_target(doc):
    return medqa_choices(doc).index(doc["answer_idx"])


def medqa_texts_text(doc):
    # biolm: format_question, ChoiceFormat::Texts (--format texts): no option lines, answered " <text>"
    return "Question: " + doc["question"] + "\nAnswer:"


def medqa_texts_choices(doc):
    return [v for _, v in _options(doc)]


def medqa_texts_target(doc):
    return medqa_choices(doc).index(doc["answer_idx"])
'''

YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
{files}
test_split: test
fewshot_split: {fewshot_split}
num_fewshot: {k}
output_type: multiple_choice
doc_to_text: !function tasks.{prefix}_text
doc_to_choice: {choices}
doc_to_target: !function tasks.{prefix}_target
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def _write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("harness")
    os.environ["HF_DATASETS_CACHE"] = str(root / "hf_datasets")
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    with open(os.path.join(shared_data, "pubmedqa", "ori_pqal.json")) as f:
        pqal = list(json.load(f).items())  # file order
    with open(os.path.join(shared_data, "medqa_usmle", "phrases_no_exclude_test.jsonl")) as f:
        medqa = [json.loads(line) for _, line in zip(range(N_EVAL), f)]

    data = root / "data"
    data.mkdir()
    pq_eval, pq_train = pqal[:N_EVAL], pqal[N_EVAL:N_EVAL + N_SHOT_POOL]
    for name, items in (("pubmedqa_test", pq_eval), ("pubmedqa_train", pq_train)):
        with open(data / f"{name}.json", "w") as f:  # biolm: ori_pqal.json's own format
            json.dump(dict(items), f, ensure_ascii=False, indent=1)
        _write_jsonl(data / f"{name}.jsonl", [{"pmid": k, "QUESTION": v["QUESTION"], "CONTEXTS": v["CONTEXTS"],
                                               "final_decision": v["final_decision"]} for k, v in items])
    _write_jsonl(data / "medqa_test.jsonl", medqa)  # the same lines for both sides

    # Tokenizer: byte-level BPE on 300 other PubMedQA abstracts.
    texts = [" ".join(v["CONTEXTS"]) for _, v in pqal[100:400]]
    base = Tokenizer(models.BPE())
    base.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    base.decoder = decoders.ByteLevel()
    base.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=2000, min_frequency=2, special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    vocab = base.get_vocab_size()

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      initializer_range=0.2, rms_norm_eps=1e-6, tie_word_embeddings=False,
                      bos_token_id=0, eos_token_id=1, pad_token_id=2)
    model = LlamaForCausalLM(cfg).eval()

    dirs = {}
    for variant in ("bos", "nobos"):
        tok = Tokenizer.from_str(base.to_str())
        if variant == "bos":
            tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
        d = root / f"tiny-llama-{variant}"
        PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                pad_token="<pad>").save_pretrained(d)
        model.save_pretrained(d)
        hf = AutoTokenizer.from_pretrained(d)
        starts_with_bos = hf("Answer: yes").input_ids[0] == 0
        assert starts_with_bos == (variant == "bos"), (variant, hf("Answer: yes").input_ids)
        dirs[variant] = d

    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "tasks.py").write_text(TASKS_PY)
    files = lambda test, train: f"    test: {test}\n" + (f"    train: {train}\n" if train else "")
    (tasks / "biolm_pubmedqa.yaml").write_text(YAML.format(
        name="biolm_pubmedqa", prefix="pubmedqa", k=2, fewshot_split="train", choices='["yes", "no", "maybe"]',
        files=files(data / "pubmedqa_test.jsonl", data / "pubmedqa_train.jsonl")))
    (tasks / "biolm_medqa.yaml").write_text(YAML.format(
        name="biolm_medqa", prefix="medqa", k=3, fewshot_split="test", choices="!function tasks.medqa_choices",
        files=files(data / "medqa_test.jsonl", None)))
    # lm-eval's own pubmedqa prompt ("Abstract: " + "\n".join(CONTEXTS)) on the local copy.
    (tasks / "biolm_pubmedqa_builtin.yaml").write_text(YAML.format(
        name="biolm_pubmedqa_builtin", prefix="pubmedqa_builtin", k=0, fewshot_split="test",
        choices='["yes", "no", "maybe"]', files=files(data / "pubmedqa_test.jsonl", None)))
    # MedQA answered with the option texts: choices of different lengths, where acc_norm matters.
    (tasks / "biolm_medqa_texts.yaml").write_text(YAML.format(
        name="biolm_medqa_texts", prefix="medqa_texts", k=0, fewshot_split="test",
        choices="!function tasks.medqa_texts_choices", files=files(data / "medqa_test.jsonl", None)))
    return {"root": root, "data": data, "dirs": dirs, "tasks": tasks}


_TASK_MANAGER = {}


def lm_eval_run(setup, variant, num_fewshot, tasks=("biolm_pubmedqa", "biolm_medqa"), seed=1234):
    """lm_eval.simple_evaluate on `tasks`; {task: {"results", "samples" (by doc_id)}}."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    if "tm" not in _TASK_MANAGER:
        _TASK_MANAGER["tm"] = TaskManager(include_path=str(setup["tasks"]), include_defaults=False)
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={setup['dirs'][variant]},dtype=float32", device="cpu",
        tasks=list(tasks), num_fewshot=num_fewshot, batch_size=4, log_samples=True,
        task_manager=_TASK_MANAGER["tm"], bootstrap_iters=0, fewshot_random_seed=seed)
    return {t: {"results": out["results"][t], "samples": sorted(out["samples"][t], key=lambda s: s["doc_id"])}
            for t in tasks}


def biolm_run(setup, exe, variant, task, extra=()):
    d, data, root = setup["dirs"][variant], setup["data"], setup["root"]
    data_file = data / ("pubmedqa_test.json" if task == "pubmedqa" else "medqa_test.jsonl")
    tag = f"{variant}-{task}-{'-'.join(os.path.basename(str(x)) for x in extra) or 'zero'}"
    pred, out = root / f"{tag}.jsonl", root / f"{tag}.json"
    run_biolm(exe, "eval", "--model", d, "--task", task, "--data", data_file, "--predictions", pred,
              "--out", out, "--bootstrap", 10, "--batch-size", 4, *extra)
    with open(out) as f:
        result = json.load(f)
    with open(pred) as f:
        rows = [json.loads(line) for line in f]
    return result, rows


def compare(case, lm, rows, result):
    """Asserts item-by-item equality; returns the maxima."""
    samples = lm["samples"]
    assert len(samples) == len(rows) == N_EVAL, (len(samples), len(rows))
    max_ll = 0.0
    for s, r in zip(samples, rows):
        i = s["doc_id"]
        assert r["index"] == i
        contexts = {a[0] for a in s["arguments"]}
        assert len(contexts) == 1
        lm_prompt = contexts.pop()
        assert r["prompt"] == lm_prompt, f"{case} item {i}: prompts differ\nbiolm: {r['prompt']!r}\nlm-eval: {lm_prompt!r}"
        lls = np.array([float(x[0]) for x in s["filtered_resps"]])
        assert len(lls) == len(r["loglik"])
        diff = float(np.max(np.abs(lls - np.array(r["loglik"]))))
        max_ll = max(max_ll, diff)
        assert diff < LL_TOL, f"{case} item {i}: log-likelihoods {r['loglik']} vs lm-eval {lls.tolist()}"
        choices = [a[1][1:] for a in s["arguments"]]  # " yes" -> "yes": lm-eval's len(choice)
        pred, pred_norm = int(np.argmax(lls)), int(np.argmax(lls / np.array([float(len(c)) for c in choices])))
        assert (r["pred"], r["pred_norm"]) == (pred, pred_norm), (case, i, r, lls.tolist())
        assert r["gold"] == s["target"], (case, i)
        assert float(r["pred"] == r["gold"]) == s["acc"] and float(r["pred_norm"] == r["gold"]) == s["acc_norm"]
    max_agg = 0.0
    for m, ours in (("acc", "accuracy"), ("acc_norm", "accuracy_norm")):  # lm-eval's names, ours
        d = abs(result["metrics"][ours]["value"] - lm["results"][f"{m},none"])
        max_agg = max(max_agg, d)
        assert d < AGG_TOL, (case, m, result["metrics"][ours]["value"], lm["results"][f"{m},none"])
    record_max("harness", f"{case}: per-choice log-likelihood", max_ll)
    record_max("harness", f"{case}: acc, acc_norm", max_agg)
    print(f"{case}: max |loglik diff| = {max_ll:.3g}, max |aggregate diff| = {max_agg:.3g}, "
          f"acc = {result['metrics']['accuracy']['value']:.3f}, acc_norm = {result['metrics']['accuracy_norm']['value']:.3f}")
    return max_ll


def check_token_ids(setup, exe, variant, prompts):
    """biolm's tokenizer gives the HF tokenizer's ids on the prompts, with and without specials."""
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(setup["dirs"][variant])
    for text in prompts:
        for special in (True, False):
            args = ["tokenizer", "encode", "--tokenizer", setup["dirs"][variant], text] + ([] if special else ["--no-special"])
            got = json.loads(run_biolm(exe, *args).stdout)["ids"]
            want = hf(text, add_special_tokens=special).input_ids
            assert got == want, f"{variant} special={special}: {text[:80]!r}: {got[:20]} vs {want[:20]}"


@pytest.mark.parametrize("variant", ["bos", "nobos"])
def test_zero_shot(setup, biolm_exe, variant):
    tasks = ("biolm_pubmedqa", "biolm_medqa") + (("biolm_medqa_texts", "biolm_pubmedqa_builtin") if variant == "bos"
                                                 else ())
    lm = lm_eval_run(setup, variant, num_fewshot=0, tasks=tasks)
    for task in ("pubmedqa", "medqa"):
        result, rows = biolm_run(setup, biolm_exe, variant, task)
        compare(f"{task} 0-shot, tokenizer {variant}", lm[f"biolm_{task}"], rows, result)
        sample = lm[f"biolm_{task}"]["samples"][0]
        check_token_ids(setup, biolm_exe, variant, [sample["arguments"][0][0] + sample["arguments"][0][1]])
    if variant == "bos":
        result, rows = biolm_run(setup, biolm_exe, variant, "medqa", ("--format", "texts"))
        compare("medqa --format texts 0-shot, tokenizer bos", lm["biolm_medqa_texts"], rows, result)
        assert any(r["pred"] != r["pred_norm"] for r in rows), "acc_norm is not exercised"
        result, rows = biolm_run(setup, biolm_exe, variant, "pubmedqa", ("--prompt-style", "lm-eval"))
        compare("pubmedqa --prompt-style lm-eval (lm-eval's own prompt) 0-shot, tokenizer bos",
                lm["biolm_pubmedqa_builtin"], rows, result)
    else:
        # What biolm did before (BOS prepended whenever the tokenizer names one): lm-eval does not
        # add a BOS the tokenizer's post-processor does not add, so the log-likelihoods move.
        _, rows = biolm_run(setup, biolm_exe, variant, "pubmedqa", ("--bos", "always"))
        lm_ll = [[float(x[0]) for x in s["filtered_resps"]] for s in lm["biolm_pubmedqa"]["samples"]]
        assert max(abs(a - b) for r, l in zip(rows, lm_ll) for a, b in zip(r["loglik"], l)) > 1e-2


def test_few_shot_lm_eval_sampler(setup, biolm_exe):
    lm = lm_eval_run(setup, "bos", num_fewshot=None)  # the YAMLs: pubmedqa 2 shots, medqa 3
    # PubMedQA: 2 shots from a separate 20-item split (random.sample's pool-list branch).
    result, rows = biolm_run(setup, biolm_exe, "bos", "pubmedqa",
                             ("--shots", 2, "--shots-from", setup["data"] / "pubmedqa_train.json",
                              "--shot-sampler", "lm-eval", "--seed", 1234))
    compare("pubmedqa 2-shot (train split), lm-eval sampler", lm["biolm_pubmedqa"], rows, result)
    # MedQA: 3 shots from the evaluation set itself: lm-eval samples 4 of 50 (the set branch) and
    # drops the evaluated document.
    result, rows = biolm_run(setup, biolm_exe, "bos", "medqa",
                             ("--shots", 3, "--shot-sampler", "lm-eval", "--seed", 1234))
    compare("medqa 3-shot (eval set), lm-eval sampler", lm["biolm_medqa"], rows, result)
    check_token_ids(setup, biolm_exe, "bos", [lm["biolm_pubmedqa"]["samples"][0]["arguments"][0][0]])
    # biolm's own sampler draws other shots (per example, order-independent): the prompts differ.
    _, own = biolm_run(setup, biolm_exe, "bos", "medqa", ("--shots", 3, "--seed", 1234))
    same = sum(r["prompt"] == s["arguments"][0][0] for r, s in zip(own, lm["biolm_medqa"]["samples"]))
    assert same < N_EVAL // 2, same

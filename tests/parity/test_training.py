"""One training step against transformers + torch.optim.AdamW (issue #16, "Training math").

For a BERT token-classification head, a BERT sequence-classification head and a LLaMA causal LM
(tiny random models made by transformers, dropout 0 on both sides) the same weights and the same
micro-batches go through
  biolm   `biolm-train-step` (tests/parity/train_step.cpp): Trainer::fit with max_steps = 1,
          grad_accum = number of micro-batches, AdamW, constant lr, no clipping;
  HF      model.train(); per micro-batch loss_m = (summed token loss of m) / N with N the target
          count of the whole step (transformers' num_items_in_batch: for causal LMs counted over
          labels[..., 1:], as Trainer._get_num_items_in_batch does; LlamaForCausalLM takes it as
          a kwarg, BERT's heads ignore it, so their sum is computed from the HF logits);
          backward; torch.optim.AdamW over Trainer.get_decay_parameter_names' two groups.
Compared: the step loss (|diff| <= 1e-5), every parameter's gradient (max |diff| <= 1e-4 x the
tensor's largest |grad|; see GRAD_FLOOR for gradients that are zero in exact arithmetic) and every
parameter after the AdamW step (|diff| <= 1e-6). Cases with one micro-batch and with uneven
micro-batches (gradient accumulation), and one LoRA step (adapter made by peft, loaded into
biolm with io::load_peft_adapter; base frozen, classifier trained as modules_to_save) against the
same step on the PeftModel.
"""
import json
import os
import subprocess

import pytest
import torch
import torch.nn.functional as F

from conftest import record_max

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

LOSS_TOL = 1e-5
GRAD_REL_TOL = 1e-4
WEIGHT_TOL = 1e-6
# BERT's key bias adds q.b_k to every score of a query row, which softmax cancels: its gradient
# is 0 in exact arithmetic and float32 rounding noise (~1e-9) on both sides. Relative error of
# noise is meaningless, so a tensor's tolerance is 1e-4 x max(its largest |grad|, GRAD_FLOOR x
# the model's largest |grad|).
GRAD_FLOOR = 1e-3
# eps = 1e-6 (RoBERTa's), not 1e-8: AdamW's first update is lr g / (|g| + eps), whose slope in g is
# lr eps / (|g| + eps)^2, up to lr / eps. With eps = 1e-8, an element whose |g| is ~eps turns the
# float32 rounding of g (~2e-10 here: 5e-8 of the tensor's largest |grad|, summation order) into
# weight differences of ~2e-6 (measured: 3.6e-6 at a 2.1e-8 gradient of LLaMA's down_proj) on any
# two correct implementations. With eps = 1e-6 the slope is at most 1e3, so 1e-6 tests the update.
OPT = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1}
VOCAB = 64
N_LABELS = 5


def bert(cls):
    cfg = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        classifier_dropout=None, num_labels=N_LABELS)
    return cls(cfg)


def llama():
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, max_position_embeddings=64, tie_word_embeddings=False, attention_dropout=0.0)
    return transformers.LlamaForCausalLM(cfg)


def ids_batch(gen, lengths, width):
    """Right-padded (B, width) ids and mask for rows of the given real lengths."""
    ids = torch.randint(1, VOCAB, (len(lengths), width), generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids = ids * mask  # pad id 0
    return ids, mask


def token_cls_batches(gen, splits):
    out = []
    for lengths, width in splits:
        ids, mask = ids_batch(gen, lengths, width)
        labels = torch.randint(0, N_LABELS, ids.shape, generator=gen)
        labels[mask == 0] = -100
        labels[:, 0] = -100  # [CLS]-like position without a tag
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def seq_cls_batches(gen, splits):
    out = []
    for lengths, width in splits:
        ids, mask = ids_batch(gen, lengths, width)
        out.append({"input_ids": ids, "attention_mask": mask,
                    "labels": torch.randint(0, N_LABELS, (len(lengths),), generator=gen)})
    return out


def causal_batches(gen, splits):
    out = []
    for lengths, width in splits:
        ids, mask = ids_batch(gen, lengths, width)
        labels = ids.clone()
        labels[mask == 0] = -100
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


# case: (model factory, biolm task, batch maker, micro-batch splits [(row lengths, width)])
CASES = {
    "bert_token_cls": (lambda: bert(transformers.BertForTokenClassification), "token_classification",
                       token_cls_batches, [([9, 6, 4], 9)]),
    "bert_token_cls_accum": (lambda: bert(transformers.BertForTokenClassification), "token_classification",
                             token_cls_batches, [([9, 6, 4], 9), ([5], 5), ([7, 3], 7)]),
    "bert_seq_cls": (lambda: bert(transformers.BertForSequenceClassification), "sequence_classification",
                     seq_cls_batches, [([8, 5, 7, 3], 8)]),
    "bert_seq_cls_accum": (lambda: bert(transformers.BertForSequenceClassification), "sequence_classification",
                           seq_cls_batches, [([8, 5, 7], 8), ([4], 4)]),
    "llama_causal_lm": (llama, "causal_lm", causal_batches, [([10, 7], 10)]),
    "llama_causal_lm_accum": (llama, "causal_lm", causal_batches, [([10, 7], 10), ([6], 6), ([9, 4, 8], 9)]),
}


def n_targets(task, batches):
    # transformers' num_items_in_batch (Trainer._get_num_items_in_batch): causal LMs shift.
    if task == "causal_lm":
        return int(sum((b["labels"][..., 1:] != -100).sum() for b in batches))
    return int(sum((b["labels"] != -100).sum() for b in batches))


def hf_step(model, task, batches):
    model.train()
    # transformers decays by name; our trainer (train/optim.cpp decays()) never decays a 1-D tensor,
    # which differs only for DoRA's lora_magnitude_vector (a per-row scale, like a norm's gain).
    decay = {n for n in transformers.Trainer.get_decay_parameter_names(None, model) if "lora_magnitude_vector" not in n}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": OPT["weight_decay"]},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    N = n_targets(task, batches)
    total = 0.0
    for b in batches:
        if task == "causal_lm":
            loss = model(**b, num_items_in_batch=N).loss  # ForCausalLMLoss: summed / N
        else:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            loss = F.cross_entropy(logits.reshape(-1, N_LABELS), b["labels"].reshape(-1), ignore_index=-100,
                                   reduction="sum") / N
        if len(batches) == 1:  # one micro-batch: transformers' own loss is the same mean
            own = model(**b).loss
            assert abs(own.item() - loss.item()) < 1e-6, (own.item(), loss.item())
        loss.backward()
        total += loss.item()
    grads = {n: p.grad.detach().clone() for n, p in named}
    opt.step()
    weights = {n: p.detach().clone() for n, p in named}
    return total, grads, weights


@pytest.fixture(scope="module")
def driver(biolm_exe):
    path = os.path.join(os.path.dirname(biolm_exe), "biolm-train-step")
    if not os.access(path, os.X_OK):
        msg = (f"{path} not built: tests/parity/CMakeLists.txt must include tests/parity/peft_driver.cmake "
               "and the target biolm_parity_train_step be built")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run_driver(driver, work, hf_dir, task, batches, extra=None):
    tensors = {f"{m}.{k}": v.contiguous() for m, b in enumerate(batches) for k, v in b.items()}
    save_file(tensors, os.path.join(work, "batches.safetensors"))
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump({"task": task, "n_labels": N_LABELS, "train": OPT, **(extra or {})}, f)
    out_dir = os.path.join(work, "out")
    proc = subprocess.run([driver, hf_dir, os.path.join(work, "config.json"), os.path.join(work, "batches.safetensors"),
                           out_dir], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(out_dir, "result.json")) as f:
        result = json.load(f)
    return result, load_file(os.path.join(out_dir, "grads.safetensors")), load_file(
        os.path.join(out_dir, "weights.safetensors"))


def compare_step(case, model, task, batches, result, our_grads, our_weights, hf_name):
    """Runs the transformers step on `model` and compares; hf_name maps our names to its names."""
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    loss, grads, weights = hf_step(model, task, batches)
    assert result["n_target_tokens"] == n_targets(task, batches)
    d_loss = abs(result["loss"] - loss)
    record_max("training", case + " loss", d_loss)
    assert d_loss <= LOSS_TOL, f"{case}: loss {result['loss']} vs transformers {loss}"

    assert sorted(hf_name(n) for n in our_grads) == sorted(grads), "trainable parameters differ"
    g_max = max(g.abs().max().item() for g in grads.values())
    worst_g, worst_w = 0.0, 0.0
    failures = []
    for ours, g in our_grads.items():
        hf = hf_name(ours)
        ref = grads[hf]
        scale = max(ref.abs().max().item(), GRAD_FLOOR * g_max)
        rel = (g - ref).abs().max().item() / scale
        worst_g = max(worst_g, rel)
        if rel > GRAD_REL_TOL:
            failures.append(f"grad {hf}: rel {rel:.3g}")
        dw = (our_weights[ours] - weights[hf]).abs().max().item()
        worst_w = max(worst_w, dw)
        if dw > WEIGHT_TOL:
            failures.append(f"weight {hf}: {dw:.3g}")
    record_max("training", case + " grad (relative)", worst_g)
    record_max("training", case + " weight after AdamW", worst_w)
    assert not failures, f"{case}: " + "; ".join(failures[:10])
    # The step moved every weight by about lr (so the comparison after it is not vacuous); BERT's
    # key bias has no gradient in exact arithmetic (see GRAD_FLOOR) and stays.
    moved = {n: (weights[n] - w).abs().max().item() for n, w in initial.items() if not n.endswith("key.bias")}
    assert min(moved.values()) > 0.1 * OPT["lr"], min(moved.items(), key=lambda kv: kv[1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_step_equals_transformers(driver, work, case):
    factory, task, make_batches, splits = CASES[case]
    torch.manual_seed(2024)
    model = factory()
    hf_dir = os.path.join(work, "hf")
    model.save_pretrained(hf_dir, safe_serialization=True)
    batches = make_batches(torch.Generator().manual_seed(77), splits)
    result, our_grads, our_weights = run_driver(driver, work, hf_dir, task, batches)
    compare_step(case, model, task, batches, result, our_grads, our_weights, lambda n: result["names"][n])


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_lora_step_equals_peft(driver, work, dora):
    """One LoRA (or DoRA: LoraConfig(use_dora=True)) step (adapter + classifier trained, base frozen)
    against peft: the adapter made by peft (non-zero B, DoRA magnitudes moved off their initial row
    norms) is loaded into biolm's driver; the same step runs on the PeftModel."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(2024)
    base = bert(transformers.BertForTokenClassification)
    hf_dir = os.path.join(work, "hf")
    base.save_pretrained(hf_dir, safe_serialization=True)
    pm = peft.get_peft_model(base, peft.LoraConfig(task_type="TOKEN_CLS", r=4, lora_alpha=8, lora_dropout=0.0,
                                                   target_modules=["query", "value", "intermediate.dense"],
                                                   use_dora=dora))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "lora_magnitude_vector" in n:
                p.mul_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
    adapter_dir = os.path.join(work, "adapter")
    pm.save_pretrained(adapter_dir, safe_serialization=True)
    task = "token_classification"
    batches = token_cls_batches(torch.Generator().manual_seed(77), [([9, 6, 4], 9), ([5], 5)])
    result, our_grads, our_weights = run_driver(driver, work, hf_dir, task, batches, {"peft_adapter": adapter_dir})

    def hf_name(ours):
        if ours.endswith(".adapter.lora_magnitude"):
            module = result["names"][ours[: -len(".adapter.lora_magnitude")] + ".weight"][: -len(".weight")]
            return f"base_model.model.{module}.lora_magnitude_vector.default.weight"
        if ".adapter.lora_" in ours:
            linear, which = ours.split(".adapter.lora_")
            module = result["names"][linear + ".weight"][: -len(".weight")]
            return f"base_model.model.{module}.lora_{which.upper()}.default.weight"
        module, leaf = result["names"][ours].rsplit(".", 1)
        return f"base_model.model.{module}.modules_to_save.default.{leaf}"

    compare_step("bert_token_cls_%s_peft" % ("dora" if dora else "lora"), pm, task, batches, result, our_grads,
                 our_weights, hf_name)


def test_training_versions_recorded():
    record_max("training", f"versions torch={torch.__version__} transformers={transformers.__version__}", 0.0)

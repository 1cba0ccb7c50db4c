"""PEFT adapters both ways: libbiolm <-> Hugging Face `peft` (issue #16, "PEFT both ways").

Tiny random BERT (sequence classification) and LLaMA (causal LM) models are made by transformers
(save_pretrained). For LoRA (plain, rsLoRA and DoRA, with a trained head as modules_to_save), IA3
and prompt tuning:
  biolm -> peft   a biolm model directory carrying the adapter (non-identity values written under
                  our own tensor names, as a biolm run would leave them) is exported with
                  `biolm convert adapter`, loaded with PeftModel.from_pretrained, and its outputs
                  are compared with `biolm convert logits` of the model directory;
  peft -> biolm   an adapter made by peft (get_peft_model, then non-zero B / non-one IA3 vectors /
                  a random prompt, a changed head) is saved with save_pretrained and run by
                  `biolm convert logits HF_DIR --adapter DIR` and through a model directory made
                  by `biolm convert from-peft`;
  merged          `biolm convert to-hf --merge` equals merge_and_unload() tensor by tensor.
Tolerance 1e-4 (float32, models of width 32: measured maxima are ~1e-6, see docs/parity.md).
"""
import json
import os

import pytest
import torch

from conftest import read_json, record_max, run_biolm

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

TOL = 1e-4
IDS = [2, 7, 11, 3, 19, 5, 23, 1, 30, 4]
N_LABELS = 3


def _bert_config():
    return transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        num_labels=N_LABELS)


def _llama_config():
    return transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, max_position_embeddings=64, tie_word_embeddings=False, attention_dropout=0.0)


def _gpt2_config():
    return transformers.GPT2Config(
        vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0)


FAMILIES = {
    # name: (transformers class, config, biolm task, PEFT task_type)
    "bert": (transformers.BertForSequenceClassification, _bert_config, "sequence_classification", "SEQ_CLS"),
    "llama": (transformers.LlamaForCausalLM, _llama_config, "causal_lm", "CAUSAL_LM"),
    # GPT-2: Conv1D weights (in, out) and q, k, v fused in one c_attn.
    "gpt2": (transformers.GPT2LMHeadModel, _gpt2_config, "causal_lm", "CAUSAL_LM"),
}

# Our Linear names per family: attention and MLP.
OURS = {
    "bert": {"attn": ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj"], "mlp": ["mlp.up", "mlp.down"]},
    "llama": {"attn": ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj"],
              "mlp": ["mlp.gate", "mlp.up", "mlp.down"]},
    "gpt2": {"attn": ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj"], "mlp": ["mlp.up", "mlp.down"]},
}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    out = {}
    for name, (cls, cfg, _, _) in FAMILIES.items():
        torch.manual_seed(1234)
        model = cls(cfg())
        path = str(root / name)
        model.save_pretrained(path, safe_serialization=True)
        out[name] = path
    return out


def load_base(family, path):
    return FAMILIES[family][0].from_pretrained(path).eval()


def hf_output(model, prompt_len=0):
    with torch.no_grad():
        return model(input_ids=torch.tensor([IDS])).logits.float()


def biolm_logits(exe, work, directory, *extra, task=None):
    out = os.path.join(work, "logits_%d.json" % len(os.listdir(work)))
    args = ["convert", "logits", directory, "--ids", ",".join(map(str, IDS)), "--out", out, *extra]
    if task:
        args += ["--task", task, "--n-labels", str(N_LABELS)]
    run_biolm(exe, *args)
    j = read_json(out)
    return torch.tensor(j["data"], dtype=torch.float32).reshape(j["shape"])


def max_diff(a, b):
    assert tuple(a.shape) == tuple(b.shape), f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.float() - b.float()).abs().max().item()


def check(case, ours, theirs, base=None):
    d = max_diff(ours, theirs)
    record_max("peft", case, d)
    assert d <= TOL, f"{case}: max |biolm - peft| = {d:.3g} > {TOL}"
    if base is not None:  # the adapter must matter, or the comparison proves nothing
        assert max_diff(base, theirs) > 100 * TOL, f"{case}: the adapter does not change the output"
    return d


def assert_merge_changed(case, merged, base):
    """The merged weights differ from the base (else comparing them proves nothing)."""
    moved = max((merged[k] - v).abs().max().item() for k, v in base.items() if k in merged)
    assert moved > 1e-2, f"{case}: merging changed no weight ({moved:.3g})"


# ---- biolm -> peft ------------------------------------------------------------------------------


def make_biolm_dir(exe, work, bases, family, name, peft_json, fill):
    """A biolm model directory of `family` with the method `peft_json`, whose adapter tensors
    (and head, when trained) hold the values `fill(name, shape)` returns; as a biolm run saves it."""
    _, _, task, _ = FAMILIES[family]
    md = os.path.join(work, name)
    run_biolm(exe, "convert", "from-hf", bases[family], md, "--task", task, "--n-labels", str(N_LABELS))
    info = read_json(os.path.join(md, "model.json"))
    info["peft"] = peft_json
    with open(os.path.join(md, "model.json"), "w") as f:
        json.dump(info, f)
    weights = load_file(os.path.join(md, "model.safetensors"))
    weights.update(fill(weights))
    save_file(weights, os.path.join(md, "model.safetensors"), metadata={"format": "pt"})
    return md


def layers(family):
    return range(2)


def lora_fill(family, targets, rank, head):
    def fill(weights):
        g = torch.Generator().manual_seed(7)
        out = {}
        for i in layers(family):
            for t in targets:
                w = weights[f"layers.{i}.{t}.weight"]
                out[f"layers.{i}.{t}.adapter.lora_a"] = torch.randn(rank, w.shape[1], generator=g) * 0.3
                out[f"layers.{i}.{t}.adapter.lora_b"] = torch.randn(w.shape[0], rank, generator=g) * 0.3
        if head:
            out["classifier.weight"] = weights["classifier.weight"] + 0.5 * torch.randn(
                weights["classifier.weight"].shape, generator=g)
            out["classifier.bias"] = torch.randn(weights["classifier.bias"].shape, generator=g)
        return out
    return fill


def dora_fill(family, targets, rank, head=False):
    """LoRA values plus DoRA magnitudes moved off their initial row norms ||W0||_c."""
    lora = lora_fill(family, targets, rank, head=head)

    def fill(weights):
        out = lora(weights)
        g = torch.Generator().manual_seed(17)
        for i in layers(family):
            for t in targets:
                norm = weights[f"layers.{i}.{t}.weight"].norm(dim=1)
                out[f"layers.{i}.{t}.adapter.lora_magnitude"] = norm * torch.exp(0.5 * torch.randn(norm.shape, generator=g))
        return out
    return fill


def ia3_fill(family, out_targets, in_targets, head):
    def fill(weights):
        g = torch.Generator().manual_seed(8)
        out = {}
        for i in layers(family):
            for t in out_targets + in_targets:
                w = weights[f"layers.{i}.{t}.weight"]
                n = w.shape[1] if t in in_targets else w.shape[0]
                out[f"layers.{i}.{t}.adapter.ia3_scale"] = 1.0 + 0.5 * torch.randn(n, generator=g)
        if head:
            out["classifier.weight"] = weights["classifier.weight"] + 0.5 * torch.randn(
                weights["classifier.weight"].shape, generator=g)
        return out
    return fill


def prompt_fill(n_virtual, hidden, head):
    def fill(weights):
        g = torch.Generator().manual_seed(9)
        out = {"soft_prompt.embeddings": torch.randn(n_virtual, hidden, generator=g)}
        if head:
            out["classifier.weight"] = weights["classifier.weight"] + 0.5 * torch.randn(
                weights["classifier.weight"].shape, generator=g)
            out["classifier.bias"] = torch.randn(weights["classifier.bias"].shape, generator=g)
        return out
    return fill


def pats(targets):
    return ["layers.*." + t for t in targets]


BIOLM_CASES = {
    # case: (family, model.json "peft", fill)
    "bert_lora_head": ("bert", {"method": "lora", "lora": {"rank": 4, "alpha": 8, "targets": pats(
        ["attn.q_proj", "attn.v_proj", "mlp.up"])}, "train_patterns": ["classifier.**"]},
        lora_fill("bert", ["attn.q_proj", "attn.v_proj", "mlp.up"], 4, head=True)),
    "bert_rslora_all": ("bert", {"method": "lora", "lora": {"rank": 4, "alpha": 8, "rank_stabilized": True,
                                                            "targets": pats(OURS["bert"]["attn"] + OURS["bert"]["mlp"])}},
                        lora_fill("bert", OURS["bert"]["attn"] + OURS["bert"]["mlp"], 4, head=False)),
    "llama_lora_all": ("llama", {"method": "lora", "lora": {"rank": 4, "alpha": 8, "targets": pats(
        OURS["llama"]["attn"] + OURS["llama"]["mlp"])}},
        lora_fill("llama", OURS["llama"]["attn"] + OURS["llama"]["mlp"], 4, head=False)),
    "llama_rslora_qv": ("llama", {"method": "lora", "lora": {"rank": 8, "alpha": 4, "rank_stabilized": True,
                                                             "targets": pats(["attn.q_proj", "attn.v_proj"])}},
                        lora_fill("llama", ["attn.q_proj", "attn.v_proj"], 8, head=False)),
    # DoRA (use_dora): magnitude vectors exported as PEFT's lora_magnitude_vector.
    # (BERT's sequence-classification logits are ~0.03 from a random head, too small for the
    # adapter-matters check alone: the head trains too, as in bert_lora_head.)
    "bert_dora_all_head": ("bert", {"method": "lora", "lora": {"rank": 4, "alpha": 8, "use_dora": True, "targets": pats(
        OURS["bert"]["attn"] + OURS["bert"]["mlp"])}, "train_patterns": ["classifier.**"]},
        dora_fill("bert", OURS["bert"]["attn"] + OURS["bert"]["mlp"], 4, head=True)),
    "llama_dora_all": ("llama", {"method": "lora", "lora": {"rank": 4, "alpha": 8, "use_dora": True, "targets": pats(
        OURS["llama"]["attn"] + OURS["llama"]["mlp"])}}, dora_fill("llama", OURS["llama"]["attn"] + OURS["llama"]["mlp"], 4)),
    "bert_ia3_head": ("bert", {"method": "ia3", "ia3": {"targets": pats(["attn.k_proj", "attn.v_proj"]),
                                                        "input_targets": pats(["attn.o_proj", "mlp.down"])},
                               "train_patterns": ["classifier.weight"]},
                      ia3_fill("bert", ["attn.k_proj", "attn.v_proj"], ["attn.o_proj", "mlp.down"], head=True)),
    "llama_ia3": ("llama", {"method": "ia3", "ia3": {"targets": pats(["attn.k_proj", "attn.v_proj"]),
                                                     "input_targets": pats(["mlp.down"])}},
                  ia3_fill("llama", ["attn.k_proj", "attn.v_proj"], ["mlp.down"], head=False)),
    "bert_prompt_head": ("bert", {"method": "prompt", "prompt": {"n_virtual_tokens": 5, "hidden": 32},
                                  "train_patterns": ["classifier.**"]}, prompt_fill(5, 32, head=True)),
    "llama_prompt": ("llama", {"method": "prompt", "prompt": {"n_virtual_tokens": 4, "hidden": 32}},
                     prompt_fill(4, 32, head=False)),
    # q and v adapters fuse into one block-diagonal c_attn adapter of rank 8; c_fc is a Conv1D.
    "gpt2_lora_qv_fc": ("gpt2", {"method": "lora", "lora": {"rank": 4, "alpha": 8, "targets": pats(
        ["attn.q_proj", "attn.v_proj", "mlp.up"])}}, lora_fill("gpt2", ["attn.q_proj", "attn.v_proj", "mlp.up"], 4,
                                                              head=False)),
    "gpt2_ia3": ("gpt2", {"method": "ia3", "ia3": {"targets": pats(["attn.q_proj", "attn.k_proj", "attn.v_proj"]),
                                                   "input_targets": pats(["mlp.down"])}},
                 ia3_fill("gpt2", ["attn.q_proj", "attn.k_proj", "attn.v_proj"], ["mlp.down"], head=False)),
}


@pytest.mark.parametrize("case", sorted(BIOLM_CASES))
def test_biolm_adapter_loads_in_peft(biolm_exe, work, bases, case):
    family, peft_json, fill = BIOLM_CASES[case]
    md = make_biolm_dir(biolm_exe, work, bases, family, case, peft_json, fill)
    adapter_dir = os.path.join(work, case + "_peft")
    run_biolm(biolm_exe, "convert", "adapter", md, adapter_dir, "--base-hf", bases[family])
    ours = biolm_logits(biolm_exe, work, md)
    base = load_base(family, bases[family])
    before = hf_output(base)
    adapted = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
    theirs = hf_output(adapted)
    label = "biolm->peft " + case  # the name in the maxima table
    check(label, ours, theirs, base=before if theirs.shape == before.shape else None)
    if peft_json["method"] in ("lora", "ia3"):
        # Merged weights: ours (convert to-hf --merge) against merge_and_unload().
        merged_dir = os.path.join(work, case + "_merged")
        run_biolm(biolm_exe, "convert", "to-hf", md, merged_dir, "--merge")
        ours_sd = load_file(os.path.join(merged_dir, "model.safetensors"))
        theirs_sd = adapted.merge_and_unload().state_dict()
        assert_merge_changed(case, theirs_sd, load_file(os.path.join(bases[family], "model.safetensors")))
        worst = 0.0
        for k, v in theirs_sd.items():
            if k not in ours_sd:
                assert k == "lm_head.weight" or "rotary" in k, f"{case}: merged {k} missing from our export"
                continue
            worst = max(worst, max_diff(ours_sd[k], v))
        record_max("peft", label + " merged", worst)
        assert worst <= TOL, f"{case}: merged weights differ by {worst:.3g}"


# ---- peft -> biolm ------------------------------------------------------------------------------


def perturb(pm, seed):
    """Non-identity adapter values (and a changed head where it is trained), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name or "lora_A" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif "lora_magnitude_vector" in name:
                p.mul_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif "ia3_l" in name:
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=g))
            elif "prompt_embeddings" in name or "embedding.weight" in name and "prompt_encoder" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif "modules_to_save" in name:
                p.add_(0.5 * torch.randn(p.shape, generator=g))


PEFT_CASES = {
    # LoRA on attention and MLP, with a rank and an alpha pattern; "output.dense" matches BERT's
    # attention output and FFN down projection both. The classifier is a modules_to_save copy.
    "bert_lora_attn_mlp": ("bert", lambda: peft.LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8,
        target_modules=["query", "key", "value", "output.dense", "intermediate.dense"],
        rank_pattern={"value": 2}, alpha_pattern={"query": 16})),
    "llama_rslora_all": ("llama", lambda: peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, use_rslora=True,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])),
    "bert_dora": ("bert", lambda: peft.LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, use_dora=True, target_modules=["query", "value", "output.dense"])),
    "llama_dora_all": ("llama", lambda: peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, use_dora=True,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])),
    "bert_ia3_default": ("bert", lambda: peft.IA3Config(task_type="SEQ_CLS")),
    "llama_ia3_default": ("llama", lambda: peft.IA3Config(task_type="CAUSAL_LM")),
    "bert_prompt": ("bert", lambda: peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=5)),
    "llama_prompt": ("llama", lambda: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)),
    "gpt2_lora_all": ("gpt2", lambda: peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, fan_in_fan_out=True, target_modules=["c_attn", "c_proj", "c_fc"])),
    "gpt2_ia3_default": ("gpt2", lambda: peft.IA3Config(task_type="CAUSAL_LM")),
}


@pytest.mark.parametrize("case", sorted(PEFT_CASES))
def test_peft_adapter_loads_in_biolm(biolm_exe, work, bases, case):
    family, make_config = PEFT_CASES[case]
    _, _, task, _ = FAMILIES[family]
    base = load_base(family, bases[family])
    before = hf_output(base)
    torch.manual_seed(5)
    pm = peft.get_peft_model(base, make_config())
    perturb(pm, seed=11)
    pm.eval()
    theirs = hf_output(pm)
    adapter_dir = os.path.join(work, case)
    pm.save_pretrained(adapter_dir, safe_serialization=True)

    ours = biolm_logits(biolm_exe, work, bases[family], "--adapter", adapter_dir, task=task)
    label = "peft->biolm " + case  # the name in the maxima table
    check(label, ours, theirs, base=before if theirs.shape == before.shape else None)

    # The same adapter through a biolm model directory (what `biolm finetune`/eval would load).
    md = os.path.join(work, case + "_dir")
    run_biolm(biolm_exe, "convert", "from-peft", bases[family], adapter_dir, md, "--n-labels", str(N_LABELS))
    check(label + " model_dir", biolm_logits(biolm_exe, work, md), theirs)

    if not isinstance(make_config(), peft.PromptTuningConfig):
        merged_dir = os.path.join(work, case + "_merged")
        run_biolm(biolm_exe, "convert", "to-hf", md, merged_dir, "--merge")
        ours_sd = load_file(os.path.join(merged_dir, "model.safetensors"))
        theirs_sd = pm.merge_and_unload().state_dict()
        assert_merge_changed(case, theirs_sd, load_file(os.path.join(bases[family], "model.safetensors")))
        worst = 0.0
        for k, v in theirs_sd.items():
            if k not in ours_sd:
                continue
            worst = max(worst, max_diff(ours_sd[k], v))
        # (a tied lm_head is written once, under the embedding's name, as transformers does)
        missing = [k for k in theirs_sd if k not in ours_sd and "rotary" not in k and k != "lm_head.weight"]
        assert not missing, f"{case}: merged tensors missing from our export: {missing}"
        record_max("peft", label + " merged", worst)
        assert worst <= TOL, f"{case}: merged weights differ by {worst:.3g}"


def test_peft_versions_recorded():
    # The versions the maxima in docs/parity.md were measured with.
    record_max("peft", f"versions torch={torch.__version__} transformers={transformers.__version__} "
                       f"peft={peft.__version__}", 0.0)

"""Model parity with transformers, both directions (issue #16).

HF -> biolm: tiny random models built and saved by transformers in the test (model.safetensors,
and the same state dict as a PyTorch pickle, pytorch_model.bin, as transformers < 5 wrote it) are
run by `biolm convert logits DIR --batch FILE` on a padded batch (attention masks, token types,
left padding for decoders) and compared with the transformers forward pass: fp32 max |diff| <= 1e-4
per model (recorded with record_max("models", ...) for docs/parity.md), bf16 within the bound
stated at BF16_* below. The real all-MiniLM-L6-v2 runs on real tokenized, padded text.

biolm -> HF: every head `biolm convert to-hf` writes is loaded with the matching AutoModelFor...
(output_loading_info=True: no missing, unexpected or mismatched keys) and gives biolm's outputs.

What biolm does not compute is refused by name (rope types other than default/linear/llama3).
"""
import json
import os
import shutil

import pytest
import torch
import transformers as t

from conftest import record_max, run_biolm

TOL = 1e-4  # fp32, widths 32, 2 layers: observed maxima are ~1e-6 (docs/parity.md)
# bf16: both stacks round every matmul/norm input to 8 mantissa bits, in different orders, so
# biolm-bf16 vs transformers-bf16 is bounded by their distances to the fp32 result: ours may be at
# most BF16_RATIO x transformers' own bf16 error (+ BF16_ABS for near-zero outputs).
BF16_RATIO, BF16_ABS = 2.0, 2e-3

torch.set_num_threads(1)

# ---- tiny configurations ----------------------------------------------------------------------
ENC = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
           max_position_embeddings=32, type_vocab_size=2, pad_token_id=0)
GPT2 = dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=32, pad_token_id=0)
LLAMA = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=48, max_position_embeddings=64, pad_token_id=0, rope_theta=500.0)
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}  # head_dim 8: one band of each kind
HEAD_KW = {"token_classification": dict(num_labels=3), "sequence_classification": dict(num_labels=3),
           "regression": dict(num_labels=1, problem_type="regression")}

# our task -> (class suffix, Auto class)
TASKS = {
    "base": ("Model", t.AutoModel),
    "masked_lm": ("ForMaskedLM", t.AutoModelForMaskedLM),
    "causal_lm": ("ForCausalLM", t.AutoModelForCausalLM),
    "token_classification": ("ForTokenClassification", t.AutoModelForTokenClassification),
    "sequence_classification": ("ForSequenceClassification", t.AutoModelForSequenceClassification),
    "regression": ("ForSequenceClassification", t.AutoModelForSequenceClassification),
    "span_qa": ("ForQuestionAnswering", t.AutoModelForQuestionAnswering),
    "multiple_choice": ("ForMultipleChoice", t.AutoModelForMultipleChoice),
}
ARCH = {"bert": ("Bert", t.BertConfig, ENC), "megatron-bert": ("MegatronBert", t.MegatronBertConfig, ENC),
        "gpt2": ("GPT2", t.GPT2Config, GPT2), "llama": ("Llama", t.LlamaConfig, LLAMA),
        "mistral": ("Mistral", t.MistralConfig, LLAMA)}
ENCODERS = ("bert", "megatron-bert")


def hf_class(arch, task):
    stem = ARCH[arch][0]
    if arch == "gpt2" and task == "causal_lm":
        return t.GPT2LMHeadModel
    return getattr(t, stem + TASKS[task][0])


class Case:
    def __init__(self, name, arch, task, export=True, pickle=True, bf16=False, **config):
        self.name, self.arch, self.task = name, arch, task
        self.export, self.pickle, self.bf16, self.config = export, pickle, bf16, config

    def __repr__(self):
        return self.name


# HF -> biolm for every class the brief lists; biolm -> HF for every head to-hf writes (a bare
# body is no biolm model directory: `base` is not exported).
CASES = []
for arch in ENCODERS:
    for task in ("base", "masked_lm", "token_classification", "sequence_classification", "regression", "span_qa",
                 "multiple_choice"):
        CASES.append(Case(f"{arch}/{task}", arch, task, export=task != "base", bf16=(task == "base")))
for task in ("causal_lm", "sequence_classification", "token_classification", "regression", "span_qa"):
    CASES.append(Case(f"gpt2/{task}", "gpt2", task, bf16=(task == "causal_lm")))
CASES += [
    Case("llama/causal_lm (GQA, untied)", "llama", "causal_lm", bf16=True),
    Case("llama/causal_lm (GQA, tied)", "llama", "causal_lm", tie_word_embeddings=True),
    Case("llama/causal_lm (rope llama3)", "llama", "causal_lm", rope_scaling=LLAMA3_ROPE),
    Case("llama/causal_lm (rope linear)", "llama", "causal_lm", rope_scaling={"rope_type": "linear", "factor": 4.0}),
    Case("mistral/causal_lm (sliding window 3 < T 8)", "mistral", "causal_lm", sliding_window=3),
]
for arch in ("llama", "mistral"):
    for task in ("token_classification", "sequence_classification", "regression", "span_qa"):
        CASES.append(Case(f"{arch}/{task}", arch, task, pickle=False,
                          **({"sliding_window": 3} if arch == "mistral" else {})))


# ---- inputs ----------------------------------------------------------------------------------
def encoder_batch(gen, vocab=64):
    """B=3, T=7, right padding (lengths 7, 5, 3), segment B in the second half of each row."""
    B, T, lengths = 3, 7, (7, 5, 3)
    ids = torch.randint(5, vocab, (B, T), generator=gen)
    mask = torch.zeros(B, T, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        types[b, n // 2:n] = 1
    ids = ids * mask  # pad id 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def decoder_batch(gen, vocab=64):
    """B=3, T=8: a full row, a left-padded row (3 pads) and a right-padded row (2 pads), pad id 0."""
    B, T = 3, 8
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, :3] = 0
    mask[2, 6:] = 0
    return {"input_ids": ids * mask, "attention_mask": mask}


def choice_batch(gen, vocab=64):
    """B=2 questions, K=3 choices, T=6, right padding and token types."""
    B, K, T = 2, 3, 6
    ids = torch.randint(5, vocab, (B, K, T), generator=gen)
    mask = torch.zeros(B, K, T, dtype=torch.long)
    types = torch.zeros(B, K, T, dtype=torch.long)
    for b in range(B):
        for k in range(K):
            n = 6 - (b + k) % 3
            mask[b, k, :n] = 1
            types[b, k, 3:n] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types}


def hf_inputs(arch, batch):
    """transformers' inputs; decoders get the position ids generate() derives from the mask (and
    that biolm derives by default): cumsum(mask) - 1, so padding does not shift positions."""
    inputs = dict(batch)
    if arch not in ENCODERS:
        inputs["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return inputs


def hf_output(model, task, inputs):
    with torch.no_grad():
        out = model(**inputs)
    if task == "base":
        return out.last_hidden_state
    if task == "span_qa":
        return torch.stack([out.start_logits, out.end_logits], -1)  # (B,T,2) = biolm's qa_outputs logits
    return out.logits


def valid_rows(arch, task, batch):
    """Where outputs are defined: every slot for encoders (padded rows see the real keys in both
    stacks); real tokens for decoders (a left-padded query sees no key at all)."""
    if arch in ENCODERS or task in ("sequence_classification", "regression", "multiple_choice"):
        return None
    return batch["attention_mask"].bool()


def write_batch(path, batch):
    with open(path, "w") as f:
        json.dump({k: v.tolist() for k, v in batch.items()}, f)


def read_output(path):
    with open(path) as f:
        j = json.load(f)
    return torch.tensor(j["data"], dtype=torch.float32).reshape(j["shape"])


def max_diff(ours, ref, valid=None):
    ours = ours.reshape(ref.shape).float()
    diff = (ours - ref.float()).abs()
    if valid is not None:
        diff = diff * valid.reshape(valid.shape + (1,) * (diff.dim() - valid.dim())).to(diff.dtype)
    worst = diff.max().item()
    at = list(torch.unravel_index(diff.argmax(), diff.shape)) if diff.numel() else []
    return worst, [int(i) for i in at]


def check(case, what, ours, ref, valid=None, tol=TOL):
    worst, at = max_diff(ours, ref, valid)
    record_max("models", f"{case} {what}", worst)
    assert worst <= tol, f"{case} {what}: max|biolm - transformers| = {worst:.3g} at {at} > {tol}"
    return worst


def make_model(case):
    stem, config_class, base = ARCH[case.arch]
    kw = dict(base)
    kw.update(HEAD_KW.get(case.task, {}))
    kw.update(case.config)
    config = config_class(**kw)
    torch.manual_seed(0)
    model = hf_class(case.arch, case.task)(config).eval()
    # Move everything off its initial value (LayerNorm weights 1, biases 0, zero-initialised
    # heads) so that a mixed-up weight cannot hide.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_hf_to_biolm_and_back(case, biolm_exe, work):
    model = make_model(case)
    gen = torch.Generator().manual_seed(1)
    batch = (choice_batch if case.task == "multiple_choice" else
             encoder_batch if case.arch in ENCODERS else decoder_batch)(gen)
    expected = hf_output(model, case.task, hf_inputs(case.arch, batch))
    valid = valid_rows(case.arch, case.task, batch)
    batch_file = work / "batch.json"
    write_batch(batch_file, batch)

    hf_dir = work / "hf"
    model.save_pretrained(hf_dir)
    assert (hf_dir / "model.safetensors").exists()
    out = work / "ours.json"
    run_biolm(biolm_exe, "convert", "logits", hf_dir, "--batch", batch_file, "--task", case.task, "--out", out)
    ours = read_output(out)
    check(case, "fp32 safetensors", ours, expected, valid)

    if case.pickle:
        # transformers 5 writes safetensors only, even with safe_serialization=False; a
        # pytorch_model.bin is what transformers < 5 wrote, torch.save in the zip format: a plain
        # dict since 4.18 (save_pretrained's shards), the module's OrderedDict (with _metadata)
        # before, as torch.save(model.state_dict()) writes today. Both are checked, by turns.
        bin_dir = work / "hf_bin"
        bin_dir.mkdir()
        shutil.copy(hf_dir / "config.json", bin_dir / "config.json")
        state = model.state_dict()
        if CASES.index(case) % 2:
            state = {k: v.contiguous() for k, v in state.items()}
        torch.save(state, bin_dir / "pytorch_model.bin")
        out_bin = work / "ours_bin.json"
        run_biolm(biolm_exe, "convert", "logits", bin_dir, "--batch", batch_file, "--task", case.task,
                  "--out", out_bin)
        check(case, "fp32 pytorch_model.bin", read_output(out_bin), expected, valid)

    if case.bf16:
        out_bf16 = work / "ours_bf16.json"
        run_biolm(biolm_exe, "convert", "logits", hf_dir, "--batch", batch_file, "--task", case.task,
                  "--dtype", "bf16", "--out", out_bf16)
        ref_bf16 = hf_output(model.to(torch.bfloat16), case.task, hf_inputs(case.arch, batch)).float()
        model.float()
        ours_bf16 = read_output(out_bf16)
        hf_err, _ = max_diff(ref_bf16, expected, valid)
        ours_err, _ = max_diff(ours_bf16, expected, valid)
        between, _ = max_diff(ours_bf16, ref_bf16, valid)
        record_max("models", f"{case} bf16 vs transformers bf16", between)
        record_max("models", f"{case} bf16 vs fp32", ours_err)
        record_max("models", f"{case} transformers bf16 vs fp32 (for scale)", hf_err)
        assert ours_err <= BF16_RATIO * hf_err + BF16_ABS, (
            f"{case} bf16: max|biolm bf16 - fp32| = {ours_err:.3g} > {BF16_RATIO} x transformers' "
            f"{hf_err:.3g} + {BF16_ABS}")

    if not case.export:
        return
    # biolm -> HF: into a biolm model directory and out again, then transformers' Auto class.
    ours_dir, back_dir = work / "biolm", work / "back"
    run_biolm(biolm_exe, "convert", "from-hf", hf_dir, ours_dir, "--task", case.task, "--strict")
    run_biolm(biolm_exe, "convert", "to-hf", ours_dir, back_dir)
    auto = TASKS[case.task][1]
    back, info = auto.from_pretrained(back_dir, output_loading_info=True)
    back.eval()
    assert type(back) is type(model), f"{case}: {auto.__name__} built {type(back).__name__}, not {type(model).__name__}"
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(key), f"{case}: {auto.__name__}.from_pretrained({back_dir}): {key} {info.get(key)}"
    exported = hf_output(back, case.task, hf_inputs(case.arch, batch))
    check(case, "exported, in transformers vs biolm", exported, ours, valid)


def test_minilm_real_text(biolm_exe, minilm_dir, work):
    """all-MiniLM-L6-v2 (BertModel) on real tokenized, padded biomedical text: last_hidden_state at
    every position, padding included."""
    tok = t.AutoTokenizer.from_pretrained(minilm_dir)
    texts = ["Aspirin irreversibly inhibits cyclooxygenase-1 in platelets.",
             "BRCA1 mutations raise the lifetime risk of breast and ovarian cancer.",
             "The patient denies chest pain."]
    enc = tok(texts, padding=True, return_tensors="pt")
    pair = tok(["What does aspirin inhibit?"], ["Aspirin inhibits COX-1."], return_tensors="pt")
    batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    assert batch["attention_mask"].min() == 0, "the texts must pad"
    model = t.BertModel.from_pretrained(minilm_dir).eval()
    expected = hf_output(model, "base", batch)
    batch_file, out = work / "batch.json", work / "ours.json"
    write_batch(batch_file, batch)
    run_biolm(biolm_exe, "convert", "logits", minilm_dir, "--batch", batch_file, "--task", "base", "--out", out)
    check("minilm (all-MiniLM-L6-v2, 3 padded texts)", "fp32 safetensors", read_output(out), expected)
    # A sentence pair: token_type_ids 1 on the second segment.
    assert pair["token_type_ids"].max() == 1
    pair_batch = {k: pair[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    write_batch(batch_file, pair_batch)
    run_biolm(biolm_exe, "convert", "logits", minilm_dir, "--batch", batch_file, "--task", "base", "--out", out)
    check("minilm (all-MiniLM-L6-v2, sentence pair)", "fp32 safetensors", read_output(out),
          hf_output(model, "base", pair_batch))


def test_pickle_with_code_is_refused(biolm_exe, work):
    """A .bin whose pickle names anything but tensors and dicts (here os.system) is refused by name
    before anything is called."""
    model = t.LlamaForCausalLM(t.LlamaConfig(**LLAMA))
    model.save_pretrained(work / "hf")
    (work / "hf" / "model.safetensors").unlink()
    state = dict(model.state_dict())
    state["evil"] = os.system
    torch.save(state, work / "hf" / "pytorch_model.bin")
    proc = run_biolm(biolm_exe, "convert", "logits", work / "hf", "--ids", "1,2,3", check=False)
    assert proc.returncode != 0
    assert "names posix.system" in proc.stderr and "could run code" in proc.stderr, proc.stderr


@pytest.mark.parametrize("rope", [{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
                                  {"rope_type": "dynamic", "factor": 2.0},
                                  {"rope_type": "longrope", "short_factor": [1.0] * 4, "long_factor": [1.0] * 4,
                                   "original_max_position_embeddings": 16}],
                         ids=lambda r: r["rope_type"])
def test_unsupported_rope_is_refused_by_name(rope, biolm_exe, work):
    model = t.LlamaForCausalLM(t.LlamaConfig(**LLAMA))
    model.save_pretrained(work / "hf")
    config = json.loads((work / "hf" / "config.json").read_text())
    config["rope_parameters"] = dict(rope, rope_theta=500.0)
    (work / "hf" / "config.json").write_text(json.dumps(config))
    proc = run_biolm(biolm_exe, "convert", "logits", work / "hf", "--ids", "1,2,3", check=False)
    assert proc.returncode != 0
    assert f'rope_type "{rope["rope_type"]}" is not supported' in proc.stderr, proc.stderr

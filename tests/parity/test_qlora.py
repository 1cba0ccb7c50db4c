"""QLoRA end to end against transformers + bitsandbytes + peft (issue #21).

test_quant.py proves the quantized bytes equal bitsandbytes'; this file proves the models built on
them equal. A tiny random LLaMA (hidden 64 and 128, FFN 3x: bitsandbytes' CPU matmul needs every
in-feature count to be a multiple of its block size 64) saved dense by transformers is loaded by
transformers with BitsAndBytesConfig(load_in_4bit, nf4 | fp4, double quantization, compute
float32). The reference is that model with each Linear4bit replaced by bitsandbytes' own
functional.dequantize_4bit of its weight (what bitsandbytes' CUDA path multiplies with), taken
before the first forward: bitsandbytes 0.50's CPU kernel repacks the weight on its first forward
and rounds the absmax constants to bfloat16 (functional._convert_weight_packed_for_cpu), so its
own CPU logits carry about 2e-3 of extra rounding; that deviation is recorded, not asserted.
  quantize-on-load   `biolm convert logits DENSE_DIR --quantize nf4|fp4` equals the reference;
  bnb checkpoint     the quantized model saved with save_pretrained (quant_state tensors beside each
                     weight, quantization_config in config.json) read by `biolm convert logits`, and
                     through `convert from-hf` into a model directory that keeps the packed bytes:
                     equal to the reference;
  QLoRA / QDoRA      peft's LoRA and DoRA (use_dora=True) on the 4-bit base, B / magnitude moved off
                     their initial values and saved, run by `biolm convert logits Q_DIR --adapter`,
                     equal the same adapter on the reference (PeftModel.from_pretrained), and they
                     differ from the base's output.
Tolerance 1e-4 on float32 logits (measured maxima in docs/parity.md): quantize-on-load makes
bitsandbytes' own bytes (test_quant.py), so all paths are equal up to float rounding.
"""
import os

import pytest
import torch

from conftest import record_max, run_biolm
from test_peft import IDS, biolm_logits, max_diff

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
pytest.importorskip("bitsandbytes")
from safetensors.torch import load_file  # noqa: E402

TOL = 1e-4


def _config(hidden):
    return transformers.LlamaConfig(
        vocab_size=64, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=3 * hidden, max_position_embeddings=64, tie_word_embeddings=False,
        attention_dropout=0.0)


@pytest.fixture(scope="module", params=[64, 128])
def dense_dir(request, tmp_path_factory):
    torch.manual_seed(77)
    model = transformers.LlamaForCausalLM(_config(request.param))
    path = str(tmp_path_factory.mktemp("dense") / f"llama{request.param}")
    model.save_pretrained(path, safe_serialization=True)
    return path


def _load_4bit(path, qtype):
    bnb_config = transformers.BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=qtype, bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32)
    return transformers.LlamaForCausalLM.from_pretrained(path, quantization_config=bnb_config,
                                                         device_map="cpu").eval()


def _dequantized_reference(qmodel, dense_dir):
    """The dense model whose Linear4bit weights are bitsandbytes' dequantize_4bit of qmodel's
    (call before qmodel's first forward, which repacks its weights on CPU)."""
    bnb = pytest.importorskip("bitsandbytes")
    ref = transformers.LlamaForCausalLM.from_pretrained(dense_dir).eval()
    n = 0
    with torch.no_grad():
        for name, module in qmodel.named_modules():
            if isinstance(module, bnb.nn.Linear4bit):
                w = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
                ref.get_submodule(name).weight.copy_(w.float())
                n += 1
    assert n == 2 * 7  # q, k, v, o, gate, up, down in both layers
    return ref


def _logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor([IDS])).logits.float()


def _check(label, ours, theirs, base=None, tol=TOL):
    d = max_diff(ours, theirs)
    record_max("quant", label, d)
    assert d <= tol, f"{label}: max |biolm - transformers+bnb| = {d:.3g} > {TOL}"
    if base is not None:
        assert max_diff(base, theirs) > 100 * TOL, f"{label}: the adapter does not change the output"


@pytest.mark.parametrize("qtype", ["nf4", "fp4"])
def test_quantize_on_load_and_bnb_checkpoint(biolm_exe, work, dense_dir, qtype):
    width = os.path.basename(dense_dir)
    qmodel = _load_4bit(dense_dir, qtype)
    assert type(qmodel.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    qdir = os.path.join(work, f"{qtype}_ckpt")
    qmodel.save_pretrained(qdir, safe_serialization=True)  # before the CPU kernel repacks it
    ref = _logits(_dequantized_reference(qmodel, dense_dir))
    dense = _logits(transformers.LlamaForCausalLM.from_pretrained(dense_dir).eval())
    assert max_diff(dense, ref) > 1e-3  # 4 bits move the logits: both sides below are quantized
    record_max("quant", f"bitsandbytes CPU kernel vs its dequantize {qtype} {width} (informative)",
               max_diff(_logits(qmodel), ref))

    ours = biolm_logits(biolm_exe, work, dense_dir, "--quantize", qtype, task="causal_lm")
    _check(f"quantize-on-load {qtype} {width}", ours, ref)

    stored = load_file(os.path.join(qdir, "model.safetensors"))
    assert any(k.endswith(f"quant_state.bitsandbytes__{qtype}") for k in stored)
    _check(f"bnb checkpoint {qtype} {width}", biolm_logits(biolm_exe, work, qdir, task="causal_lm"), ref)

    # Through a biolm model directory: the 4-bit form is kept (no dense copy of the blocks).
    md = os.path.join(work, f"{qtype}_md")
    run_biolm(biolm_exe, "convert", "from-hf", qdir, md, "--task", "causal_lm")
    ours_md = load_file(os.path.join(md, "model.safetensors"))
    q_key = "layers.0.attn.q_proj.weight"
    assert f"{q_key}.quant_state.bitsandbytes__{qtype}" in ours_md
    assert ours_md[q_key].dtype == torch.uint8
    assert torch.equal(ours_md[q_key].flatten(), stored["model.layers.0.self_attn.q_proj.weight"].flatten())
    _check(f"bnb checkpoint {qtype} {width} model_dir", biolm_logits(biolm_exe, work, md), ref)


@pytest.mark.parametrize("use_dora", [False, True], ids=["qlora", "qdora"])
def test_qlora_adapter_from_peft(biolm_exe, work, dense_dir, use_dora):
    width = os.path.basename(dense_dir)
    base = _load_4bit(dense_dir, "nf4")
    qdir = os.path.join(work, "nf4_base")
    base.save_pretrained(qdir, safe_serialization=True)
    ref_base = _dequantized_reference(base, dense_dir)
    before = _logits(ref_base)
    torch.manual_seed(5)
    cfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, use_dora=use_dora,
                          target_modules=["q_proj", "v_proj", "down_proj"])
    pm = peft.get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name or "lora_magnitude_vector" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    pm.eval()
    adapter_dir = os.path.join(work, "adapter")
    pm.save_pretrained(adapter_dir, safe_serialization=True)
    theirs = _logits(peft.PeftModel.from_pretrained(ref_base, adapter_dir).eval())
    kind = "qdora" if use_dora else "qlora"
    record_max("quant", f"{kind} bitsandbytes CPU kernel + peft vs dequantize {width} (informative)",
               max_diff(_logits(pm), theirs))
    ours = biolm_logits(biolm_exe, work, qdir, "--adapter", adapter_dir, task="causal_lm")
    _check(f"{kind} peft->biolm {width}", ours, theirs, base=before)

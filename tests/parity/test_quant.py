"""NF4 / FP4 / int8 quantization equal to bitsandbytes byte for byte (issue #21).

`biolm-quant-dump` (tests/parity/quant_dump.cpp) quantizes every tensor of a safetensors file with
libbiolm (quant/quantize.h) and writes the stored form, the scales and the dequantized weights;
this test runs bitsandbytes' own functions (0.50, CPU backend) on the same tensors and asks for
equality of the bytes:
  4-bit   functional.quantize_4bit(blocksize=64, compress_statistics=True|False, quant_type=nf4|fp4):
          packed bytes, absmax (uint8 when nested), nested_absmax, nested_quant_map, offset, and
          functional.dequantize_4bit in float32 and bfloat16; the stored names are QuantState's
          as_dict(packed=True) and QuantState.from_dict reads ours back;
  int8    functional.int8_vectorwise_quant (LLM.int8's row-wise absmax, no outlier threshold) and
          int8_vectorwise_dequant.
Tensors: random normal weights of shapes whose sizes are not multiples of 64 (and an odd count),
and every 2-D weight of the real all-MiniLM-L6-v2. No tolerance: equality of the bits, the
8-bit indices of double-quantized absmax constants included (bitsandbytes' bucket search, which
now and then keeps a farther code entry than the nearest, is reproduced).
Dequantization is compared with bitsandbytes' torch kernel; its native CPU kernel is wrong when
rows are not whole blocks (bitsandbytes 0.50.2, see quant/quantize.h) and is compared elsewhere.
"""
import json
import os
import subprocess

import pytest
import torch

from conftest import record_max

bnb = pytest.importorskip("bitsandbytes")
F = pytest.importorskip("bitsandbytes.functional")
from safetensors.torch import load_file, save_file  # noqa: E402
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute  # noqa: E402
from bitsandbytes.backends.utils import _get_4bit_code  # noqa: E402

SHAPES = [(64, 64), (96, 40), (33, 17), (7, 3), (300, 257), (1, 1000), (1024, 384)]


@pytest.fixture(scope="session")
def dump_exe(biolm_exe):
    path = os.path.join(os.path.dirname(biolm_exe), "biolm-quant-dump")
    assert os.access(path, os.X_OK), f"{path}: build the biolm_parity_quant_dump target"
    return path


def _random_weights():
    g = torch.Generator().manual_seed(21)
    out = {f"l{i}.weight": torch.randn(*s, generator=g) * 0.05 for i, s in enumerate(SHAPES)}
    out["zeros.weight"] = torch.cat([torch.zeros(64), torch.randn(100, generator=g)]).reshape(4, 41)
    out["tail.weight"] = (torch.randn(40, 96, generator=g) ** 3)
    return out


def _minilm_weights(minilm_dir):
    w = load_file(os.path.join(minilm_dir, "model.safetensors"))
    return {k: v.float().contiguous() for k, v in w.items() if v.dim() == 2}


def _run_dump(exe, work, tensors, qtype, nested, tag):
    src = os.path.join(work, f"{tag}_in.safetensors")
    dst = os.path.join(work, f"{tag}_{qtype}_{int(nested)}.safetensors")
    save_file(tensors, src)
    args = [exe, src, dst, qtype] + ([] if nested else ["--no-double-quant"])
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return load_file(dst)


def _same_bits(ours, theirs, what):
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} vs {theirs.dtype}"
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    if ours.is_floating_point():
        a, b = ours.view(torch.int16 if ours.element_size() == 2 else torch.int32), theirs.view(
            torch.int16 if theirs.element_size() == 2 else torch.int32)
    else:
        a, b = ours, theirs
    diff = (a != b).nonzero()
    if diff.numel():
        first = tuple(diff[0].tolist())
        pytest.fail(f"{what}: {diff.shape[0]} of {a.numel()} elements differ; first at {first}: "
                    f"ours {ours[first].item()!r}, bitsandbytes {theirs[first].item()!r}")


def _nested_absmax_equal(ours_idx, theirs_idx, centred, state, name):
    """The 8-bit indices of the absmax constants equal bitsandbytes', including the places where its
    bucket search (csrc/cpu_ops.cpp quantize_cpu_impl: 65,536 bins of [-1, 1], an entry precomputed per bin)
    keeps a farther code entry than the nearest: libbiolm reproduces that lookup
    (quant/quantize.cpp, BinnedCode). When it kept the nearest entry, 13 of 6144 indices differed
    for a (1024, 384) cubed-normal weight and 1 of 3072 for MiniLM's position embeddings, all near 0
    where code entries are 5e-7 apart. How often bitsandbytes' entry is not the nearest is recorded."""
    assert ours_idx.dtype == theirs_idx.dtype == torch.uint8 and ours_idx.shape == theirs_idx.shape
    diff = (ours_idx != theirs_idx).nonzero().reshape(-1)
    code = state.state2.code.clone()
    farther = 0
    for i in range(theirs_idx.numel()):  # how often bitsandbytes' own choice is not the nearest entry
        v = (centred[i] / state.state2.absmax[i // 256]).item()
        d = (code - v).abs()
        farther += int(d[int(theirs_idx[i])].item() > d.min().item())
    record_max("quant", f"absmax indices where bitsandbytes' search keeps a farther entry ({name}, matched)", farther)
    assert not diff.numel(), (f"{name}: {diff.numel()} absmax indices differ from bitsandbytes', first at "
                              f"{diff[0].item()}: ours {int(ours_idx[diff[0]])}, theirs {int(theirs_idx[diff[0]])}")


def _check_4bit(ours, tensors, qtype, nested):
    for name, w in tensors.items():
        packed, state = F.quantize_4bit(w, blocksize=64, compress_statistics=nested, quant_type=qtype)
        if nested:  # the fp32 constants bitsandbytes double-quantized, minus their mean
            _, raw_absmax = torch.ops.bitsandbytes.quantize_4bit.default(w, 64, qtype, torch.uint8)
        _same_bits(ours[name], packed, f"{name} packed")
        if nested:
            _nested_absmax_equal(ours[name + ".absmax"], state.absmax, raw_absmax - state.offset, state, name)
        else:
            _same_bits(ours[name + ".absmax"], state.absmax, f"{name} absmax")
        _same_bits(ours[name + ".quant_map"], state.code.float(), f"{name} quant_map")
        if nested:
            _same_bits(ours[name + ".nested_absmax"], state.state2.absmax, f"{name} nested_absmax")
            _same_bits(ours[name + ".nested_quant_map"], state.state2.code, f"{name} nested_quant_map")
        # QuantState's packed names and JSON: bitsandbytes reads our stored form back
        packed_dict = state.as_dict(packed=True)
        assert {name + "." + k for k in packed_dict} == {k for k in ours if k.startswith(name + ".") and "@" not in k}
        ours_state = {k[len(name) + 1:]: v for k, v in ours.items() if k.startswith(name + ".") and "@" not in k}
        theirs_json = json.loads(bytes(packed_dict[f"quant_state.bitsandbytes__{qtype}"].tolist()))
        ours_json = json.loads(bytes(ours_state[f"quant_state.bitsandbytes__{qtype}"].tolist()))
        theirs_json["shape"] = list(theirs_json["shape"])
        assert ours_json == theirs_json, f"{name}: quant_state JSON {ours_json} vs {theirs_json}"
        # Dequantization, from our stored state read by bitsandbytes' QuantState.from_dict: its torch
        # kernel bit for bit; its native CPU kernel (F.dequantize_4bit for an even last dimension)
        # only where rows are whole blocks (it is wrong for (40, 96), see quant/quantize.h), and by
        # value there (it returns -0.0 for FP4's code 8, whose table entry is +0.0).
        restored = F.QuantState.from_dict(dict(ours_state), device=torch.device("cpu"))
        absmax = restored.absmax
        if nested:
            absmax = F.dequantize_blockwise(restored.absmax, restored.state2) + restored.offset
        for dtype, key in ((torch.float32, "@dequant"), (torch.bfloat16, "@dequant_bf16")):
            ref = _dequantize_4bit_compute(ours[name].reshape(-1), absmax.float(), _get_4bit_code(qtype, packed.device),
                                           64, w.shape, dtype)
            _same_bits(ours[f"{name}.{key}"], ref, f"{name} dequantized {dtype} (bitsandbytes' torch kernel)")
            if w.shape[-1] % 64 == 0:
                restored.dtype = dtype
                native = F.dequantize_4bit(ours[name], restored)
                assert torch.equal(ours[f"{name}.{key}"], native), f"{name}: native dequantize_4bit {dtype} differs"
        _same_bits(ours[f"{name}.@roundtrip"], ours[f"{name}.@dequant"], f"{name} from_tensors round trip")
        record_max("quant", f"{qtype} nested={nested} |dequant - w| max ({name})",
                   (ours[f"{name}.@dequant"] - w).abs().max().item())


def _check_int8(ours, tensors):
    for name, w in tensors.items():
        cb, scb, _ = F.int8_vectorwise_quant(w.clone(), threshold=0.0)
        _same_bits(ours[name], cb, f"{name} int8")
        scb_name = name.rsplit(".", 1)[0] + ".SCB" if "." in name else "SCB"
        _same_bits(ours[scb_name], scb, f"{name} SCB")
        _same_bits(ours[f"{name}.@dequant"], F.int8_vectorwise_dequant(cb, scb), f"{name} dequantized")


@pytest.mark.parametrize("nested", [True, False], ids=["double_quant", "plain"])
@pytest.mark.parametrize("qtype", ["nf4", "fp4"])
def test_4bit_random(dump_exe, work, qtype, nested):
    tensors = _random_weights()
    _check_4bit(_run_dump(dump_exe, work, tensors, qtype, nested, "random"), tensors, qtype, nested)


@pytest.mark.parametrize("qtype", ["nf4", "fp4"])
def test_4bit_minilm(dump_exe, work, minilm_dir, qtype):
    tensors = _minilm_weights(minilm_dir)
    assert len(tensors) >= 36, sorted(tensors)
    _check_4bit(_run_dump(dump_exe, work, tensors, qtype, True, "minilm"), tensors, qtype, True)


def test_int8_random(dump_exe, work):
    tensors = _random_weights()
    _check_int8(_run_dump(dump_exe, work, tensors, "int8", True, "random"), tensors)


def test_int8_minilm(dump_exe, work, minilm_dir):
    # one weight per module so the sibling SCB names do not collide
    tensors = {k: v for k, v in _minilm_weights(minilm_dir).items() if k.endswith(".weight")}
    _check_int8(_run_dump(dump_exe, work, tensors, "int8", True, "minilm"), tensors)


def test_dynamic_code_is_bitsandbytes(dump_exe, work):
    """The nested quant map equals create_dynamic_map() bit for bit (our table follows torch.linspace)."""
    ours = _run_dump(dump_exe, work, {"w.weight": torch.randn(64, 300)}, "nf4", True, "code")["w.weight.nested_quant_map"]
    ref = F.create_dynamic_map()
    _same_bits(ours, ref, "dynamic code")


def test_reads_transformers_bnb_4bit_checkpoint(dump_exe, work):
    """A tiny LLaMA quantized by transformers + bitsandbytes (BitsAndBytesConfig nf4, double quant,
    on the CPU) and saved with save_pretrained: quant::from_tensors reads every 4-bit weight, and
    its dequantization equals bitsandbytes' own (torch kernel) of the same Params4bit bit for bit."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, intermediate_size=96)
    torch.manual_seed(0)
    src = os.path.join(work, "hf")
    transformers.LlamaForCausalLM(cfg).save_pretrained(src)
    qcfg = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                           bnb_4bit_compute_dtype=torch.float32)
    qm = transformers.LlamaForCausalLM.from_pretrained(src, quantization_config=qcfg, device_map="cpu",
                                                       dtype=torch.float32)
    dst = os.path.join(work, "hf4")
    qm.save_pretrained(dst)
    out = os.path.join(work, "read.safetensors")
    proc = subprocess.run([dump_exe, os.path.join(dst, "model.safetensors"), out, "read"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours = load_file(out)
    n = 0
    for name, module in qm.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        w = module.weight
        qs = w.quant_state
        absmax = F.dequantize_blockwise(qs.absmax, qs.state2) + qs.offset
        ref = _dequantize_4bit_compute(w.data.reshape(-1), absmax.float(), _get_4bit_code("nf4", w.device), qs.blocksize,
                                       qs.shape, torch.float32)
        _same_bits(ours[name + ".weight.@dequant"], ref, f"{name} read from the transformers checkpoint")
        n += 1
    assert n == 2 * 7, f"expected the 14 projections of 2 layers as Linear4bit, found {n}"

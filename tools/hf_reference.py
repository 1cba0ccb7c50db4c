#!/usr/bin/env python3
"""An independent numerical reference for Hugging Face model directories: python3 + torch only.

Reads an HF directory (config.json + model.safetensors, or a sharded index) with a safetensors
parser written here (8-byte little-endian header length, JSON header, raw little-endian bytes),
and computes the forward pass of the class config.json names, written plainly from the published
architectures, in float64:

  bert           post-LN: LN(word + position + token_type); per layer LN(x + attn(x)), LN(x + FFN(x))
                 (Devlin et al. 2019; transformers' modeling_bert.py names)
  megatron-bert  pre-LN: x + attn(LN(x)), x + FFN(LN(x)), final encoder LayerNorm (Shoeybi et al. 2019)
  gpt2           pre-LN, learned positions, Conv1D weights (in, out), fused c_attn = [q | k | v],
                 tanh GELU ("gelu_new"), final ln_f, lm_head tied to wte (Radford et al. 2019)
  llama/mistral  RMSNorm, rotary embeddings in the rotate_half layout (theta = rope_theta), SwiGLU
                 (down(silu(gate(x)) * up(x))), grouped KV heads (each KV head serves H/Hkv
                 consecutive query heads), causal attention (Touvron et al. 2023; Jiang et al. 2023)

Heads: *Model (last hidden state), *ForMaskedLM (BERT prediction head: dense, act, LayerNorm,
decoder + bias), GPT2LMHeadModel / *ForCausalLM (lm_head), *ForTokenClassification,
*ForSequenceClassification (encoders: tanh pooler on [CLS]; decoders: score on the last token),
*ForQuestionAnswering ((T, 2) start/end logits).

    python3 tools/hf_reference.py HF_DIR --ids 2,7,11 [--peft ADAPTER_DIR] [--out FILE]
                                  [--compare OURS.json] [--tol 1e-4]

--peft adds a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) onto
the weights first, as PEFT's LoraConfig defines it (scaling = lora_alpha / r, rank_pattern /
alpha_pattern, fan_in_fan_out for GPT-2's Conv1D).

--compare reads {"shape", "data"} (what `biolm convert logits --out` writes) and exits 1 when
max|ours - reference| > tol. Exit 77 (and a "skipped:" line) when torch is not installed.
"""
import argparse
import importlib.util
import json
import math
import os
import struct
import sys

SKIP = 77


def read_safetensors(path):
    """{name: float64 tensor} from one .safetensors file."""
    import torch

    dtypes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name}: offsets [{begin}, {end}) outside the data ({len(data)} bytes)")
        dtype = dtypes[info["dtype"]]
        buf = bytearray(data[begin:end])
        t = torch.frombuffer(buf, dtype=dtype) if end > begin else torch.zeros(0, dtype=dtype)
        t = t.reshape(info["shape"])
        out[name] = t.to(torch.float64) if t.is_floating_point() else t
    return out


def read_weights(hf_dir):
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for name in files:
            tensors.update(read_safetensors(os.path.join(hf_dir, name)))
        return tensors
    return read_safetensors(os.path.join(hf_dir, "model.safetensors"))


# ---- building blocks (x: (T, C) float64; one sequence, no padding) -------------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / (var + eps).sqrt() * w + b


def rms_norm(x, w, eps):
    return x / ((x * x).mean(-1, keepdim=True) + eps).sqrt() * w


def act(name, x):
    import torch

    if name in ("gelu", "gelu_python"):  # erf GELU
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):  # tanh approximation
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name in ("silu", "swish"):
        return x * torch.sigmoid(x)
    if name == "relu":
        return x.clamp(min=0)
    raise ValueError(f"activation {name!r} is not in this reference")


def linear(W, x, name, bias_optional=False):
    """nn.Linear: x @ W[name.weight]^T + W[name.bias]."""
    y = x @ W[name + ".weight"].t()
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    elif not bias_optional:
        raise KeyError(name + ".bias")
    return y


def attention(q, k, v, causal):
    """q (H,T,D), k/v (H,T,D) -> (T, H*D)."""
    import torch

    H, T, D = q.shape
    scores = q @ k.transpose(1, 2) / math.sqrt(D)  # (H,T,T)
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, -1)
    return (p @ v).transpose(0, 1).reshape(T, H * D)


def heads(x, n):
    T, HD = x.shape
    return x.reshape(T, n, HD // n).transpose(0, 1)  # (H,T,D)


# ---- bodies ---------------------------------------------------------------------------------------

def bert_body(W, cfg, ids, p, megatron):
    import torch

    T = len(ids)
    H = cfg["num_attention_heads"]
    eps = cfg.get("layer_norm_eps", 1e-12)
    hidden_act = cfg.get("hidden_act", "gelu")
    x = (W[p + "embeddings.word_embeddings.weight"][ids] + W[p + "embeddings.position_embeddings.weight"][:T]
         + W[p + "embeddings.token_type_embeddings.weight"][torch.zeros(T, dtype=torch.long)])
    if not megatron:
        x = layer_norm(x, W[p + "embeddings.LayerNorm.weight"], W[p + "embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        l = f"{p}encoder.layer.{i}."
        ln = lambda y, n: layer_norm(y, W[l + n + ".weight"], W[l + n + ".bias"], eps)  # noqa: E731
        a_in = ln(x, "attention.ln") if megatron else x
        ctx = attention(heads(linear(W, a_in, l + "attention.self.query"), H),
                        heads(linear(W, a_in, l + "attention.self.key"), H),
                        heads(linear(W, a_in, l + "attention.self.value"), H), causal=False)
        a = linear(W, ctx, l + "attention.output.dense")
        x = x + a if megatron else ln(x + a, "attention.output.LayerNorm")
        f_in = ln(x, "ln") if megatron else x
        f = linear(W, act(hidden_act, linear(W, f_in, l + "intermediate.dense")), l + "output.dense")
        x = x + f if megatron else ln(x + f, "output.LayerNorm")
    if megatron:
        x = layer_norm(x, W[p + "encoder.ln.weight"], W[p + "encoder.ln.bias"], eps)
    return x


def gpt2_body(W, cfg, ids, p):
    T = len(ids)
    H = cfg["n_head"]
    C = cfg["n_embd"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    fn = cfg.get("activation_function", "gelu_new")
    conv1d = lambda y, n: y @ W[n + ".weight"] + W[n + ".bias"]  # noqa: E731  weight (in, out)
    x = W[p + "wte.weight"][ids] + W[p + "wpe.weight"][:T]
    for i in range(cfg["n_layer"]):
        l = f"{p}h.{i}."
        a = layer_norm(x, W[l + "ln_1.weight"], W[l + "ln_1.bias"], eps)
        qkv = conv1d(a, l + "attn.c_attn")  # (T, 3C) = [q | k | v]
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        x = x + conv1d(attention(heads(q, H), heads(k, H), heads(v, H), causal=True), l + "attn.c_proj")
        m = layer_norm(x, W[l + "ln_2.weight"], W[l + "ln_2.bias"], eps)
        x = x + conv1d(act(fn, conv1d(m, l + "mlp.c_fc")), l + "mlp.c_proj")
    return layer_norm(x, W[p + "ln_f.weight"], W[p + "ln_f.bias"], eps)


def llama_body(W, cfg, ids, p):
    import torch

    T = len(ids)
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    C = cfg["hidden_size"]
    D = cfg.get("head_dim") or C // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    # Rotary, rotate_half layout: dimension j pairs with j + D/2, angle pos * theta^(-2j/D).
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    cos = torch.cat([angles, angles], -1).cos()  # (T, D)
    sin = torch.cat([angles, angles], -1).sin()

    def rope(x):  # (H,T,D)
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    x = W[p + "embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        l = f"{p}layers.{i}."
        h = rms_norm(x, W[l + "input_layernorm.weight"], eps)
        q = rope(heads(linear(W, h, l + "self_attn.q_proj", True), H))
        k = rope(heads(linear(W, h, l + "self_attn.k_proj", True), Hkv))
        v = heads(linear(W, h, l + "self_attn.v_proj", True), Hkv)
        k = k.repeat_interleave(H // Hkv, dim=0)  # query head j uses KV head j // (H/Hkv)
        v = v.repeat_interleave(H // Hkv, dim=0)
        x = x + linear(W, attention(q, k, v, causal=True), l + "self_attn.o_proj", True)
        h = rms_norm(x, W[l + "post_attention_layernorm.weight"], eps)
        g = act(cfg.get("hidden_act", "silu"), linear(W, h, l + "mlp.gate_proj", True))
        x = x + linear(W, g * linear(W, h, l + "mlp.up_proj", True), l + "mlp.down_proj", True)
    return rms_norm(x, W[p + "norm.weight"], eps)


def apply_peft_lora(W, peft_dir):
    """Adds a PEFT LoRA adapter directory onto the base weights: W += scaling * B A (transposed for
    fan_in_fan_out Conv1D weights), scaling = alpha / r (alpha / sqrt(r) with use_rslora), alpha and r
    per module from alpha_pattern / rank_pattern when listed there (PEFT's LoraConfig)."""
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("peft_type") != "LORA":
        raise ValueError(f"{peft_dir}: peft_type {cfg.get('peft_type')!r} is not LORA")
    tensors = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    prefix = "base_model.model."
    n = 0
    for name, a in tensors.items():
        if not name.endswith(".lora_A.weight"):
            continue
        module = name[len(prefix):-len(".lora_A.weight")]
        b = tensors[prefix + module + ".lora_B.weight"]
        pattern = lambda d: next((v for k, v in d.items() if module == k or module.endswith("." + k)), None)  # noqa: E731
        r = a.shape[0]
        if pattern(cfg.get("rank_pattern") or {}) not in (None, r):
            raise ValueError(f"{peft_dir}: {module}: rank_pattern disagrees with lora_A rows {r}")
        alpha = pattern(cfg.get("alpha_pattern") or {}) or cfg["lora_alpha"]
        scaling = alpha / (math.sqrt(r) if cfg.get("use_rslora") else r)
        delta = scaling * (b @ a)  # (out, in)
        if cfg.get("fan_in_fan_out"):
            delta = delta.t()  # Conv1D weight (in, out)
        W[module + ".weight"] = W[module + ".weight"] + delta
        n += 1
    if n == 0:
        raise ValueError(f"{peft_dir}: no lora_A tensors")
    return W


# ---- the class of config.json -----------------------------------------------------------------------

def forward(hf_dir, ids, peft_dir=None):
    """(output (T, ...) float64, model_type, architecture)."""
    import torch

    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    mt = cfg.get("model_type")
    if mt not in ("bert", "megatron-bert", "gpt2", "llama", "mistral"):
        raise ValueError(f"{hf_dir}/config.json: model_type {mt!r} is not in this reference")
    arch = (cfg.get("architectures") or [""])[0]
    W = read_weights(hf_dir)
    if peft_dir:
        W = apply_peft_lora(W, peft_dir)
    encoder = mt in ("bert", "megatron-bert")
    emb = {"bert": "embeddings.word_embeddings.weight", "megatron-bert": "embeddings.word_embeddings.weight",
           "gpt2": "wte.weight", "llama": "embed_tokens.weight", "mistral": "embed_tokens.weight"}[mt]
    prefix = next((p for p in ("bert.", "transformer.", "model.", "") if p + emb in W), None)
    if prefix is None:
        raise ValueError(f"{hf_dir}: no token embedding ({emb}) under any known prefix")
    ids = torch.tensor(ids, dtype=torch.long)
    if encoder:
        x = bert_body(W, cfg, ids, prefix, megatron=mt == "megatron-bert")
    elif mt == "gpt2":
        x = gpt2_body(W, cfg, ids, prefix)
    else:
        x = llama_body(W, cfg, ids, prefix)
    tied = cfg.get("tie_word_embeddings", True)
    if arch.endswith("ForMaskedLM"):
        eps = cfg.get("layer_norm_eps", 1e-12)
        h = act(cfg.get("hidden_act", "gelu"), linear(W, x, "cls.predictions.transform.dense"))
        h = layer_norm(h, W["cls.predictions.transform.LayerNorm.weight"], W["cls.predictions.transform.LayerNorm.bias"], eps)
        dec = W.get("cls.predictions.decoder.weight") if not tied else W[prefix + emb]
        return h @ dec.t() + W["cls.predictions.bias"], mt, arch
    if arch.endswith("LMHeadModel") or arch.endswith("ForCausalLM"):
        out = W[prefix + emb] if tied or "lm_head.weight" not in W else W["lm_head.weight"]
        return x @ out.t(), mt, arch
    if arch.endswith("ForTokenClassification"):
        return linear(W, x, "score" if "score.weight" in W else "classifier", True), mt, arch
    if arch.endswith("ForSequenceClassification"):
        if encoder:
            pooled = torch.tanh(linear(W, x[0], prefix + "pooler.dense"))
            return linear(W, pooled, "classifier"), mt, arch
        return linear(W, x[-1], "score", True), mt, arch  # last token (no padding here)
    if arch.endswith("ForQuestionAnswering"):
        return linear(W, x, "qa_outputs"), mt, arch  # (T, 2): start, end
    if arch.endswith("Model"):
        return x, mt, arch
    raise ValueError(f"{hf_dir}/config.json: architecture {arch!r} is not in this reference")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hf_dir")
    ap.add_argument("--ids", required=True, help="token ids, comma-separated")
    ap.add_argument("--out", help="write {shape, data} JSON here")
    ap.add_argument("--compare", help="{shape, data} JSON of our output to compare with")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--peft", help="a PEFT LoRA adapter directory to add onto the weights first")
    args = ap.parse_args()
    if importlib.util.find_spec("torch") is None:
        print("skipped: python3 torch not installed")
        return SKIP
    import torch

    ids = [int(s) for s in args.ids.split(",") if s]
    ref, mt, arch = forward(args.hf_dir, ids, args.peft)
    ref = ref[None]  # (B=1, ...)
    result = {"model_type": mt, "architecture": arch, "shape": list(ref.shape), "max_abs": ref.abs().max().item()}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"shape": list(ref.shape), "data": ref.reshape(-1).tolist()}, f)
    status = 0
    if args.compare:
        with open(args.compare) as f:
            ours = json.load(f)
        if list(ours["shape"]) != list(ref.shape):
            print(json.dumps(dict(result, error=f"shape {ours['shape']} != reference {list(ref.shape)}")))
            return 1
        diff = (torch.tensor(ours["data"], dtype=torch.float64).reshape(ref.shape) - ref).abs()
        worst = diff.max().item()
        where = [int(i) for i in torch.nonzero(diff == worst)[0]]
        result.update({"max_abs_diff": worst, "at": where, "tol": args.tol, "ok": worst <= args.tol})
        status = 0 if worst <= args.tol else 1
    print(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Plain PyTorch (eager) reference for biolm-bench: the same models and steps, same JSON fields.

Run by bench/run_bench.sh right after the C++ benchmark, so every figure is also a ratio measured
in the same session on the same machine. Models mirror libbiolm's builders exactly:
  decoder (LLaMA-style): token embeddings, pre-RMSNorm blocks, rotary attention (rotate_half),
      SwiGLU MLP, final RMSNorm, untied lm_head, no biases.
  encoder (BERT-style): token + learned position + token-type embeddings, LayerNorm, post-LN blocks,
      GELU (erf) MLP with biases, MLM head (dense, GELU, LayerNorm, tied decoder + bias) evaluated
      only at masked positions.

  python3 bench/reference/torch_reference.py --config tiny --case clm_full [--threads 2]
                                             [--device cpu|cuda] [--dtype fp32|bf16]
                                             [--impl pytorch|hf-peft|opacus-peft] [--batch B] [--seq T]

Configs: tiny, small, bert, and the CUDA presets gpt2-124m, gpt2-350m (GPT-2 style: pre-LayerNorm,
learned positions, GELU tanh, biases, tied head), megatron-bert-345m (pre-LN encoder, final
LayerNorm) and llama-1b (grouped KV heads), the same shapes as biolm-bench. On torch 2.x attention
uses torch.nn.functional.scaled_dot_product_attention (fused kernels), on 1.13 the explicit product.
--impl hf-peft times the clm_lora step through transformers + peft instead (LLaMA-style configs);
--impl opacus-peft the clm_dp_lora step (DP-SGD of the LoRA adapters) through transformers + peft + Opacus.

On CUDA each timed step ends with torch.cuda.synchronize() (the measurement), bf16 runs under
autocast, TF32 is allowed, and AdamW uses fused=True where this torch has it.
"""
import argparse
import contextlib
import ctypes
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # d, layers, heads, kv_heads, seq, batch, vocab, ffn, family, style; the last four are the CUDA presets
    "tiny": dict(d=128, layers=4, heads=4, kv=4, seq=128, batch=8, vocab=8000, ffn=512, family="decoder", style="llama"),
    "small": dict(d=256, layers=6, heads=8, kv=8, seq=256, batch=4, vocab=16000, ffn=1024, family="decoder",
                  style="llama"),
    "bert": dict(d=256, layers=4, heads=4, kv=4, seq=128, batch=8, vocab=8000, ffn=1024, family="encoder",
                 style="bert"),
    "minilm": dict(d=384, layers=6, heads=12, kv=12, seq=64, batch=16, vocab=30522, ffn=1536, family="encoder",
                   style="bert"),
    "gpt2-124m": dict(d=768, layers=12, heads=12, kv=12, seq=1024, batch=8, vocab=50257, ffn=3072, family="decoder",
                      style="gpt2"),
    "gpt2-350m": dict(d=1024, layers=24, heads=16, kv=16, seq=1024, batch=8, vocab=50257, ffn=4096, family="decoder",
                      style="gpt2"),
    "megatron-bert-345m": dict(d=1024, layers=24, heads=16, kv=16, seq=512, batch=16, vocab=50176, ffn=4096,
                               family="encoder", style="megatron"),
    "llama-1b": dict(d=2048, layers=22, heads=32, kv=4, seq=1024, batch=8, vocab=32000, ffn=5632, family="decoder",
                     style="llama"),
    "llama-7b": dict(d=4096, layers=32, heads=32, kv=32, seq=512, batch=1, vocab=32000, ffn=11008, family="decoder",
                     style="llama"),
}

class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):  # x: (B,H,T,D)
    d2 = x.shape[-1] // 2
    rot = torch.cat([-x[..., d2:], x[..., :d2]], dim=-1)
    return x * cos + rot * sin


class LoRALinear(nn.Module):
    def __init__(self, base, r=8, alpha=16.0):
        super().__init__()
        self.base = base
        self.a = nn.Parameter(torch.empty(r, base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


def attention(q, k, v, causal):
    """q (B,H,Tq,D), k/v (B,H,Tk,D). torch.nn.functional's fused kernel where this torch has it
    (2.x: flash / memory-efficient on CUDA), else the explicit softmax(QK^T/sqrt(D))V of 1.13."""
    Tq, Tk = q.shape[2], k.shape[2]
    if hasattr(F, "scaled_dot_product_attention"):
        if causal and Tq > 1 and Tq != Tk:  # a chunk after a cache: bottom-right aligned mask
            mask = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(Tk - Tq)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal and Tq > 1)
    s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal and Tq > 1:
        s = s.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).triu(Tk - Tq + 1), float("-inf"))
    return torch.softmax(s, -1) @ v


class DecoderBlock(nn.Module):
    """style "llama": pre-RMSNorm, rotary, SwiGLU, no biases, grouped KV heads;
    style "gpt2": pre-LayerNorm (eps 1e-5), learned positions (in the Decoder), GELU tanh, biases."""

    def __init__(self, d, h, kvh, ffn, style):
        super().__init__()
        self.h, self.kvh, self.style = h, kvh, style
        hd = d // h
        bias = style == "gpt2"
        norm = (lambda: nn.LayerNorm(d, eps=1e-5)) if bias else (lambda: RMSNorm(d))
        self.attn_norm, self.mlp_norm = norm(), norm()
        self.q_proj, self.o_proj = nn.Linear(d, d, bias=bias), nn.Linear(d, d, bias=bias)
        self.k_proj, self.v_proj = nn.Linear(d, kvh * hd, bias=bias), nn.Linear(d, kvh * hd, bias=bias)
        if bias:
            self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)
        else:
            self.gate, self.up = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
            self.down = nn.Linear(ffn, d, bias=False)

    def mlp(self, y):
        if self.style == "gpt2":
            return self.down(F.gelu(self.up(y), approximate="tanh"))
        return self.down(F.silu(self.gate(y)) * self.up(y))

    def forward(self, x, cos, sin, cache=None):
        B, T, C = x.shape
        hd = C // self.h
        y = self.attn_norm(x)
        q = self.q_proj(y).view(B, T, self.h, hd).transpose(1, 2)
        k = self.k_proj(y).view(B, T, self.kvh, hd).transpose(1, 2)
        v = self.v_proj(y).view(B, T, self.kvh, hd).transpose(1, 2)
        if cos is not None:
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        if cache is not None:  # generation: keys/values of the earlier tokens
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        if self.kvh != self.h:
            k, v = k.repeat_interleave(self.h // self.kvh, 1), v.repeat_interleave(self.h // self.kvh, 1)
        a = attention(q, k, v, causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.o_proj(a)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        gpt2 = c["style"] == "gpt2"
        self.tok = nn.Embedding(c["vocab"], c["d"])
        nn.init.normal_(self.tok.weight, std=0.02)  # as HF initialises it (N(0,1) made tied logits huge)
        self.pos = nn.Embedding(c["seq"], c["d"]) if gpt2 else None
        self.layers = nn.ModuleList(DecoderBlock(c["d"], c["heads"], c["kv"], c["ffn"], c["style"])
                                    for _ in range(c["layers"]))
        self.final_norm = nn.LayerNorm(c["d"], eps=1e-5) if gpt2 else RMSNorm(c["d"])
        self.lm_head = nn.Linear(c["d"], c["vocab"], bias=False)
        if gpt2:
            self.lm_head.weight = self.tok.weight  # GPT-2 ties its output projection
        else:
            hd = c["d"] // c["heads"]
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
            ang = torch.arange(c["seq"]).float()[:, None] * inv[None, :]
            ang = torch.cat([ang, ang], -1)
            self.register_buffer("cos", ang.cos())
            self.register_buffer("sin", ang.sin())

    def forward(self, ids, pos0=0, caches=None, last_only=False):
        T = ids.shape[1]
        x = self.tok(ids)
        cos = sin = None
        if self.pos is not None:
            x = x + self.pos.weight[pos0:pos0 + T]
        else:
            cos, sin = self.cos[pos0:pos0 + T], self.sin[pos0:pos0 + T]
        for i, blk in enumerate(self.layers):
            x = blk(x, cos, sin, None if caches is None else caches[i])
        if last_only:
            x = x[:, -1]
        return self.lm_head(self.final_norm(x))


class EncoderBlock(nn.Module):
    """post-LN (BERT) or pre-LN (Megatron-BERT / GatorTron); GELU (erf), biases, LayerNorm eps 1e-12."""

    def __init__(self, d, h, ffn, pre_ln):
        super().__init__()
        self.h, self.pre_ln = h, pre_ln
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d) for _ in range(4))
        self.attn_norm, self.mlp_norm = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
        self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def attn(self, x):
        B, T, C = x.shape
        hd = C // self.h
        q = self.q_proj(x).view(B, T, self.h, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.h, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.h, hd).transpose(1, 2)
        return self.o_proj(attention(q, k, v, causal=False).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        if self.pre_ln:
            x = x + self.attn(self.attn_norm(x))
            return x + self.down(F.gelu(self.up(self.mlp_norm(x))))
        x = self.attn_norm(x + self.attn(x))
        return self.mlp_norm(x + self.down(F.gelu(self.up(x))))


class Encoder(nn.Module):
    """BERT: embedding LayerNorm, post-LN. Megatron-BERT: no embedding LayerNorm, pre-LN, final LN."""

    def __init__(self, c):
        super().__init__()
        d = c["d"]
        self.megatron = c["style"] == "megatron"
        self.tok, self.pos, self.typ = nn.Embedding(c["vocab"], d), nn.Embedding(512, d), nn.Embedding(2, d)
        nn.init.normal_(self.tok.weight, std=0.02)  # as HF initialises it (N(0,1) made tied logits huge)
        self.norm = nn.LayerNorm(d, eps=1e-12)  # embedding LN (BERT) or final LN (Megatron)
        self.layers = nn.ModuleList(EncoderBlock(d, c["heads"], c["ffn"], self.megatron) for _ in range(c["layers"]))
        self.head_dense, self.head_norm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-12)
        self.head_bias = nn.Parameter(torch.zeros(c["vocab"]))

    def forward(self, ids, labels):
        T = ids.shape[1]
        x = self.tok(ids) + self.pos.weight[:T] + self.typ.weight[0]
        if not self.megatron:
            x = self.norm(x)
        for blk in self.layers:
            x = blk(x)
        if self.megatron:
            x = self.norm(x)
        sel = labels.view(-1) != -100  # logits only at masked positions
        h = x.reshape(-1, x.shape[-1])[sel]
        h = self.head_norm(F.gelu(self.head_dense(h)))
        logits = h @ self.tok.weight.t() + self.head_bias
        return F.cross_entropy(logits, labels.view(-1)[sel])


def matmul_params(c):
    d, f, L, V = c["d"], c["ffn"], c["layers"], c["vocab"]
    kv = c["kv"] * (d // c["heads"])
    if c["family"] == "decoder":
        return L * (2 * d * d + 2 * d * kv + (3 if c["style"] == "llama" else 2) * d * f) + d * V
    return L * (4 * d * d + 2 * d * f) + d * d + d * V  # MLM decoder counted only where evaluated


def flops_per_token(c, training):
    """PaLM-style model FLOPs: 6N + 12 L d T for training, 2N + 4 L d T forward (per token)."""
    n = matmul_params(c)
    attn = c["layers"] * c["d"] * c["seq"]
    if c["family"] == "encoder":  # the MLM head (dense + vocab projection) only on 15 % of tokens
        n = n - c["d"] * c["vocab"] - c["d"] * c["d"] + 0.15 * (c["d"] * c["vocab"] + c["d"] * c["d"])
    return (6 * n + 12 * attn) if training else (2 * n + 4 * attn)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(fn, warmup, steps, device):
    """Runs fn warmup + steps times, each timed alone (synchronised on CUDA); returns the timed
    seconds, the peak RSS in MB and the CUDA allocator's peak in MB (None on CPU)."""
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    cuda_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    if PROFILE_PATH:
        # One more step under the profiler, as biolm-bench --profile: a chrome trace that
        # bench/profile_summary.py reads (self time per operator).
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            fn()
        prof.export_chrome_trace(PROFILE_PATH)
    return times, rss, cuda_mb


def measure_matmul_peak(device, n=1024, reps=10):
    """fp32 n=1024 on CPU, bf16 n=8192 on CUDA: the same measurement as biolm-bench."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        n = 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def mapped_blas():
    """The BLAS/LAPACK/OpenMP libraries mapped into this process (as biolm-bench reports them)."""
    seen = []
    with open("/proc/self/maps") as f:
        for line in f:
            i = line.find("/")
            if i < 0:
                continue
            path = line[i:].strip()
            name = path.rsplit("/", 1)[-1]
            if any(k in name for k in ("blas", "mkl", "lapack", "omp")) and path not in seen:
                seen.append(path)
    return ",".join(seen)


def set_openblas_threads(n):
    """OpenBLAS's own pool gets the same thread count as torch's intra-op pool (as biolm-bench)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_set_num_threads(n)
        return lib.openblas_get_num_threads()
    except (OSError, AttributeError):
        return None


def _hf_llama_config(c, T):
    import transformers
    return transformers.LlamaConfig(
        vocab_size=c["vocab"], hidden_size=c["d"], intermediate_size=c["ffn"], num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"], num_key_value_heads=c["kv"], max_position_embeddings=T,
        rms_norm_eps=1e-6, tie_word_embeddings=False, attention_dropout=0.0)


def _save_dense(cfg, seed, path):  # in a child process: its float32 copy must not count in our peak RSS
    import transformers
    torch.manual_seed(seed)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)


def _hf_impl(dp, attn, compiled):
    return ("opacus-peft" if dp else "hf-peft") + ("" if attn == "sdpa" else "-" + attn) + ("-compile" if compiled else "")


def _timed_result(c, step, warmup, steps, device, params, last_loss, **fields):
    """Times `step` and returns the JSON fields every transformers-based run reports, plus `fields`."""
    import peft
    import transformers
    B, T = c["batch"], c["seq"]
    times, rss, cuda_mb = time_steps(step, warmup, steps, device)
    med = statistics.median(times)
    fpt = flops_per_token(c, True)
    achieved = fpt * B * T / med
    peak = measure_matmul_peak(device)
    return {
        **fields, "torch": torch.__version__, "seq": T, "batch": B,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "device": str(device), "threads": torch.get_num_threads(), "blas": mapped_blas(),
        "tokens_per_s": B * T / med, "step_ms_median": med * 1e3, "step_ms_min": min(times) * 1e3,
        "step_ms_max": max(times) * 1e3, "steps": steps, "warmup": warmup,
        "peak_rss_mb": rss, "peak_cuda_mb": cuda_mb, "flops_per_token": fpt, "achieved_flops": achieved,
        "matmul_peak_flops": peak, "peak_fraction": achieved / peak,
        "trainable_params": sum(p.numel() for p in params), "final_loss": float(last_loss[0]),
    }


def run_hf_peft(config, c, warmup, steps, seed, device, dtype, case="clm_lora", grad_ckpt=False, attn="sdpa",
                compiled=False):
    """The clm_full / clm_lora / clm_qlora step through Hugging Face transformers + peft (+ bitsandbytes):
    LlamaForCausalLM of the same shape (SDPA attention); LoRA r 8, alpha 16 on q_proj and v_proj;
    clm_qlora loads the base with BitsAndBytesConfig(nf4, double quantization, compute float32), the way
    QLoRA users do (from a dense checkpoint written by a child process, so that its float32 copy does
    not count in this process's peak RSS); AdamW (fused on CUDA) on the trainable weights;
    grad_ckpt: gradient_checkpointing_enable() (+ enable_input_require_grads for adapters).
    LLaMA-style configs only (GPT-2 fuses q/k/v into c_attn, not the same LoRA)."""
    try:
        import peft
        import transformers
    except ImportError as e:  # the caller (run_bench.sh) checks first; this is the direct-call message
        raise SystemExit(f"hf-peft needs transformers and peft: {e}")
    if c["style"] != "llama":
        raise SystemExit(f"hf-peft is defined for the LLaMA-style configs, not {config}")
    torch.manual_seed(seed)
    B, T, V = c["batch"], c["seq"], c["vocab"]
    cfg = _hf_llama_config(c, T)
    t_build = time.perf_counter()
    if case == "clm_qlora":
        import multiprocessing as mp
        import tempfile
        dense_dir = os.path.join(tempfile.gettempdir(), f"biolm-bench-hf-{config}-{seed}")
        if not os.path.exists(os.path.join(dense_dir, "config.json")):
            proc = mp.get_context("spawn").Process(target=_save_dense, args=(cfg, seed, dense_dir))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise SystemExit(f"writing the dense checkpoint {dense_dir} failed")
        bnb = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
        model = transformers.LlamaForCausalLM.from_pretrained(dense_dir, quantization_config=bnb,
                                                             attn_implementation=attn, device_map=str(device))
    else:
        try:
            model = transformers.LlamaForCausalLM._from_config(cfg, attn_implementation=attn)
        except (TypeError, ValueError, ImportError):
            model = transformers.LlamaForCausalLM(cfg)
    if grad_ckpt:
        model.gradient_checkpointing_enable()
        if case != "clm_full":
            model.enable_input_require_grads()
    if case != "clm_full":
        lora = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                               task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, lora)
    model = model.to(device)
    dp = case == "clm_dp_lora"
    if dp:
        # Opacus: per-example gradients of the trainable (LoRA) Linears from its forward/backward
        # hooks, clipping to C = 1 and noise sigma = 1 in DPOptimizer: biolm-bench's clm_dp_lora.
        import opacus
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer
        model = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    build_s = time.perf_counter() - t_build
    rss_after_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    model.train()
    ids = torch.randint(0, V, (B, T)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    has_fused = "fused" in torch.optim.AdamW.__init__.__code__.co_varnames
    fused = {"fused": True} if device.type == "cuda" and has_fused else {}
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, **fused)
    if dp:
        opt = DPOptimizer(opt, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=B, loss_reduction="mean")
    fwd = torch.compile(model) if compiled else model
    autocast = device.type == "cuda" and dtype == "bf16"
    last_loss = [None]

    def step():
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            loss = fwd(input_ids=ids, labels=ids).loss  # HF shifts the labels itself
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last_loss[0] = loss.detach()

    return _timed_result(c, step, warmup, steps, device, params, last_loss, case=case, config=config,
                         impl=_hf_impl(dp, attn, compiled), attn=attn, compiled=compiled,
                         **({"opacus": opacus.__version__} if dp else {}), grad_ckpt=grad_ckpt, build_s=build_s,
                         rss_after_build_mb=rss_after_build, dtype=dtype)


def run_hf_encoder(config, c, case, warmup, steps, seed, device, attn="sdpa", compiled=False, dropout=0.0):
    """tok_full / tok_lora / mlm through transformers (+ peft): BertForTokenClassification (3 labels,
    every position labelled) or BertForMaskedLM (15 % masked; transformers computes the logits at
    every position) of the config's shape, hidden and attention dropout `dropout` (default none);
    tok_lora: peft LoRA r 8, alpha 16 on query
    and value, task_type TOKEN_CLS (the classifier trained in full); AdamW lr 1e-4 on the trainable
    weights; attn: eager or sdpa; compiled: torch.compile of the model (its compilation falls in
    the warm-up steps)."""
    import peft
    import transformers
    if c["family"] != "encoder":
        raise SystemExit(f"{case} needs an encoder config (bert, minilm), not {config}")
    torch.manual_seed(seed)
    B, T, V = c["batch"], c["seq"], c["vocab"]
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=c["d"], num_hidden_layers=c["layers"],
                                  num_attention_heads=c["heads"], intermediate_size=c["ffn"],
                                  max_position_embeddings=512, hidden_act="gelu", hidden_dropout_prob=dropout,
                                  attention_probs_dropout_prob=dropout, num_labels=3)
    cls = transformers.BertForMaskedLM if case == "mlm" else transformers.BertForTokenClassification
    t_build = time.perf_counter()
    model = cls._from_config(cfg, attn_implementation=attn)
    if case == "tok_lora":
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                           target_modules=["query", "value"], task_type="TOKEN_CLS"))
    model = model.to(device)
    build_s = time.perf_counter() - t_build
    model.train()
    ids = torch.randint(0, V, (B, T))
    if case == "mlm":
        labels = torch.full((B, T), -100, dtype=torch.long)
        mask = torch.rand(B, T) < 0.15
        labels[mask] = ids[mask]
    else:
        labels = torch.randint(0, 3, (B, T))
    ids, labels, att = ids.to(device), labels.to(device), torch.ones(B, T, dtype=torch.long, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    fwd = torch.compile(model) if compiled else model
    last_loss = [None]

    def step():
        loss = fwd(input_ids=ids, attention_mask=att, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last_loss[0] = loss.detach()

    return _timed_result(c, step, warmup, steps, device, params, last_loss, case=case, config=config,
                         impl=_hf_impl(False, attn, compiled), attn=attn, compiled=compiled, build_s=build_s, dropout=dropout,
                         dtype="fp32")


def run(config, case, warmup, steps, seed, device, dtype, impl="pytorch", batch=None, seq=None, grad_ckpt=False,
        attn="sdpa", compiled=False, dropout=0.0):
    c = dict(CONFIGS[config])
    c["batch"], c["seq"] = batch or c["batch"], seq or c["seq"]
    if impl == "hf-peft" and case in ("tok_full", "tok_lora", "mlm"):
        return run_hf_encoder(config, c, case, warmup, steps, seed, device, attn, compiled, dropout)
    if dropout:
        raise SystemExit("--dropout applies to the transformers encoder cases (tok_full, tok_lora, mlm with --impl hf-peft)")
    if impl == "hf-peft" and case in ("clm_full", "clm_lora", "clm_qlora"):
        return run_hf_peft(config, c, warmup, steps, seed, device, dtype, case, grad_ckpt, attn, compiled)
    if impl == "opacus-peft":
        return run_hf_peft(config, c, warmup, steps, seed, device, dtype, "clm_dp_lora", grad_ckpt, attn, compiled)
    torch.manual_seed(seed)
    B, T, V = c["batch"], c["seq"], c["vocab"]
    ids = torch.randint(0, V, (B, T))
    autocast = device.type == "cuda" and dtype == "bf16"
    training = case in ("clm_full", "clm_lora", "clm_hybrid", "mlm")
    if case == "mlm":
        if c["family"] != "encoder":
            raise SystemExit("case mlm needs an encoder config (bert, megatron-bert-345m)")
        model = Encoder(c)
        labels = torch.full((B, T), -100, dtype=torch.long)
        mask = torch.rand(B, T) < 0.15
        labels[mask] = ids[mask]
    else:
        if c["family"] != "decoder":
            raise SystemExit(f"case {case} needs a decoder config")
        model = Decoder(c)
    if case == "clm_hybrid" and impl == "hf-peft":
        return run_hf_peft(config, c, warmup, steps, seed, device, dtype)
    if case in ("clm_lora", "clm_hybrid"):
        for p in model.parameters():
            p.requires_grad_(False)
        for blk in model.layers:
            blk.q_proj, blk.v_proj = LoRALinear(blk.q_proj), LoRALinear(blk.v_proj)
    if case == "clm_hybrid":  # LoRA plus every norm, bias (none in this decoder) and the LM head in full
        for name, p in model.named_parameters():
            head = name.startswith("lm_head.") or (name == "tok.weight" and model.lm_head.weight is model.tok.weight)
            if name.endswith(".bias") or "norm" in name.split(".")[-2] or head:
                p.requires_grad_(True)
    model.to(device)
    ids = ids.to(device)
    if case == "mlm":
        labels = labels.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = None
    if training:
        has_fused = "fused" in torch.optim.AdamW.__init__.__code__.co_varnames
        fused = {"fused": True} if device.type == "cuda" and has_fused else {}
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, **fused)
    last_loss = [None]  # read once after the timed loop (no per-step host sync)

    def step():
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            if case == "mlm":
                loss = model(ids, labels)
            elif training:
                logits = model(ids)
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))
            else:
                with torch.no_grad():
                    model(ids)
                return
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last_loss[0] = loss.detach()

    def generate(n_new=32):
        with torch.no_grad():  # KV cache: the prompt pass gives token 1, then n_new - 1 cached steps
            caches = [dict() for _ in model.layers]
            x_ids, pos = ids[:, :16], 0
            for _ in range(n_new):
                logits = model(x_ids, pos, caches, last_only=True)
                pos += x_ids.shape[1]
                x_ids = logits.argmax(-1, keepdim=True)
            return n_new
    times, rss, cuda_mb = time_steps(generate if case == "generate" else step, warmup, steps, device)
    med = statistics.median(times)
    tokens = B * 32 if case == "generate" else B * T
    fpt = flops_per_token(c, training)
    achieved = fpt * tokens / med if case != "generate" else None
    peak = measure_matmul_peak(device)  # after the case: its buffers do not count in the case's memory
    return {
        "case": case, "config": config, "impl": "pytorch", "torch": torch.__version__,
        "device": str(device), "dtype": dtype,
        "threads": torch.get_num_threads(), "blas": mapped_blas(), "tokens_per_s": tokens / med,
        "step_ms_median": med * 1e3, "step_ms_min": min(times) * 1e3, "step_ms_max": max(times) * 1e3,
        "steps": steps, "warmup": warmup,
        "peak_rss_mb": rss, "peak_cuda_mb": cuda_mb,
        "flops_per_token": fpt if case != "generate" else None, "achieved_flops": achieved,
        "matmul_peak_flops": peak, "peak_fraction": (achieved / peak) if achieved else None,
        "trainable_params": sum(p.numel() for p in params),
        "final_loss": float(last_loss[0]) if last_loss[0] is not None else None,
    }


PROFILE_PATH = None  # --profile


def main():
    global PROFILE_PATH
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", help="after timing, one more step under torch.profiler, chrome trace here")
    ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--case", choices=["clm_full", "clm_lora", "clm_qlora", "clm_dp_lora", "clm_hybrid", "mlm", "tok_full",
                                       "tok_lora", "forward", "generate"],
                    required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--impl", choices=["pytorch", "hf-peft", "opacus-peft"], default="pytorch",
                    help="hf-peft: the clm_full/lora/qlora step through transformers + peft (LLaMA-style configs); "
                         "opacus-peft: clm_dp_lora through transformers + peft + Opacus")
    ap.add_argument("--batch", type=int, help="override the config's batch (smoke checks of big presets)")
    ap.add_argument("--seq", type=int, help="override the config's sequence length")
    ap.add_argument("--grad-ckpt", action="store_true", help="hf-peft: gradient checkpointing")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa", help="hf-peft: transformers' attention")
    ap.add_argument("--compile", action="store_true", help="hf-peft: torch.compile of the transformers model")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="hf-peft encoder cases: hidden and attention dropout (the study trains with 0.1)")
    a = ap.parse_args()
    PROFILE_PATH = a.profile
    device = torch.device(a.device)
    if a.dtype == "bf16" and device.type != "cuda":
        raise SystemExit("bf16 is benchmarked on CUDA only")
    torch.set_num_threads(a.threads)
    set_openblas_threads(a.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if a.impl == "hf-peft" and a.case not in ("clm_full", "clm_lora", "clm_qlora", "tok_full", "tok_lora", "mlm"):
        raise SystemExit("--impl hf-peft times clm_full, clm_lora, clm_qlora, tok_full, tok_lora and mlm")
    if a.impl == "pytorch" and a.case in ("tok_full", "tok_lora"):
        raise SystemExit("tok_full and tok_lora are timed through --impl hf-peft (transformers + peft)")
    if (a.attn != "sdpa" or a.compile) and a.impl == "pytorch":
        raise SystemExit("--attn and --compile apply to the transformers implementations")
    if (a.impl == "opacus-peft") != (a.case == "clm_dp_lora"):
        raise SystemExit("clm_dp_lora is timed through --impl opacus-peft (transformers + peft + Opacus), and only it")
    if a.impl != "hf-peft" and a.case == "clm_qlora":
        raise SystemExit("clm_qlora is timed through --impl hf-peft (transformers + peft + bitsandbytes)")
    print(json.dumps(run(a.config, a.case, a.warmup, a.steps, a.seed, device, a.dtype, a.impl, a.batch, a.seq,
                         a.grad_ckpt, a.attn, a.compile, a.dropout)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

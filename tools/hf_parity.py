#!/usr/bin/env python3
"""Parity of libbiolm's Hugging Face loader, exporter and PEFT adapter export with transformers/peft.

For each of BertModel, MegatronBertModel, GPT2LMHeadModel, LlamaForCausalLM and
MistralForCausalLM this script
  1. builds a tiny model with random weights from its config (fixed seed) and saves it with
     save_pretrained(safe_serialization=True);
  2. runs `biolm convert logits DIR --ids ...` (our loader + forward) and compares our output with
     transformers' (last_hidden_state for the encoders, logits for the decoders): max |diff| <= 1e-4
     in float32;
  3. converts the directory to a biolm model directory and back (`biolm convert from-hf`, `to-hf`),
     loads the result with transformers and compares again (a bare BertModel body becomes a
     masked-LM model directory, since model directories hold task models: the new MLM head is
     reported missing, and BertModel.from_pretrained reads the body back from the
     BertForMaskedLM export);
  4. (decoders and BERT) attaches a random LoRA adapter in biolm (`--lora-rank`, B != 0), dumps the
     adapted output, exports it as a PEFT directory, loads it with
     PeftModel.from_pretrained(base, dir) and compares the outputs.

Needs python3 with torch, transformers, peft and safetensors, and a built `biolm` (default
build/tools/biolm/biolm, or --biolm). Without those packages it prints
"skipped: transformers/peft not installed" and exits 0, so CI can always call it.

    python3 tools/hf_parity.py [--biolm build/tools/biolm/biolm] [--keep DIR] [--only gpt2,llama]
Exit status: 0 all passed (or skipped), 1 a comparison failed, 2 a command failed.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

TOLERANCE = 1e-4  # float32: the models here are 2 layers of width 32; observed diffs are ~1e-6
IDS = [[2, 7, 11, 3, 19, 5, 23, 1]]
MISSING = [m for m in ("torch", "transformers", "peft", "safetensors") if importlib.util.find_spec(m) is None]


def run(cmd):
    print("  $ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        print(proc.stdout)
        raise SystemExit(2)
    return proc.stdout


def read_output(path):
    import torch

    with open(path) as f:
        j = json.load(f)
    return torch.tensor(j["data"], dtype=torch.float32).reshape(j["shape"])


def tiny_models():
    import transformers as t

    common = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
    yield "bert", "base", t.BertModel(t.BertConfig(max_position_embeddings=32, hidden_act="gelu", **common)), ["query", "value"]
    yield "megatron-bert", "base", t.MegatronBertModel(t.MegatronBertConfig(max_position_embeddings=32, **common)), ["query", "value"]
    yield "gpt2", "causal_lm", t.GPT2LMHeadModel(
        t.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=32)), ["q_proj", "v_proj"]
    yield "llama", "causal_lm", t.LlamaForCausalLM(
        t.LlamaConfig(num_key_value_heads=2, max_position_embeddings=64, rope_theta=500.0, **common)), ["q_proj", "v_proj"]
    yield "mistral", "causal_lm", t.MistralForCausalLM(
        t.MistralConfig(num_key_value_heads=2, max_position_embeddings=64, sliding_window=None, **common)), ["q_proj", "v_proj"]


def hf_output(model, encoder):
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor(IDS))
    return out.last_hidden_state if encoder else out.logits


def compare(name, ours, theirs):
    ours = ours.reshape(theirs.shape)
    diff = (ours - theirs).abs()
    worst = diff.max().item()
    ok = worst <= TOLERANCE
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: max|ours-hf| = {worst:.3g} (tolerance {TOLERANCE})", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--biolm", default=os.path.join(os.path.dirname(__file__), "..", "build", "tools", "biolm", "biolm"))
    ap.add_argument("--keep", help="write the model directories here and keep them")
    ap.add_argument("--only", help="comma-separated model types")
    args = ap.parse_args()
    if MISSING:
        print(f"skipped: transformers/peft not installed (missing python packages: {', '.join(MISSING)})")
        return 0
    biolm = shutil.which(args.biolm) or args.biolm
    if not os.path.exists(biolm):
        print(f"error: biolm executable not found at {biolm} (build the biolm_cli target or pass --biolm)")
        return 2

    import peft
    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    torch.manual_seed(0)
    work = args.keep or tempfile.mkdtemp(prefix="hf_parity_")
    os.makedirs(work, exist_ok=True)
    ids = ",".join(str(i) for i in IDS[0])
    only = set(args.only.split(",")) if args.only else None
    failures = 0
    for model_type, task, model, lora_targets in tiny_models():
        if only and model_type not in only:
            continue
        print(f"== {model_type} ({type(model).__name__})", flush=True)
        encoder = task == "base"
        model.eval()
        # Non-zero everything (LayerNorm weights start at 1, biases at 0 in transformers).
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        hf_dir = os.path.join(work, model_type)
        model.save_pretrained(hf_dir, safe_serialization=True)
        expected = hf_output(model, encoder)

        out = os.path.join(work, model_type + "_ours.json")
        run([biolm, "convert", "logits", hf_dir, "--ids", ids, "--task", task, "--out", out])
        failures += not compare("load HF dir", read_output(out), expected)

        ours_dir, back_dir = os.path.join(work, model_type + "_biolm"), os.path.join(work, model_type + "_back")
        run([biolm, "convert", "from-hf", hf_dir, ours_dir, "--task", "masked_lm" if encoder else task])
        run([biolm, "convert", "to-hf", ours_dir, back_dir, "--arch", model_type])
        back = type(model).from_pretrained(back_dir).eval()
        failures += not compare("our export loaded by transformers", hf_output(back, encoder), expected)

        adapter_dir = os.path.join(work, model_type + "_lora")
        out_lora = os.path.join(work, model_type + "_lora.json")
        targets = ",".join("**.attn." + ("q_proj" if t in ("query", "q_proj") else "v_proj") for t in lora_targets)
        run([biolm, "convert", "logits", hf_dir, "--ids", ids, "--task", task, "--out", out_lora,
             "--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", targets, "--lora-seed", "3",
             "--export-adapter", adapter_dir, "--base-name", hf_dir])
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            print("  adapter_config.json: " + json.dumps({k: v for k, v in json.load(f).items()
                                                          if k in ("peft_type", "r", "lora_alpha", "target_modules",
                                                                   "rank_pattern", "alpha_pattern", "task_type")}))
        base = type(model).from_pretrained(hf_dir).eval()
        adapted = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
        with torch.no_grad():
            out_peft = adapted(input_ids=torch.tensor(IDS))
        theirs = out_peft.last_hidden_state if encoder else out_peft.logits
        failures += not compare("PEFT loads our LoRA adapter", read_output(out_lora), theirs)
        moved = (theirs - expected).abs().max().item()
        print(f"  {'ok  ' if moved > 1e-3 else 'FAIL'} the adapter moves the output: max|adapted-base| = {moved:.3g}")
        failures += moved <= 1e-3

    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("PASSED" if failures == 0 else f"FAILED: {failures} comparison(s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

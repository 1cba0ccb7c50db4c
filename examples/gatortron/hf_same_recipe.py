#!/usr/bin/env python3
"""The study's transformers column: the recipe of one `biolm finetune` NER run, re-run with
transformers (+ peft for LoRA) on the same machine, so the two F1s and wall times can be compared.

Same: pretrained HF directory, CoNLL files, max length (first sub-word of a word carries its tag,
the others are ignored, as biolm's NerFeatureOptions::pieces = First), AdamW (betas, eps, weight
decay off for biases and norm weights), linear schedule with warmup to 0 at max_steps, gradient
clipping, batch size, number of optimizer steps, seed, evaluation with seqeval (default mode) and a
sentence bootstrap 95 % interval. Not the same (and cannot be): the random streams, so the head's
initialisation and the batch order differ as they would between two seeds.

    python hf_same_recipe.py --model DIR --train train.tsv --test test.tsv --steps 600 \
        --batch-size 32 --lr 5e-5 --max-length 128 [--method lora --lora-r 8] --out result.json
Needs the reference environment (tools/setup-python.sh). Nothing is downloaded.
"""
import argparse
import json
import os
import random
import time

import numpy as np


def read_conll(path):
    sents, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if words:
                    sents.append((words, tags))
                    words, tags = [], []
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2:
                raise SystemExit(f"{path}:{lineno}: expected 'token<TAB>tag'")
            words.append(cols[0])
            tags.append(cols[-1])
    if words:
        sents.append((words, tags))
    return sents


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, default=0.1,
                    help="hidden and attention dropout (the study passes its model section's value)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--method", choices=["full", "lora"], default="full")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out")
    a = ap.parse_args()

    import torch
    from seqeval.metrics import f1_score
    from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup

    if a.threads:
        torch.set_num_threads(a.threads)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    train, test = read_conll(a.train), read_conll(a.test)
    types = sorted({t[2:] for _, ts in train for t in ts if t != "O"})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    lid = {l: i for i, l in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(a.model)

    def features(sents):
        enc = tok([w for w, _ in sents], is_split_into_words=True, truncation=True, max_length=a.max_length)
        rows = []
        for i, (words, tags) in enumerate(sents):
            wid = enc.word_ids(i)
            lab, prev = [], None
            for w in wid:
                lab.append(-100 if w is None or w == prev else lid[tags[w]])
                prev = w
            rows.append((enc["input_ids"][i], lab, wid))
        return rows

    tr_rows, te_rows = features(train), features(test)
    model = AutoModelForTokenClassification.from_pretrained(
        a.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=lid,
        hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=0.0,
                                                 target_modules=["query", "value"], modules_to_save=["classifier"]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if n.endswith("bias") or "LayerNorm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, a.warmup, a.steps)
    pad = tok.pad_token_id

    def batch(rows):
        n = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), n), pad)
        lab = torch.full((len(rows), n), -100)
        att = torch.zeros((len(rows), n), dtype=torch.long)
        for i, (x, y, _) in enumerate(rows):
            ids[i, :len(x)] = torch.tensor(x)
            lab[i, :len(y)] = torch.tensor(y)
            att[i, :len(x)] = 1
        return ids, att, lab

    model.train()
    order, pos, step, t0 = [], 0, 0, time.time()
    while step < a.steps:
        if pos + a.batch_size > len(order):
            order = list(range(len(tr_rows)))
            random.shuffle(order)
            pos = 0
        ids, att, lab = batch([tr_rows[j] for j in order[pos:pos + a.batch_size]])
        pos += a.batch_size
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        loss.backward()
        if a.clip:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], a.clip)
        opt.step()
        sched.step()
        opt.zero_grad()
        step += 1
        if step % 50 == 0:
            print(f"step {step}/{a.steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0

    model.eval()
    gold, pred = [], []
    with torch.no_grad():
        for k in range(0, len(te_rows), 64):
            rows = te_rows[k:k + 64]
            ids, att, _ = batch(rows)
            out = model(input_ids=ids, attention_mask=att).logits.argmax(-1)
            for i, (_, _, wid) in enumerate(rows):
                words, tags = test[k + i]
                p, prev = ["O"] * len(words), None
                for t, w in enumerate(wid):
                    if w is not None and w != prev:
                        p[w] = labels[int(out[i, t])]
                    prev = w
                gold.append(tags)
                pred.append(p)
    f1 = f1_score(gold, pred)
    rng = np.random.default_rng(a.seed)
    boots = []
    for _ in range(a.bootstrap):
        idx = rng.integers(0, len(gold), len(gold))
        boots.append(f1_score([gold[i] for i in idx], [pred[i] for i in idx]))
    res = {"impl": "transformers+peft" if a.method == "lora" else "transformers", "method": a.method,
           "f1": f1, "ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
           "steps": a.steps, "train_seconds": train_s, "trainable_parameters": trainable,
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(res))
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()

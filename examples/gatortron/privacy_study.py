"""The study's federated and private part (issue #19): NCBI-disease spread over non-IID sites.

Called by real_study.py when its config has a `privacy:` block; not a command of its own.

The sites. NCBI-disease's CoNLL files carry no document boundaries, but its abstracts are
contiguous (title first), so the training file is cut into blocks of `block` consecutive
sentences (about one abstract: 5,424 sentences from 592 abstracts, 9.2 per abstract; a block
can straddle two abstracts). A block is "oncology" when one of its disease mentions matches
`topic_pattern` (cancer, tumour, carcinoma, ...). With probability `skew` an oncology block goes to
the first site (a cancer centre) and any other block to one of the remaining sites with the
weights `shares`; otherwise the block goes to a site drawn uniformly. Seeded: the split is the
same on every machine. Topic skew (which diseases a site sees) and quantity skew (site sizes)
together: the usual non-IID setting of federated NER.

The cells, all from the same starting point (MiniLM) with the same adapter (LoRA + the task
head), optimizer and learning rate, evaluated on the same dev and test files:
  * alone     each site fine-tunes on its own file only, with the local budget it spends in the
              federation (rounds x local_steps steps);
  * fedavg    `biolm federate`, FedAvg over all sites, rounds x local_steps;
  * fedprox   the same with FedProx's proximal term mu;
  * central   all sites' sentences pooled (what nobody may do with clinical notes), with the
              federation's total number of steps (sites x rounds x local_steps);
  * dp-eps-E  FedAvg with DP-SGD at every site, each site spending at most E (at delta) over all
              its rounds: Poisson sampling of expected batch batch_size x dp.grad_accum,
              clipping to dp.max_grad_norm, sigma from the RDP accountant.
Every sentence of the sites fits one row (max_length covers the longest), so the privacy unit
of the DP cells is one sentence.
"""
import json
import math
import os
import random
import re

import study_runs  # tools/python (real_study.py puts it on the path)


def _sentences(path):
    block = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip():
                block.append(line)
            elif block:
                yield block
                block = []
    if block:
        yield block


def _mentions(sentences):
    out = []
    for s in sentences:
        cur = None
        for line in s:
            word, tag = line.split("\t")[0], line.split("\t")[-1]
            if tag.startswith("B-"):
                if cur:
                    out.append(" ".join(cur))
                cur = [word]
            elif tag.startswith("I-") and cur:
                cur.append(word)
            else:
                if cur:
                    out.append(" ".join(cur))
                cur = None
        if cur:
            out.append(" ".join(cur))
    return out


def split_sites(p, train_path, out_dir):
    """Writes out_dir/<site>.conll; returns [{name, train, sentences, mentions, blocks, oncology_blocks}]."""
    sents = list(_sentences(train_path))
    size = p["block"]
    blocks = [sents[i:i + size] for i in range(0, len(sents), size)]
    pat = re.compile(p["topic_pattern"], re.IGNORECASE)
    names = [f"site_{chr(ord('a') + i)}" for i in range(p["sites"])]
    shares = p["shares"]
    if len(shares) != len(names) - 1:
        raise SystemExit(f"privacy.shares: {len(shares)} weights for {len(names) - 1} non-oncology sites")
    rng = random.Random(p["split_seed"])
    got = {n: [] for n in names}
    for b in blocks:
        onc = any(pat.search(m) for m in _mentions(b))
        if rng.random() < p["skew"]:
            site = names[0] if onc else rng.choices(names[1:], weights=shares)[0]
        else:
            site = rng.choice(names)
        got[site].append((b, onc))
    os.makedirs(out_dir, exist_ok=True)
    sites = []
    for n in names:
        path = os.path.join(out_dir, f"{n}.conll")
        sentences = [s for b, _ in got[n] for s in b]
        _write_conll(path, sentences)
        sites.append({"name": n, "train": path, "sentences": len(sentences),
                      "mentions": len(_mentions(sentences)), "blocks": len(got[n]),
                      "oncology_blocks": sum(1 for _, o in got[n] if o)})
    pooled = os.path.join(out_dir, "pooled.conll")
    _write_conll(pooled, [s for n in names for b, _ in got[n] for s in b])
    return sites, pooled


def _write_conll(path, sentences):
    """Writes the sentences (lists of lines) as a CoNLL file, unless the file already holds exactly that."""
    text = "\n\n".join("\n".join(s) for s in sentences) + "\n"
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _curve(run):
    out = []
    path = os.path.join(run, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            out = [json.loads(x) for x in f]
    return out


def run_cells(cfg, out, starts, env, report_only, run_cmd, tail, log, deep_merge):
    """Runs (or reuses) every cell; returns {'sites': [...], 'cells': [record, ...]}."""
    p = cfg["privacy"]
    t = cfg["tasks"][p["task"]]
    shared = cfg["data"]
    sites, pooled = split_sites(p, os.path.join(shared, t["train"]), os.path.join(out, "data", "sites"))
    log("privacy sites: " + "; ".join(f"{s['name']} {s['sentences']} sentences, {s['oncology_blocks']}/{s['blocks']} "
                                      "oncology blocks" for s in sites))
    start = starts[p["start"]]
    local = p["rounds"] * p["local_steps"]
    common = {"seed": p["seed"], "device": "cpu", "task": t["kind"],
              "data": {"dev": os.path.join(shared, t["dev"]), "test": os.path.join(shared, t["test"]),
                       "max_length": p["max_length"]},
              "model": {"init": start["init"], "hidden_dropout": cfg.get("dropout", 0.1),
                        "attention_dropout": cfg.get("dropout", 0.1)},
              "peft": p["peft"],
              "train": {"batch_size": p["batch_size"], "lr": p["lr"], "schedule": "constant", "warmup_steps": 0,
                        "clip_grad_norm": 1.0},
              "eval": {"bootstrap": cfg["bootstrap"]}}
    federation = {"rounds": p["rounds"], "fraction": 1.0, "min_clients": len(sites), "local_steps": p["local_steps"],
                  "algorithm": "fedavg", "exchange": "adapters", "round_timeout_s": 3600}
    plan = []
    for s in sites:
        plan.append(("alone", s["name"], "finetune", local,
                     {"data": {"train": s["train"]}, "train": {"max_steps": local, "eval_every": p["local_steps"],
                                                               "log_every": p["local_steps"]}}))
    fed_sites = [{"name": s["name"], "train": s["train"]} for s in sites]
    plan.append(("fedavg", "all", "federate", local, {"sites": fed_sites, "federation": federation}))
    plan.append(("fedprox", "all", "federate", local,
                 {"sites": fed_sites, "federation": dict(federation, algorithm="fedprox", mu=p["fedprox_mu"])}))
    plan.append(("central", "pooled", "finetune", local * len(sites),
                 {"data": {"train": pooled}, "train": {"max_steps": local * len(sites),
                                                       "eval_every": p["local_steps"] * len(sites),
                                                       "log_every": p["local_steps"]}}))
    dp = p["dp"]
    for eps in dp["epsilons"]:
        steps = max(1, p["local_steps"] // dp["grad_accum"])
        plan.append((f"dp-eps-{eps:g}", "all", "federate", p["rounds"] * steps,
                     {"sites": fed_sites, "federation": dict(federation, local_steps=steps),
                      "train": {"lr": dp.get("lr", p["lr"]), "grad_accum": dp["grad_accum"], "clip_grad_norm": None,
                                "dp": {"target_epsilon": eps, "delta": dp["delta"], "max_grad_norm": dp["max_grad_norm"],
                                       "sampling": "poisson"}}}))
    cells = []
    for cell, who, command, steps_per_site, extra in plan:
        name = f"privacy-{cell}" + (f"-{who}" if cell == "alone" else "")
        run = os.path.join(out, "runs", name)
        rec_path = os.path.join(run, "study_run.json")
        conf = deep_merge(deep_merge(json.loads(json.dumps(common)), extra), {"output": run})
        cfg_path = os.path.join(run, "study_config.json")
        rec = study_runs.reuse(name, rec_path, cfg_path, conf, log, [run, run + ".log"], report_only)
        if rec:
            cells.append(rec)
            continue
        if report_only:
            continue
        study_runs.write_recipe(cfg_path, conf)
        rc, secs, rss = run_cmd([cfg["biolm"], "--log-level", "info", command, "--config", cfg_path], run + ".log", env)
        if rc != 0:
            raise SystemExit(f"{name} failed (rc {rc}):\n{tail(run + '.log')}")
        res = json.load(open(os.path.join(run, "results.json")))
        rec = {"name": name, "cell": cell, "site": who, "command": command, "seconds": secs, "peak_rss_mb": rss,
               "metrics": res["tasks"][t["kind"]], "curve": _curve(run), "steps_per_site": steps_per_site}
        if command == "federate":
            rec.update({k: res.get(k) for k in ("rounds", "bytes_up", "bytes_down", "exchanged_bytes", "exchanged_tensors")})
            if "privacy" in res:
                rec["privacy"] = res["privacy"]
        else:
            rec["trainable_parameters"] = res.get("trainable_parameters")
        with open(rec_path, "w") as f:
            json.dump(rec, f)
        f1 = rec["metrics"]["f1"]
        log(f"{name}: f1 {f1['value'] if isinstance(f1, dict) else f1:.4f} in {secs:.0f} s, {rss:.0f} MB")
        cells.append(rec)
    return {"sites": sites, "cells": cells}


def _f1(rec):
    f1 = rec["metrics"]["f1"]
    return (f1["value"], f1.get("ci", [math.nan, math.nan])) if isinstance(f1, dict) else (f1, [math.nan, math.nan])


def _mib(b):
    return b / 2**20


def section(cfg, result, save, plt):
    """Markdown lines and (title, figure path) plots of the privacy part of the report."""
    p = cfg["privacy"]
    sites, cells = result["sites"], result["cells"]
    lines = ["", "## Federated and private fine-tuning (NCBI-disease over non-IID sites)", "",
             f"MiniLM + LoRA (rank {p['peft'].get('lora', {}).get('rank', '?')}) and the task head, lr {p['lr']:g} "
             f"(constant), batch {p['batch_size']}, max_length {p['max_length']} (every training sentence is one row), "
             f"seed {p['seed']}. The training file is cut into blocks of {p['block']} consecutive sentences "
             "(about one abstract; the CoNLL file has no document boundaries); a block whose disease mentions name a "
             f"cancer goes to {sites[0]['name']} with probability {p['skew']}, the others to the remaining sites "
             f"with weights {p['shares']}, the rest uniformly. Federations: {p['rounds']} rounds x "
             f"{p['local_steps']} local steps, every site every round, FedAvg weighted by sentences, LoRA + head "
             "exchanged. *alone*: a site's own file with its federated budget; *central*: the pooled file with the "
             "federation's total steps. DP cells: FedAvg with DP-SGD at every site (Poisson sampling, expected batch "
             f"{p['batch_size']} x {p['dp']['grad_accum']}, clip {p['dp']['max_grad_norm']}, lr "
             f"{p['dp'].get('lr', p['lr']):g}, {p['local_steps'] // p['dp']['grad_accum']} steps per round, so "
             "the same number of examples per round), each site's epsilon over all its rounds at delta "
             f"{p['dp']['delta']:g}, one sentence the unit.", "",
             "| site | sentences | disease mentions | blocks | oncology blocks |", "|---|---:|---:|---:|---:|"]
    for s in sites:
        lines.append(f"| {s['name']} | {s['sentences']:,} | {s['mentions']:,} | {s['blocks']} | "
                     f"{s['oncology_blocks']} ({s['oncology_blocks'] / max(1, s['blocks']):.0%}) |")
    lines += ["", "| cell | test F1 [95% CI] | steps per site | epsilon (max over sites) | up + down per round (MiB) | "
              "wall time (s) | peak RSS (MB) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in cells:
        v, ci = _f1(r)
        eps = "—"
        if r.get("privacy"):
            eps = f"{max(x['epsilon'] for x in r['privacy'].values()):.3f}"
        comm = "—"
        if r.get("rounds"):
            comm = f"{_mib(r['bytes_up']) / r['rounds']:.2f} + {_mib(r['bytes_down']) / r['rounds']:.2f}"
        label = r["cell"] + (f" ({r['site']})" if r["cell"] == "alone" else "")
        lines.append(f"| {label} | {v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {r['steps_per_site']} | {eps} | {comm} | "
                     f"{r['seconds']:.0f} | {r['peak_rss_mb']:.0f} |")
    dps = [r for r in cells if r.get("privacy")]
    if dps:
        lines += ["", "Per-site privacy spent (epsilon at delta, noise multiplier sigma, sampling rate q, DP steps):", ""]
        for r in dps:
            parts = [f"{s} eps {x['epsilon']:.3f}, sigma {x['noise_multiplier']:.3f}, q {x['sample_rate']:.4f}, "
                     f"{x['steps']} steps" for s, x in sorted(r["privacy"].items())]
            lines.append(f"- {r['cell']}: " + "; ".join(parts))
    plots = []
    if cells:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        names = [r["cell"] + ("\n" + r["site"] if r["cell"] == "alone" else "") for r in cells]
        vals = [_f1(r)[0] for r in cells]
        err = [[max(0.0, v - _f1(r)[1][0]) for v, r in zip(vals, cells)],
               [max(0.0, _f1(r)[1][1] - v) for v, r in zip(vals, cells)]]
        axes[0].bar(range(len(cells)), vals, yerr=err, capsize=3,
                    color=["#888" if r["cell"] == "alone" else "#c44" if r["cell"].startswith("dp") else "#47a"
                           for r in cells])
        axes[0].set_xticks(range(len(cells)))
        axes[0].set_xticklabels(names, rotation=60, fontsize=7)
        axes[0].set_ylabel("test F1 (95% CI)")
        axes[0].set_title("NCBI-disease, non-IID sites")
        for r in cells:
            pts = [(c["round"], c["dev_f1"]) for c in r["curve"] if "round" in c and "dev_f1" in c]
            if pts:
                axes[1].plot([x for x, _ in pts], [y for _, y in pts], marker=".", label=r["cell"])
        axes[1].set_xlabel("round")
        axes[1].set_ylabel("dev F1 of the global model")
        axes[1].set_title("federations, round by round")
        axes[1].legend(fontsize=7)
        plots.append(("federated and private fine-tuning", save(fig, "privacy_ncbi")))
    return lines, plots


def check(result, cfg):
    """The privacy part's own assertions: every cell ran, every DP site stayed within its budget."""
    bad = []
    p = cfg["privacy"]
    want = p["sites"] + 3 + len(p["dp"]["epsilons"])
    if len(result["cells"]) != want:
        bad.append(f"privacy: {len(result['cells'])} of {want} cells ran")
    for r in result["cells"]:
        if r["cell"].startswith("dp-"):
            target = float(r["cell"][len("dp-eps-"):])
            for s, x in (r.get("privacy") or {}).items():
                if not x["epsilon"] <= target * (1 + 1e-9):
                    bad.append(f"privacy: {r['cell']} site {s} spent epsilon {x['epsilon']:.4f} > {target}")
            if not r.get("privacy"):
                bad.append(f"privacy: {r['cell']} reports no privacy spent")
    return bad

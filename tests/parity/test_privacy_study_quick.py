"""The study's federated and private part in its CI version
(examples/gatortron/real_study.py --quick --parts privacy) on ../shared/data's NCBI-disease: the
non-IID site split, alone / FedAvg / FedProx / central cells and a DP-FedAvg cell, and their
report. One round of four steps learns little; what is asserted is the experiment's bookkeeping:
no sentence lost or duplicated, the skew it claims, the budget each DP site spent, the bytes it
reports."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SOURCE_DIR


def sentences(path):
    text = Path(path).read_text(encoding="utf-8")
    return [b.strip("\n") for b in text.split("\n\n") if b.strip()]


def test_privacy_study_quick(biolm_exe, shared_data, tmp_path):
    out = (Path(os.environ["BIOLM_PARITY_WORK"]) / "privacy-quick") if os.environ.get("BIOLM_PARITY_WORK") else tmp_path / "p"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, BIOLM=biolm_exe)
    proc = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "examples", "gatortron", "real_study.py"),
                           "--quick", "--parts", "privacy", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=SOURCE_DIR)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "study check passed" in proc.stdout
    rep = json.load(open(out / "report.json"))
    priv = rep["privacy"]
    sites = priv["sites"]
    assert [s["name"] for s in sites] == ["site_a", "site_b", "site_c"]

    # The sites partition the training file: every sentence once, none changed.
    train = sentences(Path(shared_data) / "ncbi_disease_conll" / "train.tsv")
    parts = [sentences(s["train"]) for s in sites]
    assert sum(len(p) for p in parts) == len(train) == 5424
    assert sorted(x for p in parts for x in p) == sorted(train)
    assert sentences(out / "data" / "sites" / "pooled.conll") == [x for p in parts for x in p]
    for s, p in zip(sites, parts):
        assert s["sentences"] == len(p)
    # Non-IID as claimed: the cancer centre holds mostly oncology blocks, the others few.
    share = [s["oncology_blocks"] / s["blocks"] for s in sites]
    assert share[0] > 0.7 and max(share[1:]) < 0.2, share

    cells = {c["name"]: c for c in priv["cells"]}
    assert set(cells) == {"privacy-alone-site_a", "privacy-alone-site_b", "privacy-alone-site_c", "privacy-fedavg",
                          "privacy-fedprox", "privacy-central", "privacy-dp-eps-8"}
    for c in cells.values():
        f1 = c["metrics"]["f1"]
        assert 0.0 <= f1["value"] <= 1.0 and f1["ci"][0] <= f1["value"] <= f1["ci"][1], c["name"]
    for name in ("privacy-fedavg", "privacy-fedprox", "privacy-dp-eps-8"):
        c = cells[name]
        # One round, three sites: each downloads and uploads the exchanged tensors once.
        assert c["rounds"] == 1
        assert c["bytes_up"] == c["bytes_down"] == 3 * c["exchanged_bytes"], c
    dp = cells["privacy-dp-eps-8"]["privacy"]
    assert set(dp) == {"site_a", "site_b", "site_c"}
    for site, x in dp.items():
        # sigma is chosen to spend the budget: within the search's 1 % tolerance below 8, never above.
        assert 7.9 <= x["epsilon"] <= 8.0, (site, x)
        assert x["steps"] == 2 and x["delta"] == 1e-5
        n = next(s["sentences"] for s in sites if s["name"] == site)
        assert abs(x["sample_rate"] - 32 / n) < 1e-12, (site, x, n)
    md = (out / "report.md").read_text()
    assert "## Federated and private fine-tuning" in md and "| dp-eps-8 |" in md
    for name in ("figures/privacy_ncbi.png", "figures/privacy_ncbi.svg", "report.html"):
        assert (out / name).stat().st_size > 0, name

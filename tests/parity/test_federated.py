"""The `biolm` Python module (python/) against the C++ federation and Flower's own aggregation.

- Two rounds driven from Python over biolm.Site (get/set parameters as numpy, local training),
  aggregated with Flower's FedAvg arithmetic (flwr.server.strategy.aggregate.aggregate), equal
  the global state `biolm federate` checkpoints after round 2 (1e-6).
- Parameters round-trip exactly; wrong names/shapes are CheckpointErrors naming the tensor.
- biolm and a pip torch never share a process: ImportError, not a crash (python/biolm/__init__.py).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXE = Path(os.environ.get("BIOLM_EXE", "build/bin/biolm"))
PYDIR = EXE.resolve().parent.parent / "python"
SRC = Path(os.environ.get("BIOLM_SOURCE_DIR", Path(__file__).resolve().parents[2]))
CONFIG = str(SRC / "examples/configs/federated_ner_demo.yaml")
if not (PYDIR / "biolm").is_dir():
    pytest.skip(f"no Python module at {PYDIR}/biolm (configure with BIOLM_BUILD_PYTHON=ON and pybind11)",
                allow_module_level=True)
sys.path.insert(0, str(PYDIR))
os.chdir(SRC)  # the demo config's data paths are relative to the repository root

import biolm  # noqa: E402

biolm.set_log_level("warn")
SMALL = ["federation.local_steps=3", "eval.bootstrap=0"]


def test_python_rounds_equal_biolm_federate(tmp_path):
    from flwr.server.strategy.aggregate import aggregate  # Flower's FedAvg: Σ n_k w_k / Σ n_k

    out = tmp_path / "py"
    over = SMALL + [f"output={out}"]
    server = biolm.Site(CONFIG, "server", over)
    sites = [biolm.Site(CONFIG, n, over) for n in server.site_names]
    names = server.parameter_names()
    glob = server.get_parameters()
    for rnd in (1, 2):
        results = []
        for s in sites:
            s.set_parameters(glob)
            info = s.train(rnd)
            p = s.get_parameters()
            results.append(([p[n] for n in names], info["n_examples"]))
        glob = dict(zip(names, aggregate(results)))

    ref = tmp_path / "cpp"
    subprocess.run([str(EXE), "--log-level", "warn", "federate", "--config", CONFIG, f"output={ref}",
                    "federation.rounds=2", *SMALL], check=True, stdout=subprocess.DEVNULL)
    from safetensors.numpy import load_file
    cpp = load_file(str(ref / "checkpoints" / "step-00000002" / "global.safetensors"))
    assert sorted(cpp) == names
    worst = max(float(np.abs(cpp[n] - glob[n]).max()) for n in names)
    moved = max(float(np.abs(cpp[n] - server.get_parameters()[n]).max()) for n in names)
    assert moved > 1e-3, "training did not move the exchanged tensors"
    assert worst <= 1e-6, f"max|python - biolm federate| = {worst}"


def test_parameters_round_trip_and_errors(tmp_path):
    s = biolm.Site(CONFIG, "site_b", SMALL + [f"output={tmp_path}"])
    p = s.get_parameters()
    assert all(a.dtype == np.float32 for a in p.values())
    assert s.n_examples == 231  # data/ner_sites/site_b.conll
    shifted = {n: a + 0.25 for n, a in p.items()}
    s.set_parameters(shifted)
    back = s.get_parameters()
    for n in p:
        np.testing.assert_array_equal(back[n], shifted[n])
    first = sorted(p)[0]
    with pytest.raises(biolm.CheckpointError, match=first):
        s.set_parameters({n: a for n, a in p.items() if n != first})
    with pytest.raises(biolm.CheckpointError, match=first):
        s.set_parameters({**p, first: np.zeros((1, 2, 3), np.float32)})
    with pytest.raises(biolm.ConfigError, match="no site named"):
        biolm.Site(CONFIG, "nowhere", SMALL + [f"output={tmp_path}"])
    with pytest.raises(biolm.ConfigError, match="federation.roundz"):
        biolm.Site(CONFIG, "site_a", ["federation.roundz=1", f"output={tmp_path}"])


@pytest.mark.parametrize("code", ["import torch; import biolm", "import biolm; import torch"])
def test_torch_in_the_same_process_is_refused(code):
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(PYDIR)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "ImportError" in r.stderr and "LibTorch" in r.stderr


class _Grid:
    """The part of a Flower Grid a strategy's configure_train reads: the connected node ids."""

    def __init__(self, node_ids):
        self.node_ids = node_ids

    def get_node_ids(self):
        return self.node_ids


@pytest.mark.parametrize("algorithm", ["fedavg", "fedprox"])
def test_flower_clientapp_with_flower_strategies_equals_biolm_federate(tmp_path, algorithm):
    """biolm.flower:app driven by Flower's own FedAvg / FedProx strategy objects (configure_train,
    the ClientApp call, aggregate_train) for two rounds = `biolm federate` (1e-6). The messages go
    by direct calls: no SuperLink / SuperNode transport (docs/federated.md says why)."""
    from flwr.app import ConfigRecord, Context, RecordDict
    from flwr.serverapp.strategy import FedAvg, FedProx

    from flwr.supercore.task_identity import TaskIdentity

    from biolm.flower import app, to_arrays

    # What Flower's runtime sets in the process of a run (messages read it when built).
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1

    mu = 0.05
    over = SMALL + [f"output={tmp_path / 'flower'}"]
    fed = [] if algorithm == "fedavg" else ["federation.algorithm=fedprox", f"federation.mu={mu}"]
    server = biolm.Site(CONFIG, "server", over)
    node_site = {101: "site_a", 102: "site_b", 103: "site_c"}
    contexts = {n: Context(run_id=1, node_id=n, node_config={"site": s}, state=RecordDict(),
                           run_config={"biolm-config": CONFIG, "biolm-overrides": ";".join(over)})
                for n, s in node_site.items()}
    # Flower's strategies with biolm's schedule: every site every round.
    kw = dict(fraction_train=1.0, min_train_nodes=3, min_available_nodes=3, fraction_evaluate=0.0)
    strategy = FedAvg(**kw) if algorithm == "fedavg" else FedProx(proximal_mu=mu, **kw)
    arrays = to_arrays(server)
    for rnd in (1, 2):
        messages = list(strategy.configure_train(rnd, arrays, ConfigRecord(), _Grid(sorted(node_site))))
        assert sorted(m.metadata.dst_node_id for m in messages) == sorted(node_site)
        replies = [app(m, contexts[m.metadata.dst_node_id]) for m in messages]
        arrays, metrics = strategy.aggregate_train(rnd, replies)
        assert arrays is not None
    glob = {k: v.numpy() for k, v in arrays.items()}

    ref = tmp_path / "cpp"
    subprocess.run([str(EXE), "--log-level", "warn", "federate", "--config", CONFIG, f"output={ref}",
                    "federation.rounds=2", *SMALL, *fed], check=True, stdout=subprocess.DEVNULL)
    from safetensors.numpy import load_file
    cpp = load_file(str(ref / "checkpoints" / "step-00000002" / "global.safetensors"))
    assert sorted(cpp) == sorted(glob)
    worst = max(float(np.abs(cpp[n] - glob[n]).max()) for n in cpp)
    assert worst <= 1e-6, f"max|flower - biolm federate| = {worst}"

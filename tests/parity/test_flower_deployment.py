"""Flower's deployment runtime, end to end on this machine: a SuperLink, three SuperNodes (one per
site of examples/configs/federated_ner_demo.yaml, each running biolm's ClientApp
python/biolm/flower.py) and `flwr run` of a ServerApp with Flower's own FedAvg
(tests/parity/flower_app/). Two rounds over Flower's transport (HTTP Fleet and Control APIs,
ClientApps in flwr-clientapp subprocesses) end at the global state `biolm federate` checkpoints
after round 2, within 1e-6.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EXE = Path(os.environ.get("BIOLM_EXE", "build/bin/biolm"))
PYDIR = EXE.resolve().parent.parent / "python"
SRC = Path(os.environ.get("BIOLM_SOURCE_DIR", Path(__file__).resolve().parents[2]))
CONFIG = str(SRC / "examples/configs/federated_ner_demo.yaml")
VENV_BIN = Path(sys.executable).parent
if not (PYDIR / "biolm").is_dir():
    pytest.skip(f"no Python module at {PYDIR}/biolm (configure with BIOLM_BUILD_PYTHON=ON and pybind11)",
                allow_module_level=True)
if not (VENV_BIN / "flower-superlink").exists():
    pytest.skip(f"no flower-superlink beside {sys.executable}", allow_module_level=True)

SITES = ["site_a", "site_b", "site_c"]
SMALL = ["federation.local_steps=3", "eval.bootstrap=0"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, ok, timeout, logs):
    end = time.time() + timeout
    while time.time() < end:
        if ok():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")


def test_flwr_run_over_superlink_and_supernodes_equals_biolm_federate(tmp_path):
    home = tmp_path / "flwr_home"
    home.mkdir()
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "parity"\n\n[superlink.parity]\naddress = "127.0.0.1:{port}"\ninsecure = true\n')
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", FLWR_HOME=str(home),
               PYTHONPATH=str(PYDIR))
    procs, logs = [], []

    def start(name, args):
        log = tmp_path / f"{name}.log"
        logs.append(log)
        # Own session: teardown kills the whole group (SuperNodes start flower-superexec children).
        procs.append(subprocess.Popen([str(a) for a in args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                      env=env, cwd=SRC, start_new_session=True))

    result = tmp_path / "result.npz"
    over = SMALL + [f"output={tmp_path / 'flower'}"]
    try:
        start("superlink", [VENV_BIN / "flower-superlink", "--insecure", "--port", port,
                            "--disable-runtime-dependency-installation"])

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for("the SuperLink", listening, 60, logs)
        for site in SITES:
            start(site, [VENV_BIN / "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{port}",
                         "--port", free_port(), "--node-config", f'site="{site}"'])
        wait_for("three SuperNodes", lambda: logs[0].read_text().count("Activated node_id") >= 3, 90, logs)
        app = tmp_path / "app"
        shutil.copytree(SRC / "tests" / "parity" / "flower_app", app)
        run_config = f'biolm-config="{CONFIG}" biolm-overrides="{";".join(over)}" result="{result}"'
        r = subprocess.run([str(VENV_BIN / "flwr"), "run", str(app), "parity", "--stream", "--run-config", run_config],
                           env=env, cwd=app, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "Received 3 results and 0 failures" in r.stdout + r.stderr, r.stdout[-3000:]
        wait_for("the ServerApp's result", result.exists, 60, logs)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    flower = np.load(result)
    ref = tmp_path / "cpp"
    subprocess.run([str(EXE), "--log-level", "warn", "federate", "--config", CONFIG, f"output={ref}",
                    "federation.rounds=2", *SMALL], check=True, stdout=subprocess.DEVNULL, cwd=SRC)
    from safetensors.numpy import load_file

    cpp = load_file(str(ref / "checkpoints" / "step-00000002" / "global.safetensors"))
    assert sorted(cpp) == sorted(flower.files)
    worst = max(float(np.abs(cpp[n] - flower[n]).max()) for n in cpp)
    assert worst <= 1e-6, f"max|flower deployment - biolm federate| = {worst}"

"""Shared fixtures of the parity suite (run by tests/parity/run_pytest.sh under ctest).

Environment (set by tests/parity/CMakeLists.txt): BIOLM_EXE (the built `biolm`), BIOLM_SOURCE_DIR,
BIOLM_SHARED_DATA (the real public files, ../shared/data), BIOLM_PARITY_WORK (scratch space).
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("BIOLM_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools", "python"))

import reference_env  # noqa: E402  (tools/python)


def _env_path(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"{name} is not set: run the parity suite through ctest (-L parity)")
    return value


@pytest.fixture(scope="session")
def biolm_exe():
    path = _env_path("BIOLM_EXE", os.path.join(SOURCE_DIR, "build", "bin", "biolm"))
    assert os.access(path, os.X_OK), f"{path}: not an executable biolm"
    return path


@pytest.fixture(scope="session")
def shared_data():
    path = _env_path("BIOLM_SHARED_DATA", os.path.join(SOURCE_DIR, "..", "shared", "data"))
    assert os.path.isdir(path), f"{path}: the shared real data is missing"
    return path


@pytest.fixture(scope="session")
def minilm_dir():
    return reference_env.minilm_dir()


@pytest.fixture()
def work(tmp_path):
    return tmp_path


def run_biolm(exe, *args, check=True, input=None):
    """Runs `biolm ARGS...`; returns CompletedProcess (text). Fails the test with its output."""
    proc = subprocess.run([exe, *map(str, args)], input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"biolm {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_json(path):
    with open(path) as f:
        return json.load(f)


def record_max(table, key, value):
    """Records a measured maximum into $BIOLM_PARITY_WORK/maxima.jsonl (docs/parity.md's table)."""
    work = os.environ.get("BIOLM_PARITY_WORK")
    if not work:
        return
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "maxima.jsonl"), "a") as f:
        f.write(json.dumps({"table": table, "case": key, "max_abs_diff": float(value)}) + "\n")

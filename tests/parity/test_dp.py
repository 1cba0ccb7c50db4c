"""DP-SGD accounting: `biolm privacy` against Opacus 1.6's RDPAccountant and get_noise_multiplier.

The grid spans sigma 0.5..5, q 1e-3..0.1, steps 1..1e4, delta 1e-5..1e-3 (525 settings for
epsilon, 72 for the noise search); every value must agree to 1e-6 relative (measured: ~1e-11).
"""
import itertools
import json
import math
import warnings

import pytest

from conftest import record_max, run_biolm

opacus = pytest.importorskip("opacus")
from opacus.accountants import RDPAccountant  # noqa: E402
from opacus.accountants.utils import get_noise_multiplier  # noqa: E402

SIGMAS = [0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0]
QS = [1e-3, 3e-3, 1e-2, 3e-2, 0.1]
STEPS = [1, 10, 100, 1000, 10000]
DELTAS = [1e-5, 1e-4, 1e-3]
TOL = 1e-6


def opacus_epsilon(sigma, q, steps, delta):
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha" for tiny q/steps
        return acc.get_privacy_spent(delta=delta)


def lines(proc):
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_epsilon_grid_equals_opacus(biolm_exe):
    args = ["privacy", "epsilon", "--sigma", *SIGMAS, "--q", *QS, "--steps", *STEPS, "--delta", *DELTAS]
    got = lines(run_biolm(biolm_exe, *args))
    grid = list(itertools.product(SIGMAS, QS, STEPS, DELTAS))
    assert len(got) == len(grid)
    worst, where = 0.0, None
    for row, (sigma, q, steps, delta) in zip(got, grid):
        assert (row["sigma"], row["q"], row["steps"], row["delta"]) == (sigma, q, steps, delta)
        eps, order = opacus_epsilon(sigma, q, steps, delta)
        rel = abs(row["epsilon"] - eps) / abs(eps)
        if rel > worst:
            worst, where = rel, (sigma, q, steps, delta, eps, row["epsilon"])
        assert row["best_order"] == pytest.approx(order), (sigma, q, steps, delta)
    record_max("dp accountant", "rdp epsilon, 525 settings (relative)", worst)
    assert worst <= TOL, f"worst relative difference {worst:.3g} at {where}"


def test_noise_multiplier_search_equals_opacus(biolm_exe):
    targets, qs, steps_list, deltas = [0.5, 1.0, 3.0, 8.0], [1e-3, 1e-2, 0.1], [10, 1000, 10000], [1e-5, 1e-3]
    args = ["privacy", "sigma", "--target-epsilon", *targets, "--q", *qs, "--steps", *steps_list, "--delta", *deltas]
    got = lines(run_biolm(biolm_exe, *args))
    grid = list(itertools.product(targets, qs, steps_list, deltas))
    assert len(got) == len(grid)
    worst = 0.0
    for row, (target, q, steps, delta) in zip(got, grid):
        sigma = get_noise_multiplier(target_epsilon=target, target_delta=delta, sample_rate=q, steps=steps)
        rel = abs(row["sigma"] - sigma) / sigma
        worst = max(worst, rel)
        assert rel <= TOL, (target, q, steps, delta, sigma, row["sigma"])
        assert row["epsilon"] <= target
    record_max("dp accountant", "rdp noise multiplier search, 72 settings (relative)", worst)


def test_privacy_command_refuses_bad_input(biolm_exe):
    proc = run_biolm(biolm_exe, "privacy", "epsilon", "--sigma", 1, "--q", 2, "--steps", 10, check=False)
    assert proc.returncode == 2 and "privacy.q" in proc.stderr
    proc = run_biolm(biolm_exe, "privacy", "sigma", "--target-epsilon", 1e-9, "--q", 0.01, "--steps", 100000,
                     check=False)
    assert proc.returncode == 2 and "budget is too low" in proc.stderr
    assert math.isinf(float(opacus_epsilon(0.0, 0.01, 10, 1e-5)[0]))
    out = lines(run_biolm(biolm_exe, "privacy", "epsilon", "--sigma", 0, "--q", 0.01, "--steps", 10))
    assert out[0]["epsilon"] == "inf"

"""Reusing a study's finished runs only when they ran the recipe the config asks for now.

real_study.py and privacy_study.py keep every finished run, so a stopped study continues where it
stopped. A run is reused only if the recipe it ran with (its finetune config, or the command line
of a pretraining or transformers run), stored beside its record, equals the recipe the current
config gives it. Otherwise its record is stale: it is removed, the change is logged, and the run
is done again (or, in --report-only mode, left out of the report). Without this check, changing a
learning rate or a step count in the config and rerunning the study would report the old runs
under the new config.
"""
import json
import os
import shutil


def _canonical(recipe):
    return json.loads(json.dumps(recipe))


def reuse(name, record_path, recipe_path, recipe, log, outputs=(), report_only=False):
    """The record at record_path when it exists and recipe_path holds `recipe`, else None.

    When the stored recipe differs (or a record has none), the run is stale: the difference is
    logged, and unless report_only the record, the stored recipe and the run's `outputs` (files or
    directories: an interrupted run of another recipe must not be resumed) are removed, so the
    caller runs it afresh. An interrupted run of the same recipe keeps its outputs (biolm resumes
    it from its checkpoints)."""
    have_record = os.path.exists(record_path)
    stored = None
    if os.path.exists(recipe_path):
        with open(recipe_path) as f:
            stored = json.load(f)
    want = _canonical(recipe)
    if stored == want:
        if have_record:
            with open(record_path) as f:
                return json.load(f)
        return None
    if stored is None and not have_record:
        return None  # never started
    if report_only:
        log(f"{name}: ran with another recipe than the config's ({_difference(stored, want)}); left out of the report")
        return None
    log(f"{name}: ran with another recipe than the config's ({_difference(stored, want)}); running it again")
    for path in (record_path, recipe_path, *outputs):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    return None


def write_recipe(recipe_path, recipe):
    """Stores the recipe a run is about to run with (before the run, so a record never exists
    without the recipe that made it)."""
    os.makedirs(os.path.dirname(recipe_path), exist_ok=True)
    tmp = recipe_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_canonical(recipe), f, indent=1)
    os.replace(tmp, recipe_path)


def _difference(old, new):
    """The first few keys (dotted) or positions where two recipes differ, for the log line."""
    if old is None:
        return "no recipe stored"
    out = []

    def walk(a, b, p):
        if len(out) >= 3:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{p}.{k}" if p else k)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{p}[{i}]")
        elif a != b:
            out.append(f"{p or 'recipe'}: {json.dumps(a)} -> {json.dumps(b)}")

    walk(old, new, "")
    return "; ".join(out)

#!/usr/bin/env python3
"""Checks a study report: every run's primary metric must have its 95 % interval's LOWER bound
above the chance level of its test set, computed here from the data files themselves:
  ner  entity F1            chance 0 (no entities predicted)
  re   accuracy             rate of the most frequent relation label in re/test.jsonl
  nli  accuracy             rate of the most frequent gold_label in nli/test.jsonl
  sts  Pearson              0 (unrelated scores)
  qa   exact match          0
Prints one line per run and exits 1 naming every run at or below chance.

  python3 examples/gatortron/check_above_chance.py OUT/report/report.json DATA_DIR
"""
import collections
import json
import sys


def majority_rate(path, field):
    counts = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    counts[json.loads(line)[field]] += 1
                except (ValueError, KeyError) as e:
                    sys.exit(f"{path}:{n}: cannot read '{field}': {e}")
    if not counts:
        sys.exit(f"{path}: no records")
    return max(counts.values()) / sum(counts.values())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    report, data = sys.argv[1], sys.argv[2]
    chance = {
        ("ner", "f1"): 0.0,
        ("re", "accuracy"): majority_rate(f"{data}/re/test.jsonl", "label"),
        ("nli", "accuracy"): majority_rate(f"{data}/nli/test.jsonl", "gold_label"),
        ("sts", "pearson"): 0.0,
        ("qa-span", "exact_match"): 0.0,
    }
    with open(report, encoding="utf-8") as f:
        runs = json.load(f)["runs"]
    failed = []
    checked = 0
    for run in runs:
        for task, metrics in run.get("tasks", {}).items():
            for metric, value in metrics.items():
                key = (task, metric)
                if key not in chance:
                    continue
                lower = value["ci"][0] if isinstance(value, dict) else value
                point = value["value"] if isinstance(value, dict) else value
                ok = lower > chance[key]
                checked += 1
                print(f"{run['name']}: {task}/{metric} {point:.3f} (95 % lower bound {lower:.3f}) "
                      f"vs chance {chance[key]:.3f}: {'above' if ok else 'NOT above'}")
                if not ok:
                    failed.append(run["name"])
    if checked == 0:
        sys.exit(f"{report}: no run with a known primary metric")
    if failed:
        print("at or below chance: " + ", ".join(failed))
        return 1
    print(f"all {checked} runs above chance")
    return 0


if __name__ == "__main__":
    sys.exit(main())

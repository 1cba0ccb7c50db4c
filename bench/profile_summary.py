#!/usr/bin/env python3
"""Self time per operator of a chrome trace from `biolm-bench --profile PATH` or
`bench/reference/torch_reference.py --profile PATH` (top N rows).

  python3 bench/profile_summary.py /tmp/trace.json [N]
"""
import collections
import json
import sys


def self_times(path):
    """(self time in microseconds, calls) per operator name of one chrome trace: each event's
    duration less that of the events nested in it on its thread."""
    trace = json.load(open(path))
    if isinstance(trace, dict):  # torch.profiler's export_chrome_trace: {"traceEvents": [...]}
        trace = trace.get("traceEvents", [])
    # Operators only: torch.profiler adds python frames and profiler bookkeeping with other cats.
    events = [e for e in trace if e.get("ph") == "X" and e.get("cat", "cpu_op") in ("cpu_op", "Operator")]
    by_tid = collections.defaultdict(list)
    for e in events:
        by_tid[e["tid"]].append(e)
    self_us, calls = collections.Counter(), collections.Counter()
    for evs in by_tid.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # (end, name)
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                stack.pop()
            if stack:
                self_us[stack[-1][1]] -= e["dur"]
            self_us[e["name"]] += e["dur"]
            calls[e["name"]] += 1
            stack.append((e["ts"] + e["dur"], e["name"]))
    return self_us, calls


def main():
    self_us, calls = self_times(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    total = sum(self_us.values())
    print(f"total self time {total / 1e3:.1f} ms")
    for name, us in self_us.most_common(top):
        print(f"{us / 1e3:9.1f} ms {100 * us / total:5.1f}% {calls[name]:6d}  {name}")


if __name__ == "__main__":
    main()

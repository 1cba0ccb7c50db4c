"""Every ctest entry of this build states its thread count, and claims the slots it uses.

Reads `ctest --show-only=json-v1` of the build directory given as argv[1] and fails, naming the
entries, when an entry has no OMP_NUM_THREADS in its environment (LibTorch would start one thread
per core, and two such entries side by side under `ctest -jN` oversubscribe the cores: see
docs/building.md, "Threads under ctest -j"), or sets OMP_NUM_THREADS=n > 1 without PROCESSORS >= n.
Placeholder entries of test executables not yet built (catch_discover_tests) are not counted.
"""
import json
import subprocess
import sys


def main():
    build = sys.argv[1]
    shown = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build, check=True, capture_output=True, text=True)
    tests = json.loads(shown.stdout)["tests"]
    bad, counted = [], 0
    for t in tests:
        name = t["name"]
        if "_NOT_BUILT" in name:
            continue
        counted += 1
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        env = dict(e.split("=", 1) for e in props.get("ENVIRONMENT", []) if "=" in e)
        procs = int(props.get("PROCESSORS", 1))
        if "OMP_NUM_THREADS" not in env:
            bad.append(f"{name}: no OMP_NUM_THREADS in its environment")
        elif int(env["OMP_NUM_THREADS"]) > procs:
            bad.append(f"{name}: OMP_NUM_THREADS={env['OMP_NUM_THREADS']} but PROCESSORS {procs}")
    if counted < 100:
        sys.exit(f"thread_budget: only {counted} entries found under {build}: is it the build directory?")
    for line in bad:
        print(line)
    if bad:
        sys.exit(f"thread_budget: {len(bad)} of {counted} entries break the thread budget")
    print(f"thread budget kept by all {counted} entries")


if __name__ == "__main__":
    main()

"""Goldens of tests/eval/test_py_random.cpp: CPython's random.Random as lm-eval's few-shot
sampler uses it. Run: python3 tests/reference/py_random_reference.py (CPython 3.11; the output
is pasted into the test, checked against 3.11.7)."""
import random

for seed in (1234, 0, 42, 1 << 40):
    r = random.Random(seed)
    out = [r.getrandbits(32)]
    # sample(): n <= 21 (pool list), n > 21 (set of drawn indices), k > 5 with n <= 21 + 64 (list)
    out += r.sample(range(50), 4) + r.sample(range(20), 3) + r.sample(range(100), 8) + r.sample(range(60), 8)
    out.append(r.getrandbits(45))
    print(seed, out)

# lm-eval ContextSampler with the evaluated document in the pool: sample(pool, k + 1), drop it.
r = random.Random(1234)
for i in range(5):
    drawn = r.sample(range(10), 4)
    print(i, [j for j in drawn if j != i][:3])

#!/usr/bin/env python3
"""Independent recomputation (stdlib only) of the non-trivial expected values in
tests/eval/test_metrics.cpp. scikit-learn, seqeval, nltk and rouge-score are not installed on
the dev machines; these lines re-derive their formulas (as documented in docs/eval.md) and the
output below each run is committed as eval_reference.out.

Run: python3 tests/reference/eval_reference.py > tests/reference/eval_reference.out
"""
import math
import re
import string
from collections import Counter


def ngrams(toks, n):
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def corpus_bleu(pairs, order, smooth):  # NLTK corpus_bleu, method0 / method2
    num, den = [0] * order, [0] * order
    c = r = 0
    for hyp, refs in pairs:
        h = hyp.split()
        rs = [x.split() for x in refs]
        for n in range(1, order + 1):
            hc = ngrams(h, n)
            mx = Counter()
            for ref in rs:
                for g, k in ngrams(ref, n).items():
                    mx[g] = max(mx[g], k)
            num[n - 1] += sum(min(k, mx[g]) for g, k in hc.items())
            den[n - 1] += max(1, sum(hc.values()))
        c += len(h)
        r += min((len(x) for x in rs), key=lambda L: (abs(L - len(h)), L))
    if num[0] == 0:
        return 0.0
    ps = [(num[i] + (1 if smooth and i > 0 else 0)) / (den[i] + (1 if smooth and i > 0 else 0)) for i in range(order)]
    if min(ps) == 0:
        return 0.0
    bp = 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - r / c))
    return bp * math.exp(sum(math.log(p) for p in ps) / order)


def rouge_l(target, pred):
    tok = lambda s: [t for t in re.split(r"\s+", re.sub(r"[^a-z0-9]+", " ", s.lower())) if t]
    t, p = tok(target), tok(pred)
    if not t or not p:
        return 0.0
    L = [[0] * (len(p) + 1) for _ in range(len(t) + 1)]
    for i in range(1, len(t) + 1):
        for j in range(1, len(p) + 1):
            L[i][j] = L[i - 1][j - 1] + 1 if t[i - 1] == p[j - 1] else max(L[i - 1][j], L[i][j - 1])
    P, R = L[-1][-1] / len(p), L[-1][-1] / len(t)
    return 0.0 if P + R == 0 else 2 * P * R / (P + R)


def squad_norm(s):
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(p, g):
    pt, gt = squad_norm(p).split(), squad_norm(g).split()
    same = sum((Counter(pt) & Counter(gt)).values())
    if same == 0:
        return 0.0
    P, R = same / len(pt), same / len(gt)
    return 2 * P * R / (P + R)


def ranks(x):
    order = sorted(range(len(x)), key=lambda i: x[i])
    r = [0.0] * len(x)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


H, R = "the cat sat on the mat", "the cat is on the mat"
print("sentence bleu1", corpus_bleu([(H, [R])], 1, False))
print("sentence bleu4 none", corpus_bleu([(H, [R])], 4, False))
print("sentence bleu4 method2", corpus_bleu([(H, [R])], 4, True))
pairs = [(H, [R]), ("a b", ["a b c d"])]
print("corpus bleu1", corpus_bleu(pairs, 1, False), "expected 0.875*exp(-0.25) =", 0.875 * math.exp(-0.25))
print("corpus bleu4 method2", corpus_bleu(pairs, 4, True))
print("empty hyp corpus bleu1", corpus_bleu([("a b", ["a b"]), ("", ["c"])], 1, False))
print("closest ref tie bleu1", corpus_bleu([("a b c", ["a b", "a b c d"])], 1, False))
print("rougeL", rouge_l("The cat sat on the mat.", "the cat on a mat!!"), "expected 8/11 =", 8 / 11)
print("squad norm", repr(squad_norm("The  Cat's hat!")), repr(squad_norm("Anne, an\tAN-apple")))
print("squad f1", squad_f1("the cat sat on the mat", "a cat on a mat"), squad_f1("x x y", "x y y"))
x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
print("pearson", pearson(x, y), "spearman", pearson(ranks(x), ranks(y)), "ranks", ranks(y))
# sklearn macro/weighted for gold a a b c / pred a a a c (zero_division=0):
g, p = list("aabc"), list("aaac")
labs = sorted(set(g) | set(p))
prf = []
for l in labs:
    tp = sum(1 for a, b in zip(g, p) if a == b == l)
    pr, go = p.count(l), g.count(l)
    prf.append((tp / pr if pr else 0.0, tp / go if go else 0.0, 2 * tp / (pr + go) if pr + go else 0.0, go))
print("macro P/R/F", [sum(v[k] for v in prf) / len(prf) for k in range(3)])
print("weighted P/R/F", [sum(v[k] * v[3] for v in prf) / sum(v[3] for v in prf) for k in range(3)])

"""`biolm metrics` against the reference implementations, to 1e-9 (issue #16, metrics).

Families (each >= 200 seeded, generated cases, edge cases included) and their references:
  seqeval     seqeval 1.2.2: default mode (get_entities) and mode="strict" with IOB2 / IOBES;
              per type, micro, macro, weighted; zero_division "warn" / 0 / 1
  sklearn     scikit-learn: accuracy_score, precision_recall_fscore_support per class and
              micro / macro / weighted, labels=, zero_division "warn" / 0 / 1 / nan; relation
              extraction = f1_score(average="micro", labels=all but the negative label)
  scipy       scipy.stats.pearsonr, spearmanr (ties; constant input -> nan = our null)
  sacrebleu   sacrebleu.corpus_bleu (13a, exp smoothing) with 1-3 reference streams
  nltk        nltk corpus_bleu on str.split() tokens, weights (1,) and (1/4,)*4, method0
              (our bleu1 / bleu4); NLTK's sys.float_info.min stand-in (< 1e-70) reads as 0
  rouge       rouge-score RougeScorer(["rougeL"], use_stemmer=False / True).score_multi, mean F
  squad1      the official SQuAD v1.1 evaluate script's logic (written out below)
  squad2      the official SQuAD v2.0 evaluate script's logic (below: not on PyPI), with HasAns /
              NoAns splits, na_prob_thresh and find_all_best_thresh
All cases go to one `biolm metrics --cases` process. Maxima land in maxima.jsonl (record_max).
"""
import collections
import json
import math
import random
import re
import string
import warnings

import numpy as np
import pytest

from conftest import record_max, run_biolm

TOL = 1e-9
warnings.filterwarnings("ignore")

# --------------------------------------------------------------------------------------------
# generators
WORDS = ["the", "a", "an", "cat", "Cat", "sat", "on", "mat", "mat.", "dose", "3.14", "1,000", "1-2",
         "a-b", "(CT)", "scan", "&amp;", "&lt;x&gt;", "<skipped>", "don't", "e.g.", "U.S.", "--", "!",
         "café", "naïve", "Ünïcödé", "東京", "İstanbul", "ΣΟΦΙΑΣ", "ΌΣΟΣ", "Kelvin", "ß", "ﬁle",
         "Ⅻ", "٣", "x_y", "the_end", "mg/kg", "5%", "$3", "end.", "end", ",", "...", "'quoted'",
         "co-\nop", "\n", "&quot;q&quot;", "2-3.5", "x.y,z"]
SPACES = [" ", " ", " ", "  ", "\t", "\u00a0", "\u2003", "\u3000", "\u200b", "\x1c"]
STEMS = ["relat", "condit", "gener", "hop", "run", "sky", "agre", "fe", "happi", "form", "electr",
         "nation", "organ", "motiv", "adopt", "control", "rat", "roll", "fizz", "fail", "fil", "sing",
         "conflat", "troubl", "siz", "meet", "analog", "digit", "ti", "di", "li", "cann", "proce",
         "abl", "bl", "cry", "play", "toy", "say", "hous", "oper", "radi", "sensit", "probl", "formal"]
SUFFIXES = ["", "s", "es", "ed", "ing", "ational", "tional", "ization", "iveness", "fulness", "ousness",
            "aliti", "iviti", "biliti", "alli", "entli", "eli", "ousli", "ation", "ator", "alism", "icate",
            "ative", "alize", "iciti", "ical", "ful", "ness", "ement", "ment", "ent", "ance", "ence",
            "able", "ible", "ant", "er", "ic", "ism", "ate", "iti", "ous", "ive", "ize", "ies", "ied", "y",
            "ly", "logi", "fulli", "bli", "sses", "eed", "ying", "ings", "e", "ll", "al", "ion", "sion"]
IRREGULAR = ["skies", "sky", "dying", "lying", "tying", "news", "innings", "inning", "outings",
             "cannings", "howe", "proceed", "exceed", "succeed", "agreed", "feed", "bled", "yelled"]


def text(rng, n_max=12, words=WORDS):
    n = rng.randint(0, n_max)
    out = ""
    for i in range(n):
        out += (rng.choice(SPACES) if i else "") + rng.choice(words)
    if rng.random() < 0.1:
        out = rng.choice(SPACES) + out + rng.choice(SPACES)
    return out


def stem_text(rng, n_max=10):
    words = [rng.choice(STEMS) + rng.choice(SUFFIXES) if rng.random() < 0.85 else rng.choice(IRREGULAR)
             for _ in range(rng.randint(0, n_max))]
    return " ".join(w.upper() if rng.random() < 0.1 else w for w in words)


TYPES = ["GENE", "DIS", "CHEM", "Δ", "CELL-LINE"]


def tag_sequence(rng, n, prefixes):
    tags = []
    for _ in range(n):
        p = rng.choice(prefixes)
        if p == "O":
            tags.append("O")
        elif rng.random() < 0.03:
            tags.append(p)  # bare prefix: seqeval type "_"
        else:
            tags.append(p + "-" + rng.choice(TYPES[: rng.randint(1, len(TYPES))]))
    return tags


def valid_iob2(rng, n):
    tags, i = [], 0
    while i < n:
        if rng.random() < 0.5:
            tags.append("O")
            i += 1
            continue
        t, k = rng.choice(TYPES), rng.randint(1, 3)
        for j in range(min(k, n - i)):
            tags.append(("B-" if j == 0 else "I-") + t)
        i += k
    return tags[:n]


def to_iobes(tags):
    out = []
    for i, t in enumerate(tags):
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        cont = nxt.startswith("I-") and nxt[2:] == t[2:]
        if t.startswith("B-"):
            out.append(("B-" if cont else "S-") + t[2:])
        elif t.startswith("I-"):
            out.append(("I-" if cont else "E-") + t[2:])
        else:
            out.append(t)
    return out


def corrupt(rng, tags, prefixes):
    tags = list(tags)
    for i in range(len(tags)):
        if rng.random() < 0.25:
            tags[i] = tag_sequence(rng, 1, prefixes)[0]
    return tags


def ner_cases(rng):
    cases = []
    configs = [("default", None, ["O", "B", "I", "E", "S"]), ("strict", "IOB2", ["O", "B", "I"]),
               ("strict", "IOBES", ["O", "B", "I", "E", "S"])]
    for mode, scheme, prefixes in configs:
        for k in range(80):
            gold, pred = [], []
            for _ in range(rng.randint(1, 6)):
                n = rng.choice([0, 1, 1, 2, 3, 5, 8, 12]) if k % 10 else rng.randint(1, 4)
                g = valid_iob2(rng, n)
                if scheme == "IOBES" or (scheme is None and rng.random() < 0.3):
                    g = to_iobes(g)
                if k % 7 == 1:
                    g = ["O"] * n  # all-O sentence
                if k % 5 == 2:
                    g = corrupt(rng, g, prefixes)  # orphan I-, E-, type changes
                p = corrupt(rng, g, prefixes) if rng.random() < 0.8 else tag_sequence(rng, n, prefixes)
                if k % 11 == 3:
                    p = ["O"] * n  # empty prediction
                gold.append(g)
                pred.append(p)
            c = {"task": "ner", "gold": gold, "pred": pred, "mode": mode,
                 "zero_division": ["warn", "0", "1"][k % 3]}
            if scheme:
                c["scheme"] = scheme
            cases.append(c)
    return cases


CLS_LABELS = ["a", "b", "c", "Z", "é", "ß", "東", "a b", "10", "9"]


def cls_cases(rng):
    cases = []
    for k in range(220):
        n = 1 if k % 25 == 0 else rng.randint(1, 30)
        labels = CLS_LABELS[: rng.randint(1, len(CLS_LABELS))]
        gold = [rng.choice(labels) for _ in range(n)]
        pred = [g if rng.random() < 0.5 else rng.choice(labels) for g in gold]
        if k % 13 == 4:
            pred = [gold[0]] * n  # constant prediction
        c = {"task": "cls", "gold": gold, "pred": pred, "zero_division": ["warn", "0", "1", "nan"][k % 4]}
        if k % 6 == 5:
            pool = sorted(set(CLS_LABELS) | {"absent"})
            c["labels"] = rng.sample(pool, rng.randint(1, 4))  # subset, absent labels, no support
        elif k % 6 == 2:  # labels only predicted, never gold: weighted over zero support
            only_pred = sorted(set(pred) - set(gold))
            c["labels"] = only_pred + ["absent"] if only_pred else ["absent"]
        cases.append(c)
    for k in range(60):
        n = rng.randint(1, 25)
        gold = [rng.choice(["false", "false", "CPR:3", "CPR:4", "CPR:9"]) for _ in range(n)]
        pred = [g if rng.random() < 0.5 else rng.choice(["false", "CPR:3", "CPR:4", "CPR:9"]) for g in gold]
        if not any(x != "false" for x in gold + pred):
            gold[0] = "CPR:3"
        cases.append({"task": "re", "gold": gold, "pred": pred, "negative_label": "false",
                      "zero_division": ["0", "1"][k % 2]})
    return cases


def corr_cases(rng):
    cases = []
    for k in range(220):
        n = 2 if k % 20 == 0 else rng.randint(2, 40)
        kind = k % 6
        if kind == 0:
            x = [rng.gauss(0, 1) for _ in range(n)]
            y = [xi * rng.uniform(-2, 2) + rng.gauss(0, 0.5) for xi in x]
        elif kind == 1:  # many ties
            x = [float(rng.randint(0, 3)) for _ in range(n)]
            y = [float(rng.randint(0, 2)) for _ in range(n)]
        elif kind == 2:  # STS-like scores in [0, 5] with 0.2 steps
            x = [round(rng.uniform(0, 5) * 5) / 5 for _ in range(n)]
            y = [min(5.0, max(0.0, xi + rng.gauss(0, 1))) for xi in x]
        elif kind == 3:  # constant: one or both
            c = rng.choice([0.0, 3.5, -1e3])
            x = [c] * n
            y = [rng.gauss(0, 1) for _ in range(n)] if k % 12 == 3 else [c] * n
            if k % 24 == 9:
                x, y = y, x
        elif kind == 4:  # monotone, perfectly (anti-)correlated ranks
            x = sorted(rng.uniform(-10, 10) for _ in range(n))
            y = [math.exp(v / 5) for v in x] if k % 2 else [-v ** 3 for v in x]
        elif k % 12 == 5:  # large offsets, small spread (cancellation)
            x = [1e6 + rng.gauss(0, 1) for _ in range(n)]
            y = [-3e5 + xi * 1e-3 + rng.gauss(0, 1e-3) for xi in x]
        else:
            x = [rng.uniform(-1e3, 1e3) for _ in range(n)]
            y = [rng.uniform(-1e3, 1e3) for _ in range(n)]
        cases.append({"task": "corr", "gold": x, "pred": y})
    return cases


def text_cases(rng, stemmer):
    cases = []
    for k in range(210):
        n = 1 if k % 15 == 0 else rng.randint(1, 10)
        n_refs = rng.choice([1, 1, 2, 3])
        gen = stem_text if stemmer or k % 3 == 0 else text
        hyps, refs = [], []
        for _ in range(n):
            r = [gen(rng) for _ in range(n_refs if rng.random() < 0.8 else rng.randint(1, n_refs))]
            if rng.random() < 0.08:
                r[0] = ""  # empty reference
            h = rng.choice(r) if rng.random() < 0.2 else gen(rng)
            if rng.random() < 0.5 and r[0]:
                words = r[0].split()
                h = " ".join(w for w in words if rng.random() < 0.7)  # partial copy: real overlap
            if rng.random() < 0.08:
                h = ""  # empty prediction
            hyps.append(h)
            refs.append(r if len(r) > 1 or rng.random() < 0.5 else r[0])
        cases.append({"task": "text", "gold": refs, "pred": hyps, "rouge_stemmer": stemmer})
    return cases


QA_WORDS = ["The", "the", "a", "An", "cat", "Cat's", "aspirin", "Aspirin", "10 mg", "mg", "(b)", "x-ray",
            "X-Ray", "É", "é", "İ", "i̇", "ΣΑΣ", "σας", "ÉCOLE", "école", "a_b", "Ａ", "the\u00a0cat",
            "an\u3000dog", "İa", "Kelvin", "kelvin", "!!", "...", "the the", "ß", "SS", "1,000", "1000"]


def qa_text(rng):
    n = rng.randint(0, 4)
    return rng.choice(["", " "]) .join(rng.choice(QA_WORDS) for _ in range(n)) if n else rng.choice(["", " ", "the", "!"])


def qa_cases(rng):
    cases = []
    for k in range(220):
        n = 1 if k % 20 == 0 else rng.randint(1, 12)
        gold, pred = [], []
        for _ in range(n):
            answers = [qa_text(rng) for _ in range(rng.randint(1, 3))]
            gold.append(answers if len(answers) > 1 or rng.random() < 0.5 else answers[0])
            pred.append(rng.choice(answers) if rng.random() < 0.3 else qa_text(rng))
        cases.append({"task": "qa", "gold": gold, "pred": pred})
    for k in range(220):
        n = 1 if k % 20 == 0 else rng.randint(1, 15)
        gold, pred, na = [], [], []
        for _ in range(n):
            answerable = rng.random() < 0.6
            answers = [qa_text(rng) for _ in range(rng.randint(1, 3))] if answerable else []
            gold.append(answers)
            if answers and rng.random() < 0.3:
                pred.append(rng.choice(answers))
            else:
                pred.append(rng.choice(["", "", " ", qa_text(rng)]))
            na.append(round(rng.random(), 1) if k % 3 else rng.random())  # ties when rounded
        c = {"task": "qa", "squad_version": "2.0", "gold": gold, "pred": pred}
        if k % 4:
            c["na_probs"] = na
        if k % 4 == 2:
            c["na_prob_thresh"] = rng.choice([0.0, 0.3, 0.5])
        cases.append(c)
    return cases


# --------------------------------------------------------------------------------------------
# references
def ref_ner(c):
    from seqeval.metrics import v1
    from seqeval.metrics.sequence_labeling import get_entities
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as prfs_default
    from seqeval.scheme import IOB2, IOBES, Entities
    g, p, zd = c["gold"], c["pred"], c["zero_division"]
    zd = zd if zd == "warn" else int(zd)
    if c["mode"] == "default":
        names = sorted({e[0] for e in get_entities(g)} | {e[0] for e in get_entities(p)})
        fn = lambda avg: prfs_default(g, p, average=avg, zero_division=zd)
    else:
        scheme = {"IOB2": IOB2, "IOBES": IOBES}[c["scheme"]]
        names = sorted(Entities(g, scheme).unique_tags | Entities(p, scheme).unique_tags)
        fn = lambda avg: v1.precision_recall_fscore_support(g, p, average=avg, zero_division=zd, scheme=scheme)
    out = {}
    P, R, F, S = fn(None)
    for i, name in enumerate(names):
        out[f"per_type/{name}/precision"], out[f"per_type/{name}/recall"] = P[i], R[i]
        out[f"per_type/{name}/f1"], out[f"per_type/{name}/support"] = F[i], S[i]
    for avg in ["micro", "macro", "weighted"]:
        P, R, F, _ = fn(avg)
        pre = "" if avg == "micro" else avg + "/"
        out[pre + "precision"], out[pre + "recall"], out[pre + "f1"] = P, R, F
    return out


def ref_cls(c):
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
    g, p = c["gold"], c["pred"]
    zd = {"warn": "warn", "0": 0, "1": 1, "nan": np.nan}[c.get("zero_division", "0")]
    if c["task"] == "re":
        labels = sorted({x for x in g + p if x != c["negative_label"]})
        P, R, F, _ = precision_recall_fscore_support(g, p, labels=labels, average="micro", zero_division=zd)
        assert F == f1_score(g, p, labels=labels, average="micro", zero_division=zd) or np.isnan(F)
        return {"precision": P, "recall": R, "f1": F}
    labels = c.get("labels") or sorted(set(g) | set(p))
    out = {"accuracy": accuracy_score(g, p)}
    P, R, F, S = precision_recall_fscore_support(g, p, labels=labels, average=None, zero_division=zd)
    for i, name in enumerate(labels):
        out[f"per_class/{name}/precision"], out[f"per_class/{name}/recall"] = P[i], R[i]
        out[f"per_class/{name}/f1"], out[f"per_class/{name}/support"] = F[i], S[i]
    for avg in ["micro", "macro", "weighted"]:
        P, R, F, _ = precision_recall_fscore_support(g, p, labels=labels, average=avg, zero_division=zd)
        out[f"{avg}/precision"], out[f"{avg}/recall"], out[f"{avg}/f1"] = P, R, F
    return out


def ref_corr(c):
    from scipy import stats
    x, y = np.array(c["gold"]), np.array(c["pred"])
    return {"pearson": float(stats.pearsonr(x, y)[0]), "spearman": float(stats.spearmanr(x, y)[0])}


def refs_of(c):
    return [r if isinstance(r, list) else [r] for r in c["gold"]]


def ref_text(c):
    import sacrebleu
    from nltk.translate.bleu_score import corpus_bleu
    from rouge_score import rouge_scorer
    refs, hyps = refs_of(c), c["pred"]
    k = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(k)]
    tok_refs = [[r.split() for r in rs] for rs in refs]
    tok_hyps = [h.split() for h in hyps]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=c["rouge_stemmer"])
    rouge = [scorer.score_multi(rs, h)["rougeL"].fmeasure for rs, h in zip(refs, hyps)]
    return {"bleu1": corpus_bleu(tok_refs, tok_hyps, weights=(1.0,)),
            "bleu4": corpus_bleu(tok_refs, tok_hyps, weights=(0.25, 0.25, 0.25, 0.25)),
            "sacrebleu": sacrebleu.corpus_bleu(hyps, streams).score,
            "rougeL": sum(rouge) / len(rouge)}


# The official SQuAD evaluation, v1.1 (evaluate-v1.1.py) and v2.0 (evaluate-v2.0.py), as written
# by its authors (Rajpurkar et al.); only file reading and printing are left out.
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score_v1(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def ref_squad1(c):
    em = f1 = 0.0
    for answers, pred in zip(refs_of(c), c["pred"]):
        em += max(exact_match_score(pred, a) for a in answers)
        f1 += max(f1_score_v1(pred, a) for a in answers)
    n = len(c["pred"])
    return {"exact_match": em / n, "f1": f1 / n}


def get_tokens(s):
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold, a_pred):
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold, a_pred):
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def get_raw_scores(dataset, preds):
    exact_scores, f1_scores = {}, {}
    for qa in dataset:
        qid = qa["id"]
        gold_answers = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])]
        if not gold_answers:
            gold_answers = [""]
        a_pred = preds[qid]
        exact_scores[qid] = max(compute_exact(a, a_pred) for a in gold_answers)
        f1_scores[qid] = max(compute_f1(a, a_pred) for a in gold_answers)
    return exact_scores, f1_scores


def apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
    new_scores = {}
    for qid, s in scores.items():
        pred_na = na_probs[qid] > na_prob_thresh
        if pred_na:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = s
    return new_scores


def make_eval_dict(exact_scores, f1_scores, qid_list=None):
    if not qid_list:
        total = len(exact_scores)
        return collections.OrderedDict([("exact", 100.0 * sum(exact_scores.values()) / total),
                                        ("f1", 100.0 * sum(f1_scores.values()) / total), ("total", total)])
    total = len(qid_list)
    return collections.OrderedDict([("exact", 100.0 * sum(exact_scores[k] for k in qid_list) / total),
                                    ("f1", 100.0 * sum(f1_scores[k] for k in qid_list) / total),
                                    ("total", total)])


def merge_eval(main_eval, new_eval, prefix):
    for k in new_eval:
        main_eval["%s_%s" % (prefix, k)] = new_eval[k]


def find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = num_no_ans
    best_score = cur_score
    best_thresh = 0.0
    qid_list = sorted(na_probs, key=lambda k: na_probs[k])
    for i, qid in enumerate(qid_list):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            if preds[qid]:
                diff = -1
            else:
                diff = 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def find_all_best_thresh(main_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans):
    best_exact, exact_thresh = find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
    best_f1, f1_thresh = find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
    main_eval["best_exact"] = best_exact
    main_eval["best_exact_thresh"] = exact_thresh
    main_eval["best_f1"] = best_f1
    main_eval["best_f1_thresh"] = f1_thresh


def squad2_main(dataset, preds, na_probs, na_prob_thresh):
    """evaluate-v2.0.py main() without the files: returns out_eval."""
    have_na_file = na_probs is not None
    if not have_na_file:
        na_probs = {k: 0.0 for k in preds}
    qid_to_has_ans = {qa["id"]: bool(qa["answers"]) for qa in dataset}
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_raw, f1_raw = get_raw_scores(dataset, preds)
    exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    out_eval = make_eval_dict(exact_thresh, f1_thresh)
    if has_ans_qids:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, qid_list=has_ans_qids), "HasAns")
    if no_ans_qids:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, qid_list=no_ans_qids), "NoAns")
    if have_na_file:
        find_all_best_thresh(out_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans)
    return out_eval


def ref_squad2(c):
    ids = [f"q{i}" for i in range(len(c["pred"]))]
    dataset = [{"id": q, "answers": [{"text": a} for a in answers]} for q, answers in zip(ids, refs_of(c))]
    preds = dict(zip(ids, c["pred"]))
    na = dict(zip(ids, c["na_probs"])) if "na_probs" in c else None
    ev = squad2_main(dataset, preds, na, c.get("na_prob_thresh", 1.0))
    out = {"exact_match": ev["exact"] / 100, "f1": ev["f1"] / 100}
    for pre, key in [("HasAns", "has_ans"), ("NoAns", "no_ans")]:
        if f"{pre}_total" in ev:
            out[f"{key}/exact_match"] = ev[f"{pre}_exact"] / 100
            out[f"{key}/f1"] = ev[f"{pre}_f1"] / 100
            out[f"{key}/n"] = ev[f"{pre}_total"]
    if "best_exact" in ev:
        out["best_exact_match"] = ev["best_exact"] / 100
        out["best_exact_match_thresh"] = ev["best_exact_thresh"]
        out["best_f1"] = ev["best_f1"] / 100
        out["best_f1_thresh"] = ev["best_f1_thresh"]
    return out


# --------------------------------------------------------------------------------------------
FAMILIES = {
    "seqeval": (lambda r: ner_cases(r), ref_ner),
    "sklearn": (lambda r: cls_cases(r), ref_cls),
    "scipy": (lambda r: corr_cases(r), ref_corr),
    "text": (lambda r: text_cases(r, False), ref_text),
    "text_stem": (lambda r: text_cases(r, True), ref_text),
    "squad": (lambda r: qa_cases(r), lambda c: ref_squad2(c) if c.get("squad_version") == "2.0" else ref_squad1(c)),
}


@pytest.fixture(scope="module")
def results(biolm_exe, tmp_path_factory):
    cases = []
    for seed, (family, (gen, _)) in enumerate(FAMILIES.items()):
        for i, c in enumerate(gen(random.Random(1600 + seed))):
            cases.append(dict(c, id=f"{family}:{i}"))
    path = tmp_path_factory.mktemp("metrics") / "cases.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    proc = run_biolm(biolm_exe, "metrics", "--cases", path, check=False)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == len(cases), proc.stderr
    return cases, {r["id"]: r for r in lines}


def lookup(result, key):
    v = result
    for part in key.split("/"):
        v = v[part]
    return v


def same(ours, ref):
    if ref is None or (isinstance(ref, float) and math.isnan(ref)):
        return ours is None
    return ours is not None and abs(ours - ref) <= TOL


def compare(family, cases, by_id, table):
    worst, failures, n = 0.0, [], 0
    for c in cases:
        if not c["id"].startswith(family + ":"):
            continue
        n += 1
        ours = by_id[c["id"]]
        assert "error" not in ours, f"{c['id']}: biolm refused: {ours['error']}\n{json.dumps(c, ensure_ascii=False)}"
        ref = FAMILIES[family][1](c)
        for key, rv in ref.items():
            try:
                ov = lookup(ours, key)
            except (KeyError, TypeError):
                failures.append(f"{c['id']} {key}: missing in ours (ref {rv})")
                continue
            rv = float(rv)
            if not same(ov, rv):
                failures.append(f"{c['id']} {key}: ours {ov} ref {rv}\n  case {json.dumps(c, ensure_ascii=False)[:600]}")
            elif ov is not None and not math.isnan(rv):
                worst = max(worst, abs(ov - rv))
        # no metric of ours the reference lacks (an extra per-type / per-class key is a mismatch too)
        for per in ("per_type", "per_class"):
            if per in ours:
                extra = set(ours[per]) - {k.split("/")[1] for k in ref if k.startswith(per + "/")}
                if extra:
                    failures.append(f"{c['id']}: {per} keys {sorted(extra)} not in the reference")
    assert n >= 200, f"{family}: only {n} cases"
    record_max(table, family, worst)
    print(f"{family}: {n} cases, max |ours - ref| = {worst:.3g}")
    assert not failures, f"{len(failures)} mismatches, first:\n" + "\n".join(failures[:8])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family(family, results):
    cases, by_id = results
    compare(family, cases, by_id, "metrics")


def test_refusals_agree(biolm_exe, tmp_path):
    """Inputs the references refuse, we refuse too (an "error" line, exit 3), naming the field."""
    from scipy import stats
    from seqeval.metrics import v1
    from seqeval.scheme import IOB2
    bad = [
        ({"task": "corr", "gold": [1.0], "pred": [2.0]}, lambda: stats.pearsonr([1.0], [2.0])),
        ({"task": "ner", "gold": [["B-X", "S-X"]], "pred": [["O", "O"]], "mode": "strict", "scheme": "IOB2"},
         lambda: v1.precision_recall_fscore_support([["B-X", "S-X"]], [["O", "O"]], scheme=IOB2)),
        ({"task": "qa", "gold": [[]], "pred": ["x"]}, lambda: max([])),  # v1.1: a question without answer
        ({"task": "cls", "gold": ["a", "b"], "pred": ["a"]}, lambda: __import__("sklearn.metrics").metrics.accuracy_score(["a", "b"], ["a"])),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(dict(c, id=i)) + "\n" for i, (c, _) in enumerate(bad)))
    proc = run_biolm(biolm_exe, "metrics", "--cases", path, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["id"] for x in lines] == list(range(len(bad)))
    for (c, ref), line in zip(bad, lines):
        assert "error" in line, line
        assert any(w in line["error"] for w in ("gold", "pred", "tag")), line["error"]
        with pytest.raises(Exception):
            ref()


def test_files_equal_cases(biolm_exe, tmp_path):
    """The file interface (qa --squad-version 2.0 --na-probs, text --rouge-stemmer) equals the reference."""
    rng = random.Random(7)
    answers = [[qa_text(rng) or "x" for _ in range(rng.randint(1, 2))] if rng.random() < 0.6 else [] for _ in range(40)]
    answers = [[a.replace(" ||| ", " ").strip() or "x" for a in q] for q in answers]
    preds = [rng.choice(q) if q and rng.random() < 0.4 else rng.choice(["", qa_text(rng).strip()]) for q in answers]
    na = [round(rng.random(), 1) for _ in answers]
    gold, pred, na_file = tmp_path / "gold.txt", tmp_path / "pred.txt", tmp_path / "na.txt"
    gold.write_text("".join(" ||| ".join(q) + "\n" for q in answers), encoding="utf-8")
    pred.write_text("".join(p + "\n" for p in preds), encoding="utf-8")
    na_file.write_text("".join(f"{x!r}\n" for x in na))
    out = json.loads(run_biolm(biolm_exe, "metrics", "qa", "--squad-version", "2.0", "--gold", gold, "--pred", pred,
                               "--na-probs", na_file, "--na-prob-thresh", "0.5").stdout)
    ref = ref_squad2({"gold": answers, "pred": preds, "na_probs": na, "na_prob_thresh": 0.5})
    for key, rv in ref.items():
        assert same(lookup(out, key), float(rv)), (key, lookup(out, key), rv)
    refs = [stem_text(rng) for _ in range(30)]
    hyps = [stem_text(rng) for _ in range(30)]
    gold.write_text("".join(r + "\n" for r in refs))
    pred.write_text("".join(h + "\n" for h in hyps))
    out = json.loads(run_biolm(biolm_exe, "metrics", "text", "--rouge-stemmer", "--gold", gold, "--pred", pred).stdout)
    ref = ref_text({"gold": refs, "pred": hyps, "rouge_stemmer": True})
    for key, rv in ref.items():
        assert same(out[key], float(rv)), (key, out[key], rv)

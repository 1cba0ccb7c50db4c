#!/usr/bin/env python3
"""Writes libbiolm's shipped demo data under data/: synthetic, clinical-sounding, no patient data.

Every file follows the real format of the corpus it imitates, so the same readers serve real data:
  data/corpus/notes.txt          pretraining corpus, one note per line (plain text reader)
  data/ner/{train,dev,test}.conll    i2b2-2010-style concept extraction, CoNLL/BIO (token<TAB>tag)
  data/ner_hard/{train,dev,test}.conll   the same three concept types made hard (ambiguous, unseen,
                                         adjacent mentions, noise): the README's main job
  data/re/{train,dev,test}.jsonl     relation classification with ChemProt-style entity markers
  data/sts/{train,dev,test}.tsv      n2c2-2019-style sentence similarity (s1<TAB>s2<TAB>score 0-5)
  data/nli/{train,dev,test}.jsonl    MedNLI-style inference (sentence1, sentence2, gold_label)
  data/qa/{train,dev,test}.json      emrQA/SQuAD-style span QA
  data/mcqa/{train,dev,test}.jsonl       MedQA-USMLE-style multiple choice (question, options A-D, answer_idx)
  data/pubmedqa/{train,dev,test}.json    PubMedQA-style yes/no/maybe (PMID-keyed object)
  data/instruct/{train,dev,test}.jsonl  Alpaca-style instructions (instruction, input, output)

The facts are a small made-up "knowledge table" (condition -> drug, test), so a model can learn
something measurable. Deterministic: python3 tools/scripts/make_synthetic_data.py [--seed 13].
"""
import argparse
import json
import os
import random

CONDITIONS = [
    ("type 2 diabetes", "metformin", "hemoglobin A1c"), ("hypertension", "lisinopril", "blood pressure monitoring"),
    ("community acquired pneumonia", "ceftriaxone", "chest radiograph"), ("atrial fibrillation", "apixaban", "electrocardiogram"),
    ("hypothyroidism", "levothyroxine", "thyroid stimulating hormone"), ("heart failure", "furosemide", "echocardiogram"),
    ("urinary tract infection", "nitrofurantoin", "urine culture"), ("asthma exacerbation", "albuterol", "peak flow measurement"),
    ("deep vein thrombosis", "enoxaparin", "venous duplex ultrasound"), ("major depressive disorder", "sertraline", "PHQ-9 screening"),
    ("gastroesophageal reflux", "omeprazole", "upper endoscopy"), ("iron deficiency anemia", "ferrous sulfate", "complete blood count"),
    ("acute kidney injury", "intravenous fluids", "serum creatinine"), ("migraine", "sumatriptan", "head CT"),
    ("cellulitis", "cephalexin", "wound culture"), ("hyperlipidemia", "atorvastatin", "lipid panel"),
    ("gout flare", "colchicine", "uric acid level"), ("COPD exacerbation", "prednisone", "arterial blood gas"),
]
SYMPTOMS = ["chest pain", "shortness of breath", "fatigue", "fever", "cough", "nausea", "dizziness",
            "abdominal pain", "headache", "leg swelling", "palpitations", "weight loss"]
AGES = list(range(24, 91))
SEXES = [("male", "He"), ("female", "She")]


def cap(s):
    """Upper-cases the first letter only ("hemoglobin A1c" -> "Hemoglobin A1c")."""
    return s[:1].upper() + s[1:]


def toks(s):
    out = []
    for w in s.split():
        while w and w[-1] in ".,;:":
            out.append(w[:-1]) if w[:-1] else None
            out.append(w[-1])
            w = ""
        if w:
            out.append(w)
    return [t for t in out if t]


class Sentence:
    """Builds a sentence from pieces, remembering the token spans of typed mentions."""

    def __init__(self):
        self.tokens, self.tags = [], []

    def text(self, s):
        for t in toks(s):
            self.tokens.append(t)
            self.tags.append("O")
        return self

    def mention(self, s, typ):
        for i, t in enumerate(toks(s)):
            self.tokens.append(t)
            self.tags.append(("B-" if i == 0 else "I-") + typ)
        return self


def ner_sentence(rng):
    cond, drug, test = rng.choice(CONDITIONS)
    sym = rng.choice(SYMPTOMS)
    age = rng.choice(AGES)
    sex, pron = rng.choice(SEXES)
    s = Sentence()
    k = rng.randrange(8)
    if k == 0:
        s.text(f"{age} year old {sex} presenting with").mention(sym, "problem").text("and a history of").mention(cond, "problem").text(".")
    elif k == 1:
        s.text(f"{pron} was started on").mention(drug, "treatment").text("for").mention(cond, "problem").text(".")
    elif k == 2:
        s.mention(test, "test").text("was consistent with").mention(cond, "problem").text(".")
    elif k == 3:
        s.text("Denies").mention(sym, "problem").text(". Continue").mention(drug, "treatment").text("daily .")
    elif k == 4:
        s.text("We obtained a").mention(test, "test").text("to evaluate").mention(sym, "problem").text(".")
    elif k == 5:
        s.text(f"{pron} reports improvement of").mention(sym, "problem").text("after").mention(drug, "treatment").text(".")
    elif k == 6:
        s.text("Plan : repeat").mention(test, "test").text("in two weeks and titrate").mention(drug, "treatment").text(".")
    else:
        s.text("No evidence of").mention(cond, "problem").text("on").mention(test, "test").text(".")
    return s


def write_conll(path, sents):
    with open(path, "w") as f:
        for s in sents:
            for t, g in zip(s.tokens, s.tags):
                f.write(f"{t}\t{g}\n")
            f.write("\n")


RE_TEMPLATES = {
    "TrIP": ["{pron} improved markedly on {T} for {P} .", "{P} resolved after a course of {T} ."],
    "TrWP": ["{P} worsened despite {T} .", "{pron} developed worsening {P} while on {T} ."],
    "TeRP": ["{E} revealed {P} .", "{P} was confirmed by {E} ."],
    "TrAP": ["{T} was given for {P} .", "{pron} was prescribed {T} to treat {P} ."],
    "NONE": ["{pron} has {P} and separately takes {T} for an unrelated issue .",
             "{E} was normal ; {P} was noted on history ."],
}


def re_example(rng):
    label = rng.choice(list(RE_TEMPLATES))
    cond, drug, test = rng.choice(CONDITIONS)
    prob = rng.choice([cond, rng.choice(SYMPTOMS)])
    _, pron = rng.choice(SEXES)
    tmpl = rng.choice(RE_TEMPLATES[label])
    # The first argument in the text gets << >>, the second [[ ]] (as in ChemProt).
    marks = {"P": prob, "T": drug, "E": test}
    order = sorted((tmpl.index("{" + k + "}"), k) for k in marks if "{" + k + "}" in tmpl)
    fill = {"pron": pron}
    for i, (_, k) in enumerate(order):
        fill[k] = ("<< " + marks[k] + " >>") if i == 0 else ("[[ " + marks[k] + " ]]")
    for k in marks:
        fill.setdefault(k, marks[k])
    return {"text": tmpl.format(**fill), "label": label, "metadata": []}


def fact_sentence(rng, cond, drug, test, variant):
    forms = [
        f"The patient was treated with {drug} for {cond} .",
        f"{cap(drug)} was started to manage {cond} .",
        f"For {cond} , therapy with {drug} was initiated .",
        f"The patient received {drug} because of {cond} .",
    ]
    return forms[variant % len(forms)]


def sts_pair(rng):
    (c1, d1, t1), (c2, d2, t2) = rng.sample(CONDITIONS, 2)
    k = rng.randrange(4)
    a = fact_sentence(rng, c1, d1, t1, rng.randrange(4))
    if k == 0:  # paraphrase
        b, score = fact_sentence(rng, c1, d1, t1, rng.randrange(4)), rng.choice([4.5, 5.0])
    elif k == 1:  # same condition, different drug
        b, score = fact_sentence(rng, c1, d2, t1, rng.randrange(4)), rng.choice([2.5, 3.0])
    elif k == 2:  # shares only the drug
        b, score = fact_sentence(rng, c2, d1, t2, rng.randrange(4)), rng.choice([1.5, 2.0])
    else:
        b, score = f"{cap(t2)} was ordered for {rng.choice(SYMPTOMS)} .", rng.choice([0.0, 0.5])
    return a, b, score


def nli_pair(rng):
    cond, drug, test = rng.choice(CONDITIONS)
    other = rng.choice([c for c in CONDITIONS if c[0] != cond])[0]
    age = rng.choice(AGES)
    sex, pron = rng.choice(SEXES)
    premise = f"{age} year old {sex} with a history of {cond} , currently taking {drug} ."
    label = rng.choice(["entailment", "contradiction", "neutral"])
    if label == "entailment":
        hyp = rng.choice([f"The patient has {cond} .", f"The patient takes {drug} .", f"{pron} has a medical history ."])
    elif label == "contradiction":
        hyp = rng.choice([f"The patient has never had {cond} .", f"The patient takes no medications .",
                          f"{pron} has no past medical history ."])
    else:
        hyp = rng.choice([f"The patient has {other} .", f"The patient will need {rng.choice(CONDITIONS)[2]} .",
                          f"{pron} smokes cigarettes ."])
    return {"sentence1": premise, "sentence2": hyp, "gold_label": label}


def qa_doc(rng, idx):
    picks = rng.sample(CONDITIONS, 3)
    sex, pron = rng.choice(SEXES)
    sents = [f"{rng.choice(AGES)} year old {sex} admitted for evaluation ."]
    for cond, drug, test in picks:
        sents.append(f"{cap(test)} was consistent with {cond} .")
        sents.append(f"{pron} was started on {drug} for {cond} .")
    context = " ".join(sents)
    qas = []
    for j, (cond, drug, test) in enumerate(picks):
        for kind in ("drug", "test"):
            ans = drug if kind == "drug" else cap(test)
            q = (f"What medication was given for {cond} ?" if kind == "drug"
                 else f"Which test showed {cond} ?")
            start = context.index(f"{pron} was started on {drug}") + len(f"{pron} was started on ") if kind == "drug" \
                else context.index(f"{cap(test)} was consistent with {cond}")
            assert context[start:start + len(ans)] == ans
            qas.append({"id": f"syn-{idx}-{j}-{kind}", "question": q,
                        "answers": [{"text": ans, "answer_start": start}]})
    return {"context": context, "qas": qas}


def mcqa(rng, idx):
    cond, drug, test = rng.choice(CONDITIONS)
    age = rng.choice(AGES)
    sex, _ = rng.choice(SEXES)
    if rng.random() < 0.5:
        q = f"A {age}-year-old {sex} is diagnosed with {cond}. Which of the following is the most appropriate treatment?"
        right, pool = drug, [c[1] for c in CONDITIONS if c[1] != drug]
    else:
        q = f"A {age}-year-old {sex} is suspected to have {cond}. Which of the following tests best confirms the diagnosis?"
        right, pool = test, [c[2] for c in CONDITIONS if c[2] != test]
    opts = rng.sample(pool, 3) + [right]
    rng.shuffle(opts)
    letters = "ABCD"
    ai = letters[opts.index(right)]
    return {"question": q, "answer": right, "options": dict(zip(letters, opts)), "meta_info": "synthetic",
            "answer_idx": ai, "metamap_phrases": []}


def pubmedqa(rng, pmid):
    cond, drug, test = rng.choice(CONDITIONS)
    label = rng.choice(["yes", "yes", "no", "maybe"])
    effect = {"yes": "significantly reduced", "no": "did not change", "maybe": "showed a non-significant trend in"}[label]
    ctx = [f"We studied adults with {cond} in a synthetic cohort.",
           f"Patients receiving {drug} were compared with matched controls.",
           f"Treatment with {drug} {effect} complications of {cond}."]
    return str(pmid), {"QUESTION": f"Does {drug} reduce complications in {cond}?", "CONTEXTS": ctx,
                       "LABELS": ["BACKGROUND", "METHODS", "RESULTS"], "MESHES": [], "YEAR": "2025",
                       "reasoning_required_pred": label, "reasoning_free_pred": label,
                       "final_decision": label,
                       "LONG_ANSWER": f"{cap(drug)} {effect} complications of {cond}."}


def instruction(rng):
    cond, drug, test = rng.choice(CONDITIONS)
    k = rng.randrange(3)
    if k == 0:
        return {"instruction": "Name the usual first-line drug for the condition.", "input": cond, "output": drug}
    if k == 1:
        return {"instruction": "Name the test that confirms the condition.", "input": cond, "output": test}
    s = ner_sentence(rng)
    probs, cur = [], []
    for t, g in zip(s.tokens, s.tags):
        if g == "B-problem":
            if cur: probs.append(" ".join(cur))
            cur = [t]
        elif g == "I-problem" and cur:
            cur.append(t)
        else:
            if cur: probs.append(" ".join(cur))
            cur = []
    if cur: probs.append(" ".join(cur))
    return {"instruction": "List the clinical problems mentioned in the sentence, separated by semicolons.",
            "input": " ".join(s.tokens), "output": "; ".join(probs) if probs else "none"}


def note(rng):
    cond, drug, test = rng.choice(CONDITIONS)
    c2, d2, t2 = rng.choice(CONDITIONS)
    sex, pron = rng.choice(SEXES)
    parts = [f"{rng.choice(AGES)} year old {sex} with {cond} and {c2} presents with {rng.choice(SYMPTOMS)} .",
             f"{cap(test)} was consistent with {cond} .",
             f"{pron} was started on {drug} for {cond} and continues {d2} for {c2} .",
             f"Plan : repeat {t2} and follow up in clinic ."]
    rng.shuffle(parts[1:3])
    return " ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "data"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = os.path.abspath(a.out)
    for d in ["corpus", "ner", "re", "sts", "nli", "qa", "mcqa", "pubmedqa", "instruct"]:
        os.makedirs(os.path.join(out, d), exist_ok=True)
    with open(os.path.join(out, "corpus", "notes.txt"), "w") as f:
        for _ in range(3000):
            f.write(note(rng) + "\n")
    for split, n in [("train", 600), ("dev", 150), ("test", 150)]:
        write_conll(os.path.join(out, "ner", f"{split}.conll"), [ner_sentence(rng) for _ in range(n)])
        with open(os.path.join(out, "re", f"{split}.jsonl"), "w") as f:
            for _ in range(n):
                f.write(json.dumps(re_example(rng)) + "\n")
        with open(os.path.join(out, "sts", f"{split}.tsv"), "w") as f:
            for _ in range(n):
                s1, s2, sc = sts_pair(rng)
                f.write(f"{s1}\t{s2}\t{sc}\n")
        with open(os.path.join(out, "nli", f"{split}.jsonl"), "w") as f:
            for _ in range(n):
                f.write(json.dumps(nli_pair(rng)) + "\n")
        docs = [qa_doc(rng, f"{split}{i}") for i in range(n // 6)]
        with open(os.path.join(out, "qa", f"{split}.json"), "w") as f:
            json.dump({"version": "synthetic-1", "data": [{"title": f"note-{i}", "paragraphs": [d]} for i, d in enumerate(docs)]},
                      f, indent=1)
    for split, n in [("train", 400), ("test", 100)]:
        with open(os.path.join(out, "mcqa", f"{split}.jsonl"), "w") as f:
            for i in range(n):
                f.write(json.dumps(mcqa(rng, i)) + "\n")
        with open(os.path.join(out, "pubmedqa", f"{split}.json"), "w") as f:
            base = 90000000 if split == "train" else 91000000
            json.dump(dict(pubmedqa(rng, base + i) for i in range(n)), f, indent=4)
    with open(os.path.join(out, "instruct", "train.jsonl"), "w") as f:
        for _ in range(500):
            f.write(json.dumps(instruction(rng)) + "\n")
    # Held-out instructions, drawn after everything above so the older files stay byte-identical.
    for split, n in [("dev", 40), ("test", 60)]:
        with open(os.path.join(out, "instruct", f"{split}.jsonl"), "w") as f:
            for _ in range(n):
                f.write(json.dumps(instruction(rng)) + "\n")
    # Dev splits of the multiple-choice and PubMedQA sets (model selection without the test set).
    with open(os.path.join(out, "mcqa", "dev.jsonl"), "w") as f:
        for i in range(100):
            f.write(json.dumps(mcqa(rng, i)) + "\n")
    with open(os.path.join(out, "pubmedqa", "dev.json"), "w") as f:
        json.dump(dict(pubmedqa(rng, 92000000 + i) for i in range(100)), f, indent=4)
    write_ner_hard(out, a.seed)


# --- data/ner_hard: the README's main job -------------------------------------------------------
# Concept extraction that a pretrained encoder must work for: a mention's type depends on its
# context ("oxygen" is a treatment when given, part of a test when measured), many drug, test and
# problem names are built from parts so the test split is full of names never seen in training,
# entities sit next to each other without a separator (lists of drugs), modifiers are sometimes
# inside a mention and sometimes not (annotators disagree), and the text is noisy (typos,
# abbreviations, upper-case section text, missing punctuation). Its own random stream, so every
# other file above stays byte-identical.
DRUG_STEMS = ["apix", "rivar", "metop", "carv", "losar", "valsar", "empag", "dapag", "sitag", "linag",
              "predn", "methylpred", "vancom", "piperac", "ceftaz", "merop", "doxycyc", "azithro", "levofl",
              "gabap", "pregab", "sertr", "escital", "venlaf", "quetiap", "olanz", "tamsul", "finast",
              "ondans", "metocl", "pantopr", "famot", "warf", "enoxap", "hepar", "insul", "glipiz", "pioglit"]
DRUG_SUFFIXES = ["aban", "olol", "artan", "pril", "gliflozin", "gliptin", "isone", "mycin", "acillin", "idime",
                 "enem", "ycline", "floxacin", "entin", "aline", "afaxine", "apine", "osin", "eride", "etron",
                 "azole", "idine", "arin", "parin", "statin", "ide", "azone", "mab", "nib"]
DOSES = ["5 mg", "10 mg", "20 mg", "40 mg", "500 mg", "1 g", "2 units", "81 mg"]
ROUTES = ["PO", "IV", "daily", "BID", "q8h", "at bedtime", "PRN"]
ORGANS = ["renal", "hepatic", "cardiac", "pulmonary", "thyroid", "pancreatic", "splenic", "adrenal", "biliary"]
PROBLEM_HEADS = ["failure", "insufficiency", "mass", "nodule", "infarction", "abscess", "effusion", "stenosis",
                 "lesion", "injury", "cyst", "hemorrhage", "thrombosis", "inflammation"]
PROBLEM_MODS = ["acute", "chronic", "severe", "mild", "bilateral", "left", "right", "recurrent", "small", "large"]
NAMED_PROBLEMS = ["sepsis", "delirium", "anemia", "hyponatremia", "hyperkalemia", "pancreatitis", "cholecystitis",
                  "cellulitis", "pneumonia", "syncope", "hypotension", "tachycardia", "bradycardia", "dementia",
                  "osteomyelitis", "endocarditis", "neutropenia", "thrombocytopenia", "ascites", "jaundice"]
ABBREV_PROBLEMS = ["HTN", "DM2", "CHF", "CKD", "COPD", "CAD", "AFib", "GERD", "UTI", "DVT", "PE", "AKI"]
TEST_HEADS = ["ultrasound", "CT", "MRI", "biopsy", "panel", "level", "culture", "function tests", "scan", "echo"]
LAB_TESTS = ["lactate", "troponin", "BNP", "lipase", "ferritin", "INR", "procalcitonin", "TSH", "CBC", "BMP",
             "magnesium", "phosphorus", "A1c", "D-dimer", "CRP", "ESR", "albumin", "bilirubin"]
# Surface forms whose type depends on the context around them.
AMBIGUOUS = {"oxygen": ("treatment", "test", "oxygen saturation"), "insulin": ("treatment", "test", "insulin level"),
             "glucose": ("treatment", "test", "glucose"), "potassium": ("treatment", "test", "potassium"),
             "blood": ("treatment", "test", "blood cultures"), "calcium": ("treatment", "test", "calcium")}


AMBIGUOUS_ABBREV = [
    ("PE", [("problem", "CTA chest confirmed", "with right heart strain ."), ("O", "On", "lungs clear , heart regular ."),
            ("problem", "Started heparin for", ".")]),
    ("MS", [("problem", "History of relapsing", "on natalizumab ."), ("treatment", "Pain controlled with", "2 mg IV ."),
            ("O", "Patient reports", "was seen in clinic .")]),
    ("RA", [("problem", "Known seropositive", "with joint deformities ."), ("O", "Satting 95 % on", "at rest ."),
            ("problem", "Flare of", "treated with prednisone .")]),
    ("CT", [("test", "Obtained a", "of the abdomen ."), ("test", "Repeat head", "was negative .")]),
]


def hard_drug(rng):
    return rng.choice(DRUG_STEMS) + rng.choice(DRUG_SUFFIXES)


def hard_problem(rng):
    k = rng.randrange(4)
    if k == 0:
        return f"{rng.choice(ORGANS)} {rng.choice(PROBLEM_HEADS)}"
    if k == 1:
        return rng.choice(NAMED_PROBLEMS)
    if k == 2:
        return rng.choice(ABBREV_PROBLEMS)
    return rng.choice(SYMPTOMS)


def hard_test(rng):
    k = rng.randrange(3)
    if k == 0:
        return f"{rng.choice(ORGANS)} {rng.choice(TEST_HEADS)}"
    if k == 1:
        return rng.choice(LAB_TESTS)
    return rng.choice(CONDITIONS)[2]


def typo(rng, word):
    """One character swapped or dropped in a longer word."""
    if len(word) < 6 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i + 1:]


def hard_sentence(rng):
    s = Sentence()
    k = rng.randrange(13)
    pron = rng.choice(SEXES)[1]
    if k == 0:  # adjacent entities of one type: a medication list without separators
        s.text("Home meds :")
        for _ in range(rng.randint(2, 4)):
            s.mention(hard_drug(rng), "treatment")
            if rng.random() < 0.5:
                s.text(rng.choice(DOSES))
    elif k == 1:  # the same word as treatment or test, by context
        word, (t1, t2, test_form) = rng.choice(list(AMBIGUOUS.items()))
        if rng.random() < 0.5:
            s.text(f"{pron} was given").mention(word, t1).text("for").mention(hard_problem(rng), "problem").text(".")
        else:
            s.text("Repeat").mention(test_form, t2).text("showed").mention(hard_problem(rng), "problem").text(".")
    elif k == 2:  # modifiers sometimes annotated inside the mention, sometimes not
        mod, prob = rng.choice(PROBLEM_MODS), hard_problem(rng)
        if rng.random() < 0.6:
            s.text("Findings concerning for").mention(f"{mod} {prob}", "problem").text(".")
        else:
            s.text("Findings concerning for").text(mod).mention(prob, "problem").text(".")
    elif k == 3:  # negation: negated problems are still problems (i2b2 2010)
        s.text(rng.choice(["No", "Denies", "Negative for", "Ruled out"])).mention(hard_problem(rng), "problem")
        s.text(rng.choice(["or", "and"])).mention(hard_problem(rng), "problem").text(".")
    elif k == 4:
        s.mention(hard_test(rng), "test").text("was").text(rng.choice(["unremarkable", "notable for", "positive for"]))
        s.mention(hard_problem(rng), "problem").text(".")
    elif k == 5:
        s.text("Started").mention(hard_drug(rng), "treatment").text(rng.choice(DOSES)).text(rng.choice(ROUTES))
        s.text("for presumed").mention(hard_problem(rng), "problem")
    elif k == 6:  # upper-case section text
        s.text("ASSESSMENT :").mention(hard_problem(rng).upper(), "problem").text("- CONTINUE")
        s.mention(hard_drug(rng).upper(), "treatment")
    elif k == 7:  # a test and its treatment back to back
        s.text("Check").mention(rng.choice(LAB_TESTS), "test").mention(rng.choice(LAB_TESTS), "test")
        s.text("and hold").mention(hard_drug(rng), "treatment").text("if").mention(hard_problem(rng), "problem")
    elif k == 8:  # distractors: capitalised words and numbers that are not concepts
        s.text(f"Seen in clinic on day {rng.randint(2, 30)} by Dr {rng.choice(['Lee', 'Patel', 'Gomez', 'Nguyen'])} ;")
        s.text("tolerating").mention(hard_drug(rng), "treatment").text("well .")
    elif k == 9:
        s.text("History of").mention(rng.choice(CONDITIONS)[0], "problem").text("s/p").mention(
            f"{rng.choice(ORGANS)} {rng.choice(['biopsy', 'resection', 'stent', 'transplant'])}", "treatment").text(".")
    elif k == 10:
        s.mention(hard_test(rng), "test").text("pending ; empiric").mention(hard_drug(rng), "treatment")
        s.text("and").mention(hard_drug(rng), "treatment").text(".")
    elif k == 11:  # abbreviations whose meaning (and type) the context decides
        abbr, meanings = rng.choice(AMBIGUOUS_ABBREV)
        typ, before, after = rng.choice(meanings)
        s.text(before)
        if typ == "O":
            s.text(abbr)
        else:
            s.mention(abbr, typ)
        s.text(after)
    else:
        s.text(f"{pron} complains of").mention(rng.choice(SYMPTOMS), "problem").text("worse with exertion .")
    # Annotators miss some mentions (as in every real corpus): about one in twenty stays O.
    i = 0
    while i < len(s.tags):
        if s.tags[i].startswith("B-") and rng.random() < 0.05:
            s.tags[i] = "O"
            i += 1
            while i < len(s.tags) and s.tags[i].startswith("I-"):
                s.tags[i] = "O"
                i += 1
        else:
            i += 1
    # Noise: typos in some words (mentions included), a few missing full stops.
    for i, t in enumerate(s.tokens):
        if rng.random() < 0.04:
            s.tokens[i] = typo(rng, t)
    if s.tokens and s.tokens[-1] == "." and rng.random() < 0.2:
        s.tokens.pop()
        s.tags.pop()
    return s


def write_ner_hard(out, seed):
    rng = random.Random(seed * 7919 + 1)
    os.makedirs(os.path.join(out, "ner_hard"), exist_ok=True)
    for split, n in [("train", 1200), ("dev", 300), ("test", 400)]:
        write_conll(os.path.join(out, "ner_hard", f"{split}.conll"), [hard_sentence(rng) for _ in range(n)])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Independent reference for our WordPiece BasicTokenizer: BERT's basic tokenization steps
(google-research/bert tokenization.py: clean text, CJK isolation, whitespace split, lower-case,
NFD + Mn removal, punctuation split) written with Python's full unicodedata, run on tricky and
random strings. test_tokenizers.cpp compares WordPieceTokenizer::basic_tokenize with the output.

Command (from the repository root; output committed):
  python3 tests/tokenize/reference_basic_tokenizer.py > tests/tokenize/basic_tokenizer_golden.json
Used: Python 3.11 (UCD 14.0). The alphabet avoids what docs/tokenizers.md lists as uncovered:
capital sigma (Python's final-sigma rule) and scripts outside the NFD blocks (Hangul ...).
"""
import json
import random
import unicodedata


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c) in ("Cc", "Cf")


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic(text, lower):
    cleaned = []
    for c in text:
        if ord(c) == 0 or ord(c) == 0xFFFD or is_control(c):
            continue
        cleaned.append(" " if is_whitespace(c) else c)
    spaced = []
    for c in cleaned:
        spaced.append(" " + c + " " if is_cjk(ord(c)) else c)
    out = []
    for tok in "".join(spaced).split():
        if lower:
            tok = tok.lower()
            tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = ""
        for c in tok:
            if is_punctuation(c):
                if cur:
                    out.append(cur)
                out.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            out.append(cur)
    return out


TRICKY = [
    "IL-6 and 5-FU, p53 (Sjögren's syndrome).",
    "ÉCOLE Ωmega Ἀθῆναι Йога ёж İstanbul ǅemal Łódź œuvre",
    "¿Qué? «quoted» — dash… $100 ^caret `tick` ~tilde",
    "中文字 mixed中text",
    "zero\u200bwidth soft\u00adhyphen ctrl\x01char tab\tnl\n",
    "e\u0301 n\u0303 stacked a\u0301\u0308",
]
ALPHABET = list("aZé ÀÉÎõüÿŁœǅΆάωЙёİ中1٢ \t\n'-.,!$^`¿«»—…") + ["\u0301", "\u00a0", "\u3000", "\u200b", "\x01", "\u2028"]


def main():
    rng = random.Random(99)
    texts = list(TRICKY)
    for _ in range(300):
        texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 14))))
    print(json.dumps([{"text": t, "uncased": basic(t, True), "cased": basic(t, False)} for t in texts],
                     ensure_ascii=False, indent=0))


if __name__ == "__main__":
    main()

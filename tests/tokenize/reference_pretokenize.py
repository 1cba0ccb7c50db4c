#!/usr/bin/env python3
"""Independent reference for our hand-written GPT-2 / LLaMA-3 pre-tokenizer scanners.

Splits tricky and random strings with the third-party `regex` module (which supports \\p{L},
\\p{N} and (?i:...)) using the exact patterns of GPT-2's and LLaMA-3's tokenizer.json, and
writes the pieces as JSON. test_tokenizers.cpp compares our scanners with this file.

Command (run from the repository root; output committed):
  python3 tests/tokenize/reference_pretokenize.py > tests/tokenize/pretokenize_golden.json
Used: Python 3.11, regex 2026.5.9. Characters U+001C..U+001F are left out of the random
alphabet: Python counts them as \\s, the Unicode White_Space property (and Oniguruma) do not.
"""
import json
import random

import regex

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
          r"""\s*[\r\n]+|\s+(?!\S)|\s+""")

TRICKY = [
    "IL-6 and 5-FU, p53 (Sjögren's syndrome).",
    "Hello world's 12345 IL-6\n\n  x",
    "DON'T we'LL they've I'M",
    "   leading and trailing   ",
    "tabs\tand\r\nCRLF\r\n\r\n  lines",
    "café 中文 ١٢ ω!? $100 ±5%",
    "e\u0301 combining, \u00a0nbsp\u3000ideographic space",
    "emoji 🧬🦠 DNA",
    "1234567 digits 12 3",
    "''s 's' ''",
]

ALPHABET = list("aZé中ω1٢ \t\n\r'-.!$s") + ["\u0301", "\u00a0", "\u3000", "🧬", "\x0b", "\u2028"]


def main():
    rng = random.Random(1234)
    texts = list(TRICKY)
    for _ in range(400):
        texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 16))))
    out = []
    for t in texts:
        out.append({"text": t, "gpt2": regex.findall(GPT2, t), "llama3": regex.findall(LLAMA3, t)})
        assert "".join(out[-1]["gpt2"]) == t and "".join(out[-1]["llama3"]) == t
    print(json.dumps(out, ensure_ascii=False, indent=0))


if __name__ == "__main__":
    main()

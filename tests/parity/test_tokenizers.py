"""Tokenizer parity: `biolm tokenizer encode/decode/train` against Hugging Face tokenizers /
transformers (and sentencepiece) on >= 12,000 real biomedical texts from ../shared/data.

Compared per text: ids (with the special tokens each tokenizer adds), token strings, offsets
as HF reports them (code points; `biolm tokenizer encode --offsets chars`) and decode (special
tokens skipped, and kept where HF's decoders are defined for it). Every count is printed and
written to $BIOLM_PARITY_WORK/tokenizers_parity.jsonl; a single difference fails the test, with
the first few shown.

Tokenizers: SciBERT uncased and BioBERT cased vocab.txt (shared/data/vocab), the real
all-MiniLM-L6-v2 directory, a byte-level BPE trained here with `tokenizers` on MEDLINE text
(tokenizer.json with and without offset trimming, and vocab.json + merges.txt), a LLaMA-style
SentencePiece BPE with byte fallback trained here with `sentencepiece` (tokenizer.model). The
BPE trainer check trains `biolm tokenizer train --kind bpe` and tokenizers' BpeTrainer on the
same corpus with the same settings and wants the same vocabulary and the same merges.
"""
import json
import os
import shutil
import subprocess

import pytest

import _tok_corpus
from conftest import run_biolm

N_TEXTS = 12000
RESULTS = os.path.join(os.environ.get("BIOLM_PARITY_WORK", "."), "tokenizers_parity.jsonl")


def _protobuf_workaround():
    # The venv's sentencepiece ships a protobuf-7 ModelProto module the protobuf 6 runtime
    # refuses; transformers' own copy of the same schema loads (reading tokenizer.model only).
    import transformers.convert_slow_tokenizer as cst
    from transformers.utils import sentencepiece_model_pb2_new

    cst.import_protobuf = lambda error_message="": sentencepiece_model_pb2_new


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    texts = _tok_corpus.texts(shared_data, n=N_TEXTS)
    assert len(texts) == N_TEXTS, f"only {len(texts)} distinct real texts in {shared_data}"
    d = tmp_path_factory.mktemp("tok_corpus")
    path = d / "texts.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for t in texts + _tok_corpus.EDGE_TEXTS:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    # The training corpus: MEDLINE titles and abstracts, one per line.
    train = d / "medline.txt"
    with open(train, "w", encoding="utf-8") as f:
        for t in _tok_corpus.sources(shared_data)["medline"]:
            f.write(t.replace("\n", " ") + "\n")
    return {"texts": texts, "all": texts + _tok_corpus.EDGE_TEXTS, "jsonl": path, "train": train, "dir": d}


def _json_lines(out):
    # split on "\n" only: str.splitlines would also cut at U+2028, U+0085, ... inside the JSON
    return [json.loads(line) for line in out.split("\n") if line]


def biolm_encode(exe, tok, jsonl, *extra):
    proc = run_biolm(exe, "tokenizer", "encode", "--tokenizer", tok, "--jsonl", jsonl, "--offsets", "chars", *extra)
    return _json_lines(proc.stdout), proc.stderr


def biolm_decode(exe, tok, id_lists, work, keep_special=False):
    path = os.path.join(work, "ids.jsonl")
    with open(path, "w") as f:
        for ids in id_lists:
            f.write(json.dumps(ids) + "\n")
    args = ["tokenizer", "decode", "--tokenizer", tok, "--input", path] + (["--keep-special"] if keep_special else [])
    proc = run_biolm(exe, *args)
    return [j["text"] for j in _json_lines(proc.stdout)]


def compare(name, texts, n_real, ours, ref_ids, ref_tokens, ref_offsets, decoded=None, ref_decoded=None):
    """Counts differing texts per field; returns the summary (and fails on any difference)."""
    assert len(ours) == len(texts), f"{name}: biolm wrote {len(ours)} lines for {len(texts)} texts"
    bad = {"ids": [], "tokens": [], "offsets": [], "decode": []}
    for i, (t, o) in enumerate(zip(texts, ours)):
        if o["ids"] != ref_ids[i]:
            bad["ids"].append(i)
        if o["tokens"] != ref_tokens[i]:
            bad["tokens"].append(i)
        if [tuple(x) for x in o["offsets"]] != [tuple(x) for x in ref_offsets[i]]:
            bad["offsets"].append(i)
        if decoded is not None and decoded[i] != ref_decoded[i]:
            bad["decode"].append(i)
    summary = {"tokenizer": name, "texts": len(texts), "real_texts": n_real,
               "tokens": sum(len(x) for x in ref_ids),
               **{f"{k}_mismatch": len(v) for k, v in bad.items()}}
    with open(RESULTS, "a") as f:
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary))
    msgs = []
    for field, idx in bad.items():
        for i in idx[:3]:
            o = ours[i]
            msgs.append(f"{field} differs on text {i} {texts[i][:120]!r}:\n"
                        f"  biolm ids {o['ids'][:40]}\n  ref   ids {ref_ids[i][:40]}\n"
                        f"  biolm tok {o['tokens'][:40]}\n  ref   tok {ref_tokens[i][:40]}\n"
                        f"  biolm off {o['offsets'][:40]}\n  ref   off {[tuple(x) for x in ref_offsets[i]][:40]}"
                        + (f"\n  biolm dec {decoded[i][:200]!r}\n  ref   dec {ref_decoded[i][:200]!r}"
                           if decoded is not None else ""))
    assert not any(bad.values()), f"{name}: " + json.dumps({k: len(v) for k, v in bad.items()}) + "\n" + "\n".join(msgs)
    return summary


def hf_reference(tok, texts, skip_decode=True):
    enc = tok(texts, add_special_tokens=True, return_offsets_mapping=True)
    ids = enc["input_ids"]
    tokens = [tok.convert_ids_to_tokens(x) for x in ids]
    dec = [tok.decode(x, skip_special_tokens=skip_decode) for x in ids]
    return ids, tokens, enc["offset_mapping"], dec


def check_hf(name, exe, corpus, tok_hf, tok_path, work, *extra, keep_special_decode=True):
    texts = corpus["all"]
    ours, stderr = biolm_encode(exe, tok_path, corpus["jsonl"], *extra)
    ids, tokens, offsets, dec = hf_reference(tok_hf, texts)
    decoded = biolm_decode(exe, tok_path, ids, work)
    summary = compare(name, texts, len(corpus["texts"]), ours, ids, tokens, offsets, decoded, dec)
    if keep_special_decode:
        dec_keep = [tok_hf.decode(x, skip_special_tokens=False) for x in ids]
        kept = biolm_decode(exe, tok_path, ids, work, keep_special=True)
        bad = [i for i in range(len(texts)) if kept[i] != dec_keep[i]]
        assert not bad, f"{name}: decode with special tokens differs on {len(bad)} texts, first " \
                        f"{texts[bad[0]][:80]!r}: {kept[bad[0]][:120]!r} vs {dec_keep[bad[0]][:120]!r}"
    return summary, stderr


# --- WordPiece ------------------------------------------------------------------------------


def test_scibert_uncased_vocab(biolm_exe, shared_data, corpus, work):
    from transformers import BertTokenizerFast

    d = work / "scibert"
    d.mkdir()
    shutil.copy(os.path.join(shared_data, "vocab", "scibert_scivocab_uncased", "vocab.txt"), d / "vocab.txt")
    hf = BertTokenizerFast.from_pretrained(str(d))
    assert hf.backend_tokenizer.normalizer.lowercase
    _, stderr = check_hf("scibert_uncased", biolm_exe, corpus, hf, d / "vocab.txt", work)
    assert "lower-casing" in stderr, stderr


def test_biobert_cased_vocab_takes_casing_from_config(biolm_exe, shared_data, corpus, work):
    from transformers import BertTokenizerFast

    d = work / "biobert"
    d.mkdir()
    shutil.copy(os.path.join(shared_data, "vocab", "biobert_v1.1_pubmed", "vocab.txt"), d / "vocab.txt")
    with open(d / "tokenizer_config.json", "w") as f:
        json.dump({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}, f)
    hf = BertTokenizerFast.from_pretrained(str(d))
    assert not hf.backend_tokenizer.normalizer.lowercase
    # The file path alone: the tokenizer_config.json beside it decides.
    _, stderr = check_hf("biobert_cased", biolm_exe, corpus, hf, d / "vocab.txt", work)
    assert "cased (no lower-casing)" in stderr and "do_lower_case" in stderr, stderr


def test_biobert_bare_vocab_needs_cased_option(biolm_exe, shared_data, corpus, work):
    from transformers import BertTokenizerFast

    bare = os.path.join(shared_data, "vocab", "biobert_v1.1_pubmed", "vocab.txt")
    d = work / "biobert_ref"
    d.mkdir()
    shutil.copy(bare, d / "vocab.txt")
    with open(d / "tokenizer_config.json", "w") as f:
        json.dump({"do_lower_case": False}, f)
    hf = BertTokenizerFast.from_pretrained(str(d))
    texts = corpus["all"][:3000]
    sub = work / "sub.jsonl"
    with open(sub, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    # A bare vocab.txt (no config beside it): --cased gives BioBERT's own tokenization ...
    ours, stderr = biolm_encode(biolm_exe, bare, sub, "--cased")
    ids, tokens, offsets, _ = hf_reference(hf, texts)
    compare("biobert_bare_cased_option", texts, len(texts), ours, ids, tokens, offsets)
    assert "cased (no lower-casing) (from the caller's option)" in stderr, stderr
    # ... and without it, BERT's default lower-casing is announced with a warning, not silent.
    _, stderr = biolm_encode(biolm_exe, bare, sub)
    assert "lower-casing" in stderr and "upper-case letters" in stderr, stderr


def test_minilm_directory_and_tokenizer_json(biolm_exe, minilm_dir, corpus, work):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(minilm_dir)
    check_hf("minilm_dir", biolm_exe, corpus, hf, minilm_dir, work)
    check_hf("minilm_tokenizer_json", biolm_exe, corpus, hf, os.path.join(minilm_dir, "tokenizer.json"), work)


def test_angstrom_ohm_kelvin_signs(biolm_exe, shared_data, work):
    # HF's BertNormalizer decomposes and lower-cases them: U+212B -> a, U+2126 -> omega, U+212A -> k.
    from transformers import BertTokenizerFast

    d = work / "sci2"
    d.mkdir()
    shutil.copy(os.path.join(shared_data, "vocab", "scibert_scivocab_uncased", "vocab.txt"), d / "vocab.txt")
    hf = BertTokenizerFast.from_pretrained(str(d))
    text = "1.5 \u212b, 4 \u2126, 300 \u212a"
    out = json.loads(run_biolm(biolm_exe, "tokenizer", "encode", "--tokenizer", d, "--text", text).stdout)
    assert out["tokens"] == hf.convert_ids_to_tokens(hf(text)["input_ids"])
    assert "[UNK]" not in out["tokens"] and "a" in out["tokens"] and "k" in out["tokens"], out["tokens"]


# --- byte-level BPE -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_bpe(corpus):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=4000, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(corpus["train"])], trainer)
    d = corpus["dir"] / "bpe"
    d.mkdir()
    tok.save(str(d / "tokenizer.json"))
    vm = corpus["dir"] / "bpe_vocab_merges"
    vm.mkdir()
    tok.model.save(str(vm))
    # The same model without offset trimming (GPT-2's own tokenizer.json has trim_offsets false).
    j = json.load(open(d / "tokenizer.json"))
    j["post_processor"]["trim_offsets"] = False
    nt = corpus["dir"] / "bpe_notrim"
    nt.mkdir()
    with open(nt / "tokenizer.json", "w") as f:
        json.dump(j, f, ensure_ascii=False)
    return {"json": d / "tokenizer.json", "vocab_merges": vm, "notrim": nt / "tokenizer.json", "tokenizer": tok}


def test_bpe_tokenizer_json(biolm_exe, corpus, trained_bpe, work):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(trained_bpe["json"]))
    check_hf("bpe_tokenizer_json", biolm_exe, corpus, hf, trained_bpe["json"], work)


def test_bpe_tokenizer_json_without_trimming(biolm_exe, corpus, trained_bpe, work):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(trained_bpe["notrim"]))
    check_hf("bpe_tokenizer_json_notrim", biolm_exe, corpus, hf, trained_bpe["notrim"], work)


def test_bpe_vocab_json_merges_txt(biolm_exe, corpus, trained_bpe, work):
    from transformers import GPT2TokenizerFast

    hf = GPT2TokenizerFast.from_pretrained(str(trained_bpe["vocab_merges"]))
    summary, _ = check_hf("bpe_vocab_merges", biolm_exe, corpus, hf, trained_bpe["vocab_merges"], work)
    # <|endoftext|> written in the text is one token.
    out = json.loads(run_biolm(biolm_exe, "tokenizer", "encode", "--tokenizer", trained_bpe["vocab_merges"],
                               "--text", "a<|endoftext|>b").stdout)
    assert out["tokens"] == hf.convert_ids_to_tokens(hf("a<|endoftext|>b")["input_ids"])
    assert "<|endoftext|>" in out["tokens"]


def test_bpe_trainer_matches_tokenizers(biolm_exe, corpus, trained_bpe, work):
    out = work / "biolm_bpe"
    rep = json.loads(run_biolm(biolm_exe, "tokenizer", "train", "--kind", "bpe", "--vocab-size", 4000,
                               "--min-frequency", 2, "--input", corpus["train"], "--out", out).stdout)
    ref_vocab = json.load(open(trained_bpe["vocab_merges"] / "vocab.json"))
    ref_merges = [l.rstrip("\n") for l in open(trained_bpe["vocab_merges"] / "merges.txt", encoding="utf-8")][1:]
    vocab = json.load(open(out / "vocab.json"))
    merges = [l.rstrip("\n") for l in open(out / "merges.txt", encoding="utf-8")][1:]
    same_prefix = next((i for i, (a, b) in enumerate(zip(merges, ref_merges)) if a != b), min(len(merges), len(ref_merges)))
    summary = {"tokenizer": "bpe_trainer", "vocab": len(vocab), "ref_vocab": len(ref_vocab), "merges": len(merges),
               "ref_merges": len(ref_merges), "identical_leading_merges": same_prefix,
               "vocab_equal": vocab == ref_vocab, "merges_equal": merges == ref_merges}
    with open(RESULTS, "a") as f:
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary))
    assert rep["vocab_size"] == 4000 and len(ref_vocab) == 4000
    assert merges == ref_merges, f"first different merge at {same_prefix}: " \
                                 f"{merges[same_prefix:same_prefix + 3]} vs {ref_merges[same_prefix:same_prefix + 3]}"
    assert vocab == ref_vocab
    # and the trained tokenizer.json encodes as tokenizers' own trained one
    j = json.load(open(out / "tokenizer.json"))
    assert j["added_tokens"][0]["content"] == "<|endoftext|>" and j["added_tokens"][0]["special"]


# --- SentencePiece --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_spm(corpus):
    import sentencepiece as spm

    d = corpus["dir"] / "spm"
    d.mkdir()
    # LLaMA's trainer settings: BPE, byte fallback, identity normalization, digits split, spaces kept.
    spm.SentencePieceTrainer.train(
        input=str(corpus["train"]), model_prefix=str(d / "sp"), vocab_size=3000, model_type="bpe",
        byte_fallback=True, character_coverage=0.9995, num_threads=1, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, add_dummy_prefix=True,
        allow_whitespace_only_pieces=True, minloglevel=2)
    shutil.copy(d / "sp.model", d / "tokenizer.model")
    with open(d / "tokenizer_config.json", "w") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "tokenizer_class": "LlamaTokenizer"}, f)
    return d


def test_sentencepiece_tokenizer_model(biolm_exe, corpus, llama_spm, work):
    import sentencepiece as spm

    _protobuf_workaround()
    from transformers import LlamaTokenizer

    hf = LlamaTokenizer.from_pretrained(str(llama_spm))
    sp = spm.SentencePieceProcessor(model_file=str(llama_spm / "tokenizer.model"))
    texts = corpus["all"]
    ids, tokens, offsets, dec = hf_reference(hf, texts)
    # Where transformers' conversion (Metaspace, prepend_scheme "first") and sentencepiece itself
    # disagree (a text that starts with a space, a special token written in the text), libbiolm
    # follows transformers; count those texts, they are not libbiolm's differences.
    sp_ids = [[sp.bos_id()] + sp.encode(t) for t in texts]
    hf_vs_sp = [i for i in range(len(texts)) if sp_ids[i] != ids[i]]
    ours, _ = biolm_encode(biolm_exe, llama_spm / "tokenizer.model", corpus["jsonl"])
    decoded = biolm_decode(biolm_exe, llama_spm / "tokenizer.model", ids, work)
    summary = compare("llama_spm_tokenizer_model", texts, len(corpus["texts"]), ours, ids, tokens, offsets, decoded, dec)
    real_hf_vs_sp = [i for i in hf_vs_sp if i < len(corpus["texts"])]
    with open(RESULTS, "a") as f:
        f.write(json.dumps({"tokenizer": "llama_spm_hf_vs_sentencepiece", "texts_differing": len(hf_vs_sp),
                            "real_texts_differing": len(real_hf_vs_sp)}) + "\n")
    print("transformers vs sentencepiece differ on", len(hf_vs_sp), "texts,", len(real_hf_vs_sp), "of them real")
    assert summary["ids_mismatch"] == 0


def _llama_tokenizer_jsons(llama_spm, work):
    """transformers' own tokenizer.json for the model (Metaspace, prepend_scheme "first"), and the
    older LLaMA-2 form of the same (normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer)."""
    _protobuf_workaround()
    from transformers import LlamaTokenizer

    hf = LlamaTokenizer.from_pretrained(str(llama_spm))
    meta = work / "llama_json"
    hf.save_pretrained(str(meta))
    j = json.load(open(meta / "tokenizer.json"))
    assert j["pre_tokenizer"]["type"] == "Metaspace" and j["model"]["byte_fallback"]
    j["pre_tokenizer"] = None
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    legacy = work / "llama_json_legacy"
    legacy.mkdir()
    with open(legacy / "tokenizer.json", "w") as f:
        json.dump(j, f, ensure_ascii=False)
    return meta / "tokenizer.json", legacy / "tokenizer.json"


def test_sentencepiece_style_tokenizer_json(biolm_exe, corpus, llama_spm, work):
    from transformers import PreTrainedTokenizerFast

    for name, path in zip(("llama_tokenizer_json_metaspace", "llama_tokenizer_json_legacy"),
                          _llama_tokenizer_jsons(llama_spm, work)):
        hf = PreTrainedTokenizerFast(tokenizer_file=str(path))
        check_hf(name, biolm_exe, corpus, hf, path, work)

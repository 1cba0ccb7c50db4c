// WordPiece and byte-level BPE against hand-checked expectations on tricky biomedical text,
// the real SciBERT / BioBERT vocabularies, loading/saving HF directories, WordPiece training.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "biolm/core/error.h"
#include "biolm/tokenize/bpe.h"
#include "biolm/tokenize/spm_bpe.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/tokenize/wordpiece.h"
#include "support/test_util.h"

using namespace biolm;
using namespace biolm::tokenize;
using Catch::Matchers::Contains;

namespace {

using Offsets = std::vector<std::pair<int64_t, int64_t>>;

std::vector<std::string> toks(const Tokenizer& t, const Encoding& e) { return id_tokens(t, e.ids); }

void check_shapes(const Encoding& e) {
  REQUIRE(e.offsets.size() == e.ids.size());
  REQUIRE(e.word_ids.size() == e.ids.size());
}

const std::vector<std::string> kSmallVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "il", "-", "6", "and", "5", "fu", ",", "p", "##53", "sj", "##og",
    "##ren", "'", "s", "syndrome", "(", ")", ".", "cells", "a", "##a", "中", "IL", "Sj", "##ö", "##gren"};

}  // namespace

TEST_CASE("WordPiece (uncased) on tricky biomedical text", "[tokenize][wordpiece]") {
  WordPieceTokenizer wp(kSmallVocab);
  const std::string text = "IL-6 and 5-FU, p53 (Sjögren's syndrome).";
  const auto e = wp.encode(text);
  check_shapes(e);
  // lower-cased, ö -> o (NFD, Mn removed), punctuation split, greedy longest match with ##.
  CHECK(toks(wp, e) == std::vector<std::string>{"[CLS]", "il", "-", "6", "and", "5", "-", "fu", ",", "p", "##53",
                                                "(", "sj", "##og", "##ren", "'", "s", "syndrome", ")", ".", "[SEP]"});
  // Byte offsets in the original text: ö is two bytes (22, 23).
  CHECK(e.offsets[0] == std::make_pair<int64_t, int64_t>(0, 0));
  CHECK(e.offsets[1] == std::make_pair<int64_t, int64_t>(0, 2));    // IL
  CHECK(e.offsets[10] == std::make_pair<int64_t, int64_t>(16, 18));  // ##53
  CHECK(e.offsets[12] == std::make_pair<int64_t, int64_t>(20, 22));  // Sj
  CHECK(e.offsets[13] == std::make_pair<int64_t, int64_t>(22, 25));  // ög
  CHECK(e.offsets[14] == std::make_pair<int64_t, int64_t>(25, 28));  // ren
  CHECK(text.substr(22, 3) == "ög");
  // Word ids: each basic token is a word; p ##53 share one; specials are -1.
  CHECK(e.word_ids == std::vector<int64_t>{-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 10, 10, 11, 12, 13, 14, 15, -1});
  // Every non-special offset slices the original text to the token's source: normalizing the
  // slice gives the token text back (without its ## mark).
  for (size_t i = 1; i + 1 < e.ids.size(); ++i) {
    const auto [b, en] = e.offsets[i];
    REQUIRE(b < en);
    REQUIRE(en <= static_cast<int64_t>(text.size()));
    const auto slice = wp.basic_tokenize(text.substr(static_cast<size_t>(b), static_cast<size_t>(en - b)));
    REQUIRE(slice.size() == 1);
    std::string tok = wp.id_to_token(e.ids[i]);
    if (tok.rfind("##", 0) == 0) tok = tok.substr(2);
    CHECK(slice[0].text == tok);
  }
  // HF's WordPiece decoder (cleanup on): no space before "," and "." (BertTokenizerFast gives
  // exactly this string for these ids).
  CHECK(wp.decode(e.ids) == "il - 6 and 5 - fu, p53 ( sjogren ' s syndrome ).");
  CHECK(wp.decode(e.ids, false).rfind("[CLS] il", 0) == 0);

  SECTION("unknown words become one [UNK], including partial matches") {
    const auto u = wp.encode("xyzzy pz cells", false);
    CHECK(toks(wp, u) == std::vector<std::string>{"[UNK]", "[UNK]", "cells"});
    CHECK(u.offsets[0] == std::make_pair<int64_t, int64_t>(0, 5));
    CHECK(u.offsets[1] == std::make_pair<int64_t, int64_t>(6, 8));
  }
  SECTION("max 100 characters per word") {
    CHECK(wp.encode(std::string(100, 'a'), false).ids.size() == 100);  // a ##a x 99
    const auto long_word = wp.encode(std::string(101, 'a'), false);
    CHECK(toks(wp, long_word) == std::vector<std::string>{"[UNK]"});
  }
  SECTION("CJK ideographs stand alone; control characters are dropped; [MASK] stays whole") {
    CHECK(toks(wp, wp.encode("中文", false)) == std::vector<std::string>{"中", "[UNK]"});
    CHECK(toks(wp, wp.encode("ce\x01lls", false)) == std::vector<std::string>{"cells"});
    const auto m = wp.encode("[MASK] cells", false);
    CHECK(toks(wp, m) == std::vector<std::string>{"[MASK]", "cells"});
    CHECK(m.offsets[0] == std::make_pair<int64_t, int64_t>(0, 6));
  }
  SECTION("encode_words keeps the caller's words and offsets in the joined text") {
    const auto w = wp.encode_words({"IL-6", "cells"});
    CHECK(toks(wp, w) == std::vector<std::string>{"[CLS]", "il", "-", "6", "cells", "[SEP]"});
    CHECK(w.word_ids == std::vector<int64_t>{-1, 0, 0, 0, 1, -1});
    CHECK(w.offsets[4] == std::make_pair<int64_t, int64_t>(5, 10));
  }
}

TEST_CASE("WordPiece cased keeps case and accents", "[tokenize][wordpiece]") {
  WordPieceOptions o;
  o.lowercase = false;
  WordPieceTokenizer wp(kSmallVocab, o);
  CHECK(toks(wp, wp.encode("IL-6 Sjögren", false)) == std::vector<std::string>{"IL", "-", "6", "Sj", "##ö", "##gren"});
  // strip_accents without lower-casing: ö -> o, so the pieces become Sj ##og ##ren.
  o.strip_accents = true;
  WordPieceTokenizer strip(kSmallVocab, o);
  CHECK(toks(strip, strip.encode("Sjögren", false)) == std::vector<std::string>{"Sj", "##og", "##ren"});
  // Accented capitals lower-case and decompose: "É" -> "e".
  CHECK(WordPieceTokenizer(kSmallVocab).basic_tokenize("ÉCOLE Ωmega")[0].text == "ecole");
  CHECK(WordPieceTokenizer(kSmallVocab).basic_tokenize("ÉCOLE Ωmega")[1].text == "ωmega");
  // Bad vocabularies are refused.
  CHECK_THROWS_WITH(WordPieceTokenizer({"[UNK]", "a", "a"}), Contains("duplicate token \"a\""));
  CHECK_THROWS_WITH(WordPieceTokenizer({"a", "b"}), Contains("is not in the vocabulary"));
}

TEST_CASE("BasicTokenizer agrees with a unicodedata reference on 306 strings", "[tokenize][wordpiece]") {
  // Golden words from tests/tokenize/reference_basic_tokenizer.py (BERT's steps on Python's full
  // Unicode database): checks our category, NFD and lower-case tables.
  const auto golden = nlohmann::json::parse(
      biolm::test::read_text(biolm::test::source_dir() / "tests/tokenize/basic_tokenizer_golden.json"));
  REQUIRE(golden.size() == 306);
  WordPieceTokenizer uncased(kSmallVocab);
  WordPieceOptions o;
  o.lowercase = false;
  WordPieceTokenizer cased(kSmallVocab, o);
  auto words = [](const std::vector<Span>& spans) {
    std::vector<std::string> out;
    for (const auto& s : spans) out.push_back(s.text);
    return out;
  };
  for (const auto& g : golden) {
    const std::string text = g["text"].get<std::string>();
    INFO(nlohmann::json(text).dump());
    CHECK(words(uncased.basic_tokenize(text)) == g["uncased"].get<std::vector<std::string>>());
    CHECK(words(cased.basic_tokenize(text)) == g["cased"].get<std::vector<std::string>>());
  }
}

TEST_CASE("real WordPiece vocabularies load and tokenize biomedical text", "[tokenize][wordpiece][shared]") {
  SECTION("SciBERT scivocab uncased") {
    BIOLM_SHARED_DATA_OR_SKIP(dir, "vocab/scibert_scivocab_uncased");
    auto t = load_tokenizer(dir);
    CHECK(t->kind() == "wordpiece");
    CHECK(t->vocab_size() == 31090);
    CHECK(*t->special().pad == 0);
    CHECK(*t->special().unk == 101);
    CHECK(*t->special().cls == 102);
    CHECK(*t->special().sep == 103);
    CHECK(*t->special().mask == 104);
    const std::string s = "Interleukin-6 levels were elevated in patients with Sjögren's syndrome treated with 5-FU.";
    const auto e = t->encode(s);
    // "sjogren" is not a word of the vocabulary: longest prefix "sj", then "##ogr", then "##en".
    CHECK(toks(*t, e) == std::vector<std::string>{"[CLS]", "interleukin", "-", "6", "levels", "were", "elevated", "in",
                                                  "patients", "with", "sj", "##ogr", "##en", "'", "s", "syndrome",
                                                  "treated", "with", "5", "-", "fu", ".", "[SEP]"});
    CHECK(e.ids[1] == 12577);  // interleukin
    CHECK(e.ids[10] == 8791);  // sj
    CHECK(t->encode("p53", false).ids == std::vector<int64_t>{118, 4262});  // p ##53
  }
  SECTION("BioBERT v1.1 (cased)") {
    BIOLM_SHARED_DATA_OR_SKIP(dir, "vocab/biobert_v1.1_pubmed");
    WordPieceOptions o;
    o.lowercase = false;
    auto t = WordPieceTokenizer::from_vocab_file(dir / "vocab.txt", o);
    CHECK(t->vocab_size() == 28996);
    CHECK(*t->special().pad == 0);
    CHECK(*t->special().unk == 100);
    CHECK(*t->special().cls == 101);
    CHECK(*t->special().sep == 102);
    CHECK(*t->special().mask == 103);
    const auto e = t->encode("IL-6 levels in p53-mutant cells from Sjögren patients", false);
    // Cased: "Sjögren" keeps its ö: S ##j ##ö ##gren.
    CHECK(toks(*t, e) == std::vector<std::string>{"IL", "-", "6", "levels", "in", "p", "##53", "-", "mutant", "cells",
                                                  "from", "S", "##j", "##ö", "##gren", "patients"});
    CHECK(e.ids[0] == 15393);
  }
}

// --- byte-level BPE ----------------------------------------------------------------------------

namespace {

// A GPT-2 style tokenizer.json: the 256 byte characters as ids 0..255, then the merges below.
nlohmann::json tiny_bpe_json(bool llama3 = false) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_unicode(std::string(1, static_cast<char>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"I", "L"}, {"Ġ", "a"}, {"Ġa", "n"}, {"Ġan", "d"}, {"Ġ", "p"}, {"5", "3"}, {"Ã", "¶"},
      {"S", "j"}, {"Sj", "Ã¶"}, {"g", "r"}, {"e", "n"}, {"gr", "en"}, {"Ġ", "S"}};
  nlohmann::json m = nlohmann::json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    m.push_back(a + " " + b);  // the older "a b" form
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
  }
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}},
                      {"added_tokens", {{{"id", id}, {"content", "<|endoftext|>"}, {"special", true}}}},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}}},
                      {"post_processor", {{"type", "ByteLevel"}}}};
  if (llama3) {
    j["pre_tokenizer"] = nlohmann::json::parse(R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
      "behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]})");
  }
  return j;
}

std::vector<std::string> texts(const std::vector<Span>& spans) {
  std::vector<std::string> out;
  for (const auto& s : spans) out.push_back(s.text);
  return out;
}

}  // namespace

TEST_CASE("byte-level BPE on tricky text", "[tokenize][bpe]") {
  auto t = BpeTokenizer::from_json(tiny_bpe_json(), "tiny.json");
  const std::string text = "IL-6 and 5-FU, p53 Sjögren's<|endoftext|>";
  const auto e = t->encode(text);
  check_shapes(e);
  // Merges apply by rank: "Ã ¶" (6) before "S j" (7) before "Sj Ã¶" (8); "Ġ S" (12) never gets
  // its chance because S was merged first.
  CHECK(toks(*t, e) == std::vector<std::string>{"IL", "-", "6", "Ġand", "Ġ", "5", "-", "F", "U", ",", "Ġp", "53", "Ġ",
                                                "SjÃ¶", "gren", "'", "s", "<|endoftext|>"});
  CHECK(e.offsets[3] == std::make_pair<int64_t, int64_t>(5, 8));     // " and" trimmed to "and"
  CHECK(e.offsets[4] == std::make_pair<int64_t, int64_t>(9, 9));     // a lone space: empty, as HF trims it
  CHECK(e.offsets[13] == std::make_pair<int64_t, int64_t>(19, 23));  // "Sjö", ö is 2 bytes
  CHECK(e.offsets[14] == std::make_pair<int64_t, int64_t>(23, 27));
  CHECK(e.offsets[17] == std::make_pair<int64_t, int64_t>(29, 42));
  CHECK(e.word_ids == std::vector<int64_t>{0, 1, 2, 3, 4, 4, 5, 6, 6, 7, 8, 9, 10, 10, 10, 11, 11, 12});
  CHECK(t->decode(e.ids, false) == text);
  CHECK(t->decode(e.ids) == "IL-6 and 5-FU, p53 Sjögren's");
  // Offsets slice back to each token's bytes (minus the leading space trim_offsets removes).
  for (size_t i = 0; i < e.ids.size(); ++i) {
    const auto [b, en] = e.offsets[i];
    const std::string slice = text.substr(static_cast<size_t>(b), static_cast<size_t>(en - b));
    const std::string piece = t->decode({e.ids[i]}, false);
    CHECK((piece == slice || piece == " " + slice));
  }
  CHECK(*t->special().eos == 269);
  // Any byte sequence survives (invalid UTF-8 included).
  const std::string raw("\xFF\xFEok\x00", 5);
  CHECK(t->decode(t->encode(raw).ids) == raw);
}

TEST_CASE("GPT-2 and LLaMA-3 pre-tokenizer patterns", "[tokenize][bpe]") {
  auto gpt2 = BpeTokenizer::from_json(tiny_bpe_json(false), "gpt2.json");
  auto llama = BpeTokenizer::from_json(tiny_bpe_json(true), "llama3.json");
  CHECK(llama->options().pre_tokenizer == PreTokenizer::Llama3);
  const std::string s = "Hello world's 12345 IL-6\n\n  x";
  CHECK(texts(gpt2->pre_tokenize(s)) ==
        std::vector<std::string>{"Hello", " world", "'s", " 12345", " IL", "-", "6", "\n\n ", " x"});
  CHECK(texts(llama->pre_tokenize(s)) ==
        std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", " IL", "-", "6", "\n\n", " ", " x"});
  // Contractions: case-sensitive in GPT-2, case-insensitive in LLaMA-3.
  CHECK(texts(gpt2->pre_tokenize("DON'T")) == std::vector<std::string>{"DON", "'", "T"});
  CHECK(texts(llama->pre_tokenize("DON'T")) == std::vector<std::string>{"DON", "'T"});
  // Unicode classes: é and CJK are letters, Arabic-Indic digits are numbers.
  CHECK(texts(gpt2->pre_tokenize("café 中文 ١٢!?")) == std::vector<std::string>{"café", " 中文", " ١٢", "!?"});
  // LLaMA-3 lets one punctuation character lead a word, and keeps newlines after symbols.
  CHECK(texts(llama->pre_tokenize("(IL-6)\nend")) == std::vector<std::string>{"(IL", "-", "6", ")\n", "end"});
  CHECK(texts(gpt2->pre_tokenize("  a")) == std::vector<std::string>{" ", " a"});
  CHECK(texts(gpt2->pre_tokenize("a  ")) == std::vector<std::string>{"a", "  "});
}

TEST_CASE("pre-tokenizer scanners agree with the regex module on 410 strings", "[tokenize][bpe]") {
  // Golden splits from tests/tokenize/reference_pretokenize.py (Python's `regex` module running
  // the exact tokenizer.json patterns).
  const auto golden = nlohmann::json::parse(
      biolm::test::read_text(biolm::test::source_dir() / "tests/tokenize/pretokenize_golden.json"));
  REQUIRE(golden.size() == 410);
  auto gpt2 = BpeTokenizer::from_json(tiny_bpe_json(false), "gpt2.json");
  auto llama = BpeTokenizer::from_json(tiny_bpe_json(true), "llama3.json");
  int mismatches = 0;
  for (const auto& g : golden) {
    const std::string text = g["text"].get<std::string>();
    INFO(nlohmann::json(text).dump());
    const auto a = texts(gpt2->pre_tokenize(text));
    const auto b = texts(llama->pre_tokenize(text));
    CHECK(a == g["gpt2"].get<std::vector<std::string>>());
    CHECK(b == g["llama3"].get<std::vector<std::string>>());
    mismatches += (a != g["gpt2"].get<std::vector<std::string>>()) + (b != g["llama3"].get<std::vector<std::string>>());
  }
  CHECK(mismatches == 0);
}

TEST_CASE("tokenizer.json errors name the field", "[tokenize][bpe]") {
  auto j = tiny_bpe_json();
  j["model"]["merges"].push_back("Q Z");
  CHECK_THROWS_WITH(BpeTokenizer::from_json(j, "t.json"), Contains("t.json:model.merges") && Contains("\"QZ\""));
  j = tiny_bpe_json();
  j["model"]["vocab"].erase("Ġ");
  CHECK_THROWS_WITH(BpeTokenizer::from_json(j, "t.json"), Contains("not a byte-level vocabulary"));
  j = tiny_bpe_json();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}},
                          {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  CHECK_THROWS_WITH(BpeTokenizer::from_json(j, "t.json"), Contains("neither the GPT-2 nor the LLaMA-3"));
  j = tiny_bpe_json();
  j["normalizer"] = {{"type", "NFC"}};
  CHECK_THROWS_WITH(BpeTokenizer::from_json(j, "t.json"), Contains("t.json:normalizer"));
}

TEST_CASE("tokenizers load from and save to Hugging Face directories", "[tokenize][io]") {
  biolm::test::TempDir dir("tok");
  SECTION("WordPiece with tokenizer_config.json") {
    std::string vocab;
    for (const auto& t : kSmallVocab) vocab += t + "\n";
    biolm::test::write_text(dir / "vocab.txt", vocab);
    biolm::test::write_text(dir / "tokenizer_config.json", R"({"do_lower_case": false, "unk_token": "[UNK]"})");
    auto t = load_tokenizer(dir.path());
    CHECK(t->kind() == "wordpiece");
    const auto e = t->encode("IL-6 Sjögren", false);
    CHECK(toks(*t, e) == std::vector<std::string>{"IL", "-", "6", "Sj", "##ö", "##gren"});
    biolm::test::TempDir out("tok_out");
    t->save(out.path());
    auto back = load_tokenizer(out.path());
    CHECK(back->encode("IL-6 Sjögren").ids == t->encode("IL-6 Sjögren").ids);
    CHECK(back->fingerprint() == t->fingerprint());
    CHECK(back->fingerprint() != WordPieceTokenizer(kSmallVocab).fingerprint());  // lower-casing differs
    const auto cfg = nlohmann::json::parse(biolm::test::read_text(out / "tokenizer_config.json"));
    CHECK(cfg["do_lower_case"] == false);
    CHECK(cfg["cls_token"] == "[CLS]");
    CHECK(nlohmann::json::parse(biolm::test::read_text(out / "special_tokens_map.json"))["mask_token"] == "[MASK]");
    // A special token that is not in the vocabulary is refused by name.
    biolm::test::write_text(dir / "special_tokens_map.json", R"({"mask_token": {"content": "<mask>"}})");
    CHECK_THROWS_WITH(load_tokenizer(dir.path()), Contains("mask_token") && Contains("<mask>"));
  }
  SECTION("byte-level BPE tokenizer.json with a template post-processor") {
    auto j = tiny_bpe_json(true);
    j["model"]["vocab"]["<|begin_of_text|>"] = 300;
    j["model"]["vocab"].erase("<|endoftext|>");
    j["added_tokens"] = {{{"id", 269}, {"content", "<|endoftext|>"}, {"special", true}},
                         {{"id", 270}, {"content", "<|begin_of_text|>"}, {"special", true}}};
    j["model"]["vocab"].erase("<|begin_of_text|>");
    j["post_processor"] = nlohmann::json::parse(
        R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}]})");
    biolm::test::write_text(dir / "tokenizer.json", j.dump());
    auto t = load_tokenizer(dir.path());
    CHECK(t->kind() == "bpe");
    const auto e = t->encode("IL-6");
    CHECK(toks(*t, e) == std::vector<std::string>{"<|begin_of_text|>", "IL", "-", "6"});
    CHECK(e.word_ids.front() == -1);
    CHECK(*t->special().bos == 270);
    biolm::test::TempDir out("tok_out");
    t->save(out.path());
    auto back = load_tokenizer(out.path());
    const std::string s = "Sjögren's (IL-6)\n\n  x<|endoftext|>";
    CHECK(back->encode(s).ids == t->encode(s).ids);
    CHECK(back->fingerprint() == t->fingerprint());
  }
  SECTION("WordPiece tokenizer.json (BertTokenizerFast) with a BertNormalizer") {
    nlohmann::json vocab = nlohmann::json::object();
    for (size_t i = 0; i < kSmallVocab.size(); ++i) vocab[kSmallVocab[i]] = i;
    const nlohmann::json j = {
        {"normalizer", {{"type", "BertNormalizer"}, {"lowercase", false}, {"strip_accents", nullptr}}},
        {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"}, {"vocab", vocab}}}};
    biolm::test::write_text(dir / "tokenizer.json", j.dump());
    auto t = load_tokenizer(dir.path());
    CHECK(t->kind() == "wordpiece");
    CHECK(toks(*t, t->encode("IL-6 Sjögren", false)) == std::vector<std::string>{"IL", "-", "6", "Sj", "##ö", "##gren"});
  }
  SECTION("GPT-2 vocab.json + merges.txt") {
    const auto j = tiny_bpe_json();
    nlohmann::json vocab = j["model"]["vocab"];
    vocab["<|endoftext|>"] = 269;
    biolm::test::write_text(dir / "vocab.json", vocab.dump());
    std::string merges = "#version: 0.2\n";
    for (const auto& m : j["model"]["merges"]) merges += m.get<std::string>() + "\n";
    biolm::test::write_text(dir / "merges.txt", merges);
    auto t = load_tokenizer(dir.path());
    auto ref = BpeTokenizer::from_json(j, "tiny.json");
    const std::string s = "IL-6 and 5-FU, p53 Sjögren's";
    CHECK(t->kind() == "bpe");
    CHECK(t->encode(s).ids == ref->encode(s).ids);
    CHECK(*t->special().eos == 269);
    biolm::test::write_text(dir / "merges.txt", "#version: 0.2\nI L\nbad\n");
    CHECK_THROWS_WITH(load_tokenizer(dir.path()), Contains("merges.txt:3"));
  }
  CHECK_THROWS_WITH(load_tokenizer(dir / "nothing"), Contains("no such tokenizer"));
  biolm::test::TempDir empty("tok_empty");
  CHECK_THROWS_WITH(load_tokenizer(empty.path()), Contains("no tokenizer found"));
}

TEST_CASE("WordPiece training merges the most frequent pairs", "[tokenize][train]") {
  biolm::test::TempDir dir("wptrain");
  biolm::test::write_text(dir / "corpus.txt", "aab aab\nAAB ab ab\n");
  // Words: aab x3 (AAB lower-cased), ab x2. Pairs: (a,##a)=3, (##a,##b)=3, (a,##b)=2. The tie
  // goes to the smaller pair text: "##a" < "a", so ##ab first; then (a,##ab)=3 -> aab; then ab.
  WordPieceTrainOptions o;
  o.vocab_size = 20;
  const auto vocab = train_wordpiece({dir / "corpus.txt"}, o);
  CHECK(vocab == std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##a", "##b", "a", "b", "##ab",
                                          "aab", "ab"});
  o.vocab_size = 10;
  CHECK(train_wordpiece({dir / "corpus.txt"}, o).back() == "##ab");
  o.vocab_size = 12;
  train_wordpiece({dir / "corpus.txt"}, o, dir / "vocab.txt");
  auto t = load_tokenizer(dir / "vocab.txt");
  CHECK(toks(*t, t->encode("aab ab aaab", false)) == std::vector<std::string>{"aab", "ab", "a", "##a", "##ab"});
  o.vocab_size = 5;
  CHECK_THROWS_AS(train_wordpiece({dir / "corpus.txt"}, o), ConfigError);
}

TEST_CASE("biolm tokenizer train / encode smoke test", "[tokenize][cli]") {
  // The command line sits next to the tests in the build tree: <build>/bin/biolm.
  const auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" / "biolm";
  if (!std::filesystem::exists(exe)) {
    WARN("SKIPPED: " << exe << " is not built (cmake --build build --target biolm_cli)");
    return;
  }
  biolm::test::TempDir dir("cli");
  biolm::test::write_text(dir / "corpus.txt", "aab aab\nAAB ab ab\n");
  const std::string train = exe.string() + " tokenizer train --kind wordpiece --vocab-size 12 --input " +
                            (dir / "corpus.txt").string() + " --out " + (dir / "wp").string() + " > " +
                            (dir / "train.json").string() + " 2>/dev/null";
  REQUIRE(std::system(train.c_str()) == 0);
  CHECK(nlohmann::json::parse(biolm::test::read_text(dir / "train.json"))["vocab_size"] == 12);
  const std::string encode = exe.string() + " tokenizer encode --tokenizer " + (dir / "wp").string() +
                             " 'aab aaab' > " + (dir / "enc.json").string();
  REQUIRE(std::system(encode.c_str()) == 0);
  const auto j = nlohmann::json::parse(biolm::test::read_text(dir / "enc.json"));
  CHECK(j["tokens"] == nlohmann::json::array({"[CLS]", "aab", "a", "##a", "##ab", "[SEP]"}));
  CHECK(j["offsets"][4] == nlohmann::json::array({6, 8}));
  CHECK(j["word_ids"] == nlohmann::json::array({-1, 0, 1, 1, 1, -1}));
  // A missing tokenizer is an error exit, not a crash.
  const std::string bad = exe.string() + " tokenizer encode --tokenizer " + (dir / "none").string() + " x 2>/dev/null";
  CHECK(std::system(bad.c_str()) != 0);
}

TEST_CASE("HF offsets and lossy UTF-8 helpers", "[tokenize]") {
  // a (1 byte), é (2), 癌 (3), b (1): byte spans -> code-point spans, as Python str indices.
  const std::string text = "a\xC3\xA9\xE7\x99\x8C" "b";
  CHECK(char_offsets(text, {{0, 1}, {1, 3}, {3, 6}, {6, 7}, {0, 0}, {7, 7}}) ==
        std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {0, 0}, {4, 4}});
  // One U+FFFD per maximal invalid subsequence (Python's errors="replace", Rust's from_utf8_lossy):
  // a cut 3-byte character is one, two stray bytes two, an encoded surrogate (ED A0 80) three.
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(to_valid_utf8("a\xE2\x82") == "a" + fffd);
  CHECK(to_valid_utf8("\xFF\xFEok") == fffd + fffd + "ok");
  CHECK(to_valid_utf8("\xED\xA0\x80") == fffd + fffd + fffd);
  CHECK(to_valid_utf8(text) == text);
}

TEST_CASE("WordPiece normalizes like HF's BertNormalizer", "[tokenize][wordpiece]") {
  // Angstrom, Ohm and Kelvin signs decompose (NFD) and lower-case: a, omega, k (not [UNK]).
  WordPieceTokenizer wp({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "k", "\xCF\x89", "1", "."});
  const auto e = wp.encode("1 \xE2\x84\xAB \xE2\x84\xA6 \xE2\x84\xAA", false);
  CHECK(toks(wp, e) == std::vector<std::string>{"1", "a", "\xCF\x89", "k"});
  CHECK(e.offsets[1] == std::make_pair<int64_t, int64_t>(2, 5));  // the whole 3-byte sign
  // Private-use and unassigned code points are dropped like controls (Rust's is_other).
  CHECK(toks(wp, wp.encode("a\xEE\x80\x80" "a", false)) == std::vector<std::string>{"[UNK]"});  // "aa"
  CHECK(wp.encode("\xEE\x80\x80", false).ids.empty());
  // decode drops [UNK] with the other specials and the space before "." (HF cleanup).
  CHECK(wp.decode({2, 5, 1, 9, 3}) == "a.");
  CHECK(wp.decode({2, 5, 1, 9, 3}, false) == "[CLS] a [UNK]. [SEP]");
}

TEST_CASE("a bare vocab.txt takes its casing from the config beside it or the caller", "[tokenize][wordpiece]") {
  biolm::test::TempDir dir("tok_case");
  biolm::test::write_text(dir / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nIL\nil\n");
  auto cased_ids = [](const Tokenizer& t) { return t.encode("IL", false).ids; };
  CHECK(cased_ids(*load_tokenizer(dir / "vocab.txt")) == std::vector<int64_t>{6});  // BERT's default: lower
  biolm::test::write_text(dir / "tokenizer_config.json", R"({"do_lower_case": false})");
  CHECK(cased_ids(*load_tokenizer(dir / "vocab.txt")) == std::vector<int64_t>{5});  // the file path alone
  CHECK(cased_ids(*load_tokenizer(dir.path())) == std::vector<int64_t>{5});
  LoadOptions lower;
  lower.lowercase = true;
  CHECK(cased_ids(*load_tokenizer(dir / "vocab.txt", lower)) == std::vector<int64_t>{6});  // the option wins
}

TEST_CASE("SentencePiece-style BPE tokenizer.json", "[tokenize][bpe]") {
  // <unk> <s> </s>, the 256 byte tokens (ids 3..258), then ▁ a b ▁a ▁ab; merges "▁ a" then "▁a b".
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  const std::string meta = "\xE2\x96\x81";
  vocab[meta] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab[meta + "a"] = 262;
  vocab[meta + "ab"] = 263;
  const nlohmann::json j = {
      {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                        {{"id", 1}, {"content", "<s>"}, {"special", true}},
                        {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", meta}, {"prepend_scheme", "first"}, {"split", false}}},
      {"post_processor", nlohmann::json::parse(R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}]})")},
      {"decoder", nlohmann::json::parse(R"({"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":")" + meta +
                                        R"("},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})")},
      {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"fuse_unk", true}, {"unk_token", "<unk>"},
                 {"vocab", vocab}, {"merges", {meta + " a", meta + "a b"}}}}};
  REQUIRE(SpmBpeTokenizer::accepts(j));
  auto t = SpmBpeTokenizer::from_json(j, "llama.json");
  // "ab é": ▁ is prepended (spanning "a"), ▁+a then ▁a+b merge; é is not a piece: two byte
  // tokens, both spanning the whole character.
  const auto e = t->encode("ab \xC3\xA9");
  CHECK(e.ids == std::vector<int64_t>{1, 263, 259, 3 + 0xC3, 3 + 0xA9});
  CHECK(e.offsets == std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {0, 2}, {2, 3}, {3, 5}, {3, 5}});
  CHECK(t->decode(e.ids) == "ab \xC3\xA9");
  // Kept, <s> is the first token, so Strip finds no space to take off the start ("▁ab" keeps its
  // space): transformers decodes these ids to "<s> ab é" too.
  CHECK(t->decode(e.ids, false) == "<s> ab \xC3\xA9");
  // A cut character decodes to one U+FFFD per byte, as tokenizers' ByteFallback decoder does.
  CHECK(t->decode({262, 3 + 0xC3}) == "a\xEF\xBF\xBD");
  // <s> in the text stays whole; the text after it gets no "▁" (prepend_scheme "first").
  CHECK(t->encode("<s>ab", false).ids == std::vector<int64_t>{1, 260, 261});
}

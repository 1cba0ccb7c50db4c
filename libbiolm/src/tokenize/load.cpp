// load_tokenizer: picks the tokenizer a Hugging Face directory (or a single file) holds.
#include <fmt/format.h>

#include <algorithm>

#include "biolm/config.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/tokenize/bpe.h"
#include "biolm/tokenize/spm_bpe.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/io/files.h"
#include "tokenize/common.h"
#include "tokenize/unicode.h"
#if BIOLM_HAS_SENTENCEPIECE
#include "biolm/tokenize/sentencepiece.h"
#endif

namespace biolm::tokenize {
namespace {

namespace fs = std::filesystem;

bool is_byte_level_bpe(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("model") || j["model"].value("type", "") != "BPE") return false;
  const auto pre = j.value("pre_tokenizer", nlohmann::json());
  if (!pre.is_object()) return false;
  if (pre.value("type", "") == "ByteLevel") return true;
  if (pre.value("type", "") == "Sequence")
    for (const auto& p : pre.value("pretokenizers", nlohmann::json::array()))
      if (p.value("type", "") == "ByteLevel") return true;
  return false;
}

// Where a WordPiece tokenizer's casing came from, for the log line.
struct Casing {
  std::string source = "no do_lower_case beside it: BERT's default";
};

WordPieceOptions wordpiece_options(const detail::HfTokenizerConfig& hf, Casing& casing) {
  WordPieceOptions o;
  if (auto v = hf.get_bool("do_lower_case")) {
    o.lowercase = *v;
    casing.source = hf.config_path.string() + " do_lower_case";
  }
  if (auto v = hf.get_bool("strip_accents")) o.strip_accents = *v;
  if (auto v = hf.get_bool("tokenize_chinese_chars")) o.tokenize_chinese_chars = *v;
  detail::override_names(o.specials, hf.names);
  return o;
}

// A WordPiece model inside tokenizer.json (what BertTokenizerFast saves).
std::unique_ptr<WordPieceTokenizer> wordpiece_from_json(const nlohmann::json& j, const fs::path& path,
                                                       WordPieceOptions o, Casing& casing,
                                                       const LoadOptions& load) {
  const auto& m = j["model"];
  if (!m.contains("vocab") || !m["vocab"].is_object())
    throw ConfigError(path.string() + ":model.vocab", "expected an object token -> id");
  std::vector<std::string> vocab(m["vocab"].size());
  for (const auto& [t, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<size_t>() >= vocab.size())
      throw ConfigError(path.string() + ":model.vocab", fmt::format("id of \"{}\" is not in [0, {})", t, vocab.size()));
    vocab[id.get<size_t>()] = t;
  }
  if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string())
    o.continuation_prefix = m["continuing_subword_prefix"].get<std::string>();
  if (m.contains("max_input_chars_per_word") && m["max_input_chars_per_word"].is_number_integer())
    o.max_chars_per_word = m["max_input_chars_per_word"].get<int64_t>();
  const auto norm = j.value("normalizer", nlohmann::json());
  if (norm.is_object() && norm.value("type", "") == "BertNormalizer") {
    if (norm.contains("lowercase") && norm["lowercase"].is_boolean()) {
      o.lowercase = norm["lowercase"].get<bool>();
      casing.source = path.string() + " normalizer.lowercase";
    }
    o.clean_text = norm.value("clean_text", o.clean_text);
    o.tokenize_chinese_chars = norm.value("handle_chinese_chars", o.tokenize_chinese_chars);
    if (norm.contains("strip_accents") && norm["strip_accents"].is_boolean()) o.strip_accents = norm["strip_accents"].get<bool>();
  }
  const auto dec = j.value("decoder", nlohmann::json());
  if (dec.is_object() && dec.value("type", "") == "WordPiece") o.decode_cleanup = dec.value("cleanup", true);
  if (load.lowercase) {
    o.lowercase = *load.lowercase;
    casing.source = "the caller's option";
  }
  return std::make_unique<WordPieceTokenizer>(std::move(vocab), std::move(o), path.string());
}

std::unique_ptr<WordPieceTokenizer> wordpiece_from_vocab(const fs::path& path, const detail::HfTokenizerConfig& hf,
                                                         Casing& casing, const LoadOptions& load) {
  WordPieceOptions o = wordpiece_options(hf, casing);
  if (load.lowercase) {
    o.lowercase = *load.lowercase;
    casing.source = "the caller's option";
  }
  return WordPieceTokenizer::from_vocab_file(path, std::move(o));
}

// Says which casing a WordPiece tokenizer uses and why; warns when a lower-casing tokenizer has a
// vocabulary full of upper-case tokens it can never produce (a cased vocabulary read as uncased).
std::unique_ptr<Tokenizer> announce(std::unique_ptr<WordPieceTokenizer> t, const fs::path& path, const Casing& casing) {
  const bool lower = t->options().lowercase;
  log::info("tokenizer {}: WordPiece, {} (from {})", path.string(), lower ? "lower-casing" : "cased (no lower-casing)",
            casing.source);
  if (lower) {
    int64_t upper = 0;
    for (const auto& tok : t->vocab()) {
      if (tok.size() > 1 && tok.front() == '[' && tok.back() == ']') continue;  // [CLS], [unused7], ...
      if (std::any_of(tok.begin(), tok.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) ++upper;
    }
    if (upper * 100 > t->vocab_size())
      log::warn("tokenizer {}: {} of {} tokens hold upper-case letters, which lower-cased text never matches: "
                "a cased vocabulary? Set do_lower_case=false in a tokenizer_config.json beside it, or load it "
                "with lowercase=false (biolm: --cased)",
                path.string(), upper, t->vocab_size());
  }
  return t;
}

#if BIOLM_HAS_SENTENCEPIECE
std::unique_ptr<Tokenizer> sentencepiece_from(const fs::path& file, const detail::HfTokenizerConfig& hf) {
  SentencePieceOptions o;
  if (auto v = hf.get_bool("add_bos_token")) o.add_bos = *v;
  if (auto v = hf.get_bool("add_eos_token")) o.add_eos = *v;
  o.specials = hf.names;
  return SentencePieceTokenizer::from_file(file, o);
}
#endif

std::unique_ptr<Tokenizer> bpe_from(const nlohmann::json& j, const fs::path& file, const detail::HfTokenizerConfig& hf) {
  auto t = BpeTokenizer::from_json(j, file.string());
  SpecialTokenNames names = t->options().specials;
  detail::override_names(names, hf.names);
  t->set_specials(names);
  return t;
}

std::unique_ptr<Tokenizer> spm_bpe_from(const nlohmann::json& j, const fs::path& file, const detail::HfTokenizerConfig& hf) {
  auto t = SpmBpeTokenizer::from_json(j, file.string());
  SpecialTokenNames names;
  if (auto id = t->special().unk) names.unk = t->id_to_token(*id);
  if (auto id = t->special().bos) names.bos = t->id_to_token(*id);
  if (auto id = t->special().eos) names.eos = t->id_to_token(*id);
  detail::override_names(names, hf.names);
  t->set_specials(names);
  return t;
}

}  // namespace

std::vector<std::string> id_tokens(const Tokenizer& tokenizer, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto id : ids) out.push_back(tokenizer.id_to_token(id));
  return out;
}

std::vector<std::pair<int64_t, int64_t>> char_offsets(std::string_view text,
                                                      const std::vector<std::pair<int64_t, int64_t>>& byte_offsets) {
  // index[b]: the number of code points that start before byte b (b = 0 .. size); a byte inside
  // a character counts that character as started.
  std::vector<int64_t> index(text.size() + 1, 0);
  int64_t n = 0;
  for (const auto& c : unicode::decode(text)) {
    index[static_cast<size_t>(c.begin)] = n;
    ++n;
    for (int64_t b = c.begin + 1; b < c.end; ++b) index[static_cast<size_t>(b)] = n;
  }
  index[text.size()] = n;
  std::vector<std::pair<int64_t, int64_t>> out;
  out.reserve(byte_offsets.size());
  auto at = [&](int64_t b) {
    return index[static_cast<size_t>(std::clamp<int64_t>(b, 0, static_cast<int64_t>(text.size())))];
  };
  for (const auto& [b, e] : byte_offsets) out.emplace_back(at(b), at(e));
  return out;
}

std::string to_valid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve(n);
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte (Unicode Table 3-7)
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    if (len == 0) {  // a byte that cannot start a character
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    size_t k = 1;
    while (k < len && i + k < n) {
      const unsigned char x = p[i + k];
      const bool ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
      if (!ok) break;
      ++k;
    }
    if (k == len) out.append(bytes.substr(i, len));
    else out += "\xEF\xBF\xBD";  // the maximal invalid prefix becomes one replacement character
    i += k;
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path, const LoadOptions& load) {
  if (!fs::exists(path)) throw IoError(path.string(), "no such tokenizer file or directory");
  const fs::path dir = fs::is_directory(path) ? path : path.parent_path();
  // A single file takes its options from the HF config files beside it, as a directory would.
  const detail::HfTokenizerConfig hf = detail::read_hf_config(dir.empty() ? fs::path(".") : dir);
  Casing casing;
  if (!fs::is_directory(path)) {
    const auto ext = path.extension().string();
    if (ext == ".json") {
      const auto j = io::read_json_file(path);
      if (is_byte_level_bpe(j)) return bpe_from(j, path, hf);
      if (SpmBpeTokenizer::accepts(j)) return spm_bpe_from(j, path, hf);
      if (j.is_object() && j.contains("model") && j["model"].value("type", "") == "WordPiece")
        return announce(wordpiece_from_json(j, path, wordpiece_options(hf, casing), casing, load), path, casing);
      throw ConfigError(path.string() + ":model.type",
                        "only byte-level BPE, SentencePiece-style BPE (byte_fallback / Metaspace) and "
                        "WordPiece tokenizer.json files are supported; for unigram models load tokenizer.model");
    }
    if (ext == ".model") {
#if BIOLM_HAS_SENTENCEPIECE
      return sentencepiece_from(path, hf);
#else
      throw ConfigError(path.string(), "this libbiolm was built without SentencePiece");
#endif
    }
    return announce(wordpiece_from_vocab(path, hf, casing, load), path, casing);
  }

  std::optional<nlohmann::json> tj;
  if (fs::exists(dir / "tokenizer.json")) {
    tj = io::read_json_file(dir / "tokenizer.json");
    if (is_byte_level_bpe(*tj)) return bpe_from(*tj, dir / "tokenizer.json", hf);
  }
  if (fs::exists(dir / "tokenizer.model")) {
#if BIOLM_HAS_SENTENCEPIECE
    return sentencepiece_from(dir / "tokenizer.model", hf);
#else
    throw ConfigError((dir / "tokenizer.model").string(), "this libbiolm was built without SentencePiece");
#endif
  }
  if (tj && SpmBpeTokenizer::accepts(*tj)) return spm_bpe_from(*tj, dir / "tokenizer.json", hf);
  if (!tj && fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    // As transformers' GPT2Tokenizer: the special tokens (by default <|endoftext|> for unk, bos
    // and eos) and tokenizer_config.json's added_tokens_decoder are added tokens, matched whole.
    std::vector<AddedToken> added;
    const auto& atd = hf.config.value("added_tokens_decoder", nlohmann::json::object());
    for (const auto& [id, a] : atd.items()) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string()) continue;
      added.push_back({0, a["content"].get<std::string>(), a.value("special", false), a.value("lstrip", false),
                       a.value("rstrip", false)});
    }
    SpecialTokenNames gpt2 = hf.names;
    if (!gpt2.unk && !gpt2.bos && !gpt2.eos) gpt2.unk = gpt2.bos = gpt2.eos = "<|endoftext|>";
    for (const auto* n : {&gpt2.pad, &gpt2.unk, &gpt2.bos, &gpt2.eos, &gpt2.cls, &gpt2.sep, &gpt2.mask})
      if (*n && std::none_of(added.begin(), added.end(), [&](const AddedToken& a) { return a.content == **n; }))
        added.push_back({0, **n, true, false, false});
    auto t = BpeTokenizer::from_vocab_merges(dir / "vocab.json", dir / "merges.txt",
                                             hf.get_bool("add_prefix_space").value_or(false), std::move(added));
    SpecialTokenNames names = t->options().specials;
    detail::override_names(names, hf.names);
    t->set_specials(names);
    return t;
  }
  if (fs::exists(dir / "vocab.txt")) return announce(wordpiece_from_vocab(dir / "vocab.txt", hf, casing, load), dir, casing);
  if (tj && tj->is_object() && tj->contains("model") && (*tj)["model"].value("type", "") == "WordPiece")
    return announce(wordpiece_from_json(*tj, dir / "tokenizer.json", wordpiece_options(hf, casing), casing, load), dir,
                    casing);
  throw ConfigError(dir.string(), "no tokenizer found: expected a byte-level BPE tokenizer.json, tokenizer.model, "
                                  "vocab.json + merges.txt or vocab.txt");
}

}  // namespace biolm::tokenize

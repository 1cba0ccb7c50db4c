// load_tokenizer: picks the tokenizer a Hugging Face directory (or a single file) holds.
#include <fmt/format.h>

#include "biolm/config.h"
#include "biolm/core/error.h"
#include "biolm/tokenize/bpe.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/tokenize/wordpiece.h"
#include "io/file_util.h"
#include "tokenize/common.h"
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

WordPieceOptions wordpiece_options(const detail::HfTokenizerConfig& hf) {
  WordPieceOptions o;
  if (auto v = hf.get_bool("do_lower_case")) o.lowercase = *v;
  if (auto v = hf.get_bool("strip_accents")) o.strip_accents = *v;
  if (auto v = hf.get_bool("tokenize_chinese_chars")) o.tokenize_chinese_chars = *v;
  detail::override_names(o.specials, hf.names);
  return o;
}

// A WordPiece model inside tokenizer.json (what BertTokenizerFast saves).
std::unique_ptr<Tokenizer> wordpiece_from_json(const nlohmann::json& j, const fs::path& path,
                                               WordPieceOptions o) {
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
    o.lowercase = norm.value("lowercase", o.lowercase);
    o.clean_text = norm.value("clean_text", o.clean_text);
    o.tokenize_chinese_chars = norm.value("handle_chinese_chars", o.tokenize_chinese_chars);
    if (norm.contains("strip_accents") && norm["strip_accents"].is_boolean()) o.strip_accents = norm["strip_accents"].get<bool>();
  }
  return std::make_unique<WordPieceTokenizer>(std::move(vocab), std::move(o), path.string());
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

}  // namespace

std::vector<std::string> id_tokens(const Tokenizer& tokenizer, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto id : ids) out.push_back(tokenizer.id_to_token(id));
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  if (!fs::exists(path)) throw IoError(path.string(), "no such tokenizer file or directory");
  const fs::path dir = fs::is_directory(path) ? path : path.parent_path();
  const detail::HfTokenizerConfig hf =
      fs::is_directory(path) ? detail::read_hf_config(dir) : detail::HfTokenizerConfig{};
  if (!fs::is_directory(path)) {
    const auto ext = path.extension().string();
    if (ext == ".json") {
      const auto j = io::detail::read_json_file(path);
      if (is_byte_level_bpe(j)) return bpe_from(j, path, hf);
      if (j.is_object() && j.contains("model") && j["model"].value("type", "") == "WordPiece")
        return wordpiece_from_json(j, path, wordpiece_options(hf));
      throw ConfigError(path.string() + ":model.type",
                        "only byte-level BPE and WordPiece tokenizer.json files are supported; "
                        "for SentencePiece models load tokenizer.model");
    }
    if (ext == ".model") {
#if BIOLM_HAS_SENTENCEPIECE
      return sentencepiece_from(path, hf);
#else
      throw ConfigError(path.string(), "this libbiolm was built without SentencePiece");
#endif
    }
    return WordPieceTokenizer::from_vocab_file(path, wordpiece_options(hf));
  }

  std::optional<nlohmann::json> tj;
  if (fs::exists(dir / "tokenizer.json")) {
    tj = io::detail::read_json_file(dir / "tokenizer.json");
    if (is_byte_level_bpe(*tj)) return bpe_from(*tj, dir / "tokenizer.json", hf);
  }
  if (fs::exists(dir / "tokenizer.model")) {
#if BIOLM_HAS_SENTENCEPIECE
    return sentencepiece_from(dir / "tokenizer.model", hf);
#else
    throw ConfigError((dir / "tokenizer.model").string(), "this libbiolm was built without SentencePiece");
#endif
  }
  if (!tj && fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    auto t = BpeTokenizer::from_vocab_merges(dir / "vocab.json", dir / "merges.txt",
                                             hf.get_bool("add_prefix_space").value_or(false));
    SpecialTokenNames names = t->options().specials;
    detail::override_names(names, hf.names);
    t->set_specials(names);
    return t;
  }
  if (fs::exists(dir / "vocab.txt")) return WordPieceTokenizer::from_vocab_file(dir / "vocab.txt", wordpiece_options(hf));
  if (tj && tj->is_object() && tj->contains("model") && (*tj)["model"].value("type", "") == "WordPiece")
    return wordpiece_from_json(*tj, dir / "tokenizer.json", wordpiece_options(hf));
  throw ConfigError(dir.string(), "no tokenizer found: expected a byte-level BPE tokenizer.json, tokenizer.model, "
                                  "vocab.json + merges.txt or vocab.txt");
}

}  // namespace biolm::tokenize

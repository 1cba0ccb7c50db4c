// Internal helpers shared by the tokenizers: Hugging Face tokenizer_config.json /
// special_tokens_map.json reading and writing, special-token resolution, and the word-by-word
// encoding behind encode_words.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "biolm/tokenize/bpe.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::tokenize::detail {

struct HfTokenizerConfig {
  SpecialTokenNames names;                          ///< set where either file names the token
  nlohmann::json config = nlohmann::json::object();  ///< tokenizer_config.json, {} when absent
  std::filesystem::path config_path;
  /// A boolean option of tokenizer_config.json; ConfigError when present but not a bool.
  std::optional<bool> get_bool(const std::string& key) const;
};

/// Reads tokenizer_config.json then special_tokens_map.json (the latter wins) from `dir`.
HfTokenizerConfig read_hf_config(const std::filesystem::path& dir);
/// Sets each field of `base` that `over` sets.
void override_names(SpecialTokenNames& base, const SpecialTokenNames& over);
/// Looks every named token up; a name missing from the vocabulary is a ConfigError naming `source`.
SpecialTokens resolve_special(const SpecialTokenNames& names,
                              const std::function<std::optional<int64_t>(std::string_view)>& lookup,
                              const std::string& source);
/// Writes special_tokens_map.json and tokenizer_config.json (`config` plus the token names).
void write_hf_config(const std::filesystem::path& dir, const SpecialTokenNames& names, nlohmann::json config);
/// True for pad/cls/sep/bos/eos/mask ids (what decode(skip_special) drops).
bool is_skippable_special(const SpecialTokens& s, int64_t id);
/// Hex of a 64-bit hash.
std::string hex64(uint64_t h);

/// Joins per-word encodings (made by `encode_word(word, offset_of_word_in_joined_text)`, no
/// specials) into one, setting word_ids to the word index, with `prefix`/`suffix` ids around it.
Encoding encode_words_joined(const std::vector<std::string>& words,
                             const std::function<Encoding(const std::string&, int64_t, size_t)>& encode_word,
                             const std::vector<int64_t>& prefix, const std::vector<int64_t>& suffix);
/// Splits `text` at the added tokens written in it, as HF's AddedVocabulary does: the earliest
/// match first, the longest on a tie; lstrip / rstrip swallow the whitespace beside a token into
/// its span. Calls plain(segment, byte offset) for each stretch between tokens (empty ones too)
/// and added(token, begin, end) for each token, in text order.
void split_on_added(std::string_view text, const std::vector<AddedToken>& tokens,
                    const std::function<void(std::string_view, size_t)>& plain,
                    const std::function<void(const AddedToken&, size_t, size_t)>& added);
/// Puts `prefix` / `suffix` ids (offsets {0,0}, word id -1) around `enc`.
void add_specials(Encoding& enc, const std::vector<int64_t>& prefix, const std::vector<int64_t>& suffix);

}  // namespace biolm::tokenize::detail

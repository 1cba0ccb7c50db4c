// biolm/tokenize/bpe.h: byte-level BPE (GPT-2, LLaMA-3) read from a Hugging Face tokenizer.json.
//
// Pipeline (as in GPT-2's encoder.py and HF tokenizers' ByteLevel): split off added tokens, cut
// the rest with the pre-tokenizer pattern (GPT-2 or LLaMA-3, scanned by hand, see pre_tokenize),
// map each piece's UTF-8 bytes to printable characters (GPT-2's bytes_to_unicode), then merge
// adjacent symbols by merge rank until no ranked pair is left. Offsets are byte offsets of whole
// characters (a token holding part of a character's bytes gets that character's span, as HF's
// alignments give); with trim_offsets (HF's ByteLevel post-processor) a token's offsets leave out
// its leading and trailing spaces, exactly as tokenizers' process_offsets does.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "biolm/tokenize/tokenizer.h"

namespace biolm::tokenize {

enum class PreTokenizer {
  /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
  /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  /// \s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
};

/// A token matched verbatim in the input before pre-tokenization (tokenizer.json "added_tokens").
struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;  ///< dropped by decode(skip_special)
  bool lstrip = false;   ///< swallow whitespace on its left
  bool rstrip = false;   ///< swallow whitespace on its right
};

struct BpeOptions {
  PreTokenizer pre_tokenizer = PreTokenizer::Gpt2;
  bool add_prefix_space = false;  ///< ByteLevel add_prefix_space: a space before the first word
  /// The ByteLevel *post-processor*'s trim_offsets (HF trims nothing without one): leading and
  /// trailing spaces of a token leave its offsets, a token of spaces only keeps an empty span.
  bool trim_offsets = true;
  /// That post-processor's add_prefix_space: the first token keeps its one leading space.
  bool trim_keeps_prefix_space = true;
  bool ignore_merges = false;     ///< a whole piece found in the vocabulary is one token (LLaMA-3)
  std::vector<std::string> prefix_tokens;  ///< added by encode(add_special), e.g. <|begin_of_text|>
  std::vector<std::string> suffix_tokens;
  SpecialTokenNames specials;
};

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(std::unordered_map<std::string, int64_t> vocab, std::vector<std::pair<std::string, std::string>> merges,
               std::vector<AddedToken> added, BpeOptions options, std::string source = "<memory>");
  /// Reads a tokenizer.json whose model is BPE with a ByteLevel pre-tokenizer (alone, or after
  /// a Split with the GPT-2 or LLaMA-3 pattern). Anything else is a ConfigError naming the field.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  static std::unique_ptr<BpeTokenizer> from_json(const nlohmann::json& j, const std::string& source);
  /// GPT-2's older pair of files: vocab.json (token -> id) and merges.txt ("a b" per line after
  /// an optional "#version" line), with the GPT-2 pre-tokenizer and, as transformers'
  /// GPT2Tokenizer builds it, no offset trimming. `added` become added tokens (matched whole in
  /// the text); a name that is not in vocab.json is skipped.
  static std::unique_ptr<BpeTokenizer> from_vocab_merges(const std::filesystem::path& vocab_json,
                                                         const std::filesystem::path& merges_txt,
                                                         bool add_prefix_space = false,
                                                         std::vector<AddedToken> added = {});

  Encoding encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  const SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "bpe"; }
  std::string fingerprint() const override;
  Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const override;
  void save(const std::filesystem::path& dir) const override;

  /// The pre-tokenizer pieces of `text` (no added-token handling, no prefix space).
  std::vector<Span> pre_tokenize(std::string_view text) const;
  /// The BPE tokens of one piece given in byte-level characters.
  std::vector<std::string> bpe(const std::string& byte_chars) const;
  /// tokenizer.json content that from_json reads back to an equal tokenizer.
  nlohmann::json to_json() const;
  /// Writes GPT-2's vocab.json (token -> id, id order) and merges.txt ("#version: 0.2" then
  /// "a b" per line), as tokenizers' BPE model.save does.
  void save_vocab_merges(const std::filesystem::path& dir) const;
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  const BpeOptions& options() const { return options_; }
  /// Overrides the special token names (from special_tokens_map.json) and re-resolves them.
  void set_specials(const SpecialTokenNames& names);
  void set_affixes(std::vector<std::string> prefix, std::vector<std::string> suffix);

 private:
  void encode_plain(std::string_view text, int64_t base, bool first_piece, Encoding& out) const;
  void trim_offsets(Encoding& enc) const;
  const AddedToken* added_by_id(int64_t id) const;
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::unordered_map<std::string, int64_t> ranks_;  // "a b" -> rank
  std::vector<AddedToken> added_;
  BpeOptions options_;
  SpecialTokens special_;
  std::vector<int64_t> prefix_ids_, suffix_ids_;
  std::string source_;
};

/// GPT-2's reversible map from bytes to printable characters, as UTF-8 ("Ġ" for the space).
std::string bytes_to_unicode(std::string_view bytes);

struct BpeTrainOptions {
  int64_t vocab_size = 30000;
  int64_t min_frequency = 0;  ///< pairs seen fewer times are never merged (BpeTrainer's min_frequency)
  std::vector<std::string> special_tokens{"<|endoftext|>"};  ///< ids 0.., added tokens
  bool add_prefix_space = false;                             ///< ByteLevel add_prefix_space
};

/// Learns a byte-level BPE from plain-text files the way HF tokenizers' BpeTrainer does with a
/// ByteLevel pre-tokenizer (GPT-2 pattern) and initial_alphabet = ByteLevel.alphabet(): lines are
/// read with their line ends (train_from_files keeps "\n"), pre-tokenized words are counted; the
/// vocabulary is the special tokens, the 256 byte characters by code point, then one token per
/// merge; the next merge is the pair with the highest count, ties to the smaller pair of ids, and
/// counts are updated lazily through a priority queue exactly as bpe/trainer.rs does (a pair that
/// is merged twice keeps the rank of its last merge, as the trained model's merge map does). The
/// result pre-tokenizes with the GPT-2 pattern and trims offsets (ByteLevel post-processor).
std::unique_ptr<BpeTokenizer> train_bpe(const std::vector<std::filesystem::path>& files, const BpeTrainOptions& options);

}  // namespace biolm::tokenize

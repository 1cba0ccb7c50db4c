// biolm/tokenize/wordpiece.h: BERT's WordPiece tokenizer (vocab.txt) and a WordPiece trainer.
//
// Encoding follows BERT's tokenization.py (google-research/bert) as HF tokenizers implements it
// (BertNormalizer + BertPreTokenizer + WordPiece, what BertTokenizerFast runs): clean text (drop
// NUL, U+FFFD and every Cc/Cf/Cs/Co/Cn character but tab/CR/LF), isolate CJK ideographs, split on
// whitespace, optional accent stripping (NFD + removal of Mn marks) then lower-casing, split on
// punctuation = Unicode P* plus the ASCII symbol ranges, then greedy longest-match-first with
// "##" continuation pieces; words longer than max_chars_per_word become [UNK], as does any word
// with an unmatched remainder. tests/parity/test_tokenizers.py checks it on 12,000 real texts.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "biolm/tokenize/tokenizer.h"

namespace biolm::tokenize {

struct WordPieceOptions {
  bool lowercase = true;               ///< do_lower_case
  std::optional<bool> strip_accents;   ///< nullopt: strip exactly when lower-casing (BERT)
  bool tokenize_chinese_chars = true;
  bool clean_text = true;              ///< drop NUL, U+FFFD and control characters
  int64_t max_chars_per_word = 100;
  std::string continuation_prefix = "##";
  /// decode drops the space before . ? ! , (HF's WordPiece decoder "cleanup", on for BERT).
  bool decode_cleanup = true;
  SpecialTokenNames specials{"[PAD]", "[UNK]", std::nullopt, std::nullopt, "[CLS]", "[SEP]", "[MASK]"};
};

class WordPieceTokenizer final : public Tokenizer {
 public:
  /// `vocab[i]` is the token of id i. `source` names the vocabulary in errors.
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {},
                     std::string source = "<memory>");
  /// Reads vocab.txt (one token per line; DataError on an empty or duplicate line).
  static std::unique_ptr<WordPieceTokenizer> from_vocab_file(const std::filesystem::path& path,
                                                             WordPieceOptions options = {});

  Encoding encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  const SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "wordpiece"; }
  std::string fingerprint() const override;
  Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const override;
  void save(const std::filesystem::path& dir) const override;

  /// BERT's BasicTokenizer: the normalized words with their byte spans in `text`.
  std::vector<Span> basic_tokenize(std::string_view text) const;
  /// Writes vocab.txt (one token per line, id order).
  void save_vocab(const std::filesystem::path& path) const;
  const WordPieceOptions& options() const { return options_; }
  const std::vector<std::string>& vocab() const { return vocab_; }

 private:
  void encode_into(std::string_view text, int64_t base, int64_t word_id_override, int64_t& next_word,
                   Encoding& out) const;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  WordPieceOptions options_;
  SpecialTokens special_;
  std::string source_;
};

struct WordPieceTrainOptions {
  int64_t vocab_size = 30522;
  bool lowercase = true;        ///< also strips accents, as BERT's uncased models
  int64_t min_frequency = 2;    ///< pairs seen fewer times are never merged
  int64_t limit_alphabet = 1000;  ///< keep the most frequent initial characters
  std::vector<std::string> special_tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
};

/// Learns a WordPiece vocabulary from plain-text files: words come from the BasicTokenizer
/// (lower-cased per options), each word starts as its characters (continuations "##c"), and the
/// most frequent adjacent pair is merged (ties: the lexicographically smallest pair) until the
/// vocabulary is full. Order: special tokens, characters, "##" characters, merges in order.
std::vector<std::string> train_wordpiece(const std::vector<std::filesystem::path>& files,
                                         const WordPieceTrainOptions& options);
/// Same, writing the vocabulary to `out_vocab` (vocab.txt).
void train_wordpiece(const std::vector<std::filesystem::path>& files, const WordPieceTrainOptions& options,
                     const std::filesystem::path& out_vocab);

}  // namespace biolm::tokenize

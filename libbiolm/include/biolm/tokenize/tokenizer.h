// biolm/tokenize/tokenizer.h: one interface for WordPiece, SentencePiece and byte-level BPE.
//
// Every encoding carries character offsets into the input (needed to map word-level NER labels
// and answer spans onto sub-word tokens). Offsets are byte offsets into the UTF-8 input,
// [begin, end); special tokens added by the tokenizer get {0, 0}.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace biolm::tokenize {

struct Encoding {
  std::vector<int64_t> ids;
  std::vector<std::pair<int64_t, int64_t>> offsets;  // byte offsets into the input, per id
  std::vector<int64_t> word_ids;                      // index of the pre-tokenized word, -1 for specials
};

/// The special tokens a model family uses; absent ones are nullopt.
struct SpecialTokens {
  std::optional<int64_t> pad, unk, bos, eos, cls, sep, mask;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Text -> ids with offsets. add_special: [CLS] ... [SEP] for BERT-style, <s> for LLaMA-style.
  virtual Encoding encode(std::string_view text, bool add_special = true) const = 0;
  /// Ids -> text. skip_special drops pad/cls/sep/bos/eos/mask.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;

  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;
  virtual const SpecialTokens& special() const = 0;
  /// "wordpiece" | "sentencepiece" | "bpe"
  virtual std::string kind() const = 0;
  /// A stable hash of the vocabulary and settings (recorded in token shards).
  virtual std::string fingerprint() const = 0;

  /// Encodes pre-split words (NER): word_ids in the result index `words`.
  virtual Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const = 0;
};

}  // namespace biolm::tokenize

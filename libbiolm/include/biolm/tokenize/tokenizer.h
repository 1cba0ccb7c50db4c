// biolm/tokenize/tokenizer.h: one interface for WordPiece, SentencePiece and byte-level BPE.
//
// Every encoding carries character offsets into the input (needed to map word-level NER labels
// and answer spans onto sub-word tokens). Offsets are byte offsets into the UTF-8 input,
// [begin, end); special tokens added by the tokenizer get {0, 0}.
#pragma once

#include <cstdint>
#include <filesystem>
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

/// The same special tokens by their text, as special_tokens_map.json names them.
struct SpecialTokenNames {
  std::optional<std::string> pad, unk, bos, eos, cls, sep, mask;
};

/// A piece of text with its byte span [begin, end) in the input (pre-tokenizer output).
struct Span {
  std::string text;
  int64_t begin = 0;
  int64_t end = 0;
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

  /// Encodes pre-split words (NER): word_ids in the result index `words`. Offsets index the
  /// words joined with single spaces (word i starts after words 0..i-1 and i separators).
  virtual Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const = 0;

  /// Writes this tokenizer as a Hugging Face directory expects it: vocab.txt (WordPiece),
  /// tokenizer.model (SentencePiece) or tokenizer.json (byte-level BPE), plus
  /// tokenizer_config.json and special_tokens_map.json. Creates `dir` when needed.
  virtual void save(const std::filesystem::path& dir) const = 0;
};

/// The token strings of `ids`.
std::vector<std::string> id_tokens(const Tokenizer& tokenizer, const std::vector<int64_t>& ids);

/// Byte offsets into `text` turned into code-point offsets, the offsets Hugging Face reports
/// (indices into a Python str). An invalid UTF-8 byte counts as one code point, as
/// unicode decoding with U+FFFD replacement sees it.
std::vector<std::pair<int64_t, int64_t>> char_offsets(std::string_view text,
                                                      const std::vector<std::pair<int64_t, int64_t>>& byte_offsets);

/// `bytes` as valid UTF-8: each maximal invalid subsequence becomes one U+FFFD (the rule of
/// Rust's String::from_utf8_lossy and Python's errors="replace", which HF's decoders apply).
std::string to_valid_utf8(std::string_view bytes);

/// Choices the files may leave open. Set, they win over tokenizer_config.json.
struct LoadOptions {
  /// WordPiece lower-casing (and, unless strip_accents says otherwise, accent stripping).
  std::optional<bool> lowercase;
};

/// Loads a tokenizer from a Hugging Face directory or from one file. In a directory the files
/// decide: a byte-level BPE tokenizer.json, else tokenizer.model (SentencePiece), else a
/// SentencePiece-style BPE tokenizer.json (byte_fallback / Metaspace, spm_bpe.h), else GPT-2's
/// vocab.json + merges.txt, else vocab.txt (WordPiece), else a WordPiece tokenizer.json; special tokens and options (do_lower_case,
/// strip_accents, tokenize_chinese_chars, add_bos_token, add_eos_token) come from
/// tokenizer_config.json and special_tokens_map.json when present. A file is read by its name:
/// *.json (tokenizer.json), *.model (SentencePiece), anything else as a WordPiece vocab.txt;
/// the tokenizer_config.json / special_tokens_map.json beside it are read as for a directory
/// (a bare BioBERT vocab.txt takes do_lower_case=false from there). WordPiece casing comes from
/// options.lowercase, else do_lower_case, else a WordPiece tokenizer.json's normalizer, else
/// BERT's default (lower-casing); which one decided is logged (info), and lower-casing a
/// vocabulary that holds many upper-case tokens is a warning.
/// Throws ConfigError / DataError / IoError naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path, const LoadOptions& options = {});

}  // namespace biolm::tokenize

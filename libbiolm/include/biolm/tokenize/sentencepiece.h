// biolm/tokenize/sentencepiece.h: SentencePiece models (tokenizer.model: LLaMA, Mistral, T5, ...)
// and the SentencePiece trainer. Only in builds with BIOLM_HAS_SENTENCEPIECE (biolm/config.h);
// the library itself stays out of this header (pimpl).
//
// Encoding is SentencePiece's own (normalization, unigram or BPE, byte fallback for characters
// outside the pieces: <0xE3><0x81>...). Offsets come from SentencePieceText spans; the pieces of
// one byte-fallback character share that character's span. A word starts at every piece that
// begins with U+2581 "▁".
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "biolm/tokenize/tokenizer.h"

namespace biolm::tokenize {

struct SentencePieceOptions {
  bool add_bos = true;   ///< encode(add_special) starts with <s> (LLaMA's add_bos_token)
  bool add_eos = false;  ///< and ends with </s> (add_eos_token)
  /// Names overriding the model's own unk/bos/eos/pad pieces (from special_tokens_map.json).
  SpecialTokenNames specials;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  /// Reads a serialized ModelProto (tokenizer.model). ConfigError when it does not parse.
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::filesystem::path& path,
                                                           SentencePieceOptions options = {});
  static std::unique_ptr<SentencePieceTokenizer> from_serialized(std::string model_bytes,
                                                                 SentencePieceOptions options = {},
                                                                 std::string source = "<memory>");
  ~SentencePieceTokenizer() override;

  Encoding encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  const SpecialTokens& special() const override;
  std::string kind() const override { return "sentencepiece"; }
  std::string fingerprint() const override;
  Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const override;
  /// Writes tokenizer.model (the exact bytes read) plus the HF config files.
  void save(const std::filesystem::path& dir) const override;

  /// The serialized ModelProto.
  const std::string& model_bytes() const;
  bool is_byte_piece(int64_t id) const;
  const SentencePieceOptions& options() const;

 private:
  struct Impl;
  explicit SentencePieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

enum class SentencePieceModelType { Unigram, Bpe };

struct SentencePieceTrainOptions {
  int64_t vocab_size = 8000;
  SentencePieceModelType model_type = SentencePieceModelType::Unigram;
  double character_coverage = 0.9995;  ///< 1.0 for small alphabets
  bool byte_fallback = false;
  int num_threads = 1;                 ///< 1 keeps training deterministic
  int64_t input_sentence_size = 0;     ///< 0: all sentences
  std::vector<std::string> user_defined_symbols;
  bool hard_vocab_limit = true;
};

/// Trains on plain-text files (one sentence per line) and writes `<out_prefix>.model` and
/// `<out_prefix>.vocab`; returns the .model path. ConfigError with SentencePiece's message when
/// training refuses the settings (for example a vocabulary too large for the corpus).
std::filesystem::path train_sentencepiece(const std::vector<std::filesystem::path>& files,
                                          const SentencePieceTrainOptions& options,
                                          const std::filesystem::path& out_prefix);

}  // namespace biolm::tokenize

// biolm/tokenize/spm_bpe.h: SentencePiece-style BPE read from a Hugging Face tokenizer.json
// (LLaMA-1/2, Mistral as transformers saves them): BPE over characters with byte_fallback, spaces
// as "▁" through a Metaspace pre-tokenizer (or the older normalizer Prepend("▁") + Replace(" ",
// "▁")), decoded by Replace / ByteFallback / Fuse / Strip. Follows tokenizers 0.23 (models/bpe,
// pre_tokenizers/metaspace.rs, decoders/); tested against it in tests/parity/test_tokenizers.py.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "biolm/tokenize/bpe.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::tokenize {

class SpmBpeTokenizer final : public Tokenizer {
 public:
  /// When "▁" is put before a text segment: Metaspace prepend_scheme first (only the segment that
  /// starts the input) / always (every segment not starting with "▁") / never, or the older
  /// Prepend normalizer (every non-empty segment, unconditionally).
  enum class Prepend { First, Always, Never, Unconditional };

  /// A tokenizer.json whose model is BPE with byte_fallback or a Metaspace pre-tokenizer;
  /// ConfigError naming the field for anything else.
  static std::unique_ptr<SpmBpeTokenizer> from_json(const nlohmann::json& j, const std::string& source);
  /// True when `j` is such a tokenizer.json.
  static bool accepts(const nlohmann::json& j);

  Encoding encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  const SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "bpe"; }
  std::string fingerprint() const override;
  Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const override;
  /// Writes the tokenizer.json it was read from plus the HF config files.
  void save(const std::filesystem::path& dir) const override;
  void set_specials(const SpecialTokenNames& names);

 private:
  SpmBpeTokenizer() = default;
  void encode_segment(std::string_view text, int64_t base, bool starts_input, Encoding& out) const;
  const AddedToken* added_by_id(int64_t id) const;

  nlohmann::json json_;
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> merges_;  // (a, b) -> (rank, merged id)
  std::vector<AddedToken> added_;
  std::vector<int64_t> byte_ids_;  // <0x00> .. <0xFF>, -1 when absent
  std::optional<int64_t> unk_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  Prepend prepend_ = Prepend::First;
  bool split_ = false;
  std::vector<nlohmann::json> decoders_;
  std::vector<int64_t> prefix_ids_, suffix_ids_;
  SpecialTokenNames names_;
  SpecialTokens special_;
  std::string source_;
};

}  // namespace biolm::tokenize

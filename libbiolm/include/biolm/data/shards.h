// biolm/data/shards.h: pretraining token shards, parallel tokenization and packing.
//
// A shard holds whole tokenized documents back to back (tokens, int32) with document offsets,
// optional word starts (for whole-word masking) and metadata (tokenizer fingerprint, counts,
// format version). On disk it is one HDF5 file; the format is in docs/data_formats.md. The
// HDF5 parts (write_shard, read_shard, prepare_shards, open_packed_dataset) exist when
// BIOLM_HAS_HDF5 (biolm/config.h); the in-memory parts always do.
//
// Packing: each shard's token stream is cut into sequences of seq_len tokens; a sequence never
// takes tokens from two shards (the last, shorter one of a shard is padded by the collator, or
// dropped with drop_remainder). Documents inside a sequence are told apart by segment_ids.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "biolm/data/corpus.h"
#include "biolm/data/loader.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::data {

inline constexpr int64_t kShardFormatVersion = 1;
inline constexpr const char* kShardFormatName = "biolm-token-shard";

struct ShardMeta {
  int64_t format_version = kShardFormatVersion;
  std::string tokenizer_fingerprint;
  std::string tokenizer_kind;
  int64_t vocab_size = 0;
  int64_t n_tokens = 0;
  int64_t n_documents = 0;
  int64_t n_text_bytes = 0;  ///< UTF-8 bytes of the documents' text
  int64_t shard_index = 0;
  bool has_word_starts = false;
};

struct TokenShard {
  ShardMeta meta;
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_offsets;  ///< n_documents + 1 entries, doc_offsets[0] = 0, last = n_tokens
  std::vector<uint8_t> word_starts;  ///< empty, or one per token
  /// Throws DataError::at_record(source, ...) naming the field when the shard is inconsistent.
  void validate(const std::string& source) const;
};

struct ShardingOptions {
  int64_t tokens_per_shard = int64_t{1} << 24;  ///< a shard closes before exceeding this (documents are never split)
  int64_t n_workers = 0;                        ///< tokenizer threads; 0 = hardware concurrency
  int64_t docs_per_task = 128;                  ///< documents handed to a worker at a time
  bool add_special = true;                      ///< encode(text, add_special): [CLS] .. [SEP] / <s>
  bool word_starts = false;                     ///< store word starts for whole-word masking
  int64_t min_tokens = 1;                       ///< shorter documents are left out (counted)
};

struct ShardingReport {
  int64_t n_documents = 0, n_tokens = 0, n_text_bytes = 0, n_shards = 0;
  int64_t n_too_short = 0;  ///< documents under min_tokens, left out
};

/// Tokenizes the records `next` yields (false = end) with `n_workers` threads and hands out
/// shards in order. The output is identical for every n_workers. Tokenizer::encode must be
/// safe to call concurrently (it is const).
ShardingReport tokenize_to_shards(const std::function<bool(TextRecord&)>& next, const tokenize::Tokenizer& tok,
                                  const ShardingOptions& opts, const std::function<void(TokenShard&&)>& on_shard);

struct PackOptions {
  int64_t seq_len = 512;
  bool drop_remainder = false;  ///< drop each shard's last, shorter sequence
  /// Shards kept in memory at once by PackedDataset (0 = all). Loading is lazy.
  int64_t max_cached_shards = 0;
};

/// Where packed sequence i lives.
struct PackedRef {
  int64_t shard = 0;
  int64_t begin = 0, end = 0;  ///< tokens [begin, end) of that shard
};
/// Sequences of one shard of n_tokens tokens.
std::vector<PackedRef> pack_shard(int64_t shard, int64_t n_tokens, const PackOptions& opts);

/// Packed pretraining sequences over shards, as a Dataset for the Loader: input_ids, segment_ids
/// (document index within the sequence), word_starts when the shards have them.
class PackedDataset : public Dataset {
 public:
  using ShardLoader = std::function<std::shared_ptr<const TokenShard>(int64_t shard)>;
  /// n_tokens[s]: token count of shard s (from metadata, without loading it).
  PackedDataset(std::vector<int64_t> n_tokens, ShardLoader load, PackOptions opts);
  /// In-memory shards.
  static std::shared_ptr<PackedDataset> from_shards(std::vector<std::shared_ptr<const TokenShard>> shards, PackOptions opts);

  int64_t size() const override { return static_cast<int64_t>(refs_.size()); }
  Features get(int64_t i) const override;
  const PackedRef& ref(int64_t i) const { return refs_.at(static_cast<size_t>(i)); }

 private:
  std::shared_ptr<const TokenShard> shard(int64_t s) const;
  std::vector<PackedRef> refs_;
  ShardLoader load_;
  PackOptions opts_;
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_ptr<const TokenShard>> cache_;
  mutable std::vector<int64_t> lru_;
};

// --- HDF5 (BIOLM_HAS_HDF5) -------------------------------------------------------------------------
void write_shard(const std::string& path, const TokenShard& shard, int deflate_level = 4);
TokenShard read_shard(const std::string& path);
ShardMeta read_shard_meta(const std::string& path);

struct PrepareOptions {
  std::string out_dir;
  std::string prefix = "shard";  ///< files prefix_00000.h5, ... and manifest.json
  ShardingOptions sharding;
  CorpusOptions corpus;
  int deflate_level = 4;
};
struct PrepareReport {
  ShardingReport sharding;
  ReadReport read;
  std::vector<std::string> shard_files;
};
/// Reads every input (format, path), tokenizes in parallel and writes HDF5 shards plus
/// manifest.json into out_dir.
PrepareReport prepare_shards(const std::vector<std::pair<CorpusFormat, std::string>>& inputs,
                             std::shared_ptr<const tokenize::Tokenizer> tokenizer, const PrepareOptions& opts);
/// Packed dataset over a prepare_shards output directory (its manifest.json). Throws DataError
/// when shards disagree on the tokenizer fingerprint, or differ from `expected_fingerprint`.
std::shared_ptr<PackedDataset> open_packed_dataset(const std::string& dir, const PackOptions& opts,
                                                   const std::optional<std::string>& expected_fingerprint = std::nullopt);

}  // namespace biolm::data

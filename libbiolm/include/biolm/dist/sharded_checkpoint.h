// biolm/dist/sharded_checkpoint.h: ZeRO checkpoints written by every rank in parallel (the shape
// of PyTorch Distributed Checkpoint: per-rank data files plus one metadata file), read back at any
// world size (resharding) by reading only the byte ranges a rank needs.
//
// Inside the checkpoint directory (train/checkpoint.h: manifest, atomic rename):
//   shards/metadata.json
//     {"format": "biolm-zero-shards", "version": 1, "stage": z, "world_size": W,
//      "total_numel": S, "shard_numel": s, "dtype": "F32", "optimizer": "adamw" | "sgd",
//      "state_keys": ["exp_avg", "exp_avg_sq"] | ["momentum_buffer"], "has_parameters": bool,
//      "parameters": [{"name", "shape", "offset", "numel", "step"}, ...],   (flat layout, AdamW step)
//      "shards": [{"rank", "file", "begin", "end", "bytes", "sha256"}, ...]}  (one per rank)
//   shards/state-rank<r:05d>-of-<W:05d>.safetensors
//     1-D F32 tensors over the flat range [begin, end) = [r·s, min((r+1)·s, S)): the state_keys,
//     plus "param" (the master parameters) when has_parameters (stage 3, full checkpoints)
// Flat coordinates are dist/zero.h's: the trainable parameters in named_parameters order.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "biolm/dist/zero.h"
#include "biolm/train/checkpoint.h"

namespace biolm::io {
class SafetensorsFile;
}

namespace biolm::dist {

inline constexpr const char* kShardMetadataFile = "shards/metadata.json";
inline constexpr const char* kShardMetadataFormat = "biolm-zero-shards";

/// "shards/state-rank00003-of-00004.safetensors" (relative to the checkpoint directory)
std::string shard_file_name(int rank, int world);

/// Writes this rank's shard file (1-D tensors over [begin, end)) into the temporary checkpoint
/// directory `tmp`, fsynced, and returns its size and SHA-256 for rank 0's manifest.
train::KnownFile write_shard_file(const std::filesystem::path& tmp, int rank, int world, int64_t begin, int64_t end,
                                  const std::map<std::string, torch::Tensor>& tensors);

/// What rank 0 records in shards/metadata.json.
struct ShardMetadata {
  int stage = 1;
  int world_size = 1;
  int64_t total_numel = 0;
  int64_t shard_numel = 0;
  bool adamw = true;
  bool has_parameters = false;
  std::vector<FlatEntry> parameters;
  std::vector<int64_t> steps;  ///< per parameter, 0 = no optimizer state yet
  struct Shard {
    int rank = 0;
    std::string file;
    int64_t begin = 0, end = 0;
    uint64_t bytes = 0;
    std::string sha256;
  };
  std::vector<Shard> shards;

  nlohmann::json to_json() const;
  /// Validates every field and that the shards tile [0, S); CheckpointError naming `file` and key.
  static ShardMetadata from_json(const nlohmann::json& j, const std::string& file);
  std::vector<std::string> state_keys() const;
};

/// Reads a sharded checkpoint's flat state by ranges. Shard files are opened (memory-mapped) only
/// when a requested range overlaps them; each is checked against the metadata (exists, size,
/// SHA-256) when first opened. A missing shard is a CheckpointError naming its path.
class ShardedCheckpointReader {
 public:
  explicit ShardedCheckpointReader(const std::filesystem::path& dir);
  ~ShardedCheckpointReader();
  const ShardMetadata& metadata() const { return meta_; }
  /// Elements [begin, begin + numel) of `key` (a state key or "param").
  torch::Tensor read(const std::string& key, int64_t begin, int64_t numel);
  FlatReader reader();
  /// CheckpointError unless `layout` (this model's trainable parameters) equals the recorded one.
  void check_layout(const std::vector<FlatEntry>& layout) const;
  /// The shard files opened so far (relative names), for tests and logs.
  std::set<std::string> opened() const;

 private:
  const io::SafetensorsFile& open(size_t shard);
  std::filesystem::path dir_;
  ShardMetadata meta_;
  std::map<size_t, std::unique_ptr<io::SafetensorsFile>> files_;
};

/// The full model tensors of a checkpoint directory (sharded or consolidated): model.safetensors,
/// with the trainable parameters filled in from the shards when the shards hold them. What
/// `biolm convert checkpoint` exports.
std::map<std::string, torch::Tensor> consolidated_model_tensors(const std::filesystem::path& dir);

}  // namespace biolm::dist

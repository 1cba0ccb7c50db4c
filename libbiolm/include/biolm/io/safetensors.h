// biolm/io/safetensors.h: our reader and writer of the safetensors format (Hugging Face).
//
// Format (https://huggingface.co/docs/safetensors, "Format"): 8 bytes little-endian u64 N, then
// N bytes of UTF-8 JSON (an object: tensor name -> {"dtype", "shape", "data_offsets": [begin,
// end]}, plus an optional "__metadata__" string->string map), then the data section; offsets are
// relative to the data section, little-endian, row-major, and the tensors must tile it exactly.
//
// Reading memory-maps the file and validates the whole header before any byte of data is
// touched: every malformed file is refused with a CheckpointError naming the file, the tensor
// and what is wrong. Writing is deterministic (names sorted, header padded with spaces to a
// multiple of 8 bytes) and atomic (temp file, fsync, rename).
//
// Sharded checkpoints follow transformers' layout: model-00001-of-00003.safetensors ... plus
// model.safetensors.index.json {"metadata": {"total_size": bytes}, "weight_map": {name: file}}.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace biolm::io {

/// The dtypes of the safetensors spec that map onto LibTorch scalar types.
enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::string_view dtype_name(Dtype dtype);            ///< "F32", "BF16", ...
std::optional<Dtype> parse_dtype(std::string_view name);
std::size_t dtype_size(Dtype dtype);                  ///< bytes per element
c10::ScalarType to_scalar_type(Dtype dtype);
/// Throws CheckpointError("", "", ...) for scalar types safetensors cannot hold (complex, ...).
Dtype from_scalar_type(c10::ScalarType type);

/// One entry of the header. Offsets are relative to the start of the data section.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

/// A validated header. `tensors` is sorted by name.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t header_size = 0;  ///< N, the JSON length (padding included)
  uint64_t data_offset = 0;  ///< 8 + N
  uint64_t data_size = 0;
};

/// Parses and validates a complete safetensors image held in memory (`path` names it in errors).
/// Never reads outside [data, data + size). Used by SafetensorsFile and by the fuzz target.
SafetensorsHeader parse_safetensors(const uint8_t* data, std::size_t size, const std::string& path);

/// A memory-mapped, validated safetensors file. Tensors are copied out on request (the mapping
/// may be unaligned for the dtype, and a copy keeps tensors valid after the file is closed).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  /// Throws CheckpointError naming the tensor when absent.
  const TensorInfo& info(const std::string& name) const;
  /// A CPU tensor owning a copy of the bytes.
  at::Tensor tensor(const std::string& name) const;
  /// Elements [begin, begin + numel) of the tensor in row-major order, as a 1-D CPU tensor; only
  /// those bytes of the mapping are touched. CheckpointError naming the tensor when out of range.
  at::Tensor flat_range(const std::string& name, int64_t begin, int64_t numel) const;
  std::map<std::string, at::Tensor> load_all() const;

 private:
  std::filesystem::path path_;
  const uint8_t* map_ = nullptr;
  std::size_t size_ = 0;
  SafetensorsHeader header_;
};

/// Reads every tensor of one file.
std::map<std::string, at::Tensor> load_safetensors(const std::filesystem::path& path,
                                                   std::map<std::string, std::string>* metadata = nullptr);

/// Writes `tensors` (any device; contiguous copies are made on the CPU) with `metadata`.
/// Deterministic bytes for equal input; atomic replace of `path`.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The exact bytes save_safetensors writes (header and data), for callers that stream elsewhere.
std::string serialize_safetensors(const std::map<std::string, at::Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

// --- sharded checkpoints ------------------------------------------------------------------------

inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";
inline constexpr const char* kSafetensorsSingleName = "model.safetensors";

struct ShardOptions {
  /// Largest data size of one shard in bytes (transformers' default is 5 GB). A tensor larger
  /// than this gets a shard of its own.
  uint64_t max_shard_bytes = 5'000'000'000ULL;
  /// File stem: "model" gives model-00001-of-00002.safetensors and model.safetensors.index.json.
  std::string stem = "model";
};

/// Writes `tensors` into `dir` as one `<stem>.safetensors` when they fit one shard, else as
/// numbered shards plus `<stem>.safetensors.index.json`. Tensors go to shards in name order.
/// Returns the files written (shards, then the index when there is one).
std::vector<std::filesystem::path> save_sharded(const std::filesystem::path& dir,
                                                const std::map<std::string, at::Tensor>& tensors,
                                                const std::map<std::string, std::string>& metadata = {},
                                                const ShardOptions& options = {});

/// A checkpoint that may span several files: a single .safetensors file, a directory holding
/// model.safetensors, or a directory (or index file) with model.safetensors.index.json.
/// The index and the shards must agree exactly (each listed tensor in its shard, no tensor in two
/// shards, no unlisted tensor in a shard).
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::filesystem::path& path);
  std::vector<std::string> names() const;  ///< sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  at::Tensor tensor(const std::string& name) const;
  std::map<std::string, at::Tensor> load_all() const;
  /// Metadata of the first shard (transformers writes {"format": "pt"} in every shard).
  const std::map<std::string, std::string>& metadata() const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  /// The file holding `name`.
  const std::filesystem::path& file_of(const std::string& name) const;

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> where_;  // tensor name -> index into files_
};

/// A JSON summary for `biolm inspect PATH` (a .safetensors file, an index file, or a model
/// directory): {"path", "format": "safetensors", "files": [...], "metadata": {...},
/// "tensors": [{"name", "dtype", "shape", "parameters", "file"}], "parameters": total,
/// "bytes": data bytes}, plus "config" (model_type, architectures) when config.json exists.
nlohmann::json inspect_path(const std::filesystem::path& path);

}  // namespace biolm::io

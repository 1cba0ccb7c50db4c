// biolm/io/tensor_file.h: the one place where name -> tensor maps go to and come from disk
// (adapters, model weights in checkpoints).
//
// Format: safetensors (biolm/io/safetensors.h), one tensor per name, dtype kept exactly (int64 and
// uint8 included), metadata {"format": "pt", "writer": "biolm"}; any safetensors reader (Python
// `safetensors.torch.load_file`) opens these files. Everything else in libbiolm calls these two
// functions, so the format lives only in tensor_file.cpp.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

namespace biolm::io {

using TensorMap = std::map<std::string, torch::Tensor>;

/// Writes `tensors` (copied to the CPU) to `path` atomically (io/files.h: a temporary file in the
/// same directory, fsync, rename). Throws IoError (CheckpointError for dtypes safetensors cannot hold).
void write_tensor_file(const std::filesystem::path& path, const TensorMap& tensors);
/// Reads a file written by write_tensor_file. Throws CheckpointError(path, "", ...) when the file
/// is missing or unreadable.
TensorMap read_tensor_file(const std::filesystem::path& path);

}  // namespace biolm::io

// biolm/peft/tensor_file.h: the one place where name -> tensor maps go to and come from disk
// (adapters, model weights in checkpoints).
//
// Format today: a LibTorch archive (torch::serialize::OutputArchive, a zip of tensors) with one
// entry per name. Everything else in libbiolm calls these two functions, so switching the format
// (to safetensors) changes only tensor_file.cpp.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

namespace biolm::peft {

using TensorMap = std::map<std::string, torch::Tensor>;

/// Writes `tensors` (moved to CPU) to `path`. Not atomic by itself; callers that need atomicity
/// write to a temporary name, fsync and rename (save_adapter does). Throws IoError.
void write_tensor_file(const std::filesystem::path& path, const TensorMap& tensors);
/// Reads a file written by write_tensor_file. Throws CheckpointError(path, "", ...) when the file
/// is missing or unreadable.
TensorMap read_tensor_file(const std::filesystem::path& path);

/// fsync(path) (a file or a directory). Throws IoError.
void fsync_path(const std::filesystem::path& path);

}  // namespace biolm::peft

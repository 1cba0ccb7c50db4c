// Name -> tensor maps on disk as safetensors (biolm/io/safetensors.h): adapters and the weights
// and RNG state of trainer checkpoints. Dtypes are kept exactly (float, int64, uint8 RNG bytes);
// tensors are copied to the CPU; the write is atomic (temp file, fsync, rename).
#include "biolm/io/tensor_file.h"

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"

namespace biolm::io {

void write_tensor_file(const std::filesystem::path& path, const TensorMap& tensors) {
  TensorMap cpu;
  for (const auto& [name, t] : tensors) {
    BIOLM_CHECK(t.defined(), IoError, path.string(), "cannot write tensors: '" + name + "' is undefined");
    cpu.emplace(name, t.detach().to(torch::kCPU).contiguous());
  }
  save_safetensors(path, cpu, {{"format", "pt"}, {"writer", "biolm"}});
}

TensorMap read_tensor_file(const std::filesystem::path& path) {
  BIOLM_CHECK(std::filesystem::is_regular_file(path), CheckpointError, path.string(), "", "no such file");
  try {
    return load_safetensors(path);
  } catch (const CheckpointError&) {
    throw;
  } catch (const Error& e) {
    throw CheckpointError(path.string(), "", std::string("unreadable tensor file: ") + e.what());
  }
}

}  // namespace biolm::io

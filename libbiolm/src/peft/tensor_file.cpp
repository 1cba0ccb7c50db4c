// Name -> tensor maps on disk as safetensors (biolm/io/safetensors.h): adapters and the weights
// and RNG state of trainer checkpoints. Dtypes are kept exactly (float, int64, uint8 RNG bytes);
// tensors are copied to the CPU; the write is atomic (temp file, fsync, rename).
#include "biolm/peft/tensor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"

namespace biolm::peft {

void write_tensor_file(const std::filesystem::path& path, const TensorMap& tensors) {
  TensorMap cpu;
  for (const auto& [name, t] : tensors) {
    BIOLM_CHECK(t.defined(), IoError, path.string(), "cannot write tensors: '" + name + "' is undefined");
    cpu.emplace(name, t.detach().to(torch::kCPU).contiguous());
  }
  io::save_safetensors(path, cpu, {{"format", "pt"}, {"writer", "biolm"}});
}

TensorMap read_tensor_file(const std::filesystem::path& path) {
  BIOLM_CHECK(std::filesystem::is_regular_file(path), CheckpointError, path.string(), "", "no such file");
  try {
    return io::load_safetensors(path);
  } catch (const CheckpointError&) {
    throw;
  } catch (const Error& e) {
    throw CheckpointError(path.string(), "", std::string("unreadable tensor file: ") + e.what());
  }
}

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError::from_errno(path.string(), "cannot open for fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError::from_errno(path.string(), "fsync failed");
}

}  // namespace biolm::peft

#include "biolm/peft/tensor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include "biolm/core/error.h"

namespace biolm::peft {

void write_tensor_file(const std::filesystem::path& path, const TensorMap& tensors) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : tensors) archive.write(name, t.detach().to(torch::kCPU).contiguous());
  try {
    archive.save_to(path.string());
  } catch (const c10::Error& e) {
    throw IoError(path.string(), std::string("cannot write tensors: ") + e.what_without_backtrace());
  }
}

TensorMap read_tensor_file(const std::filesystem::path& path) {
  BIOLM_CHECK(std::filesystem::is_regular_file(path), CheckpointError, path.string(), "", "no such file");
  TensorMap out;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string());
    for (const auto& key : archive.keys()) {
      torch::Tensor t;
      archive.read(key, t);
      out[key] = t;
    }
  } catch (const c10::Error& e) {
    throw CheckpointError(path.string(), "", std::string("unreadable tensor file: ") + e.what_without_backtrace());
  }
  return out;
}

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError::from_errno(path.string(), "cannot open for fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError::from_errno(path.string(), "fsync failed");
}

}  // namespace biolm::peft

#include "biolm/io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "biolm/core/error.h"

namespace biolm::io {

void write_file_atomic(const std::filesystem::path& path, const std::string& bytes) {
  write_file_atomic_stream(path, [&bytes](const auto& sink) { sink(bytes.data(), bytes.size()); });
}

void write_file_atomic_stream(const std::filesystem::path& path,
                              const std::function<void(const std::function<void(const void*, std::size_t)>&)>& produce) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::filesystem::path tmp = dir / fmt::format(".{}.tmp.{}", path.filename().string(), ::getpid());
  // The output's directory is created when missing (every writer of ours behaves the same).
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(dir.string(), "cannot create directory: " + ec.message());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError::from_errno(tmp.string(), "cannot create temporary file");
  auto write_all = [&](const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, p + done, size - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw IoError::from_errno(tmp.string(), "write failed");
      }
      done += static_cast<std::size_t>(n);
    }
  };
  try {
    produce(write_all);
    if (::fsync(fd) != 0) throw IoError::from_errno(tmp.string(), "fsync failed");
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = IoError::from_errno(path.string(), "cannot rename temporary file into place");
    ::unlink(tmp.c_str());
    throw err;
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: some file systems refuse fsync on directories
    ::close(dfd);
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError::from_errno(path.string(), "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError::from_errno(path.string(), "read failed");
  return ss.str();
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // byte position -> line number for the error message
    const std::size_t pos = std::min<std::size_t>(e.byte, text.size());
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n');
    throw DataError(path.string(), line, "", fmt::format("invalid JSON: {}", e.what()));
  }
}

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError::from_errno(path.string(), "cannot open for fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError::from_errno(path.string(), "fsync failed");
}

}  // namespace biolm::io

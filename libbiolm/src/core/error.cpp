#include "biolm/core/error.h"

#include <cerrno>
#include <cstring>
#include <utility>

namespace biolm {
namespace {

std::string format_data(const std::string& path, std::int64_t line, std::int64_t record,
                        const std::string& field, const std::string& message) {
  std::string out = path.empty() ? std::string("<input>") : path;
  if (line > 0) {
    out += ":" + std::to_string(line) + ":";
  } else if (record >= 0) {
    out += ": record " + std::to_string(record) + ":";
  } else {
    out += ":";
  }
  if (!field.empty()) out += " field '" + field + "':";
  out += " " + message;
  return out;
}

}  // namespace

DataError::DataError(std::string path, std::int64_t line, std::int64_t record, std::string field,
                     std::string message)
    : Error(format_data(path, line, record, field, message)),
      path_(std::move(path)),
      line_(line),
      record_(record),
      field_(std::move(field)),
      message_(std::move(message)) {}

DataError::DataError(std::string path, std::int64_t line, std::string field, std::string message)
    : DataError(std::move(path), line, -1, std::move(field), std::move(message)) {}

DataError DataError::at_record(std::string path, std::int64_t record, std::string field,
                               std::string message) {
  return DataError(std::move(path), 0, record, std::move(field), std::move(message));
}

ConfigError::ConfigError(std::string key, std::string message)
    : Error("config '" + key + "': " + message), key_(std::move(key)), message_(std::move(message)) {}

CheckpointError::CheckpointError(std::string path, std::string tensor, std::string message)
    : Error(path + ": " + (tensor.empty() ? std::string() : "tensor '" + tensor + "': ") + message),
      path_(std::move(path)),
      tensor_(std::move(tensor)) {}

ShapeError::ShapeError(std::string module, std::string message)
    : Error(module + ": " + message), module_(std::move(module)) {}

IoError::IoError(std::string path, std::string message)
    : Error(path + ": " + message), path_(std::move(path)) {}

IoError IoError::from_errno(std::string path, const std::string& message) {
  const int err = errno;
  return IoError(std::move(path), message + " (" + std::strerror(err) + ")");
}

}  // namespace biolm

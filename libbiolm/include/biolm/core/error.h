// biolm/core/error.h: the one exception family of libbiolm.
//
// Every error says where (file:line, record, config key, tensor, module), what was expected and
// what was found, in one line of what(). The library throws; only main() in tools/ and examples/
// catches and chooses an exit code.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace biolm {

/// Base of every exception libbiolm throws.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// Bad input data. what(): "path:line: field 'f': message" (or "path: record N: ...").
class DataError : public Error {
 public:
  /// `line` is 1-based; 0 when the position is not a line (see at_record).
  DataError(std::string path, std::int64_t line, std::string field, std::string message);
  /// For formats without meaningful lines (JSON objects, HDF5 rows): a 0-based record index.
  static DataError at_record(std::string path, std::int64_t record, std::string field,
                             std::string message);

  const std::string& path() const { return path_; }
  std::int64_t line() const { return line_; }
  std::int64_t record() const { return record_; }
  const std::string& field() const { return field_; }
  const std::string& message() const { return message_; }

 private:
  DataError(std::string path, std::int64_t line, std::int64_t record, std::string field,
            std::string message);
  std::string path_;
  std::int64_t line_ = 0;
  std::int64_t record_ = -1;
  std::string field_;
  std::string message_;
};

/// A configuration value is missing, unknown, of the wrong type or out of range.
/// what(): "config 'train.lr': message".
class ConfigError : public Error {
 public:
  ConfigError(std::string key, std::string message);
  const std::string& key() const { return key_; }
  const std::string& message() const { return message_; }

 private:
  std::string key_;
  std::string message_;
};

/// A checkpoint (ours, safetensors, HF directory) is malformed or does not fit the model.
/// what(): "path: tensor 'name': message" (tensor part omitted when empty).
class CheckpointError : public Error {
 public:
  CheckpointError(std::string path, std::string tensor, std::string message);
  const std::string& path() const { return path_; }
  const std::string& tensor() const { return tensor_; }

 private:
  std::string path_;
  std::string tensor_;
};

/// A tensor reached a module with a shape it cannot take. what(): "Attention: message".
class ShapeError : public Error {
 public:
  ShapeError(std::string module, std::string message);
  const std::string& module() const { return module_; }

 private:
  std::string module_;
};

/// The operating system refused a file operation. what(): "path: message".
class IoError : public Error {
 public:
  IoError(std::string path, std::string message);
  /// "path: message (strerror(errno))"; call right after the failing system call.
  static IoError from_errno(std::string path, const std::string& message);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace biolm

/// Throws ErrorType(args...) when cond is false:
///   BIOLM_CHECK(n > 0, biolm::ConfigError, "model.n_layers", fmt::format("must be > 0, got {}", n));
#define BIOLM_CHECK(cond, ErrorType, ...) \
  do {                                    \
    if (!(cond)) {                        \
      throw ErrorType(__VA_ARGS__);       \
    }                                     \
  } while (0)

// biolm/io/files.h: the one implementation of atomic file writes, fsync, and whole-file text/JSON
// reads that throw biolm errors naming the file. Used by io/, tokenize/, peft/ and train/ (and
// by a user's program that writes results a crash must not tear).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>

namespace biolm::io {

/// Writes `bytes` to a temp file next to `path`, fsyncs it, renames it over `path` and fsyncs
/// the directory, so readers see the old file or the new one, never a torn one.
void write_file_atomic(const std::filesystem::path& path, const std::string& bytes);
/// Same, with the bytes produced piecewise: `produce(sink)` calls sink(data, size) in order.
/// When `produce` throws, the temp file is removed and `path` is left untouched.
void write_file_atomic_stream(const std::filesystem::path& path,
                              const std::function<void(const std::function<void(const void*, std::size_t)>&)>& produce);
/// Whole file as bytes; IoError when it cannot be read.
std::string read_file(const std::filesystem::path& path);
/// Parses a JSON file; DataError(path, line, "", ...) on a syntax error.
nlohmann::json read_json_file(const std::filesystem::path& path);
/// fsync(path) (a file or a directory). Throws IoError.
void fsync_path(const std::filesystem::path& path);

}  // namespace biolm::io

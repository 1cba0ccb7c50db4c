// Internal file helpers shared by io/ and tokenize/: atomic writes and JSON/text reads that
// throw biolm errors naming the file.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace biolm::io::detail {

/// Writes `bytes` to a temp file next to `path`, fsyncs it, renames it over `path` and fsyncs
/// the directory, so readers see the old file or the new one, never a torn one.
void write_file_atomic(const std::filesystem::path& path, const std::string& bytes);
/// Whole file as bytes; IoError when it cannot be read.
std::string read_file(const std::filesystem::path& path);
/// Parses a JSON file; DataError(path, line, "", ...) on a syntax error.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace biolm::io::detail

// biolm/data/io.h: the plumbing every reader shares.
//
// - LineReader: streams lines of a plain or gzip file (zlib detects gzip by its magic bytes, so
//   callers never care), with 1-based line numbers, bounded memory (one line at a time).
// - ReaderOptions / ReadReport: what to do with a malformed record. By default the reader
//   throws DataError("file:line: field 'f': what"); with OnError::Skip it counts the record, logs
//   where it was (log::warn) and keeps the message in the report. Nothing is dropped silently.
// - UTF-8 helpers: several formats give offsets in Unicode characters (BRAT, PubTator, SQuAD),
//   while our strings and tokenizer offsets are bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace biolm {
class DataError;
}

namespace biolm::data {

enum class OnError {
  Throw,  ///< stop at the first malformed record (default)
  Skip,   ///< skip it, count it, log file:line, keep the message in ReadReport
};

struct ReaderOptions {
  OnError on_error = OnError::Throw;
  /// How many skip messages ReadReport keeps (all are counted and logged).
  int64_t max_kept_errors = 1000;
};

/// What a reader did: records yielded, records skipped (with where), and notes such as
/// discontinuous BRAT spans or deleted PubMed citations.
struct ReadReport {
  int64_t records = 0;
  int64_t skipped = 0;
  std::vector<std::string> errors;  ///< "file:line: field 'f': what", first max_kept_errors
  int64_t warnings = 0;             ///< data kept but changed (e.g. a discontinuous span merged)
  std::vector<std::string> notes;   ///< one line per warning (first max_kept_errors)

  /// Throws `e` under OnError::Throw; otherwise counts and logs it.
  void fail(const DataError& e, const ReaderOptions& opts);
  /// Records a warning (logged at warn level, kept in notes).
  void warn(const std::string& where_and_what, const ReaderOptions& opts);
  void merge(const ReadReport& other);
};

/// Streams the lines of a file, gzip or not. A trailing "\r" is removed from each line (CRLF
/// files read like LF files).
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  /// Next line without its newline; false at end of file.
  bool next(std::string& line);
  /// 1-based number of the line last returned by next().
  int64_t line_no() const { return line_no_; }
  const std::string& path() const { return path_; }

 private:
  bool fill();
  std::string path_;
  void* gz_ = nullptr;  // gzFile
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  int64_t line_no_ = 0;
};

/// Reads raw bytes of a plain or gzip file in chunks (the XML tokenizer's input).
class ByteReader {
 public:
  explicit ByteReader(const std::string& path);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;
  /// Up to `cap` bytes into `dst`; 0 at end of file.
  size_t read(char* dst, size_t cap);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* gz_ = nullptr;
};

/// Whole content of a plain or gzip file (for JSON documents, which are parsed whole).
std::string read_file(const std::string& path);

/// 1-based line of byte `offset` in `text`.
int64_t line_of_offset(std::string_view text, size_t offset);

/// Byte offset of every character start in UTF-8 `text`, plus text.size() at the end:
/// result[k] = byte where character k begins; size = n_chars + 1. Invalid bytes count as one
/// character each (so offsets stay defined on any input).
std::vector<int64_t> utf8_char_starts(std::string_view text);
/// Appends code point `cp` as UTF-8.
void append_utf8(std::string& out, uint32_t cp);
/// Splits on `sep` (no merging of empty fields).
std::vector<std::string> split(std::string_view s, char sep);
std::string_view trim(std::string_view s);

}  // namespace biolm::data

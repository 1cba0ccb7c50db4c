#include "biolm/data/io.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "biolm/core/error.h"
#include "biolm/core/log.h"

namespace biolm::data {

void ReadReport::fail(const DataError& e, const ReaderOptions& opts) {
  if (opts.on_error == OnError::Throw) throw e;
  ++skipped;
  if (static_cast<int64_t>(errors.size()) < opts.max_kept_errors) errors.emplace_back(e.what());
  log::warn("skipped bad record: {}", e.what());
}

void ReadReport::warn(const std::string& where_and_what, const ReaderOptions& opts) {
  ++warnings;
  if (static_cast<int64_t>(notes.size()) < opts.max_kept_errors) notes.push_back(where_and_what);
  log::warn("{}", where_and_what);
}

void ReadReport::merge(const ReadReport& o) {
  records += o.records;
  skipped += o.skipped;
  warnings += o.warnings;
  errors.insert(errors.end(), o.errors.begin(), o.errors.end());
  notes.insert(notes.end(), o.notes.begin(), o.notes.end());
}

namespace {
gzFile open_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw IoError::from_errno(path, "cannot open for reading");
  gzbuffer(f, 1 << 17);
  return f;
}
size_t gz_read(void* gz, const std::string& path, char* dst, size_t cap) {
  const int n = gzread(static_cast<gzFile>(gz), dst, static_cast<unsigned>(cap));
  if (n < 0) {
    int code = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz), &code);
    throw IoError(path, std::string("read failed: ") + (msg ? msg : "zlib error"));
  }
  return static_cast<size_t>(n);
}
}  // namespace

LineReader::LineReader(const std::string& path) : path_(path), gz_(open_gz(path)), buf_(1 << 16) {}
LineReader::~LineReader() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {  // keep the unread tail at the front
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a line longer than the buffer
  const size_t n = gz_read(gz_, path_, buf_.data() + end_, buf_.size() - end_);
  if (n == 0) eof_ = true;
  end_ += n;
  return n > 0;
}

bool LineReader::next(std::string& line) {
  size_t scan = pos_;
  for (;;) {
    const void* nl = std::memchr(buf_.data() + scan, '\n', end_ - scan);
    if (nl != nullptr) {
      const size_t at = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data());
      line.assign(buf_.data() + pos_, at - pos_);
      pos_ = at + 1;
      break;
    }
    const size_t seen = end_ - pos_;
    if (!fill()) {
      if (end_ == pos_) return false;
      line.assign(buf_.data() + pos_, end_ - pos_);  // last line without a newline
      pos_ = end_;
      break;
    }
    scan = pos_ + seen;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_no_;
  return true;
}

ByteReader::ByteReader(const std::string& path) : path_(path), gz_(open_gz(path)) {}
ByteReader::~ByteReader() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}
size_t ByteReader::read(char* dst, size_t cap) { return gz_read(gz_, path_, dst, cap); }

std::string read_file(const std::string& path) {
  ByteReader r(path);
  std::string out;
  std::vector<char> buf(1 << 16);
  for (size_t n; (n = r.read(buf.data(), buf.size())) > 0;) out.append(buf.data(), n);
  return out;
}

int64_t line_of_offset(std::string_view text, size_t offset) {
  if (offset > text.size()) offset = text.size();
  int64_t line = 1;
  for (size_t i = 0; i < offset; ++i) line += text[i] == '\n';
  return line;
}

std::vector<int64_t> utf8_char_starts(std::string_view text) {
  std::vector<int64_t> starts;
  starts.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    starts.push_back(static_cast<int64_t>(i));
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + len > text.size()) len = 1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
        len = 1;
        break;
      }
    }
    i += len;
  }
  starts.push_back(static_cast<int64_t>(text.size()));
  return starts;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    if (at == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, at - start));
    start = at + 1;
  }
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

}  // namespace biolm::data

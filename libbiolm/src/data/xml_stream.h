// A small streaming XML tokenizer (no DTD processing, no namespaces): enough for PubMed/MEDLINE
// files. It yields start tags (with attributes), end tags and decoded character data, each with
// the line where it starts. Declarations (<?...?>), DOCTYPE (with an internal subset), comments
// and processing instructions are skipped; CDATA is character data. Entities: the five XML ones
// and numeric references (&#NNN; &#xHHH;); any other is a DataError (we never fetch a DTD).
#pragma once

#include <map>
#include <string>

#include "biolm/data/io.h"

namespace biolm::data::detail {

struct XmlEvent {
  enum Kind { Start, End, Text, Eof } kind = Eof;
  std::string name;                           // tag name for Start/End
  std::map<std::string, std::string> attrs;  // Start only
  std::string text;                           // Text only (decoded)
  bool self_closing = false;                  // <tag/>: an End event follows
  int64_t line = 0;
};

class XmlTokenizer {
 public:
  explicit XmlTokenizer(const std::string& path);
  XmlEvent next();
  int64_t line() const { return line_; }
  const std::string& path() const { return in_.path(); }

 private:
  int peek();
  int get();
  bool starts_with(const char* s);
  void skip_until(const char* terminator, const char* what);
  std::string read_name();
  void decode_entity(std::string& out);
  [[noreturn]] void fail(const std::string& what) const;

  ByteReader in_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_ = 1;
  bool pending_end_ = false;
  std::string pending_name_;
};

}  // namespace biolm::data::detail

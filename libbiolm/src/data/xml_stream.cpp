#include "data/xml_stream.h"

#include <cstring>

#include "biolm/core/error.h"

namespace biolm::data::detail {

XmlTokenizer::XmlTokenizer(const std::string& path) : in_(path) {}

int XmlTokenizer::peek() {
  if (pos_ >= buf_.size()) {
    if (eof_) return -1;
    buf_.erase(0, pos_);
    pos_ = 0;
    char chunk[1 << 16];
    const size_t n = in_.read(chunk, sizeof chunk);
    if (n == 0) {
      eof_ = true;
      return -1;
    }
    buf_.append(chunk, n);
  }
  return static_cast<unsigned char>(buf_[pos_]);
}

int XmlTokenizer::get() {
  const int c = peek();
  if (c >= 0) {
    ++pos_;
    if (c == '\n') ++line_;
  }
  return c;
}

bool XmlTokenizer::starts_with(const char* s) {
  const size_t n = std::strlen(s);
  while (buf_.size() - pos_ < n && !eof_) {  // make sure n bytes are buffered
    buf_.erase(0, pos_);
    pos_ = 0;
    char chunk[1 << 12];
    const size_t got = in_.read(chunk, sizeof chunk);
    if (got == 0) eof_ = true;
    buf_.append(chunk, got);
  }
  return buf_.compare(pos_, n, s) == 0;
}

void XmlTokenizer::fail(const std::string& what) const { throw DataError(in_.path(), line_, "xml", what); }

void XmlTokenizer::skip_until(const char* terminator, const char* what) {
  const int64_t start = line_;
  while (!starts_with(terminator)) {
    if (get() < 0) throw DataError(in_.path(), start, "xml", std::string("unterminated ") + what);
  }
  for (size_t i = 0; terminator[i] != 0; ++i) get();
}

std::string XmlTokenizer::read_name() {
  std::string name;
  for (int c = peek(); c >= 0 && (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c >= 0x80);
       c = peek()) {
    name += static_cast<char>(get());
  }
  if (name.empty()) fail("expected a name");
  return name;
}

void XmlTokenizer::decode_entity(std::string& out) {
  // '&' already consumed
  std::string ent;
  for (int c = get(); c != ';'; c = get()) {
    if (c < 0 || ent.size() > 32 || c == '<' || c == '&') fail("unterminated entity reference &" + ent);
    ent += static_cast<char>(c);
  }
  if (ent == "lt") out += '<';
  else if (ent == "gt") out += '>';
  else if (ent == "amp") out += '&';
  else if (ent == "quot") out += '"';
  else if (ent == "apos") out += '\'';
  else if (ent.size() > 1 && ent[0] == '#') {
    const bool hex = ent[1] == 'x' || ent[1] == 'X';
    const std::string digits = ent.substr(hex ? 2 : 1);
    char* endp = nullptr;
    const unsigned long cp = std::strtoul(digits.c_str(), &endp, hex ? 16 : 10);
    if (digits.empty() || *endp != 0 || cp == 0 || cp > 0x10FFFF) fail("bad character reference &" + ent + ";");
    append_utf8(out, static_cast<uint32_t>(cp));
  } else {
    fail("unknown entity &" + ent + "; (no DTD is read)");
  }
}

XmlEvent XmlTokenizer::next() {
  XmlEvent ev;
  if (pending_end_) {
    pending_end_ = false;
    ev.kind = XmlEvent::End;
    ev.name = std::move(pending_name_);
    ev.line = line_;
    return ev;
  }
  for (;;) {
    ev.line = line_;
    const int c = peek();
    if (c < 0) {
      ev.kind = XmlEvent::Eof;
      return ev;
    }
    if (c != '<') {  // character data up to the next tag
      ev.kind = XmlEvent::Text;
      for (int d = peek(); d >= 0 && d != '<'; d = peek()) {
        get();
        if (d == '&') decode_entity(ev.text);
        else ev.text += static_cast<char>(d);
      }
      return ev;
    }
    if (starts_with("<!--")) {
      skip_until("-->", "comment");
      continue;
    }
    if (starts_with("<![CDATA[")) {
      for (int i = 0; i < 9; ++i) get();
      ev.kind = XmlEvent::Text;
      const int64_t start = line_;
      while (!starts_with("]]>")) {
        const int d = get();
        if (d < 0) throw DataError(in_.path(), start, "xml", "unterminated CDATA section");
        ev.text += static_cast<char>(d);
      }
      for (int i = 0; i < 3; ++i) get();
      return ev;
    }
    if (starts_with("<?")) {
      skip_until("?>", "processing instruction");
      continue;
    }
    if (starts_with("<!")) {  // DOCTYPE (possibly with [internal subset]) or other declaration
      const int64_t start = line_;
      int depth = 0;
      for (;;) {
        const int d = get();
        if (d < 0) throw DataError(in_.path(), start, "xml", "unterminated declaration");
        if (d == '[') ++depth;
        else if (d == ']') --depth;
        else if (d == '>' && depth == 0) break;
      }
      continue;
    }
    get();  // '<'
    if (peek() == '/') {
      get();
      ev.kind = XmlEvent::End;
      ev.name = read_name();
      while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') get();
      if (get() != '>') fail("expected '>' after </" + ev.name);
      return ev;
    }
    ev.kind = XmlEvent::Start;
    ev.name = read_name();
    for (;;) {
      int d = peek();
      while (d == ' ' || d == '\t' || d == '\n' || d == '\r') {
        get();
        d = peek();
      }
      if (d < 0) fail("unterminated tag <" + ev.name);
      if (d == '>') {
        get();
        return ev;
      }
      if (d == '/') {
        get();
        if (get() != '>') fail("expected '>' after '/' in <" + ev.name);
        ev.self_closing = true;
        pending_end_ = true;
        pending_name_ = ev.name;
        return ev;
      }
      const std::string key = read_name();
      while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') get();
      if (get() != '=') fail("attribute '" + key + "' of <" + ev.name + "> has no value");
      while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') get();
      const int q = get();
      if (q != '"' && q != '\'') fail("attribute '" + key + "' of <" + ev.name + "> is not quoted");
      std::string value;
      for (int e = get(); e != q; e = get()) {
        if (e < 0 || e == '<') fail("unterminated attribute '" + key + "' of <" + ev.name + ">");
        if (e == '&') decode_entity(value);
        else value += static_cast<char>(e);
      }
      ev.attrs[key] = std::move(value);
    }
  }
}

}  // namespace biolm::data::detail

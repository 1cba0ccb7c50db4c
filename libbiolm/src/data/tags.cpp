#include "biolm/data/tags.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "biolm/core/error.h"

namespace biolm::data {

TagScheme parse_tag_scheme(const std::string& name) {
  if (name == "auto") return TagScheme::Auto;
  if (name == "iob1") return TagScheme::IOB1;
  if (name == "iob2" || name == "bio") return TagScheme::IOB2;
  if (name == "iobes" || name == "bioes") return TagScheme::IOBES;
  throw ConfigError("data.tag_scheme", "unknown tag scheme '" + name + "' (auto, iob1, iob2, bio, iobes)");
}

namespace {
struct Tag {
  char prefix;  // 'O', 'B', 'I', 'E', 'S'
  std::string type;
};
Tag parse_tag(const std::string& tag, size_t i) {
  if (tag == "O") return {'O', ""};
  if (tag.size() > 2 && tag[1] == '-' &&
      (tag[0] == 'B' || tag[0] == 'I' || tag[0] == 'E' || tag[0] == 'S')) {
    return {tag[0], tag.substr(2)};
  }
  throw TagError(static_cast<int64_t>(i), "expected O, B-, I-, E- or S- tag, found \"" + tag + "\"");
}
}  // namespace

std::vector<Span> tags_to_spans(const std::vector<std::string>& tags, TagScheme scheme) {
  std::vector<Tag> parsed;
  parsed.reserve(tags.size());
  bool has_es = false;
  for (size_t i = 0; i < tags.size(); ++i) {
    parsed.push_back(parse_tag(tags[i], i));
    has_es |= parsed.back().prefix == 'E' || parsed.back().prefix == 'S';
  }
  if (scheme == TagScheme::Auto) scheme = has_es ? TagScheme::IOBES : TagScheme::IOB1;
  if (has_es && scheme != TagScheme::IOBES) {
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (parsed[i].prefix == 'E' || parsed[i].prefix == 'S') {
        throw TagError(static_cast<int64_t>(i), "E-/S- tag \"" + tags[i] + "\" in an IOB1/IOB2 sequence");
      }
    }
  }
  std::vector<Span> spans;
  int64_t open = -1;  // start of the open entity
  std::string open_type;
  const auto close = [&](int64_t end) {
    if (open >= 0) spans.push_back({open, end, open_type});
    open = -1;
  };
  for (size_t k = 0; k < parsed.size(); ++k) {
    const auto i = static_cast<int64_t>(k);
    const Tag& t = parsed[k];
    const bool continues = open >= 0 && open_type == t.type;
    switch (t.prefix) {
      case 'O': close(i); break;
      case 'B':
        close(i);
        open = i;
        open_type = t.type;
        break;
      case 'I':
        if (continues) break;
        if (scheme == TagScheme::IOB2 || scheme == TagScheme::IOBES) {
          throw TagError(i, "I-" + t.type +
                                      " does not continue an entity of that type (strict " +
                                      (scheme == TagScheme::IOB2 ? "IOB2" : "IOBES") + ")");
        }
        close(i);
        open = i;
        open_type = t.type;
        break;
      case 'E':
        if (!continues) {
          throw TagError(i, "E-" + t.type + " ends no open entity");
        }
        close(i + 1);
        break;
      case 'S':
        close(i);
        spans.push_back({i, i + 1, t.type});
        break;
    }
    if (scheme == TagScheme::IOBES && t.prefix != 'O' && t.prefix != 'E' && t.prefix != 'S' &&
        (k + 1 == parsed.size() || parsed[k + 1].type != t.type ||
         (parsed[k + 1].prefix != 'I' && parsed[k + 1].prefix != 'E'))) {
      throw TagError(i, tags[k] + " is not closed by E-" + t.type);
    }
  }
  close(static_cast<int64_t>(parsed.size()));
  return spans;
}

std::vector<std::string> spans_to_iob2(int64_t n_words, const std::vector<Span>& spans) {
  std::vector<std::string> tags(static_cast<size_t>(n_words), "O");
  for (const auto& s : spans) {
    if (s.begin < 0 || s.end > n_words || s.begin >= s.end) {
      throw std::invalid_argument("span [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
                                  ") outside " + std::to_string(n_words) + " words");
    }
    for (int64_t i = s.begin; i < s.end; ++i) {
      if (tags[i] != "O") throw std::invalid_argument("overlapping spans at word " + std::to_string(i + 1));
      tags[i] = (i == s.begin ? "B-" : "I-") + s.type;
    }
  }
  return tags;
}

std::vector<std::string> to_iob2(const std::vector<std::string>& tags, TagScheme scheme) {
  return spans_to_iob2(static_cast<int64_t>(tags.size()), tags_to_spans(tags, scheme));
}

LabelMap LabelMap::from_types(const std::vector<std::string>& types) {
  std::set<std::string> sorted(types.begin(), types.end());
  std::vector<std::string> names = {"O"};
  for (const auto& t : sorted) {
    names.push_back("B-" + t);
    names.push_back("I-" + t);
  }
  return from_names(names);
}

LabelMap LabelMap::from_names(const std::vector<std::string>& names) {
  LabelMap m;
  for (const auto& n : names) {
    if (m.ids_.count(n) != 0) throw ConfigError("data.labels", "duplicate label '" + n + "'");
    m.ids_[n] = static_cast<int64_t>(m.names_.size());
    m.names_.push_back(n);
  }
  return m;
}

int64_t LabelMap::id(const std::string& label) const {
  const auto it = ids_.find(label);
  if (it == ids_.end()) throw std::out_of_range("unknown label \"" + label + "\"");
  return it->second;
}

const std::string& LabelMap::name(int64_t id) const {
  if (id < 0 || id >= size()) throw std::out_of_range("label id " + std::to_string(id) + " out of range");
  return names_[static_cast<size_t>(id)];
}

}  // namespace biolm::data

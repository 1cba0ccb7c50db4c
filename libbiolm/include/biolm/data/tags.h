// biolm/data/tags.h: NER tagging schemes and the label <-> id map.
//
// Schemes (Ramshaw & Marcus 1995; Tjong Kim Sang & Veenstra 1999):
//   IOB2 ("BIO")  every entity starts with B-; I- continues it.
//   IOB1          an entity starts with I-; B- only when it directly follows one of the same
//                 type (the scibert BC5CDR files). Decoded like lenient IOB2.
//   IOBES         B- begin, I- inside, E- end, S- single-token entity.
// We read any of them and always hand out IOB2.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "biolm/data/examples.h"

namespace biolm::data {

enum class TagScheme {
  Auto,   ///< IOBES when a sentence has S-/E- tags, else IOB1 (lenient IOB2)
  IOB1,
  IOB2,   ///< strict: I-X must follow B-X or I-X
  IOBES,  ///< strict: B-X I-X* E-X | S-X
};
/// "auto" | "iob1" | "iob2" | "bio" | "iobes"; ConfigError otherwise.
TagScheme parse_tag_scheme(const std::string& name);

/// A tag that is not O / B-X / I-X (/ E-X / S-X), or that breaks a strict scheme, at `index`
/// (0-based word); readers turn it into a DataError with file:line.
class TagError : public std::invalid_argument {
 public:
  TagError(int64_t index, const std::string& message) : std::invalid_argument(message), index_(index) {}
  int64_t index() const { return index_; }

 private:
  int64_t index_;
};

/// Entities of a tag sequence as word spans [begin, end). Throws TagError.
std::vector<Span> tags_to_spans(const std::vector<std::string>& tags, TagScheme scheme = TagScheme::Auto);
/// IOB2 tags for n words with the given non-overlapping spans.
std::vector<std::string> spans_to_iob2(int64_t n_words, const std::vector<Span>& spans);
/// Any scheme to IOB2.
std::vector<std::string> to_iob2(const std::vector<std::string>& tags, TagScheme scheme = TagScheme::Auto);

/// Label names <-> ids for token classification: "O" = 0, then B-/I- for each type in sorted order.
class LabelMap {
 public:
  LabelMap() = default;
  /// From entity types: O, B-T1, I-T1, B-T2, I-T2, ...
  static LabelMap from_types(const std::vector<std::string>& types);
  /// From plain class names (sequence classification), in the given order.
  static LabelMap from_names(const std::vector<std::string>& names);
  int64_t id(const std::string& label) const;  ///< throws std::out_of_range naming the label
  const std::string& name(int64_t id) const;
  int64_t size() const { return static_cast<int64_t>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::map<std::string, int64_t> ids_;
};

}  // namespace biolm::data

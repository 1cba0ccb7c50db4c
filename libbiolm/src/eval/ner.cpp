// Entity extraction and scoring as seqeval 1.2 does it (see biolm/eval/ner.h).
#include "biolm/eval/ner.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "biolm/core/error.h"

namespace biolm::eval {
namespace {

struct Tag {
  char prefix = 'O';
  std::string type = "_";  // seqeval's placeholder type for "O" and bare prefixes
};

// "O", a bare prefix "B" / "I" / "E" / "S", or P-TYPE with P in B/I/E/S; anything else (which
// seqeval only warns about, "seems not to be NE tag", then chunks oddly) throws with the token
// index as record. The type is seqeval's: default mode chunk[1:].split("-", 1)[-1], strict mode
// (seqeval.scheme.Token) chunk[1:].strip("-"); an empty type is "_" in both.
Tag parse_tag(const std::string& text, int64_t index, NerMode mode) {
  if (text == "O") return Tag{};
  const bool prefix_ok = !text.empty() && (text[0] == 'B' || text[0] == 'I' || text[0] == 'E' || text[0] == 'S');
  const bool ok = prefix_ok && (text.size() == 1 || text[1] == '-');
  if (!ok) {
    throw DataError::at_record("tags", index, "tag",
                               fmt::format("expected O or B-/I-/E-/S-TYPE, found \"{}\"", text));
  }
  std::string type = text.size() > 2 ? text.substr(2) : std::string();
  if (mode == NerMode::Strict) {
    const size_t b = type.find_first_not_of('-');
    type = b == std::string::npos ? std::string() : type.substr(b, type.find_last_not_of('-') - b + 1);
  }
  return Tag{text[0], type.empty() ? std::string("_") : type};
}

// --- default mode: seqeval.metrics.sequence_labeling.end_of_chunk / start_of_chunk ---------
bool end_of_chunk(char prev_tag, char tag, const std::string& prev_type, const std::string& type) {
  if (prev_tag == 'E' || prev_tag == 'S') return true;
  if ((prev_tag == 'B' || prev_tag == 'I') && (tag == 'B' || tag == 'S' || tag == 'O')) return true;
  return prev_tag != 'O' && prev_type != type;
}

bool start_of_chunk(char prev_tag, char tag, const std::string& prev_type, const std::string& type) {
  if (tag == 'B' || tag == 'S') return true;
  if ((prev_tag == 'E' || prev_tag == 'S' || prev_tag == 'O') && (tag == 'E' || tag == 'I')) {
    return true;
  }
  return tag != 'O' && prev_type != type;
}

std::vector<Entity> default_entities(const std::vector<Tag>& tags) {
  std::vector<Entity> out;
  char prev_tag = 'O';
  std::string prev_type = "_";
  int64_t begin = 0;
  const int64_t n = static_cast<int64_t>(tags.size());
  for (int64_t i = 0; i <= n; ++i) {  // one extra "O" closes the last chunk
    const Tag tag = i < n ? tags[i] : Tag{};
    if (end_of_chunk(prev_tag, tag.prefix, prev_type, tag.type)) {
      out.push_back(Entity{prev_type, begin, i - 1});
    }
    if (start_of_chunk(prev_tag, tag.prefix, prev_type, tag.type)) begin = i;
    prev_tag = tag.prefix;
    prev_type = tag.type;
  }
  return out;
}

// --- strict mode: seqeval.scheme IOB2 / IOBES token patterns and Tokens.entities -------------
bool strict_start(NerScheme scheme, const Tag& cur) {
  return cur.prefix == 'B' || (scheme == NerScheme::IOBES && cur.prefix == 'S');
}

bool strict_inside(NerScheme scheme, const Tag& prev, const Tag& cur) {
  if (cur.type != prev.type || (prev.prefix != 'B' && prev.prefix != 'I')) return false;
  return cur.prefix == 'I' || (scheme == NerScheme::IOBES && cur.prefix == 'E');
}

bool strict_end(NerScheme scheme, const Tag& prev, const Tag& cur) {
  if (scheme == NerScheme::IOBES) return prev.prefix == 'S' || prev.prefix == 'E';
  if (prev.prefix != 'B' && prev.prefix != 'I') return false;
  return cur.prefix == 'O' || cur.prefix == 'B' || (cur.prefix == 'I' && cur.type != prev.type);
}

std::vector<Entity> strict_entities(const std::vector<Tag>& tags, NerScheme scheme) {
  for (size_t i = 0; i < tags.size(); ++i) {
    const char p = tags[i].prefix;
    if (scheme == NerScheme::IOB2 && (p == 'E' || p == 'S')) {
      throw DataError::at_record("tags", static_cast<int64_t>(i), "tag",
                                 fmt::format("prefix '{}-' is not allowed in strict IOB2", p));
    }
  }
  std::vector<Tag> ext(tags);
  ext.push_back(Tag{});
  std::vector<Entity> out;
  size_t i = 0;
  while (i < ext.size()) {
    if (!strict_start(scheme, ext[i])) {
      ++i;
      continue;
    }
    size_t end = i + 1;  // first token that does not continue the entity
    while (end < ext.size() && strict_inside(scheme, ext[end - 1], ext[end])) ++end;
    if (end < ext.size() && strict_end(scheme, ext[end - 1], ext[end])) {
      out.push_back(Entity{ext[i].type, static_cast<int64_t>(i), static_cast<int64_t>(end) - 1});
    }
    i = end;
  }
  return out;
}

}  // namespace

bool Entity::operator<(const Entity& o) const {
  return std::tie(start, end, type) < std::tie(o.start, o.end, o.type);
}

std::vector<Entity> extract_entities(const std::vector<std::string>& tags, const NerOptions& options) {
  std::vector<Tag> parsed;
  parsed.reserve(tags.size());
  for (size_t i = 0; i < tags.size(); ++i) parsed.push_back(parse_tag(tags[i], static_cast<int64_t>(i), options.mode));
  return options.mode == NerMode::Default ? default_entities(parsed)
                                          : strict_entities(parsed, options.scheme);
}

std::vector<NerSentenceTallies> ner_sentence_tallies(
    const std::vector<std::vector<std::string>>& gold,
    const std::vector<std::vector<std::string>>& pred, const NerOptions& options) {
  BIOLM_CHECK(gold.size() == pred.size(), Error,
              fmt::format("ner: {} gold sentences but {} predicted", gold.size(), pred.size()));
  std::vector<NerSentenceTallies> out(gold.size());
  for (size_t s = 0; s < gold.size(); ++s) {
    BIOLM_CHECK(gold[s].size() == pred[s].size(), Error,
                fmt::format("ner: sentence {} has {} gold tags but {} predicted", s, gold[s].size(),
                            pred[s].size()));
    auto entities_of = [&](const std::vector<std::string>& tags, const char* which) {
      try {
        return extract_entities(tags, options);
      } catch (const DataError& e) {
        throw DataError::at_record(which, static_cast<int64_t>(s), "tag",
                                   fmt::format("token {}: {}", e.record(), e.message()));
      }
    };
    const std::vector<Entity> g = entities_of(gold[s], "gold");
    const std::vector<Entity> p = entities_of(pred[s], "pred");
    const std::set<Entity> gset(g.begin(), g.end());
    NerSentenceTallies& t = out[s];
    for (const Entity& e : g) t[e.type].gold += 1;
    for (const Entity& e : p) {
      Tally& tally = t[e.type];
      tally.pred += 1;
      tally.tp += gset.count(e) ? 1 : 0;
    }
  }
  return out;
}

std::vector<std::string> ner_types(const std::vector<NerSentenceTallies>& sentences) {
  std::set<std::string> types;
  for (const auto& s : sentences) {
    for (const auto& kv : s) types.insert(kv.first);
  }
  return {types.begin(), types.end()};
}

PrfTable ner_table(const std::vector<NerSentenceTallies>& sentences,
                   const std::vector<int64_t>& indices, const std::vector<std::string>& types,
                   ZeroDivision zero_division) {
  std::map<std::string, Tally> sum;
  for (int64_t i : indices) {
    for (const auto& kv : sentences.at(static_cast<size_t>(i))) sum[kv.first] += kv.second;
  }
  std::vector<Tally> tallies;
  tallies.reserve(types.size());
  for (const auto& type : types) tallies.push_back(sum[type]);
  PrfTable table = prf_from_tallies(types, tallies, zero_division);
  // seqeval (metrics/v1.py _precision_recall_fscore_support) returns, when no gold entity exists,
  // weighted = (zd if nothing predicted else 0, zd, same as P): what prf_from_tallies' sklearn
  // fallback (unweighted mean: every type then has P 0, R zd, F 0) gives too. With no entity type
  // at all, seqeval's macro is np.average([]) = nan.
  if (types.empty()) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    table.macro = {nan, nan, nan, 0};
  }
  return table;
}

PrfTable ner_report(const std::vector<std::vector<std::string>>& gold,
                    const std::vector<std::vector<std::string>>& pred, const NerOptions& options) {
  const auto sentences = ner_sentence_tallies(gold, pred, options);
  std::vector<int64_t> all(sentences.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  return ner_table(sentences, all, ner_types(sentences), options.zero_division);
}

}  // namespace biolm::eval

// biolm/eval/ner.h: entity-level NER precision / recall / F1 as seqeval computes them.
//
// Reference: seqeval 1.2 (seqeval.metrics.sequence_labeling and seqeval.scheme). Matched how:
//   - Default mode = seqeval's get_entities (conlleval-like chunking): a chunk starts at B-/S-,
//     at I-/E- after O (an I- tag without B- starts an entity), at E-E / E-I / S-E / S-I
//     transitions, and wherever the type changes; it ends before B-/S-/O, after E-/S-, and
//     where the type changes. Tags: "O", a bare prefix "B" / "I" / "E" / "S" (type "_"), or
//     PREFIX-TYPE with PREFIX in {B, I, E, S}; the type is seqeval's: default mode
//     tag[1:].split("-", 1)[-1], strict mode tag[1:].strip("-"), "_" when empty. Other tags
//     (seqeval warns "seems not to be NE tag" and chunks on the first letter) are refused.
//   - Strict mode = seqeval mode="strict" with scheme=IOB2 or IOBES (seqeval.scheme.Tokens):
//     an entity starts only at B- (or S- in IOBES), continues through I- (and E- in IOBES) of
//     the same type, and counts only if it ends validly (IOB2: the next tag is O, B- or an I- of
//     another type; IOBES: it ends with E- or is a single S-). Invalid sequences yield no entity
//     (an I- without B-, IOBES B-X I-X O). A prefix the scheme does not allow (E-/S- under IOB2)
//     is an error, as in seqeval.
//   - Entities are (sentence, start, end, type); tp = |gold ∩ pred| per type. Per type
//     P = tp/pred, R = tp/gold, F1 = 2PR/(P+R) (0 when P+R=0); micro over all types; macro and
//     weighted (by gold support) averages of the per-type values; zero_division as in
//     classification.h (seqeval's default "warn" yields 0; ZeroDivision::NaN is ours, seqeval
//     1.2.2 has no nan). The per-type F1 equals seqeval's 2PR/(P+R) for every input seqeval
//     accepts (see prf_from_tallies). No gold entity at all: weighted = (zd if nothing was
//     predicted else 0, zd, same as P), as seqeval returns it; no entity type at all: macro is
//     NaN (seqeval's np.average([])). Checked against seqeval: tests/parity/test_metrics.py.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "biolm/eval/classification.h"

namespace biolm::eval {

enum class NerMode { Default, Strict };
enum class NerScheme { IOB2, IOBES };

struct NerOptions {
  NerMode mode = NerMode::Default;
  NerScheme scheme = NerScheme::IOB2;  ///< used in strict mode only
  ZeroDivision zero_division = ZeroDivision::Zero;
};

/// One entity of a sentence: tokens [start, end] (inclusive, as seqeval) of a type.
struct Entity {
  std::string type;
  int64_t start = 0;
  int64_t end = 0;
  bool operator==(const Entity& o) const {
    return start == o.start && end == o.end && type == o.type;
  }
  bool operator<(const Entity& o) const;
};

/// Entities of one sentence under `options` (mode, scheme). Throws DataError (record = token
/// index) for a malformed tag ("B_X", "X-Y") or one the strict scheme does not allow.
std::vector<Entity> extract_entities(const std::vector<std::string>& tags, const NerOptions& options);

/// Per-sentence tallies keyed by entity type (what bootstrap resampling aggregates).
using NerSentenceTallies = std::map<std::string, Tally>;
std::vector<NerSentenceTallies> ner_sentence_tallies(
    const std::vector<std::vector<std::string>>& gold,
    const std::vector<std::vector<std::string>>& pred, const NerOptions& options);

/// Sums the tallies of the chosen sentences (indices may repeat) into a table over `types`.
PrfTable ner_table(const std::vector<NerSentenceTallies>& sentences,
                   const std::vector<int64_t>& indices, const std::vector<std::string>& types,
                   ZeroDivision zero_division = ZeroDivision::Zero);

/// Entity types seen in any sentence's tallies, sorted.
std::vector<std::string> ner_types(const std::vector<NerSentenceTallies>& sentences);

/// seqeval's classification report: micro (= precision_score/recall_score/f1_score), macro,
/// weighted, and per type. Sentences must pair up with equal lengths (else biolm::Error).
PrfTable ner_report(const std::vector<std::vector<std::string>>& gold,
                    const std::vector<std::vector<std::string>>& pred, const NerOptions& options = {});

}  // namespace biolm::eval

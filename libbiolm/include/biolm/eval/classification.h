// biolm/eval/classification.h: accuracy and precision / recall / F1 as scikit-learn computes them.
//
// Reference: sklearn.metrics.precision_recall_fscore_support (scikit-learn >= 1.3) and
// accuracy_score. Matched how:
//   - labels: the sorted union of gold and predicted labels (np.unique: byte order of the UTF-8
//     strings), unless a label list is given (then only those labels are scored, as `labels=`);
//   - per class: P = tp / predicted, R = tp / gold, F1 = 2 tp / (2 tp + fp + fn) = 2 tp /
//     (predicted + gold) (sklearn >= 1.3 computes F this way; it equals 2PR/(P+R) whenever that
//     is defined); a zero denominator gives the `zero_division` value (default 0, sklearn's
//     "warn" also yields 0);
//   - micro: the same formulas on tallies summed over the scored labels (for plain multi-class
//     with all labels, micro P = R = F1 = accuracy);
//   - macro: unweighted mean of the per-class values; weighted: mean weighted by gold support.
//     Both are sklearn's _nanaverage: NaN values (ZeroDivision::NaN) are left out, all NaN gives
//     NaN, and when the scored labels have no gold support at all the weighted average is the
//     unweighted mean (sklearn catches numpy's ZeroDivisionError and falls back to it).
// Relation extraction micro-F1 is sklearn's f1_score(average="micro", labels=all but the
// negative label): predictions of the negative class count for nothing, gold negatives missed
// are not false negatives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace biolm::eval {

/// What a zero denominator yields (sklearn's zero_division=0 / 1 / np.nan).
enum class ZeroDivision { Zero, One, NaN };

/// Counts for one label (or entity type): true positives, predicted, gold.
struct Tally {
  int64_t tp = 0;
  int64_t pred = 0;
  int64_t gold = 0;
  Tally& operator+=(const Tally& o) {
    tp += o.tp;
    pred += o.pred;
    gold += o.gold;
    return *this;
  }
};

/// Precision, recall, F1 and gold support (support of an average = summed support).
struct PRF {
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
  int64_t support = 0;
};

/// Per-label figures plus the three averages, computed from tallies.
struct PrfTable {
  std::vector<std::string> labels;  ///< in output order
  std::vector<PRF> per_label;       ///< same order as labels
  PRF micro, macro, weighted;
};

/// The sklearn formulas above applied to per-label tallies (labels[i] <-> tallies[i]).
PrfTable prf_from_tallies(const std::vector<std::string>& labels, const std::vector<Tally>& tallies,
                          ZeroDivision zero_division = ZeroDivision::Zero);

struct ClassificationOptions {
  /// Labels to score, in output order; empty = sorted union of gold and predicted labels.
  std::vector<std::string> labels;
  ZeroDivision zero_division = ZeroDivision::Zero;
};

struct ClassificationReport {
  double accuracy = 0.0;  ///< over all examples, whatever `labels` says (sklearn accuracy_score)
  PrfTable prf;
};

/// Fraction of positions where pred == gold. Throws biolm::Error on empty or unequal inputs.
double accuracy(const std::vector<std::string>& gold, const std::vector<std::string>& pred);

/// Accuracy and P/R/F1 per class, micro, macro and weighted.
ClassificationReport classification_report(const std::vector<std::string>& gold,
                                           const std::vector<std::string>& pred,
                                           const ClassificationOptions& options = {});

/// The sorted union of labels in gold and pred (np.unique order).
std::vector<std::string> sorted_labels(const std::vector<std::string>& gold,
                                       const std::vector<std::string>& pred);

/// Relation-extraction micro P/R/F1 over every label except `negative_label` (ChemProt, DDI
/// convention; sklearn f1_score(..., labels=positive labels, average="micro")).
PRF relation_micro_f1(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                      const std::string& negative_label,
                      ZeroDivision zero_division = ZeroDivision::Zero);

}  // namespace biolm::eval

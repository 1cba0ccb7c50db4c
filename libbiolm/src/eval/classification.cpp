// Accuracy and sklearn-style P/R/F1 (see biolm/eval/classification.h for the reference).
#include "biolm/eval/classification.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "biolm/core/error.h"

namespace biolm::eval {
namespace {

double zero_division_value(ZeroDivision zd) {
  switch (zd) {
    case ZeroDivision::Zero:
      return 0.0;
    case ZeroDivision::One:
      return 1.0;
    case ZeroDivision::NaN:
      return std::numeric_limits<double>::quiet_NaN();
  }
  return 0.0;
}

double ratio(int64_t num, int64_t den, ZeroDivision zd) {
  return den == 0 ? zero_division_value(zd) : static_cast<double>(num) / static_cast<double>(den);
}

PRF prf_of(const Tally& t, ZeroDivision zd) {
  PRF out;
  out.precision = ratio(t.tp, t.pred, zd);
  out.recall = ratio(t.tp, t.gold, zd);
  // 2tp / (2tp + fp + fn) = 2tp / (pred + gold): sklearn >= 1.3.
  out.f1 = ratio(2 * t.tp, t.pred + t.gold, zd);
  out.support = t.gold;
  return out;
}

// sklearn's _nanaverage: the weighted mean of the non-NaN values; NaN when every value is NaN
// (or there are none); the unweighted mean when their weights sum to 0 (weighted average over
// labels without gold support: sklearn falls back to np.average(a)).
double nan_average(const std::vector<double>& values, const std::vector<double>& weights) {
  double sum = 0.0, wsum = 0.0, plain = 0.0;
  int64_t kept = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) continue;
    sum += values[i] * weights[i];
    wsum += weights[i];
    plain += values[i];
    ++kept;
  }
  if (kept == 0) return std::numeric_limits<double>::quiet_NaN();
  if (wsum == 0.0) return plain / static_cast<double>(kept);
  return sum / wsum;
}

void check_pair(const std::vector<std::string>& gold, const std::vector<std::string>& pred) {
  BIOLM_CHECK(gold.size() == pred.size(), Error,
              fmt::format("eval: {} gold labels but {} predictions", gold.size(), pred.size()));
  BIOLM_CHECK(!gold.empty(), Error, "eval: no examples to score");
}

}  // namespace

PrfTable prf_from_tallies(const std::vector<std::string>& labels, const std::vector<Tally>& tallies,
                          ZeroDivision zero_division) {
  BIOLM_CHECK(labels.size() == tallies.size(), Error,
              fmt::format("eval: {} labels but {} tallies", labels.size(), tallies.size()));
  PrfTable table;
  table.labels = labels;
  Tally total;
  std::vector<double> p, r, f, unit, support;
  for (const Tally& t : tallies) {
    table.per_label.push_back(prf_of(t, zero_division));
    total += t;
    p.push_back(table.per_label.back().precision);
    r.push_back(table.per_label.back().recall);
    f.push_back(table.per_label.back().f1);
    unit.push_back(1.0);
    support.push_back(static_cast<double>(t.gold));
  }
  table.micro = prf_of(total, zero_division);
  if (tallies.empty()) {
    table.macro = table.weighted = table.micro;
    return table;
  }
  table.macro = {nan_average(p, unit), nan_average(r, unit), nan_average(f, unit), total.gold};
  table.weighted = {nan_average(p, support), nan_average(r, support), nan_average(f, support), total.gold};
  return table;
}

std::vector<std::string> sorted_labels(const std::vector<std::string>& gold,
                                       const std::vector<std::string>& pred) {
  std::vector<std::string> labels(gold);
  labels.insert(labels.end(), pred.begin(), pred.end());
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  return labels;
}

double accuracy(const std::vector<std::string>& gold, const std::vector<std::string>& pred) {
  check_pair(gold, pred);
  int64_t correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) correct += gold[i] == pred[i] ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(gold.size());
}

ClassificationReport classification_report(const std::vector<std::string>& gold,
                                           const std::vector<std::string>& pred,
                                           const ClassificationOptions& options) {
  check_pair(gold, pred);
  const std::vector<std::string> labels =
      options.labels.empty() ? sorted_labels(gold, pred) : options.labels;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < labels.size(); ++i) {
    BIOLM_CHECK(index.emplace(labels[i], i).second, ConfigError, "eval.labels",
                fmt::format("label '{}' is listed twice", labels[i]));
  }
  std::vector<Tally> tallies(labels.size());
  for (size_t i = 0; i < gold.size(); ++i) {
    const auto g = index.find(gold[i]);
    const auto p = index.find(pred[i]);
    if (g != index.end()) tallies[g->second].gold += 1;
    if (p != index.end()) tallies[p->second].pred += 1;
    if (g != index.end() && gold[i] == pred[i]) tallies[g->second].tp += 1;
  }
  ClassificationReport report;
  report.accuracy = accuracy(gold, pred);
  report.prf = prf_from_tallies(labels, tallies, options.zero_division);
  return report;
}

PRF relation_micro_f1(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                      const std::string& negative_label, ZeroDivision zero_division) {
  check_pair(gold, pred);
  Tally t;
  for (size_t i = 0; i < gold.size(); ++i) {
    const bool g = gold[i] != negative_label;
    const bool p = pred[i] != negative_label;
    t.gold += g ? 1 : 0;
    t.pred += p ? 1 : 0;
    t.tp += (g && p && gold[i] == pred[i]) ? 1 : 0;
  }
  return prf_of(t, zero_division);
}

}  // namespace biolm::eval

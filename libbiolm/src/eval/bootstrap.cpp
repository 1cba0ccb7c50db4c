// Percentile bootstrap intervals and Koehn's paired bootstrap (see biolm/eval/bootstrap.h).
#include "biolm/eval/bootstrap.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "biolm/core/error.h"

namespace biolm::eval {
namespace {

void check_options(int64_t n, const BootstrapOptions& o) {
  BIOLM_CHECK(n > 0, Error, "bootstrap: no examples to resample");
  BIOLM_CHECK(o.n_resamples > 0, ConfigError, "bootstrap.n_resamples",
              fmt::format("must be > 0, got {}", o.n_resamples));
  BIOLM_CHECK(o.confidence > 0.0 && o.confidence < 1.0, ConfigError, "bootstrap.confidence",
              fmt::format("must be in (0, 1), got {}", o.confidence));
}

std::vector<int64_t> identity(int64_t n) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  return all;
}

Interval percentile_interval(double point, std::vector<double> values, double confidence) {
  Interval out;
  out.point = point;
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
               values.end());
  out.n_valid = static_cast<int64_t>(values.size());
  if (values.empty()) {
    out.lower = out.upper = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  std::sort(values.begin(), values.end());
  const double alpha = 1.0 - confidence;
  out.lower = quantile_sorted(values, alpha / 2.0);
  out.upper = quantile_sorted(values, 1.0 - alpha / 2.0);
  return out;
}

}  // namespace

uint64_t ResampleGenerator::next_below(uint64_t bound) {
  // Reject the top partial block so every residue is equally likely.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t x = engine_();
  while (x >= limit) x = engine_();
  return x % bound;
}

void ResampleGenerator::draw(int64_t n, std::vector<int64_t>& out) {
  out.resize(static_cast<size_t>(n));
  for (auto& v : out) v = static_cast<int64_t>(next_below(static_cast<uint64_t>(n)));
}

double quantile_sorted(const std::vector<double>& sorted, double q) {
  BIOLM_CHECK(!sorted.empty(), Error, "quantile of no values");
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

std::vector<Interval> bootstrap_intervals(int64_t n, const MultiStatistic& statistic,
                                          const BootstrapOptions& options) {
  check_options(n, options);
  const std::vector<double> point = statistic(identity(n));
  const auto k = static_cast<Eigen::Index>(point.size());
  // One row per resample, one column per statistic component.
  Eigen::MatrixXd samples(options.n_resamples, k);
  ResampleGenerator gen(options.seed);
  std::vector<int64_t> idx;
  for (int64_t b = 0; b < options.n_resamples; ++b) {
    gen.draw(n, idx);
    const std::vector<double> s = statistic(idx);
    BIOLM_CHECK(static_cast<Eigen::Index>(s.size()) == k, Error,
                fmt::format("bootstrap: statistic returned {} values, then {}", k, s.size()));
    for (Eigen::Index j = 0; j < k; ++j) samples(b, j) = s[static_cast<size_t>(j)];
  }
  std::vector<Interval> out;
  for (Eigen::Index j = 0; j < k; ++j) {
    const Eigen::VectorXd col = samples.col(j);
    out.push_back(percentile_interval(point[static_cast<size_t>(j)],
                                      std::vector<double>(col.data(), col.data() + col.size()),
                                      options.confidence));
  }
  return out;
}

Interval bootstrap_interval(int64_t n, const Statistic& statistic, const BootstrapOptions& options) {
  return bootstrap_intervals(
      n, [&](const std::vector<int64_t>& idx) { return std::vector<double>{statistic(idx)}; },
      options)[0];
}

PairedBootstrapResult paired_bootstrap(int64_t n, const Statistic& system_a,
                                       const Statistic& system_b, const BootstrapOptions& options) {
  check_options(n, options);
  PairedBootstrapResult out;
  const auto all = identity(n);
  out.score_a = system_a(all);
  out.score_b = system_b(all);
  out.delta = out.score_a - out.score_b;
  out.n_resamples = options.n_resamples;
  std::vector<double> deltas;
  deltas.reserve(static_cast<size_t>(options.n_resamples));
  ResampleGenerator gen(options.seed);
  std::vector<int64_t> idx;
  int64_t not_same_sign = 0;
  for (int64_t b = 0; b < options.n_resamples; ++b) {
    gen.draw(n, idx);
    const double d = system_a(idx) - system_b(idx);
    deltas.push_back(d);
    out.a_wins += d > 0.0 ? 1 : 0;
    if ((out.delta > 0.0 && !(d > 0.0)) || (out.delta < 0.0 && !(d < 0.0))) ++not_same_sign;
  }
  out.p_value = out.delta == 0.0 ? 1.0
                                 : static_cast<double>(not_same_sign) /
                                       static_cast<double>(options.n_resamples);
  out.delta_interval = percentile_interval(out.delta, std::move(deltas), options.confidence);
  return out;
}

}  // namespace biolm::eval

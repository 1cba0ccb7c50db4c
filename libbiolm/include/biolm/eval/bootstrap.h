// biolm/eval/bootstrap.h: bootstrap confidence intervals and the paired bootstrap test.
//
// Intervals: the percentile bootstrap (Efron & Tibshirani 1993, ch. 13). Draw N resamples of
// the n examples with replacement, recompute the statistic on each (corpus-level statistics
// such as F1 or BLEU are recomputed from the resampled examples, not averaged), and take the
// (1-c)/2 and (1+c)/2 quantiles of the N values with linear interpolation (numpy.quantile's
// default). Resamples where the statistic is not finite (a constant resample for Spearman) are
// left out and counted: Interval::n_valid says how many were used.
//
// Paired test: Koehn 2004, "Statistical significance tests for machine translation evaluation",
// §4 paired bootstrap resampling. Both systems are scored on the SAME resampled indices; with
// d = score_a - score_b on the full data, p = fraction of resamples whose d* does not have d's
// sign (d* <= 0 when d > 0, d* >= 0 when d < 0); p = 1 when d = 0. "A beats B in 95% of
// resamples" reads p = 0.05. This is one-sided, the sign-flip form, not the shifted-null
// variant of Berg-Kirkpatrick et al. 2012.
//
// Randomness: std::mt19937_64 seeded with `seed`, indices drawn by rejection sampling (no
// std::uniform_int_distribution, whose output differs between standard libraries), so a seed
// gives the same intervals everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace biolm::eval {

struct BootstrapOptions {
  int64_t n_resamples = 1000;
  uint64_t seed = 0;
  double confidence = 0.95;
};

struct Interval {
  double point = 0.0;  ///< the statistic on the full data
  double lower = 0.0;
  double upper = 0.0;
  int64_t n_valid = 0;  ///< resamples with a finite statistic
};

/// Statistics of the examples at `indices` (0..n-1, repeats allowed).
using MultiStatistic = std::function<std::vector<double>(const std::vector<int64_t>& indices)>;
using Statistic = std::function<double(const std::vector<int64_t>& indices)>;

/// One interval per component of the statistic, all from the same resamples.
std::vector<Interval> bootstrap_intervals(int64_t n, const MultiStatistic& statistic,
                                          const BootstrapOptions& options = {});
Interval bootstrap_interval(int64_t n, const Statistic& statistic,
                            const BootstrapOptions& options = {});

struct PairedBootstrapResult {
  double score_a = 0.0;
  double score_b = 0.0;
  double delta = 0.0;      ///< score_a - score_b on the full data
  double p_value = 1.0;    ///< see above
  Interval delta_interval; ///< percentile interval of d*
  int64_t a_wins = 0;      ///< resamples with d* > 0
  int64_t n_resamples = 0;
};
PairedBootstrapResult paired_bootstrap(int64_t n, const Statistic& system_a,
                                       const Statistic& system_b,
                                       const BootstrapOptions& options = {});

/// Percentile of sorted values with linear interpolation (numpy "linear"); q in [0, 1].
double quantile_sorted(const std::vector<double>& sorted, double q);

/// The resample generator (exposed for tests): n_draws indices in [0, n).
class ResampleGenerator {
 public:
  explicit ResampleGenerator(uint64_t seed) : engine_(seed) {}
  /// Fills `out` with n indices drawn uniformly from [0, n).
  void draw(int64_t n, std::vector<int64_t>& out);
  /// Uniform in [0, bound), bound > 0, by rejection (portable across standard libraries).
  uint64_t next_below(uint64_t bound);

 private:
  std::mt19937_64 engine_;
};

}  // namespace biolm::eval

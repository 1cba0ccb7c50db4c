// Pearson and Spearman correlation (scipy.stats.pearsonr / spearmanr, average ranks for ties).
#include "biolm/eval/correlation.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "biolm/core/error.h"

namespace biolm::eval {

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  BIOLM_CHECK(x.size() == y.size(), Error,
              fmt::format("pearson: {} values against {}", x.size(), y.size()));
  BIOLM_CHECK(x.size() >= 2, Error, "pearson: needs at least 2 pairs");
  const Eigen::Map<const Eigen::VectorXd> xv(x.data(), static_cast<Eigen::Index>(x.size()));
  const Eigen::Map<const Eigen::VectorXd> yv(y.data(), static_cast<Eigen::Index>(y.size()));
  // Centre first: the two-pass form avoids the cancellation of sum(xy) - n*mean_x*mean_y.
  const Eigen::VectorXd xc = xv.array() - xv.mean();
  const Eigen::VectorXd yc = yv.array() - yv.mean();
  const double denom = xc.norm() * yc.norm();
  if (denom == 0.0) return std::numeric_limits<double>::quiet_NaN();  // constant input
  const double r = xc.dot(yc) / denom;
  return std::max(-1.0, std::min(1.0, r));  // scipy clips rounding excursions too
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    // Positions i..j (0-based) share the mean of ranks i+1..j+1.
    const double rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  BIOLM_CHECK(x.size() == y.size(), Error,
              fmt::format("spearman: {} values against {}", x.size(), y.size()));
  return pearson(average_ranks(x), average_ranks(y));
}

}  // namespace biolm::eval

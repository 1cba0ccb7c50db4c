// biolm/eval/correlation.h: Pearson and Spearman correlation (BIOSSES, n2c2 2019 STS).
//
// Reference: scipy.stats.pearsonr and scipy.stats.spearmanr. Spearman is Pearson's r of the
// ranks, tied values getting the average of the ranks they span (scipy.stats.rankdata
// method="average"). A constant input (either side) has no defined correlation: NaN is
// returned, as scipy returns nan (with a ConstantInputWarning); JSON output writes it as null.
// Fewer than 2 pairs is an error (scipy.stats.pearsonr raises ValueError too). Checked against
// scipy to 1e-9 (ties, n = 2, constant inputs): tests/parity/test_metrics.py.
#pragma once

#include <vector>

namespace biolm::eval {

/// Pearson's r. Throws biolm::Error when sizes differ or fewer than 2 values are given.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Spearman's rho with average ranks for ties.
double spearman(const std::vector<double>& x, const std::vector<double>& y);
/// 1-based ranks, ties averaged (scipy.stats.rankdata(x, method="average")).
std::vector<double> average_ranks(const std::vector<double>& x);

}  // namespace biolm::eval

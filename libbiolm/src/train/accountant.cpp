// RDP accountant of the Poisson-subsampled Gaussian mechanism: a line-by-line port of Opacus 1.6
// opacus/accountants/analysis/rdp.py (itself TF Privacy's rdp_accountant.py), see accountant.h.
#include "biolm/train/accountant.h"

#include <cmath>
#include <limits>
#include <string>

#include "biolm/core/error.h"

namespace biolm::train {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// log(exp(a) + exp(b)) without overflow (-inf is log 0).
double log_add(double logx, double logy) {
  const double a = std::min(logx, logy), b = std::max(logx, logy);
  if (a == -kInf) return b;
  return std::log1p(std::exp(a - b)) + b;
}

/// log(exp(a) - exp(b)), a >= b.
double log_sub(double logx, double logy) {
  BIOLM_CHECK(logx >= logy, Error, "rdp accountant: log_sub of a larger number (internal error)");
  if (logy == -kInf) return logx;
  if (logx == logy) return -kInf;
  const double d = std::expm1(logx - logy);
  if (!std::isfinite(d)) return logx;  // Opacus: OverflowError -> logx
  return std::log(d) + logy;
}

/// log(erfc(x)), accurate where erfc underflows (x > ~26): the asymptotic series
/// erfc(x) = exp(-x²)/(x√π) Σ_n (-1)^n (2n-1)!! / (2x²)^n (Abramowitz & Stegun 7.1.23).
/// Opacus computes log(2) + scipy.special.log_ndtr(-x√2), the same function.
double log_erfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  const double inv2x2 = 1.0 / (2.0 * x * x);
  double term = 1.0, sum = 1.0;
  for (int n = 1; n < 30; ++n) {
    term *= -static_cast<double>(2 * n - 1) * inv2x2;
    sum += term;
    if (std::fabs(term) < 1e-17) break;
  }
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log(sum);
}

/// Generalised binomial coefficient C(alpha, i) by the product formula (exact for the integer
/// orders here up to rounding; scipy.special.binom agrees to ~1e-16 relative).
double binom(double alpha, int64_t i) {
  double c = 1.0;
  for (int64_t k = 0; k < i; ++k) c *= (alpha - static_cast<double>(k)) / static_cast<double>(k + 1);
  return c;
}

double log_a_int(double q, double sigma, int64_t alpha) {
  double log_a = -kInf;
  for (int64_t i = 0; i <= alpha; ++i) {
    const double di = static_cast<double>(i);
    const double log_coef = std::log(binom(static_cast<double>(alpha), i)) + di * std::log(q) +
                            static_cast<double>(alpha - i) * std::log(1 - q);
    const double s = log_coef + (di * di - di) / (2 * sigma * sigma);
    log_a = log_add(log_a, s);
  }
  return log_a;
}

double log_a_frac(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  for (int64_t i = 0;; ++i) {
    const double di = static_cast<double>(i);
    const double coef = binom(alpha, i);
    const double log_coef = std::log(std::fabs(coef));
    const double j = alpha - di;
    const double log_t0 = log_coef + di * std::log(q) + j * std::log(1 - q);
    const double log_t1 = log_coef + j * std::log(q) + di * std::log(1 - q);
    const double log_e0 = std::log(0.5) + log_erfc((di - z0) / (std::sqrt(2.0) * sigma));
    const double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (std::sqrt(2.0) * sigma));
    const double log_s0 = log_t0 + (di * di - di) / (2 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    if (coef > 0) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    if (std::max(log_s0, log_s1) < -30) break;
  }
  return log_add(log_a0, log_a1);
}

/// RDP of one step at order alpha.
double rdp_one(double q, double sigma, double alpha) {
  if (q == 0) return 0.0;
  if (sigma == 0) return kInf;
  if (q == 1.0) return alpha / (2 * sigma * sigma);
  if (std::isinf(alpha)) return kInf;
  const double log_a = alpha == std::floor(alpha) ? log_a_int(q, sigma, static_cast<int64_t>(alpha))
                                                  : log_a_frac(q, sigma, alpha);
  return log_a / (alpha - 1);
}

}  // namespace

std::vector<double> default_rdp_orders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1 + x / 10.0);
  for (int a = 12; a < 64; ++a) orders.push_back(a);
  return orders;
}

std::vector<double> compute_rdp(double q, double noise_multiplier, int64_t steps, const std::vector<double>& orders) {
  BIOLM_CHECK(q >= 0 && q <= 1, ConfigError, "dp.q", "sampling rate must be in [0, 1], got " + std::to_string(q));
  BIOLM_CHECK(noise_multiplier >= 0, ConfigError, "dp.noise_multiplier", "must be >= 0");
  BIOLM_CHECK(steps >= 0, ConfigError, "dp.steps", "must be >= 0");
  std::vector<double> out;
  out.reserve(orders.size());
  for (double a : orders) {
    BIOLM_CHECK(a > 1, ConfigError, "dp.orders", "RDP orders must be > 1");
    out.push_back(rdp_one(q, noise_multiplier, a) * static_cast<double>(steps));
  }
  return out;
}

PrivacySpent rdp_to_epsilon(const std::vector<double>& orders, const std::vector<double>& rdp, double delta) {
  BIOLM_CHECK(orders.size() == rdp.size() && !orders.empty(), Error, "rdp_to_epsilon: orders and rdp differ in length");
  BIOLM_CHECK(delta > 0 && delta < 1, ConfigError, "dp.delta", "must be in (0, 1), got " + std::to_string(delta));
  PrivacySpent best{kInf, std::numeric_limits<double>::quiet_NaN()};
  bool any = false;
  for (size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k];
    // Same operation order as Opacus' numpy expression.
    const double eps = rdp[k] - (std::log(delta) + std::log(a)) / (a - 1) + std::log((a - 1) / a);
    if (std::isnan(eps)) continue;
    if (!any || eps < best.epsilon) {
      best = {eps, a};
      any = true;
    }
  }
  if (!any) return {kInf, std::numeric_limits<double>::quiet_NaN()};
  return best;
}

PrivacySpent rdp_epsilon(double noise_multiplier, double q, int64_t steps, double delta) {
  if (steps == 0) return {0.0, 0.0};  // Opacus: an empty history spends nothing
  const auto orders = default_rdp_orders();
  return rdp_to_epsilon(orders, compute_rdp(q, noise_multiplier, steps, orders), delta);
}

double rdp_noise_multiplier(double target_epsilon, double delta, double q, int64_t steps, double epsilon_tolerance) {
  BIOLM_CHECK(target_epsilon > 0, ConfigError, "train.dp.target_epsilon", "must be > 0");
  BIOLM_CHECK(epsilon_tolerance > 0, ConfigError, "dp.epsilon_tolerance", "must be > 0");
  // opacus/accountants/utils.py get_noise_multiplier, verbatim in structure.
  double eps_high = kInf;
  double sigma_low = 0, sigma_high = 10;
  while (eps_high > target_epsilon) {
    sigma_high = 2 * sigma_high;
    eps_high = rdp_epsilon(sigma_high, q, steps, delta).epsilon;
    BIOLM_CHECK(sigma_high <= 1e6, ConfigError, "train.dp.target_epsilon",
                "the privacy budget is too low: no noise multiplier up to 1e6 reaches epsilon " +
                    std::to_string(target_epsilon) + " in " + std::to_string(steps) + " steps at q = " +
                    std::to_string(q));
  }
  while (target_epsilon - eps_high > epsilon_tolerance) {
    const double sigma = (sigma_low + sigma_high) / 2;
    const double eps = rdp_epsilon(sigma, q, steps, delta).epsilon;
    if (eps < target_epsilon) {
      sigma_high = sigma;
      eps_high = eps;
    } else {
      sigma_low = sigma;
    }
  }
  return sigma_high;
}

void RdpAccountant::step(double noise_multiplier, double q, int64_t n) {
  if (n <= 0) return;
  if (!history_.empty() && history_.back().noise_multiplier == noise_multiplier && history_.back().q == q) {
    history_.back().steps += n;
  } else {
    history_.push_back({noise_multiplier, q, n});
  }
}

double RdpAccountant::epsilon(double delta) const {
  if (history_.empty()) return 0.0;
  const auto orders = default_rdp_orders();
  std::vector<double> total(orders.size(), 0.0);
  for (const auto& s : history_) {
    const auto r = compute_rdp(s.q, s.noise_multiplier, s.steps, orders);
    for (size_t k = 0; k < r.size(); ++k) total[k] += r[k];
  }
  return rdp_to_epsilon(orders, total, delta).epsilon;
}

int64_t RdpAccountant::steps() const {
  int64_t n = 0;
  for (const auto& s : history_) n += s.steps;
  return n;
}

}  // namespace biolm::train

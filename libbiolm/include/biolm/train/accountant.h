// biolm/train/accountant.h: privacy accounting for DP-SGD (the Poisson-subsampled Gaussian
// mechanism), RDP as in Opacus' RDPAccountant.
//
// Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"
// (arXiv:1908.10530) §3.3: one step that samples each example with probability q and adds
// N(0, σ²C²) to the sum of gradients clipped to norm C has RDP ε_α = log(A_α) / (α - 1), with
//   A_α = Σ_{i=0}^{α} C(α,i) (1-q)^{α-i} q^i exp((i² - i) / (2σ²))          (integer α)
// and a two-sided erfc series for fractional α; steps compose by adding ε_α. The conversion to
// (ε, δ) is Balle et al. 2020 (arXiv:1905.09982) Theorem 21, minimised over the orders:
//   ε = min_α  ε_α + log((α-1)/α) - (log δ + log α) / (α - 1).
// The orders (1.1, 1.2, ..., 10.9, 12, 13, ..., 63), the series' stopping rule and the noise
// search (double σ from 20 until ε <= target, then bisect until target - ε <= tolerance) are
// Opacus 1.6's (opacus/accountants/analysis/rdp.py, accountants/rdp.py, accountants/utils.py),
// so the numbers equal Opacus' (tests/parity/test_dp.py checks a grid to 1e-6 relative).
#pragma once

#include <cstdint>
#include <vector>

namespace biolm::train {

/// Opacus' RDPAccountant.DEFAULT_ALPHAS: 1.1 .. 10.9 in steps of 0.1, then 12 .. 63.
std::vector<double> default_rdp_orders();

/// RDP of `steps` compositions of the sampled Gaussian mechanism at each order (may be +inf).
/// q in [0, 1], noise_multiplier >= 0, orders > 1.
std::vector<double> compute_rdp(double q, double noise_multiplier, int64_t steps, const std::vector<double>& orders);

struct PrivacySpent {
  double epsilon = 0.0;
  double best_order = 0.0;  ///< the order α where the minimum is reached (NaN when ε is inf)
};

/// (ε, δ) from RDP values at `orders` (Balle et al. 2020, Thm 21).
PrivacySpent rdp_to_epsilon(const std::vector<double>& orders, const std::vector<double>& rdp, double delta);

/// ε after `steps` steps with noise multiplier σ and sampling rate q, at δ (default orders).
PrivacySpent rdp_epsilon(double noise_multiplier, double q, int64_t steps, double delta);

/// The σ that spends at most target_epsilon in `steps` steps at rate q and δ, by Opacus'
/// search (get_noise_multiplier, accountant "rdp"): the returned σ has ε(σ) <= target_epsilon
/// and target_epsilon - ε(σ) <= epsilon_tolerance. ConfigError("train.dp.target_epsilon") when no
/// σ up to 1e6 reaches it.
double rdp_noise_multiplier(double target_epsilon, double delta, double q, int64_t steps,
                            double epsilon_tolerance = 0.01);

/// Accumulates the steps of a run (σ and q may change between steps); ε at any δ.
class RdpAccountant {
 public:
  void step(double noise_multiplier, double q, int64_t n = 1);
  double epsilon(double delta) const;
  int64_t steps() const;
  struct Segment {
    double noise_multiplier;
    double q;
    int64_t steps;
  };
  const std::vector<Segment>& history() const { return history_; }
  void set_history(std::vector<Segment> history) { history_ = std::move(history); }

 private:
  std::vector<Segment> history_;
};

}  // namespace biolm::train

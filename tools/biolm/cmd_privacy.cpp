// biolm privacy epsilon|sigma: the DP-SGD accountant (biolm/train/accountant.h) from the command
// line, one JSON object per line on stdout (docs/privacy.md).
//   biolm privacy epsilon --sigma 1.1 --q 0.01 --steps 1000 --delta 1e-5
//     -> {"accountant":"rdp","best_order":9.6,"delta":1e-05,"epsilon":1.71177009122...,"q":0.01,"sigma":1.1,"steps":1000}
//   biolm privacy sigma --target-epsilon 3 --q 0.01 --steps 1000 --delta 1e-5
//     -> {..., "sigma":0.865478515625, "epsilon": (spent at that sigma), ...}
// Every option takes one or more values; each combination prints one line (a grid in one call).
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "biolm/core/error.h"
#include "biolm/train/accountant.h"
#include "command.h"

namespace {

struct PrivacyArgs {
  std::vector<double> sigma, target_epsilon, q, delta{1e-5};
  std::vector<int64_t> steps;
  double tolerance = 0.01;
};

void check(const PrivacyArgs& a) {
  for (double q : a.q)
    if (!(q > 0 && q <= 1)) throw biolm::ConfigError("privacy.q", "must be in (0, 1], got " + std::to_string(q));
  for (int64_t n : a.steps)
    if (n < 0) throw biolm::ConfigError("privacy.steps", "must be >= 0, got " + std::to_string(n));
  for (double d : a.delta)
    if (!(d > 0 && d < 1)) throw biolm::ConfigError("privacy.delta", "must be in (0, 1), got " + std::to_string(d));
  for (double s : a.sigma)
    if (s < 0) throw biolm::ConfigError("privacy.sigma", "must be >= 0, got " + std::to_string(s));
  for (double e : a.target_epsilon)
    if (!(e > 0)) throw biolm::ConfigError("privacy.target_epsilon", "must be > 0, got " + std::to_string(e));
}

/// nlohmann prints doubles in the shortest form that reads back exactly.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json("inf"); }

/// Calls fn(first, q, steps, delta) for every combination of the listed values, first option outermost.
template <typename Fn>
void for_each_setting(const std::vector<double>& first, const PrivacyArgs& a, Fn fn) {
  for (double f : first)
    for (double q : a.q)
      for (int64_t steps : a.steps)
        for (double delta : a.delta) std::cout << fn(f, q, steps, delta).dump() << "\n";
}

void run_epsilon(const PrivacyArgs& a) {
  check(a);
  for_each_setting(a.sigma, a, [](double sigma, double q, int64_t steps, double delta) {
    const auto spent = biolm::train::rdp_epsilon(sigma, q, steps, delta);
    return nlohmann::json{{"accountant", "rdp"}, {"sigma", sigma}, {"q", q}, {"steps", steps}, {"delta", delta},
                          {"epsilon", number(spent.epsilon)},
                          {"best_order", std::isfinite(spent.best_order) ? nlohmann::json(spent.best_order)
                                                                         : nlohmann::json(nullptr)}};
  });
}

void run_sigma(const PrivacyArgs& a) {
  check(a);
  for_each_setting(a.target_epsilon, a, [&a](double target, double q, int64_t steps, double delta) {
    const double sigma = biolm::train::rdp_noise_multiplier(target, delta, q, steps, a.tolerance);
    return nlohmann::json{{"accountant", "rdp"}, {"target_epsilon", target}, {"q", q}, {"steps", steps},
                          {"delta", delta}, {"sigma", sigma},
                          {"epsilon", number(biolm::train::rdp_epsilon(sigma, q, steps, delta).epsilon)},
                          {"epsilon_tolerance", a.tolerance}};
  });
}

void add_common(CLI::App& s, PrivacyArgs& a) {
  s.add_option("--q", a.q, "sampling rate(s): expected batch size / dataset size")->required();
  s.add_option("--steps", a.steps, "optimizer step count(s)")->required();
  s.add_option("--delta", a.delta, "delta(s) of (epsilon, delta)-DP")->capture_default_str();
}

const bool registered = biolm::cli::register_command(
    {"privacy", "DP-SGD accounting (RDP, as Opacus): epsilon for a noise multiplier, or the noise for a target epsilon",
     [](CLI::App& sub) {
       auto a = std::make_shared<PrivacyArgs>();
       sub.require_subcommand(1);
       auto* eps = sub.add_subcommand("epsilon", "epsilon spent by --steps steps at noise multiplier --sigma and rate --q");
       eps->add_option("--sigma", a->sigma, "noise multiplier(s) (noise std / max_grad_norm)")->required();
       add_common(*eps, *a);
       eps->callback([a] { run_epsilon(*a); });
       auto* sig = sub.add_subcommand("sigma", "the noise multiplier (Opacus' search) that spends at most --target-epsilon");
       sig->add_option("--target-epsilon", a->target_epsilon, "privacy budget(s) epsilon")->required();
       sig->add_option("--tolerance", a->tolerance, "search stops when target - epsilon <= tolerance (Opacus: 0.01)")
           ->capture_default_str();
       add_common(*sig, *a);
       sig->callback([a] { run_sigma(*a); });
     }});

}  // namespace

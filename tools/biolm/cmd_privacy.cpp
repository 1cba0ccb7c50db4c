// biolm privacy epsilon|sigma: the DP-SGD accountant (biolm/train/accountant.h) from the command
// line, one JSON object on stdout (docs/privacy.md).
//   biolm privacy epsilon --sigma 1.1 --q 0.01 --steps 1000 --delta 1e-5
//     -> {"accountant":"rdp","epsilon":...,"best_order":...,"sigma":1.1,"q":0.01,"steps":1000,"delta":1e-05}
//   biolm privacy sigma --target-epsilon 3 --q 0.01 --steps 1000 --delta 1e-5
//     -> {"accountant":"rdp","sigma":...,"epsilon":... (spent at that sigma),...}
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/train/accountant.h"
#include "command.h"

namespace {

struct PrivacyArgs {
  double sigma = 1.0;
  double target_epsilon = 1.0;
  double q = 0.01;
  int64_t steps = 1;
  double delta = 1e-5;
  double tolerance = 0.01;
};

void check(const PrivacyArgs& a) {
  if (!(a.q > 0 && a.q <= 1)) throw biolm::ConfigError("privacy.q", "must be in (0, 1]");
  if (a.steps < 0) throw biolm::ConfigError("privacy.steps", "must be >= 0");
  if (!(a.delta > 0 && a.delta < 1)) throw biolm::ConfigError("privacy.delta", "must be in (0, 1)");
}

/// Full double precision in the JSON numbers (nlohmann prints the shortest round-trip form).
void print(const nlohmann::json& j) { std::cout << j.dump() << "\n"; }

void run_epsilon(const PrivacyArgs& a) {
  check(a);
  if (a.sigma < 0) throw biolm::ConfigError("privacy.sigma", "must be >= 0");
  const auto spent = biolm::train::rdp_epsilon(a.sigma, a.q, a.steps, a.delta);
  nlohmann::json j = {{"accountant", "rdp"}, {"sigma", a.sigma}, {"q", a.q}, {"steps", a.steps}, {"delta", a.delta}};
  j["epsilon"] = std::isfinite(spent.epsilon) ? nlohmann::json(spent.epsilon) : nlohmann::json("inf");
  j["best_order"] = std::isfinite(spent.best_order) ? nlohmann::json(spent.best_order) : nlohmann::json(nullptr);
  print(j);
}

void run_sigma(const PrivacyArgs& a) {
  check(a);
  const double sigma = biolm::train::rdp_noise_multiplier(a.target_epsilon, a.delta, a.q, a.steps, a.tolerance);
  const auto spent = biolm::train::rdp_epsilon(sigma, a.q, a.steps, a.delta);
  print({{"accountant", "rdp"}, {"sigma", sigma},           {"epsilon", spent.epsilon},
         {"target_epsilon", a.target_epsilon}, {"q", a.q}, {"steps", a.steps},
         {"delta", a.delta},  {"epsilon_tolerance", a.tolerance}});
}

void add_common(CLI::App& s, PrivacyArgs& a) {
  s.add_option("--q", a.q, "sampling rate: expected batch size / dataset size")->required();
  s.add_option("--steps", a.steps, "optimizer steps")->required();
  s.add_option("--delta", a.delta, "delta of (epsilon, delta)-DP")->capture_default_str();
}

const bool registered = biolm::cli::register_command(
    {"privacy", "DP-SGD accounting (RDP, as Opacus): epsilon for a noise multiplier, or the noise for a target epsilon",
     [](CLI::App& sub) {
       auto a = std::make_shared<PrivacyArgs>();
       sub.require_subcommand(1);
       auto* eps = sub.add_subcommand("epsilon", "epsilon spent by --steps steps at noise multiplier --sigma and rate --q");
       eps->add_option("--sigma", a->sigma, "noise multiplier (noise std / max_grad_norm)")->required();
       add_common(*eps, *a);
       eps->callback([a] { run_epsilon(*a); });
       auto* sig = sub.add_subcommand("sigma", "the smallest noise multiplier (Opacus' search) that spends at most --target-epsilon");
       sig->add_option("--target-epsilon", a->target_epsilon, "privacy budget epsilon")->required();
       sig->add_option("--tolerance", a->tolerance, "search stops when target - epsilon <= tolerance (Opacus: 0.01)")
           ->capture_default_str();
       add_common(*sig, *a);
       sig->callback([a] { run_sigma(*a); });
     }});

}  // namespace

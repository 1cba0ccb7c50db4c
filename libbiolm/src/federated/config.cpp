#include "biolm/federated/config.h"

#include <nlohmann/json.hpp>

#include <string>

#include "biolm/core/config.h"
#include "biolm/core/error.h"

namespace biolm::federated {

std::string to_string(Algorithm algorithm) { return algorithm == Algorithm::FedProx ? "fedprox" : "fedavg"; }
std::string to_string(Exchange exchange) { return exchange == Exchange::Full ? "full" : "adapters"; }
std::string to_string(ServerOptimizer optimizer) { return optimizer == ServerOptimizer::Adam ? "adam" : "none"; }

void FederationConfig::validate() const {
  const std::string k = "federation.";
  core::check_range(rounds >= 1, k + "rounds", ">= 1", std::to_string(rounds));
  core::check_range(fraction > 0.0 && fraction <= 1.0, k + "fraction", "in (0, 1]", std::to_string(fraction));
  core::check_range(min_clients >= 1, k + "min_clients", ">= 1", std::to_string(min_clients));
  BIOLM_CHECK(local_steps.has_value() != local_epochs.has_value(), ConfigError, k + "local_steps",
              "give exactly one of local_steps and local_epochs");
  if (local_steps) core::check_range(*local_steps >= 1, k + "local_steps", ">= 1", std::to_string(*local_steps));
  if (local_epochs) core::check_range(*local_epochs >= 1, k + "local_epochs", ">= 1", std::to_string(*local_epochs));
  core::check_range(mu >= 0.0, k + "mu", ">= 0", std::to_string(mu));
  BIOLM_CHECK(algorithm == Algorithm::FedProx || mu == 0.0, ConfigError, k + "mu",
              "the proximal weight mu needs algorithm: fedprox");
  core::check_range(server_lr > 0.0, k + "server_lr", "> 0", std::to_string(server_lr));
  core::check_range(server_beta1 >= 0.0 && server_beta1 < 1.0, k + "server_beta1", "in [0, 1)",
                    std::to_string(server_beta1));
  core::check_range(server_beta2 >= 0.0 && server_beta2 < 1.0, k + "server_beta2", "in [0, 1)",
                    std::to_string(server_beta2));
  core::check_range(server_tau > 0.0, k + "server_tau", "> 0", std::to_string(server_tau));
  core::check_range(round_timeout_s > 0.0, k + "round_timeout_s", "> 0", std::to_string(round_timeout_s));
}

nlohmann::json to_json(const FederationConfig& c) {
  nlohmann::json j = {{"rounds", c.rounds},
                      {"fraction", c.fraction},
                      {"min_clients", c.min_clients},
                      {"algorithm", to_string(c.algorithm)},
                      {"mu", c.mu},
                      {"exchange", to_string(c.exchange)},
                      {"server_optimizer", to_string(c.server_optimizer)},
                      {"server_lr", c.server_lr},
                      {"server_beta1", c.server_beta1},
                      {"server_beta2", c.server_beta2},
                      {"server_tau", c.server_tau},
                      {"round_timeout_s", c.round_timeout_s},
                      {"processes", c.processes}};
  if (c.local_steps) j["local_steps"] = *c.local_steps;
  if (c.local_epochs) j["local_epochs"] = *c.local_epochs;
  return j;
}

FederationConfig federation_config_from_json(const nlohmann::json& j, const std::string& key) {
  core::ConfigReader r(j, key);
  FederationConfig c;
  c.rounds = r.get<int64_t>("rounds", c.rounds);
  c.fraction = r.get<double>("fraction", c.fraction);
  c.min_clients = r.get<int64_t>("min_clients", c.min_clients);
  c.local_steps = r.optional<int64_t>("local_steps");
  c.local_epochs = r.optional<int64_t>("local_epochs");
  c.algorithm = r.choice("algorithm", {"fedavg", "fedprox"}, "fedavg") == "fedprox" ? Algorithm::FedProx
                                                                                     : Algorithm::FedAvg;
  c.mu = r.get<double>("mu", c.mu);
  c.exchange = r.choice("exchange", {"adapters", "full"}, "adapters") == "full" ? Exchange::Full : Exchange::Adapters;
  c.server_optimizer =
      r.choice("server_optimizer", {"none", "adam"}, "none") == "adam" ? ServerOptimizer::Adam : ServerOptimizer::None;
  c.server_lr = r.get<double>("server_lr", c.server_lr);
  c.server_beta1 = r.get<double>("server_beta1", c.server_beta1);
  c.server_beta2 = r.get<double>("server_beta2", c.server_beta2);
  c.server_tau = r.get<double>("server_tau", c.server_tau);
  c.round_timeout_s = r.get<double>("round_timeout_s", c.round_timeout_s);
  c.processes = r.get<bool>("processes", c.processes);
  r.finish();
  c.validate();
  return c;
}

}  // namespace biolm::federated

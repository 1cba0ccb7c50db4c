// biolm/federated/config.h: the `federation` section of a federated run, as one plain struct.
//
//   federation:
//     rounds: 5                # server rounds
//     fraction: 1.0            # share of the sites sampled per round (Flower's fraction_fit)
//     min_clients: 2           # at least this many sampled (Flower's min_fit_clients)
//     local_steps: 20          # optimizer steps per site and round (or local_epochs: 1)
//     algorithm: fedavg        # fedavg | fedprox (mu: proximal weight)
//     exchange: adapters       # adapters (the trainable set: LoRA/IA3/heads) | full (every parameter)
//     server_optimizer: none   # none | adam (FedAdam, Reddi et al. 2021; server_lr, beta1, beta2, tau)
//     round_timeout_s: 3600    # a site slower than this (or failing) is dropped from its round
//     processes: false         # true: every site trains in its own process (`biolm federate`)
// docs/federated.md explains the algorithm and every key.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace biolm::federated {

enum class Algorithm { FedAvg, FedProx };
/// What sites and server exchange: the trainable set (adapters, soft prompts, trained heads) or
/// every parameter of the model.
enum class Exchange { Adapters, Full };
enum class ServerOptimizer { None, Adam };

struct FederationConfig {
  int64_t rounds = 3;
  double fraction = 1.0;    ///< m = max(floor(fraction · N), min_clients) sites per round (≤ N)
  int64_t min_clients = 1;
  std::optional<int64_t> local_steps;   ///< exactly one of local_steps and local_epochs
  std::optional<int64_t> local_epochs;  ///< passes over the site's training rows per round
  Algorithm algorithm = Algorithm::FedAvg;
  double mu = 0.0;  ///< FedProx: local loss + mu/2 ‖w − w_global‖² (Li et al. 2020, eq. 2)
  Exchange exchange = Exchange::Adapters;
  ServerOptimizer server_optimizer = ServerOptimizer::None;
  // FedAdam (Reddi et al. 2021, Algorithm 2) with Flower's defaults and bias-corrected step.
  double server_lr = 0.1;
  double server_beta1 = 0.9;
  double server_beta2 = 0.99;
  double server_tau = 1e-9;
  double round_timeout_s = 3600.0;
  bool processes = false;

  /// ConfigError("federation.<field>") for out-of-range or inconsistent values.
  void validate() const;
};

nlohmann::json to_json(const FederationConfig& config);
/// Unknown keys, wrong types and bad ranges are ConfigErrors naming "<key>.<field>".
FederationConfig federation_config_from_json(const nlohmann::json& j, const std::string& key = "federation");

std::string to_string(Algorithm algorithm);
std::string to_string(Exchange exchange);
std::string to_string(ServerOptimizer optimizer);

}  // namespace biolm::federated

// biolm/federated/server.h: the rounds of a federation — sample sites, hand out the global
// state, collect what arrives in time, aggregate (FedAvg, optionally FedAdam), checkpoint.
//
//   federated::Server server(opts, initial_global);
//   server.resume();                                  // newest valid round checkpoint, if any
//   while (server.round() < opts.federation.rounds)
//     server.run_round(runner, eval);                 // one metrics.jsonl record per round
//
// Run directory (opts.run_dir):
//   metrics.jsonl   per round {"step": r, "round": r, "clients", "failed", "bytes_up",
//                   "bytes_down", "train_loss", "seconds", "dev_<metric>"..., "sites": [...],
//                   "dropped": [{"site", "reason"}]}; {"resumed_from": r, "step": r} on resume
//   checkpoints/step-<r>/ global.safetensors (the exchanged tensors after round r),
//                   server.safetensors (FedAdam's m and v; empty without a server optimizer),
//                   server.json {"round", "federation"} — atomic, checksummed (train/checkpoint.h)
// A site that fails (its runner outcome carries no update: an exception, a crash, a timeout) is
// logged and left out of the round's average; a round where no site answers keeps the global
// state. Resuming after a stop re-runs from the next round; since sampling and local training
// are pure functions of (seed, round, global state), the result equals an unbroken run bitwise.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "biolm/federated/aggregate.h"
#include "biolm/federated/config.h"

namespace biolm::federated {

struct ServerOptions {
  FederationConfig federation;
  uint64_t seed = 13;
  std::filesystem::path run_dir = "runs/federate";
  std::vector<std::string> site_names;  ///< every site, in config order (sampling picks indices)
  int64_t keep_last = 3;                ///< round checkpoints kept
};

/// What one sampled site returned: an update, or why it has none.
struct SiteOutcome {
  std::optional<Update> update;
  std::string failure;   ///< "timed out after 600 s", an exception's message, "exit code 1", ...
  double seconds = 0.0;  ///< wall time of its local training
};

/// Runs local training on the sampled sites (indices into site_names) from `global`; returns one
/// outcome per sampled site, same order. It should enforce federation.round_timeout_s where it
/// can interrupt a site (processes); the server also drops any update that took longer.
using RoundRunner =
    std::function<std::vector<SiteOutcome>(int64_t round, const std::vector<int64_t>& sites, const TensorMap& global)>;
/// The global state's held-out metrics after a round (name -> value), e.g. {"f1": 0.71}.
using GlobalEval = std::function<std::map<std::string, double>(const TensorMap& global, int64_t round)>;

struct RoundRecord {
  int64_t round = 0;
  std::vector<std::string> sites;  ///< sampled
  std::vector<std::pair<std::string, std::string>> dropped;  ///< site, reason
  int64_t bytes_up = 0;    ///< Σ over arrived updates of their payload
  int64_t bytes_down = 0;  ///< global payload × sampled sites
  double train_loss = 0.0; ///< example-weighted mean of the sites' last local loss
  std::map<std::string, double> metrics;
  nlohmann::json privacy = nlohmann::json::object();  ///< site -> Update::privacy (DP-SGD at the sites)
  nlohmann::json to_json() const;
};

class Server {
 public:
  Server(ServerOptions options, TensorMap initial_global);

  /// Loads the newest valid round checkpoint under run_dir/checkpoints; false when there is none.
  /// CheckpointError when the checkpoint's tensors do not match the initial global state's names
  /// and shapes, or when it was written with another federation config.
  bool resume();
  /// Samples, runs, aggregates, checkpoints and logs round round() + 1.
  RoundRecord run_round(const RoundRunner& runner, const GlobalEval& eval);

  int64_t round() const { return round_; }
  const TensorMap& global() const { return global_; }

 private:
  void checkpoint();
  ServerOptions opts_;
  TensorMap global_;
  std::optional<FedAdam> adam_;
  int64_t round_ = 0;
};

}  // namespace biolm::federated

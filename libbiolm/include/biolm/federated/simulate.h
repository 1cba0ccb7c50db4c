// biolm/federated/simulate.h: a whole federation on one machine — the library call behind
// `biolm federate` (docs/federated.md).
//
//   auto spec = federated::federate_spec_from_json(core::load_config_file("fed.yaml"));
//   nlohmann::json results = federated::run_simulation(spec);   // rounds, test metrics, model dir
//
// Writes into spec.output: config.yaml (as given), vocab.txt (a trained vocabulary),
// metrics.jsonl and checkpoints/ (server.h), sites/<name>/ (each site's local trainer runs),
// model/ (the final global model as a biolm model directory) and results.json
// {"name", "task", "method", "exchange", "algorithm", "rounds", "tasks": {task: test metrics},
//  "bytes_up", "bytes_down" (totals), "bytes_per_round": {"up", "down"} (of the last round)}.
// Re-running over the same output resumes after the last completed round.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "biolm/federated/server.h"
#include "biolm/federated/site.h"

namespace biolm::federated {

/// Trains the sampled sites one after the other in this process. An exception from a site's
/// training becomes its failure (logged by the server); the site's wall time is measured.
RoundRunner in_process_runner(std::vector<std::unique_ptr<LocalTrainer>>& sites);

/// Runs spec.federation.rounds rounds (resuming when spec.output holds round checkpoints), then
/// the test metrics of the global model. `runner` replaces the in-process runner when given
/// (separate processes; tests inject failures). Returns results.json's content.
nlohmann::json run_simulation(FederateSpec spec, const RoundRunner* runner = nullptr);

}  // namespace biolm::federated

// biolm/federated/server.cpp: rounds, aggregation, round checkpoints (server.h).
#include "biolm/federated/server.h"

#include <torch/torch.h>

#include <fstream>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/io/tensor_file.h"
#include "biolm/train/checkpoint.h"
#include "biolm/io/files.h"

namespace biolm::federated {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The federation keys that change what a round computes; a checkpoint written under other
// values cannot continue this run.
json round_defining(const FederationConfig& c) {
  json j = to_json(c);
  j.erase("rounds");
  j.erase("round_timeout_s");
  j.erase("processes");
  return j;
}

void append_line(const fs::path& path, const json& record) {
  std::ofstream out(path, std::ios::app);
  out << record.dump() << "\n";
  if (!out.good()) throw IoError(path.string(), "cannot append");
}

}  // namespace

json RoundRecord::to_json() const {
  json dropped_j = json::array();
  for (const auto& [site, reason] : dropped) dropped_j.push_back({{"site", site}, {"reason", reason}});
  json j = {{"step", round},
            {"round", round},
            {"clients", static_cast<int64_t>(sites.size() - dropped.size())},
            {"failed", static_cast<int64_t>(dropped.size())},
            {"bytes_up", bytes_up},
            {"bytes_down", bytes_down},
            {"train_loss", train_loss},
            {"sites", sites},
            {"dropped", dropped_j}};
  for (const auto& [k, v] : metrics) j["dev_" + k] = v;
  if (!privacy.empty()) j["privacy"] = privacy;
  return j;
}

Server::Server(ServerOptions options, TensorMap initial_global) : opts_(std::move(options)), global_(std::move(initial_global)) {
  opts_.federation.validate();
  BIOLM_CHECK(!opts_.site_names.empty(), ConfigError, "sites", "a federation needs at least one site");
  for (auto& [name, t] : global_) t = t.detach().to(torch::kCPU).clone();
  const auto& f = opts_.federation;
  if (f.server_optimizer == ServerOptimizer::Adam) adam_.emplace(f.server_lr, f.server_beta1, f.server_beta2, f.server_tau);
  fs::create_directories(opts_.run_dir);
}

bool Server::resume() {
  const auto dir = train::find_latest_valid(opts_.run_dir / "checkpoints");
  if (!dir) return false;
  const json meta = io::read_json_file(*dir / "server.json");
  if (meta.value("federation", json()) != round_defining(opts_.federation)) {
    throw CheckpointError((*dir / "server.json").string(), "",
                          "written with federation " + meta.value("federation", json()).dump() +
                              ", this run has " + round_defining(opts_.federation).dump() +
                              ": use a new output directory or the same settings");
  }
  auto loaded = io::read_tensor_file(*dir / "global.safetensors");
  for (const auto& [name, t] : global_) {
    const auto it = loaded.find(name);
    if (it == loaded.end()) throw CheckpointError((*dir / "global.safetensors").string(), name, "missing");
    if (!it->second.sizes().equals(t.sizes()) || it->second.scalar_type() != t.scalar_type()) {
      throw CheckpointError((*dir / "global.safetensors").string(), name, "shape or dtype differs from the model's");
    }
  }
  BIOLM_CHECK(loaded.size() == global_.size(), CheckpointError, (*dir / "global.safetensors").string(), "",
              "holds tensors the model does not exchange");
  global_ = std::move(loaded);
  if (adam_) adam_->load_state(io::read_tensor_file(*dir / "server.safetensors"));
  round_ = meta.at("round").get<int64_t>();
  append_line(opts_.run_dir / "metrics.jsonl", {{"resumed_from", round_}, {"step", round_}});
  log::info("federation: resumed from {} after round {}", dir->string(), round_);
  return true;
}

void Server::checkpoint() {
  const auto root = opts_.run_dir / "checkpoints";
  train::commit_checkpoint(root, round_, [&](const fs::path& tmp) {
    io::write_tensor_file(tmp / "global.safetensors", global_);
    io::write_tensor_file(tmp / "server.safetensors", adam_ ? adam_->state() : TensorMap{});
    io::write_file_atomic(tmp / "server.json",
                                  json{{"round", round_}, {"federation", round_defining(opts_.federation)}}.dump(2) + "\n");
  });
  train::prune_checkpoints(root, opts_.keep_last, round_);
}

RoundRecord Server::run_round(const RoundRunner& runner, const GlobalEval& eval) {
  const auto& f = opts_.federation;
  RoundRecord rec;
  rec.round = round_ + 1;
  const auto t0 = std::chrono::steady_clock::now();
  const auto chosen = sample_clients(static_cast<int64_t>(opts_.site_names.size()), f.fraction, f.min_clients,
                                     opts_.seed, rec.round);
  for (const auto i : chosen) rec.sites.push_back(opts_.site_names[static_cast<size_t>(i)]);
  const int64_t down = payload_bytes(global_);
  rec.bytes_down = down * static_cast<int64_t>(chosen.size());
  auto outcomes = runner(rec.round, chosen, global_);
  BIOLM_CHECK(outcomes.size() == chosen.size(), Error,
              "federation: the round runner returned " + std::to_string(outcomes.size()) + " outcomes for " +
                  std::to_string(chosen.size()) + " sites");
  std::vector<const Update*> arrived;
  double loss_sum = 0.0;
  int64_t n_sum = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    auto& o = outcomes[i];
    if (o.update && o.seconds > f.round_timeout_s) {
      o.failure = fmt::format("timed out: {:.1f} s > round_timeout_s {}", o.seconds, f.round_timeout_s);
      o.update.reset();
    }
    if (!o.update) {
      rec.dropped.emplace_back(rec.sites[i], o.failure.empty() ? "no update" : o.failure);
      log::warn("federation: round {}: site {} dropped ({}); the round continues with the others", rec.round,
                rec.sites[i], rec.dropped.back().second);
      continue;
    }
    if (!o.update->privacy.is_null()) rec.privacy[rec.sites[i]] = o.update->privacy;
    rec.bytes_up += payload_bytes(o.update->tensors);
    arrived.push_back(&*o.update);
    loss_sum += o.update->train_loss * static_cast<double>(o.update->n_examples);
    n_sum += o.update->n_examples;
  }
  if (arrived.empty()) {
    log::warn("federation: round {}: no site returned an update; the global state is unchanged", rec.round);
  } else {
    auto averaged = fedavg(arrived);
    global_ = adam_ ? adam_->step(global_, averaged, rec.round) : std::move(averaged);
    rec.train_loss = n_sum > 0 ? loss_sum / static_cast<double>(n_sum) : 0.0;
  }
  round_ = rec.round;
  checkpoint();
  if (eval) rec.metrics = eval(global_, round_);
  auto j = rec.to_json();
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  append_line(opts_.run_dir / "metrics.jsonl", j);
  log::info("federation: round {}/{}: {} of {} sites, up {} B, down {} B, loss {:.4f}", round_, f.rounds,
            arrived.size(), chosen.size(), rec.bytes_up, rec.bytes_down, rec.train_loss);
  return rec;
}

}  // namespace biolm::federated

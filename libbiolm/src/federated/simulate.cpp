// biolm/federated/simulate.cpp: a federation in one process (simulate.h).
#include "biolm/federated/simulate.h"

#include <torch/torch.h>

#include <chrono>

#include "biolm/core/config.h"
#include "biolm/core/log.h"
#include "biolm/io/model_dir.h"
#include "biolm/peft/method.h"
#include "biolm/io/files.h"

namespace biolm::federated {

namespace fs = std::filesystem;
using nlohmann::json;

RoundRunner in_process_runner(std::vector<std::unique_ptr<LocalTrainer>>& sites) {
  return [&sites](int64_t round, const std::vector<int64_t>& chosen, const TensorMap& global) {
    std::vector<SiteOutcome> out;
    for (const auto i : chosen) {
      SiteOutcome o;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        o.update = sites.at(static_cast<size_t>(i))->train(round, global);
      } catch (const std::exception& e) {
        o.failure = e.what();
      }
      o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out.push_back(std::move(o));
    }
    return out;
  };
}

json run_simulation(FederateSpec spec, const RoundRunner* runner) {
  fs::create_directories(spec.output);
  io::write_file_atomic(spec.output / "config.yaml", core::to_yaml(spec.tree));
  prepare_shared(spec);
  const std::string& task_name = spec.task;

  LocalTrainer server_model(spec, -1);
  std::vector<std::unique_ptr<LocalTrainer>> sites;
  std::vector<std::string> names;
  for (size_t i = 0; i < spec.sites.size(); ++i) {
    names.push_back(spec.sites[i].name);
    // A separate-process runner builds its own sites; in-process needs them here.
    if (!runner) sites.push_back(std::make_unique<LocalTrainer>(spec, static_cast<int64_t>(i)));
  }
  ServerOptions so;
  so.federation = spec.federation;
  so.seed = spec.seed;
  so.run_dir = spec.output;
  so.site_names = names;
  Server server(so, server_model.exchanged());
  server.resume();
  const RoundRunner local = runner ? *runner : in_process_runner(sites);
  const auto task = make_site_task(spec);  // the family's metric and head, for the report and the model dir
  const std::string metric = task->primary_metric();
  const GlobalEval eval = [&](const TensorMap& global, int64_t) {
    server_model.set_exchanged(global);
    std::map<std::string, double> m;
    const auto scores = server_model.evaluate(spec.dev_path, 0);
    for (auto it = scores.begin(); it != scores.end(); ++it) m[it.key()] = tasks::metric_value(it.value());
    return m;
  };
  int64_t bytes_up = 0, bytes_down = 0;
  RoundRecord last;
  json privacy = json::object();  // site -> what it has spent so far (DP-SGD at the sites)
  while (server.round() < spec.federation.rounds) {
    last = server.run_round(local, eval);
    bytes_up += last.bytes_up;
    bytes_down += last.bytes_down;
    for (auto it = last.privacy.begin(); it != last.privacy.end(); ++it) privacy[it.key()] = it.value();
  }
  server_model.set_exchanged(server.global());

  json results;
  results["name"] = spec.output.filename().string();
  results["task"] = task_name;
  results["method"] = spec.peft.value("method", std::string("full"));
  results["exchange"] = to_string(spec.federation.exchange);
  results["algorithm"] = to_string(spec.federation.algorithm);
  results["server_optimizer"] = to_string(spec.federation.server_optimizer);
  results["rounds"] = server.round();
  results["sites"] = names;
  results["exchanged_tensors"] = static_cast<int64_t>(server.global().size());
  results["exchanged_bytes"] = payload_bytes(server.global());
  results["bytes_up"] = bytes_up;  // this invocation's rounds (a resumed run counts its own)
  results["bytes_down"] = bytes_down;
  results["tasks"][task_name] = server_model.evaluate(spec.test_path, spec.n_bootstrap);
  if (!privacy.empty()) results["privacy"] = privacy;  // this invocation's rounds; each site's ε covers all its rounds

  io::ModelDirInfo mi;
  auto& model = server_model.model();
  mi.config = model.config();
  mi.task = task->head_kind();
  mi.n_labels = model.n_labels();
  mi.labels = spec.label_map.names();
  const std::string method = spec.peft.value("method", std::string("full"));
  if (method != "full") {
    json pj = spec.peft;
    if (!pj.contains("train_patterns")) pj["train_patterns"] = models::task_head_patterns(model);
    mi.peft = peft::method_config_from_json(pj, "peft");
  }
  mi.info = {{"task", task_name}, {"federated", to_json(spec.federation)}, {"rounds", server.round()},
             {"metrics", results["tasks"][task_name]}, {"max_length", spec.task_options.max_length},
             {"doc_stride", spec.task_options.doc_stride}, {"format", spec.task_options.format}, {"eval_batch_size", spec.task_options.batch_size}};
  io::ModelDirSaveOptions mo;
  mo.tokenizer = &server_model.tokenizer();
  io::save_model_dir(model, mi, spec.output / "model", mo);
  results["model_dir"] = (spec.output / "model").string();
  io::write_file_atomic(spec.output / "results.json", results.dump(2) + "\n");
  return results;
}

}  // namespace biolm::federated

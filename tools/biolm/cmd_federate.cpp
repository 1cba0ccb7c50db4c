// biolm federate --config FILE [key.path=value ...]: a federation simulated on one machine
// (docs/federated.md). N sites, each with its own training file, train locally from the global
// state each round; the server averages what they return (FedAvg / FedProx, optionally FedAdam),
// checkpoints every round and evaluates on data.dev. federation.processes: true runs each site's
// local training in its own process (this executable, re-invoked as a hidden worker); a site
// that exceeds federation.round_timeout_s is killed and dropped from the round.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "biolm/core/config.h"
#include "biolm/core/log.h"
#include "biolm/federated/simulate.h"
#include "biolm/io/tensor_file.h"
#include "command.h"

namespace biolm::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct FederateArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool print_config = false;
  // Hidden worker mode (federation.processes): train one site for one round.
  std::string site;
  int64_t round = 0;
  std::string global;
  std::string update;
};

json load_tree(const FederateArgs& a) {
  json tree = core::load_config_file(a.config);
  core::apply_overrides(tree, a.overrides);
  return tree;
}

/// Worker: <update>.safetensors (the exchanged tensors) and <update>.json ({"n_examples",
/// "train_loss", "steps", "privacy" under DP-SGD}), the JSON written last: its presence means the update is complete.
int run_worker(const FederateArgs& a) {
  auto spec = federated::federate_spec_from_json(load_tree(a));
  federated::prepare_shared(spec);
  int64_t index = -1;
  for (size_t i = 0; i < spec.sites.size(); ++i) {
    if (spec.sites[i].name == a.site) index = static_cast<int64_t>(i);
  }
  BIOLM_CHECK(index >= 0, ConfigError, "sites", "no site named " + a.site);
  federated::LocalTrainer site(spec, index);
  const auto u = site.train(a.round, io::read_tensor_file(a.global));
  io::write_tensor_file(a.update + ".safetensors", u.tensors);
  json meta = {{"n_examples", u.n_examples}, {"train_loss", u.train_loss}, {"steps", u.steps}};
  if (!u.privacy.is_null()) meta["privacy"] = u.privacy;
  const std::string tmp = a.update + ".json.tmp";
  std::ofstream(tmp) << meta.dump() << "\n";
  fs::rename(tmp, a.update + ".json");
  return kOk;
}

/// Every sampled site in its own process, all at once; the server waits until all have exited
/// or round_timeout_s has passed, then kills the rest (SIGKILL) and drops them.
federated::RoundRunner process_runner(const fs::path& config, const fs::path& out, const std::vector<std::string>& names,
                                      double timeout_s) {
  return [=](int64_t round, const std::vector<int64_t>& chosen, const federated::TensorMap& global) {
    const fs::path dir = out / "rounds" / ("round-" + std::to_string(round));
    fs::create_directories(dir);
    const fs::path global_path = dir / "global.safetensors";
    io::write_tensor_file(global_path, global);
    const std::string exe = fs::read_symlink("/proc/self/exe").string();
    struct Child {
      pid_t pid;
      std::string name;
      fs::path update;
      bool done = false;
      int status = 0;
    };
    std::vector<Child> children;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto i : chosen) {
      Child c{0, names[static_cast<size_t>(i)], dir / ("update-" + names[static_cast<size_t>(i)])};
      fs::remove(c.update.string() + ".json");
      std::vector<std::string> args = {exe, "--log-level", "warn", "federate", "--config", config.string(),
                                       "--site", c.name, "--round", std::to_string(round), "--global",
                                       global_path.string(), "--update", c.update.string()};
      const pid_t pid = fork();
      if (pid == 0) {
        std::vector<char*> argv;
        for (auto& s : args) argv.push_back(s.data());
        argv.push_back(nullptr);
        execv(exe.c_str(), argv.data());
        _exit(127);
      }
      BIOLM_CHECK(pid > 0, Error, "federate: fork failed for site " + c.name);
      c.pid = pid;
      children.push_back(c);
    }
    std::vector<double> seconds(children.size(), 0.0);
    size_t running = children.size();
    while (running > 0) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (size_t k = 0; k < children.size(); ++k) {
        auto& c = children[k];
        if (c.done) continue;
        if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
          c.done = true;
          seconds[k] = elapsed;
          --running;
        } else if (elapsed > timeout_s) {
          kill(c.pid, SIGKILL);
          waitpid(c.pid, &c.status, 0);
          c.done = true;
          c.status = -1;
          seconds[k] = elapsed;
          --running;
        }
      }
      if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::vector<federated::SiteOutcome> outcomes;
    for (size_t k = 0; k < children.size(); ++k) {
      const auto& c = children[k];
      federated::SiteOutcome o;
      o.seconds = seconds[k];
      if (c.status == -1) {
        o.failure = "killed after round_timeout_s " + std::to_string(timeout_s) + " s";
      } else if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
        o.failure = WIFEXITED(c.status) ? "worker exit code " + std::to_string(WEXITSTATUS(c.status))
                                        : "worker killed by signal " + std::to_string(WTERMSIG(c.status));
      } else if (!fs::exists(c.update.string() + ".json")) {
        o.failure = "worker wrote no update";
      } else {
        const json meta = core::load_config_file(c.update.string() + ".json");
        federated::Update u;
        u.tensors = io::read_tensor_file(c.update.string() + ".safetensors");
        u.n_examples = meta.at("n_examples").get<int64_t>();
        u.train_loss = meta.at("train_loss").get<double>();
        u.steps = meta.at("steps").get<int64_t>();
        if (meta.contains("privacy")) u.privacy = meta.at("privacy");
        o.update = std::move(u);
      }
      outcomes.push_back(std::move(o));
    }
    return outcomes;
  };
}

int run_federate(const FederateArgs& a) {
  const json tree = load_tree(a);
  if (a.print_config) {
    std::cout << core::to_yaml(tree);
    return kOk;
  }
  if (!a.site.empty()) return run_worker(a);
  auto spec = federated::federate_spec_from_json(tree);  // the whole config, checked before work
  json results;
  if (spec.federation.processes) {
    // Workers read the resolved config (overrides applied) from the run directory.
    fs::create_directories(spec.output);
    const fs::path resolved = spec.output / "federate_config.json";
    std::ofstream(resolved) << tree.dump(2) << "\n";
    std::vector<std::string> names;
    for (const auto& s : spec.sites) names.push_back(s.name);
    const auto runner = process_runner(resolved, spec.output, names, spec.federation.round_timeout_s);
    results = federated::run_simulation(spec, &runner);
  } else {
    results = federated::run_simulation(spec);
  }
  std::cout << results.dump() << "\n";
  return kOk;
}

const bool registered = register_command(
    {"federate", "federated fine-tuning simulated on one machine: N sites, FedAvg / FedProx (FedAdam), adapters or full weights",
     [](CLI::App& sub) {
       auto a = std::make_shared<FederateArgs>();
       sub.add_option("--config", a->config, "YAML config (see examples/configs/federated_ner_demo.yaml)")
           ->required()
           ->check(CLI::ExistingFile);
       sub.add_option("overrides", a->overrides, "key.path=value overrides, ~key.path removes");
       sub.add_flag("--print-config", a->print_config, "print the resolved configuration and exit");
       // The worker of federation.processes (not for people): one site, one round.
       sub.add_option("--site", a->site)->group("");
       sub.add_option("--round", a->round)->group("");
       sub.add_option("--global", a->global)->group("");
       sub.add_option("--update", a->update)->group("");
       sub.footer(R"(Config sections (every key: docs/federated.md):
  task, seed, device, output      ner | re | nli | sts | pubmedqa
  sites         [{name, train}, ...]   each site's own training file
  data.*        dev (server-side, evaluated every round), test, labels, max_length
  tokenizer.*   path | train_on (a public corpus) + vocab_size
  model.*, peft.*, train.*        as `biolm finetune` (train.max_steps is replaced by the local steps)
  federation.*  rounds, fraction, min_clients, local_steps | local_epochs, algorithm (fedavg | fedprox),
                mu, exchange (adapters | full), server_optimizer (none | adam), server_lr, round_timeout_s,
                processes
Re-running the same command resumes after the last completed round.)");
       sub.callback([a] {
         const int rc = run_federate(*a);
         if (rc != kOk) throw ExitRequest{rc};
       });
     }});

}  // namespace
}  // namespace biolm::cli

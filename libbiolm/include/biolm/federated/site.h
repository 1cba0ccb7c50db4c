// biolm/federated/site.h: one site of a federation — its data, its copy of the model, its local
// training — behind LocalTrainer, the one class `biolm federate`, the Python binding and the
// Flower ClientApp call.
//
//   auto spec = federated::federate_spec_from_json(core::load_config_file("fed.yaml"));
//   federated::prepare_shared(spec);                 // the shared vocabulary, once, before sites
//   federated::LocalTrainer site(spec, 0);           // site 0 of spec.sites
//   site.set_exchanged(global);                      // the server's tensors
//   federated::Update u = site.train(/*round=*/1, global);
//
// Local training is the fine-tuning recipe's stages (recipes/finetune.h): the task's
// featurize/predict/score, models::make_task_model, peft::apply, recipes::make_train_loader and
// train::Trainer, run round after round on one model (recipes::finetune itself builds a fresh
// model per call, which a site that keeps its copy between rounds cannot use).
//
// Determinism: every site builds the same initial model (core::seed_all(seed) before
// make_task_model); round r of site k trains with seed mix_seed(mix_seed(seed, k), r) (data
// order, dropout) from the global state it is given, so a round's update is a pure function of
// (config, global state, k, r) and a resumed federation equals an unbroken one bitwise.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/federated/aggregate.h"
#include "biolm/federated/config.h"
#include "biolm/models/task_model.h"
#include "biolm/data/tags.h"
#include "biolm/tasks/task.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/train/config.h"

namespace biolm::federated {

struct SiteSpec {
  std::string name;   ///< unique, [A-Za-z0-9_.-]
  std::string train;  ///< the site's training file (the task's format)
};

/// A whole `biolm federate` config, parsed and checked (docs/federated.md).
struct FederateSpec {
  nlohmann::json tree;  ///< the resolved config as given (written to the run directory)
  std::string task = "ner";        ///< a registered task family (tasks/task.h)
  tasks::TaskOptions task_options;  ///< max_length, doc_stride, format, eval batch size
  data::LabelMap label_map;         ///< the head's labels, filled by prepare_shared
  uint64_t seed = 13;
  std::filesystem::path output = "runs/federate";
  std::string device = "cpu";
  std::string dev_path;                     ///< server-side held-out file (global dev metric per round)
  std::string test_path;                    ///< final test metrics (defaults to dev)
  std::vector<std::string> labels;          ///< data.labels; empty: union over the sites' training files
  std::optional<std::string> tokenizer_path;
  std::vector<std::string> tokenizer_train_on;  ///< a public corpus (never site data)
  int64_t tokenizer_vocab_size = 2000;
  nlohmann::json model;  ///< the model section (preset/shape keys or init)
  nlohmann::json peft;   ///< the peft section, default targets filled in
  train::TrainConfig train;  ///< local optimizer; max_steps comes from federation.local_*
  int64_t batch_size = 16;
  int64_t n_bootstrap = 1000;
  std::vector<SiteSpec> sites;
  FederationConfig federation;
};

/// Reads and checks the whole config before any work: unknown keys, bad ranges, duplicate site
/// names and missing data files are ConfigErrors naming the key path.
FederateSpec federate_spec_from_json(const nlohmann::json& tree);

/// Work shared by all sites, done once before they start: trains the WordPiece vocabulary of
/// tokenizer.train_on into output/vocab.txt (when that is the tokenizer), fills spec.labels
/// from the sites' training files when data.labels is empty.
void prepare_shared(FederateSpec& spec);

/// The vocabulary all sites share (tokenizer.path, model.init's, or output/vocab.txt).
std::shared_ptr<tokenize::Tokenizer> shared_tokenizer(const FederateSpec& spec);

/// The federation's task family with its shared labels (spec.label_map).
std::unique_ptr<tasks::Task> make_site_task(const FederateSpec& spec);

class LocalTrainer {
 public:
  /// Builds site `site` of spec.sites (its training rows featurized), or with site == -1 the
  /// server's copy of the model (no training data; evaluate() only). spec must have been through
  /// prepare_shared().
  LocalTrainer(const FederateSpec& spec, int64_t site);

  /// The exchanged tensors (federation.exchange), by parameter name, CPU copies.
  TensorMap exchanged() const;
  /// Copies `tensors` into the model: exactly the exchanged names with their shapes
  /// (CheckpointError naming the tensor otherwise).
  void set_exchanged(const TensorMap& tensors);

  /// Round `round` (1-based): loads `global`, trains federation.local_steps steps (or
  /// local_epochs passes) with FedProx's term when configured, and returns the new exchanged
  /// tensors with this site's example count. `max_steps` overrides the local step count;
  /// `proximal_mu` overrides federation.mu (> 0: FedProx; what Flower's FedProx strategy sends).
  Update train(int64_t round, const TensorMap& global, std::optional<int64_t> max_steps = std::nullopt,
               std::optional<double> proximal_mu = std::nullopt);

  /// The task's metrics of the current model on `path` (tasks::Task::evaluate_file).
  nlohmann::json evaluate(const std::string& path, int64_t n_bootstrap) const;

  int64_t n_examples() const { return n_examples_; }
  const std::string& name() const { return name_; }
  models::TaskModelImpl& model() { return *model_; }
  const tokenize::Tokenizer& tokenizer() const { return *tok_; }
  const FederateSpec& spec() const { return spec_; }

 private:
  FederateSpec spec_;
  int64_t site_;
  std::string name_;
  std::shared_ptr<tokenize::Tokenizer> tok_;
  std::shared_ptr<tasks::Task> task_;
  std::shared_ptr<models::TaskModelImpl> model_;
  std::map<std::string, double> lr_scales_;
  std::vector<std::string> exchanged_names_;
  std::vector<data::Features> rows_;
  int64_t n_examples_ = 0;
  // DP-SGD (train.dp): σ, q and the rounds this site is sampled in (site.cpp, plan_privacy).
  double dp_sigma_ = 0.0;
  double dp_q_ = 0.0;
  std::vector<int64_t> dp_rounds_;

  int64_t local_steps() const;
  void plan_privacy();
  nlohmann::json privacy_after(int64_t round, int64_t steps_this_round) const;
};

}  // namespace biolm::federated

// biolm/recipes/finetune.h: fine-tuning as a library call. What `biolm finetune` runs, for a
// user's program: tokenizer (load, take from model.init, or train a WordPiece vocabulary on a
// corpus) -> the task's reader -> features (the training file read once) -> loader with the
// default collate (Poisson sampling under DP-SGD) -> model (preset/config, or model.init
// directory + task head) -> adapters (the task's default targets and head policy) -> trainer
// (eval on dev every N steps, best checkpoint) -> test metrics with bootstrap 95 % intervals and
// the predictions file -> results.json and <output>/model/ (io::save_model_dir).
//
//   auto cfg = biolm::recipes::finetune_config_from_json(biolm::core::load_config_file("ner.yaml"));
//   auto result = biolm::recipes::finetune(cfg);          // result.results == results.json
//
// Where things go: a new task family is a file in src/tasks/ + a registry line (tasks/task.h);
// a new adapter method a file in src/peft/ + its case in peft/method.h; a new model family a
// ModelConfig preset (models/config.h) and, at most, a block variant in nn/. Recipes only wire.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/data/loader.h"
#include "biolm/tasks/task.h"
#include "biolm/train/trainer.h"

namespace biolm::recipes {

/// The finetune YAML tree, read and checked (every key of docs/cli.md "biolm finetune"). The
/// model, peft and train sections stay JSON until the tokenizer and model.init are known (their
/// readers run on them here once, so a bad key stops before any work).
struct FinetuneConfig {
  std::string task = "ner";
  uint64_t seed = 13;
  std::string output = "runs/finetune";
  std::string device = "cpu";
  std::string train_path, dev_path, test_path;  ///< data.train, data.dev, data.test (default: dev)
  tasks::TaskOptions task_options;              ///< data.max_length, doc_stride, format, packing; eval.*
  std::string prompt_format = "alpaca";         ///< data.prompt_format (instruct)
  std::optional<std::string> tokenizer_path;    ///< tokenizer.path
  std::vector<std::string> tokenizer_train_on;  ///< tokenizer.train_on
  int64_t vocab_size = 2000;                    ///< tokenizer.vocab_size
  int64_t n_bootstrap = 1000;                   ///< eval.bootstrap
  int64_t batch_size = 16;                      ///< train.batch_size
  nlohmann::json model = nlohmann::json::object();  ///< model section
  nlohmann::json peft = nlohmann::json::object();   ///< peft section
  nlohmann::json train = nlohmann::json::object();  ///< train section without batch_size
  nlohmann::json tree;                              ///< the whole config, written as config.yaml
};

/// Reads and checks the whole tree: unknown keys, wrong types, bad ranges are ConfigErrors naming
/// the key path, before any work.
FinetuneConfig finetune_config_from_json(const nlohmann::json& tree);

/// Callbacks of a run (each optional).
struct FinetuneHooks {
  std::function<void(const train::ProgressEvent&)> progress;            ///< every train.log_every steps
  std::function<void(int64_t step, const train::Metrics& dev)> eval;   ///< after each dev evaluation
  std::function<void(const train::StepInfo&)> step;                    ///< after every step
};

struct FinetuneResult {
  nlohmann::json results;  ///< what results.json holds
  train::Status status = train::Status::Completed;
  std::string model_dir;
};

FinetuneResult finetune(const FinetuneConfig& config, const FinetuneHooks& hooks = {});

/// The recipe's training loader, for programs that train from the recipe's stages (federated
/// sites do): the default collate (pad with pad_id), batches of batch_size rows reshuffled each
/// epoch from seed (the global batch: a rank of a data-parallel run takes its slice); under
/// DP-SGD (dp) Poisson sampling with q = batch_size x grad_accum / rows, in grad_accum
/// micro-batches (train/dp.h).
struct TrainLoaderOptions {
  int64_t pad_id = 0;
  int64_t batch_size = 16;
  uint64_t seed = 13;
  bool dp = false;
  int64_t grad_accum = 1;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t prefetch = -1;  ///< batches prepared ahead on a worker thread; < 0: the Loader's default
};
std::unique_ptr<data::BatchSource> make_train_loader(std::vector<data::Features> rows, const TrainLoaderOptions& options);

}  // namespace biolm::recipes

// biolm-train-step: one optimizer step of libbiolm's Trainer on given micro-batches, for
// tests/parity/test_training.py, which runs the same step in transformers + torch.optim.AdamW.
//
//   biolm-train-step HF_DIR CONFIG.json BATCHES.safetensors OUT_DIR
//
// CONFIG.json: {"task": "token_classification" | "sequence_classification" | "causal_lm" | ...,
//               "n_labels": N, "train": {TrainConfig: lr, beta1, beta2, eps, weight_decay, ...},
//               "peft_adapter": "PEFT_DIR" (optional: train that adapter instead of the full model)}
// BATCHES.safetensors: micro-batch m as "<m>.input_ids", "<m>.attention_mask", "<m>.labels", ...
//   (grad_accum = the number of micro-batches; they are fed in order, m = 0, 1, ...).
// OUT_DIR receives
//   result.json         {"loss", "n_target_tokens", "names": {our name: HF name}}
//   grads.safetensors   every trainable parameter's gradient as the optimizer saw it (after the
//                       division by the step's target count), under our names
//   weights.safetensors every trainable parameter after the AdamW step, under our names
// It is a test driver, not a user command: the loop it runs is Trainer::fit with max_steps = 1.
#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/io/hf_config.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/peft_import.h"
#include "biolm/io/safetensors.h"
#include "biolm/models/task_model.h"
#include "biolm/train/config.h"
#include "biolm/train/trainer.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// The micro-batches in file order; an epoch is all of them, never shuffled.
class InOrder : public biolm::data::BatchSource {
 public:
  explicit InOrder(std::vector<biolm::data::Batch> batches) : batches_(std::move(batches)) {}
  std::optional<biolm::data::Batch> next() override {
    if (pos_ >= batches_.size()) return std::nullopt;
    return batches_[pos_++];
  }
  void start_epoch(int64_t) override { pos_ = 0; }
  json state() const override { return {{"pos", pos_}}; }
  void restore(const json& s) override { pos_ = s.at("pos").get<size_t>(); }

 private:
  std::vector<biolm::data::Batch> batches_;
  size_t pos_ = 0;
};

std::vector<biolm::data::Batch> read_batches(const fs::path& path) {
  std::map<int64_t, biolm::data::Batch> by_index;
  for (const auto& [key, t] : biolm::io::load_safetensors(path)) {
    const size_t dot = key.find('.');
    BIOLM_CHECK(dot != std::string::npos, biolm::CheckpointError, path.string(), key, "expected <micro-batch>.<name>");
    by_index[std::stoll(key.substr(0, dot))][key.substr(dot + 1)] = t;
  }
  std::vector<biolm::data::Batch> out;
  for (auto& [m, b] : by_index) {
    BIOLM_CHECK(b.has("input_ids"), biolm::CheckpointError, path.string(), std::to_string(m) + ".input_ids", "missing");
    b.n_examples = b.at("input_ids").size(0);
    out.push_back(std::move(b));
  }
  return out;
}

int run(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: biolm-train-step HF_DIR CONFIG.json BATCHES.safetensors OUT_DIR\n";
    return 2;
  }
  const fs::path hf_dir = argv[1], out_dir = argv[4];
  const json cfg = json::parse(std::ifstream(argv[2]));
  const auto batches = read_batches(argv[3]);

  const auto info = biolm::io::load_hf_config(hf_dir);
  const auto task = biolm::models::parse_task_kind(cfg.at("task").get<std::string>(), "task");
  auto model = biolm::models::make_task_model(info.config, task, cfg.value("n_labels", int64_t{2}));
  biolm::io::HfLoadOptions load;
  load.strict = true;
  biolm::io::load_hf_directory(*model, hf_dir, load);
  if (cfg.contains("peft_adapter")) {
    biolm::io::PeftImportOptions opt;
    opt.arch = info.arch;
    biolm::io::load_peft_adapter(*model, info.config, cfg["peft_adapter"].get<std::string>(), opt);
  }

  json train = cfg.value("train", json::object());
  train["max_steps"] = 1;
  train["grad_accum"] = static_cast<int64_t>(batches.size());
  train["log_every"] = 1;
  train["run_dir"] = (out_dir / "run").string();
  train["handle_signals"] = false;
  if (!train.contains("seed")) train["seed"] = 0;
  biolm::train::Trainer trainer(*model, biolm::train::train_config_from_json(train));
  InOrder source(batches);
  const auto result = trainer.fit(source);

  std::map<std::string, at::Tensor> grads, weights;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    weights[item.key()] = item.value().detach().contiguous();
    BIOLM_CHECK(item.value().grad().defined(), biolm::Error, item.key() + " received no gradient");
    grads[item.key()] = item.value().grad().detach().contiguous();
  }
  json names = json::object();
  for (const auto& pair : biolm::io::hf_name_pairs(info.arch, task, info.config.n_layers, "",
                                                   biolm::io::hf_body_prefix(info.arch, task))) {
    names[pair.ours] = pair.hf;
  }
  fs::create_directories(out_dir);
  biolm::io::save_safetensors(out_dir / "grads.safetensors", grads, {{"format", "pt"}});
  biolm::io::save_safetensors(out_dir / "weights.safetensors", weights, {{"format", "pt"}});
  const auto& step = result.history.at(0);
  std::ofstream(out_dir / "result.json") << json{{"loss", step.loss}, {"n_target_tokens", step.n_target_tokens},
                                                 {"names", names}}
                                                .dump()
                                         << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "biolm-train-step: " << e.what() << "\n";
    return 1;
  }
}

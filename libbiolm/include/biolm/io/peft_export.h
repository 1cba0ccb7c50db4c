// biolm/io/peft_export.h: a LoRA, IA3 or prompt-tuning adapter of ours as a Hugging Face PEFT
// directory that `peft` loads onto the same base model (PeftModel.from_pretrained(base, dir)).
// The other direction is peft_import.h.
//
// Files (PEFT's save_pretrained layout, peft/utils/save_and_load.py and peft/tuners/lora/config.py):
//   adapter_config.json       {"peft_type": "LORA", "r", "lora_alpha", "lora_dropout",
//                              "target_modules", "base_model_name_or_path", "task_type",
//                              "use_rslora", "bias": "none", "fan_in_fan_out", "rank_pattern",
//                              "alpha_pattern", "modules_to_save", "inference_mode": true, ...}
//   adapter_model.safetensors "base_model.model.<HF module>.lora_A.weight" (r, in) and
//                             "...lora_B.weight" (out, r); trainable non-adapter modules (heads)
//                             as "base_model.model.<HF module>.weight" listed in modules_to_save.
// Our "<linear>.adapter.lora_a" (r, in) / "lora_b" (out, r) keep their shapes; the HF module is
// found through the weight-name table (hf_weights.h). PEFT computes scaling = lora_alpha / r
// (or lora_alpha / sqrt(r) with use_rslora), so lora_alpha is written as scaling · r.
//
// GPT-2 fuses q, k, v into one Conv1D c_attn; our separate q/k/v adapters become one c_attn
// adapter of rank r·m (m = adapted parts): A = [A_q; A_k; A_v] (m·r, C) and B block-diagonal
// (3C, m·r) with zero blocks for parts without an adapter, so B A equals the three updates
// exactly. rank_pattern / alpha_pattern carry that rank and the matching alpha for c_attn.
//
// IA3 (peft/tuners/ia3): "<HF module>.ia3_l" of shape (out, 1) for our output-scaled Linears and
// (1, in) for input-scaled ones, which are listed in feedforward_modules as well as target_modules.
// Prompt tuning (peft/tuners/prompt_tuning): "prompt_embeddings" (P, C), num_virtual_tokens P,
// token_dim C, num_transformer_submodules 1; trained heads there are "base_model.<HF name>"
// (PEFT does not wrap the base model for prompt learning).
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "biolm/io/hf_config.h"

namespace biolm::io {

struct PeftExportOptions {
  /// Written as base_model_name_or_path (the HF id or directory of the base the adapter was trained on).
  std::string base_model_name_or_path;
  std::optional<HfArch> arch;  ///< default infer_hf_arch(config)
  models::TaskKind task = models::TaskKind::CausalLM;
  double lora_dropout = 0.0;   ///< recorded in adapter_config.json (training only)
  /// Write use_rslora = true and lora_alpha = scaling · sqrt(r) (same scaling either way).
  bool use_rslora = false;
};

struct PeftAdapter {
  nlohmann::json config;                       ///< adapter_config.json
  std::map<std::string, at::Tensor> tensors;   ///< adapter_model.safetensors
};

/// PEFT's task_type for one of our tasks: CAUSAL_LM, SEQ_CLS, TOKEN_CLS, QUESTION_ANS,
/// FEATURE_EXTRACTION; nullopt (JSON null) for masked LM and multiple choice.
std::optional<std::string> peft_task_type(models::TaskKind task, HfArch arch);

/// Builds the adapter from the LoRA or IA3 adapters or the soft prompt attached to `model`
/// (peft::apply). Throws ConfigError when none is attached, when kinds are mixed, when one is
/// merged, when an adapted Linear has no HF name, or when fused q/k/v adapters differ in scaling.
PeftAdapter make_peft_adapter(torch::nn::Module& model, const models::ModelConfig& config,
                              const PeftExportOptions& options);

/// Writes adapter_config.json and adapter_model.safetensors into `dir`; returns the two paths.
std::vector<std::filesystem::path> export_peft_adapter(torch::nn::Module& model, const models::ModelConfig& config,
                                                       const std::filesystem::path& dir,
                                                       const PeftExportOptions& options);

}  // namespace biolm::io

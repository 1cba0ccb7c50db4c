// biolm/io/hf_config.h: Hugging Face `config.json` <-> models::ModelConfig for the model types
// bert, megatron-bert, gpt2, llama and mistral.
//
// The field names and defaults follow transformers' configuration classes (BertConfig,
// MegatronBertConfig, GPT2Config, LlamaConfig, MistralConfig in
// transformers/models/<type>/configuration_<type>.py). What each architecture fixes:
//   bert           post-LN, LayerNorm after the embedding sum, learned positions, GELU (erf), biases
//   megatron-bert  pre-LN, no embedding norm, final LayerNorm (MegatronBertEncoder.ln), else as bert
//   gpt2           pre-LN, learned positions, final ln_f, tanh GELU ("gelu_new"), biases, tied lm_head
//   llama/mistral  pre-RMSNorm, rotary (rope_theta; rope_type default, linear or llama3 from
//                  rope_parameters / rope_scaling), SwiGLU (hidden_act "silu"), grouped KV heads,
//                  no biases, final norm; Mistral's sliding_window becomes ModelConfig::sliding_window.
// Anything a model type allows that our modules do not compute (relative position embeddings,
// rope_type yarn/dynamic/longrope, GPT-2's scale_attn_by_inverse_layer_idx, ...) is refused with a ConfigError naming
// the file and the key, never dropped silently.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "biolm/models/config.h"

namespace biolm::io {

/// The Hugging Face model types we read and write.
enum class HfArch { Bert, MegatronBert, Gpt2, Llama, Mistral };

/// "bert", "megatron-bert", "gpt2", "llama", "mistral".
std::string to_string(HfArch arch);
/// Parses a config.json model_type; ConfigError("<origin>: model_type", "model_type 't5' is not
/// supported (supported: bert, megatron-bert, gpt2, llama, mistral)") otherwise.
HfArch parse_hf_arch(const std::string& model_type, const std::string& origin = "config.json");
std::vector<std::string> supported_model_types();

/// What a config.json says, in our terms.
struct HfModelInfo {
  HfArch arch = HfArch::Bert;
  models::ModelConfig config;
  std::vector<std::string> architectures;  ///< e.g. {"BertForMaskedLM"}; may be empty
  /// Label names by index (from id2label), empty when the file has none.
  std::vector<std::string> labels;
  /// "regression" / "single_label_classification" / ... when the file says so.
  std::optional<std::string> problem_type;
  /// Mistral's attention window as the file says it (config.sliding_window holds it when it is
  /// shorter than max_positions, i.e. when it hides anything).
  std::optional<int64_t> sliding_window;
  /// The task the first architecture implies (BertForMaskedLM -> MaskedLM, ...), if recognised.
  std::optional<models::TaskKind> task;
  std::string torch_dtype;  ///< "float32", "bfloat16", ... or empty
};

/// Reads a parsed config.json. `origin` (usually the file path) prefixes every error key.
HfModelInfo hf_config_from_json(const nlohmann::json& j, const std::string& origin = "config.json");
/// Reads `<dir>/config.json` (or a config.json path).
HfModelInfo load_hf_config(const std::filesystem::path& path);

/// The architecture an HF export of `config` uses when none is asked for: encoder post-LN -> bert,
/// encoder pre-LN -> megatron-bert, decoder with learned positions -> gpt2, rotary decoder -> llama.
HfArch infer_hf_arch(const models::ModelConfig& config);
/// Throws ConfigError naming the ModelConfig field when `config` cannot be written as `arch`
/// (e.g. a post-LN model as gpt2, RMSNorm as bert, MoE layers anywhere).
void check_hf_compatible(const models::ModelConfig& config, HfArch arch);

/// The transformers class for a task on an architecture, e.g. (Bert, MaskedLM) ->
/// "BertForMaskedLM", (Llama, CausalLM) -> "LlamaForCausalLM". ConfigError when transformers has
/// no such class.
std::string hf_architecture_name(HfArch arch, models::TaskKind task);

struct HfExportConfig {
  HfArch arch = HfArch::Bert;
  models::TaskKind task = models::TaskKind::Base;
  std::vector<std::string> labels;  ///< id2label for classification heads (size = n_labels)
  std::string torch_dtype = "float32";
};
/// A config.json that transformers reads back into an equivalent model (validated with
/// check_hf_compatible first).
nlohmann::json hf_config_to_json(const models::ModelConfig& config, const HfExportConfig& export_config);

}  // namespace biolm::io

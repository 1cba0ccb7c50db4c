// biolm/peft/method.h: one call that turns a model into a full, LoRA, IA3, prompt-tuned or
// hybrid fine-tuning setup, and the freezing policies behind it.
//
//   peft::MethodConfig cfg;
//   cfg.method = peft::Method::Lora;
//   cfg.lora = peft::LoraOptions(8, 16).targets({"**.q_proj", "**.v_proj"});
//   peft::PeftSummary s = peft::apply(model, cfg);   // adapters attached, the rest frozen
//   log::info("{}", s.to_string());
//
// Freezing sets requires_grad = false, so frozen tensors get no gradient and (because the trainer
// builds its optimizer from trainable parameters only) no optimizer state.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "biolm/peft/ia3.h"
#include "biolm/peft/lora.h"
#include "biolm/peft/prompt_tuning.h"
#include "biolm/io/tensor_file.h"
#include "biolm/models/trainable.h"

namespace biolm::core {
class ConfigReader;
}

namespace biolm::peft {

using io::TensorMap;  ///< name -> tensor (adapter_state); files in io/tensor_file.h

enum class Method { Full, Lora, Ia3, PromptTuning, Hybrid };
Method parse_method(const std::string& name, const std::string& key = "peft.method");
std::string to_string(Method method);

/// How transformer layers are found by name: a parameter "<...>.<layers_container>.<i>.<...>"
/// belongs to layer i. Used by top-N training and discriminative learning rates.
struct LayerSelector {
  /// The name component right before the layer index ("layers" for "body.layers.3.attn.q_proj").
  std::string container = "layers";
  /// Parameters counted as "below layer 0" (embeddings) for discriminative learning rates.
  std::vector<std::string> embedding_patterns = {"**embed**"};
};

struct MethodConfig {
  Method method = Method::Full;
  LoraOptions lora;           ///< Lora and Hybrid
  Ia3Options ia3;             ///< Ia3
  PromptTuningOptions prompt; ///< PromptTuning (hidden = the model's C)
  /// Every method but Full: parameter-name patterns trained in full next to the adapter or soft
  /// prompt — a freshly initialised task head (PEFT's modules_to_save; `biolm finetune` fills in
  /// its task's head when unset), or for Hybrid any parts, e.g. {"**.bias", "**norm*.weight"}.
  std::vector<std::string> train_patterns;
  /// Full: parameter-name patterns frozen (layer-wise freezing), e.g. {"embed.**", "layers.0.**"}.
  std::vector<std::string> freeze_patterns;
  /// Full: when > 0 only the top N layers (plus parameters outside layers that are not
  /// embeddings, i.e. heads and final norms) train. Hybrid: the top N layers also train in full.
  int64_t train_top_layers = 0;
  /// Full: discriminative learning rates (layer-wise decay, Howard & Ruder 2018; Clark et al. 2020):
  /// multiplier 1 outside layers, decay^(L-i) for layer i of L, decay^(L+1) for embeddings.
  double layer_lr_decay = 1.0;
  LayerSelector layers;

  /// Throws ConfigError("peft.<field>") for inconsistent settings (all of them at once).
  void validate() const;
  /// Records every inconsistency in `r` (keys relative to r: "peft.lora.rank" under child "peft").
  void validate(core::ConfigReader& r) const;
};
/// JSON <-> MethodConfig ({"method": "lora", "lora": {"rank": 8, ...}, ...}).
nlohmann::json to_json(const MethodConfig& config);
/// Reads the peft section from `r` (the caller's child "peft"): wrong types, bad choices and
/// inconsistent settings are recorded there with their key path; unknown keys are left to the
/// caller's finish().
MethodConfig read_method_config(core::ConfigReader& r);
/// read_method_config on its own reader: throws ONE ConfigError listing every unknown key, wrong
/// type and bad value, each naming its path ("peft.lora.rank").
MethodConfig method_config_from_json(const nlohmann::json& j, const std::string& key = "peft");

struct PeftSummary {
  Method method = Method::Full;
  int64_t trainable_parameters = 0;  ///< elements with requires_grad
  int64_t total_parameters = 0;      ///< all elements (adapters included)
  std::vector<std::string> adapted_modules;   ///< Linears carrying an adapter
  std::vector<std::string> trainable_names;   ///< parameter names with requires_grad
  /// Learning-rate multipliers != 1 by parameter name (discriminative learning rates).
  std::map<std::string, double> lr_scales;
  /// "method=lora trainable 4,096 / 1,052,672 (0.39%) in 12 tensors; adapted 4 Linears"
  std::string to_string() const;
};

/// Applies `config` to `model` in one call: attaches adapters / soft prompt, sets requires_grad.
PeftSummary apply(models::TrainableModel& model, const MethodConfig& config);

/// Counts and names of the trainable parameters of any module.
PeftSummary summarize(torch::nn::Module& model);

/// Sets requires_grad on every parameter of `model`.
void set_requires_grad(torch::nn::Module& model, bool requires_grad);
/// Index of the layer a parameter belongs to, or nullopt ("a.layers.3.b" -> 3).
std::optional<int64_t> layer_index(const std::string& name, const LayerSelector& layers);
/// Number of layers (1 + the largest index seen), 0 when there are none.
int64_t count_layers(torch::nn::Module& model, const LayerSelector& layers);
/// lr multipliers by parameter name (see MethodConfig::layer_lr_decay); entries equal to 1 omitted.
std::map<std::string, double> layer_lr_scales(torch::nn::Module& model, const LayerSelector& layers, double decay);

/// Merges / unmerges every attached adapter (LoRA, IA3) into its base Linear.
void merge_adapters(torch::nn::Module& model);
void unmerge_adapters(torch::nn::Module& model);

/// The adapter state: every trainable parameter (adapters, soft prompt, hybrid's fully trained
/// parts), by name. Saved alone it is what distinguishes the fine-tuned model from its base.
TensorMap adapter_state(torch::nn::Module& model);
/// Writes adapter_state(model) as a safetensors file (conventionally `adapter.safetensors`)
/// atomically (temporary file, fsync, rename).
void save_adapter(torch::nn::Module& model, const std::filesystem::path& path);
/// Copies a saved adapter into the (already peft::apply'd) model. Every trainable parameter must be
/// in the file and every tensor of the file must be a trainable parameter of the same shape:
/// anything else is a CheckpointError naming the tensor.
void load_adapter(torch::nn::Module& model, const std::filesystem::path& path);

}  // namespace biolm::peft

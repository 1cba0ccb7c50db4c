// biolm/models/config.h: one configuration for BERT / Megatron-BERT (GatorTron) encoders and
// GPT-2 / LLaMA / Mistral decoders, its JSON form, named presets and closed-form parameter counts.
//
// The fields follow the papers (BERT: Devlin et al. 2019; Megatron-LM: Shoeybi et al. 2019 §3,
// pre-LN; LLaMA: Touvron et al. 2023 §2.2, RMSNorm + SwiGLU + RoPE; GQA: Ainslie et al. 2023;
// Switch/Mixtral MoE: Fedus et al. 2021 §2.2, Jiang et al. 2024). Choices are enum classes: GELU
// with erf (BERT) and with tanh (GPT-2) drift apart silently when mixed up.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "biolm/nn/kinds.h"

namespace biolm::core {
class ConfigReader;
}

namespace biolm::models {

/// Bidirectional encoder (BERT family) or causal decoder (GPT/LLaMA family).
enum class Family { Encoder, Decoder };
using Activation = nn::Activation;        // GeluErf, GeluTanh, Relu, Silu, SwiGLU
using NormKind = nn::NormKind;            // LayerNorm, RMSNorm
using NormPlacement = nn::NormPlacement;  // Post (BERT), Pre (Megatron-BERT, GPT-2, LLaMA)
using RopeScalingKind = nn::RopeScalingKind;  // None, Linear, Llama3
using RopeScaling = nn::RopeScaling;
/// Learned absolute position table, rotary embeddings on q/k (Su et al. 2021), or none.
enum class PositionKind { Learned, Rotary, None };

/// Sparse mixture-of-experts FFN (top-k routing). Off while n_experts == 0.
struct MoeConfig {
  int64_t n_experts = 0;           ///< experts per MoE layer (E); 0 = dense FFN everywhere
  int64_t top_k = 2;               ///< experts each token is sent to
  double aux_loss_weight = 0.01;   ///< weight of the load-balancing loss added to the task loss
  bool normalize_top_k = true;     ///< renormalise the k routing weights to sum to 1 (Mixtral)
  std::vector<int64_t> layers;     ///< 0-based layers with MoE; empty = every layer
};

/// A frozen quantized base (QLoRA, quant/quantize.h): every Linear inside the transformer blocks
/// (attention and MLP projections, MoE experts) is held in 4 or 8 bits from the moment the block
/// is built, and weights loaded into it are quantized as they arrive (io/hf_weights.h,
/// io/model_dir.h), so no full-precision copy of the base ever exists. Embeddings, the pooler,
/// norms and task heads (lm_head included, as bitsandbytes' default skip list) stay float32.
/// Such a model trains through adapters only: a quantized weight cannot train in full.
struct QuantizeConfig {
  std::string type = "nf4";   ///< nf4 | fp4 | int8
  bool double_quant = true;   ///< 4-bit: quantize the absmax constants too (QLoRA §3)
};

struct ModelConfig {
  std::string name = "custom";     ///< free text; presets put their name here
  Family family = Family::Encoder;
  int64_t vocab_size = 30522;      ///< V
  int64_t hidden_size = 768;       ///< C
  int64_t n_layers = 12;           ///< L
  int64_t n_heads = 12;            ///< H query heads
  int64_t n_kv_heads = 12;         ///< Hkv key/value heads (grouped-query attention); divides H
  int64_t ffn_size = 3072;         ///< F
  Activation activation = Activation::GeluErf;
  NormKind norm = NormKind::LayerNorm;
  NormPlacement norm_placement = NormPlacement::Post;
  double norm_eps = 1e-12;
  bool embedding_norm = true;      ///< norm after the embedding sum (BERT yes; Megatron, GPT, LLaMA no)
  bool final_norm = false;         ///< norm after the last block (pre-LN models)
  PositionKind positions = PositionKind::Learned;
  double rope_theta = 10000.0;     ///< rotary base
  RopeScaling rope_scaling;        ///< rotary frequency scaling (HF rope_type linear / llama3); kind None = off
  int64_t max_positions = 512;     ///< rows of the learned table; the longest sequence otherwise
  int64_t type_vocab_size = 2;     ///< token-type (segment A/B) embeddings; 0 = none
  /// Causal attention to the last W keys only (Mistral's sliding window: key j is visible from
  /// query i when i - W < j <= i, on sequence indices); nullopt = every earlier key.
  std::optional<int64_t> sliding_window;
  bool attention_bias = true;      ///< biases on q/k/v/o projections
  bool mlp_bias = true;            ///< biases on up/gate/down
  double hidden_dropout = 0.1;     ///< embeddings, residual branches, classifier input
  double attention_dropout = 0.1;  ///< on attention probabilities
  bool tie_embeddings = true;      ///< output projection (lm_head) shares embeddings.tok.weight
  bool pooler = true;              ///< encoder [CLS] pooler (dense + tanh) used by classification
  MoeConfig moe;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  double init_std = 0.02;          ///< std of the normal init of every projection and embedding
  bool gradient_checkpointing = false;  ///< recompute each block in backward (training memory)
  bool fused_attention = true;     ///< use compat::scaled_dot_product_attention; false = explicit softmax
  /// Set: the blocks' Linears are quantized (QuantizeConfig); JSON key "quantize", absent = dense.
  std::optional<QuantizeConfig> quantize;

  int64_t head_dim() const { return hidden_size / n_heads; }  ///< D
  bool is_decoder() const { return family == Family::Decoder; }
  bool gated_mlp() const { return activation == Activation::SwiGLU; }
  /// True when layer `layer` uses the MoE FFN.
  bool is_moe_layer(int64_t layer) const;
  /// Throws ConfigError naming the offending keys (prefix "model.") for every inconsistency.
  void validate(const std::string& key_prefix = "model") const;
  /// Records every inconsistency in `r` (keys relative to r: "model.n_heads" under child "model").
  void validate(core::ConfigReader& r) const;
};

// ---- enum names (the JSON spelling) ---------------------------------------------------------
std::string to_string(Family v);
std::string to_string(Activation v);
std::string to_string(NormKind v);
std::string to_string(NormPlacement v);
std::string to_string(PositionKind v);
std::string to_string(RopeScalingKind v);

/// JSON with every field (keys = field names; enums as lower-case strings, e.g. "gelu_erf").
nlohmann::json to_json(const ModelConfig& config);
/// Reads the model section from `r` (the caller's child "model"; "preset" names a starting point):
/// absent keys keep their defaults, wrong types, bad choices and inconsistencies are recorded in
/// `r` with their key path ("model.moe.top_k"); unknown keys are left to the caller's finish().
ModelConfig read_model_config(core::ConfigReader& r);
/// read_model_config on its own reader: throws ONE ConfigError listing every unknown key, wrong
/// type and bad value of the object. The result is validated.
ModelConfig config_from_json(const nlohmann::json& j, const std::string& key_prefix = "model");
/// Reads a JSON file (ConfigError on unreadable or malformed files, naming the path).
ModelConfig load_config(const std::string& path);

/// Names accepted by preset(): bert-base, megatron-bert-345m, gpt2, llama-7b, tiny-encoder, tiny-decoder.
std::vector<std::string> preset_names();
/// A named preset; ConfigError("preset", ...) listing the valid names otherwise.
ModelConfig preset(const std::string& name);

// ---- parameter counting ----------------------------------------------------------------------

/// What a task model puts on top of the body; used by make_task_model and count_parameters.
enum class TaskKind {
  Base,                    ///< the bare body (models::make_body); HF BertModel / GPT2Model / LlamaModel
  MaskedLM,                ///< BERT MLM head: dense + act + norm, tied (or own) projection, vocab bias
  CausalLM,                ///< lm_head, shifted next-token loss
  TokenClassification,     ///< per-token labels (NER)
  SequenceClassification,  ///< one label per sequence / pair (NLI, relation extraction)
  Regression,              ///< one score per sequence (STS), MSE loss
  SpanQA,                  ///< start/end logits (SQuAD-style)
  MultipleChoice,          ///< (B,K,T) choices, one score each
};
std::string to_string(TaskKind v);
/// "masked_lm", "causal_lm", "token_classification", "sequence_classification", "regression",
/// "span_qa", "multiple_choice", "base"; ConfigError(key) otherwise.
TaskKind parse_task_kind(const std::string& name, const std::string& key = "task");

struct ParameterCount {
  int64_t total = 0;
  int64_t trainable = 0;
  int64_t embeddings = 0;  ///< token + position + type tables and the embedding norm
  int64_t layers = 0;      ///< all blocks
  int64_t head = 0;        ///< final norm, pooler, task head (tied weights counted once)
};
/// Closed-form count from the shapes, without allocating. Equal to the number of distinct
/// parameters of make_task_model(config, task, n_labels) (tied weights counted once).
ParameterCount count_parameters(const ModelConfig& config, TaskKind task = TaskKind::Base, int64_t n_labels = 2);

/// One JSON object: {"config": to_json(config), "parameters": N, "trainable": N,
/// "parameters_by_part": {...}, "parameters_human": "109.5M"} (no allocation).
nlohmann::json describe(const ModelConfig& config, TaskKind task = TaskKind::Base, int64_t n_labels = 2);
/// Multi-line human-readable summary: shapes, per-part counts, total.
std::string summary(const ModelConfig& config, TaskKind task = TaskKind::Base, int64_t n_labels = 2);
/// 109482240 -> "109.5M", 6738415616 -> "6.74B".
std::string human_count(int64_t n);

}  // namespace biolm::models

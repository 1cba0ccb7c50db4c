// Predicted memory of a training step (models/memory.h).
#include "biolm/models/memory.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "biolm/core/error.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"

namespace biolm::models {

namespace {

struct LinearShape {
  std::string leaf;
  int64_t in = 0, out = 0;
};

// The Linears of one block, by the last component of their names (nn/attention.h, nn/mlp.h).
std::vector<LinearShape> block_linears(const ModelConfig& c) {
  const int64_t D = c.head_dim(), q = c.n_heads * D, kv = c.n_kv_heads * D;
  std::vector<LinearShape> out = {{"q_proj", c.hidden_size, q}, {"k_proj", c.hidden_size, kv},
                                  {"v_proj", c.hidden_size, kv}, {"o_proj", q, c.hidden_size}};
  if (c.gated_mlp()) out.push_back({"gate", c.hidden_size, c.ffn_size});
  out.push_back({"up", c.hidden_size, c.ffn_size});
  out.push_back({"down", c.ffn_size, c.hidden_size});
  return out;
}

// Bytes of one weight in the stored form QuantizedTensor::nbytes() counts.
int64_t quantized_bytes(const QuantizeConfig& qc, int64_t out, int64_t in) {
  const int64_t n = out * in;
  if (qc.type == "int8") return n + out * 4;
  const int64_t blocks = (n + quant::kBlockSize4bit - 1) / quant::kBlockSize4bit;
  const int64_t packed = (n + 1) / 2;
  if (!qc.double_quant) return packed + blocks * 4;
  const int64_t nested = (blocks + quant::kNestedBlockSize - 1) / quant::kNestedBlockSize;
  return packed + blocks + nested * 4 + 256 * 4;
}

int64_t scale_count(const QuantizeConfig& qc, int64_t out, int64_t in) {
  return qc.type == "int8" ? out : (out * in + quant::kBlockSize4bit - 1) / quant::kBlockSize4bit;
}

}  // namespace

MemoryEstimate estimate_memory(const ModelConfig& c, TaskKind task, const MemoryPlan& p) {
  BIOLM_CHECK(p.method == "full" || p.method == "lora" || p.method == "none", ConfigError, "memory.method",
              "expected full, lora or none, got \"" + p.method + "\"");
  BIOLM_CHECK(p.batch > 0 && p.seq > 0, ConfigError, "memory.batch", "batch and seq must be > 0");
  BIOLM_CHECK(!(c.quantize && p.method == "full"), ConfigError, "memory.method",
              "a quantized base cannot train in full");
  BIOLM_CHECK(c.moe.n_experts == 0, ConfigError, "model.moe", "memory estimates cover dense FFNs only");
  const auto linears = block_linears(c);
  if (p.method == "lora") {
    for (const auto& t : p.lora_targets) {
      BIOLM_CHECK(std::any_of(linears.begin(), linears.end(), [&](const LinearShape& l) { return l.leaf == t; }),
                  ConfigError, "memory.lora_targets", "no Linear named \"" + t + "\" in a block");
    }
  }
  const auto is_target = [&](const std::string& leaf) {
    return std::find(p.lora_targets.begin(), p.lora_targets.end(), leaf) != p.lora_targets.end();
  };

  MemoryEstimate e;
  const ParameterCount count = count_parameters(c, task);
  int64_t block_linear_params = 0, block_quant_bytes = 0, block_scales = 0, largest_in = 0, lora_params = 0;
  for (const auto& l : linears) {
    block_linear_params += l.in * l.out;
    if (c.quantize) {
      block_quant_bytes += quantized_bytes(*c.quantize, l.out, l.in);
      block_scales += scale_count(*c.quantize, l.out, l.in);
      largest_in = std::max(largest_in, l.in);
    }
    if (p.method == "lora" && is_target(l.leaf)) lora_params += p.lora_rank * (l.in + l.out);
  }
  const int64_t L = c.n_layers;
  const int64_t dense_params = count.total - (c.quantize ? L * block_linear_params : 0);
  e.weights = dense_params * 4 + (c.quantize ? L * block_quant_bytes : 0) + (p.method == "lora" ? L * lora_params * 4 : 0);
  e.trainable_parameters = p.method == "full" ? count.total : (p.method == "lora" ? L * lora_params : 0);
  // weights of the trainable ones are in `weights`; their gradient and two AdamW moments here
  e.trainable = e.trainable_parameters * 12;
  e.runtime = p.runtime_bytes;
  if (p.method == "none") {
    // Inference: one block's activations at a time and the logits once.
    const int64_t B = p.batch, T = p.seq;
    e.activations = 4 * B * T * (2 * c.hidden_size + c.ffn_size);
    if (task == TaskKind::CausalLM || task == TaskKind::MaskedLM) e.logits = 4 * B * T * c.vocab_size;
    return e;
  }

  const int64_t B = p.batch, T = p.seq, C = c.hidden_size, Ckv = c.n_kv_heads * c.head_dim(), F = c.ffn_size;
  const int64_t mlp_values = c.gated_mlp() ? 4 * F : 2 * F;
  int64_t per_block = B * T * (6 * C + 3 * Ckv + mlp_values) + B * c.n_heads * T * T;
  if (p.method == "lora") {
    int64_t adapted = 0;
    for (const auto& l : linears) adapted += is_target(l.leaf) ? 1 : 0;
    per_block += B * T * p.lora_rank * adapted;  // A x, kept for B's gradient
  }
  per_block += block_scales;  // a quantized product keeps its scales for the backward
  const int64_t per_block_bytes = 4 * per_block;
  if (p.gradient_checkpointing) {
    e.activations = L * 4 * B * T * C + 2 * per_block_bytes;
  } else {
    e.activations = L * per_block_bytes + per_block_bytes;
  }
  if (task == TaskKind::CausalLM || task == TaskKind::MaskedLM) e.logits = 3 * 4 * B * T * c.vocab_size;
  if (c.quantize) e.transient = 2 * 4 * quant::kDefaultChunkRows * largest_in;
  return e;
}

nlohmann::json to_json(const MemoryEstimate& e, const MemoryPlan& p) {
  const auto gib = [](int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0); };
  return {{"weights_bytes", e.weights},
          {"trainable_parameters", e.trainable_parameters},
          {"trainable_state_bytes", e.trainable},
          {"activations_bytes", e.activations},
          {"logits_bytes", e.logits},
          {"transient_bytes", e.transient},
          {"runtime_bytes", e.runtime},
          {"total_bytes", e.total()},
          {"total_gib", gib(e.total())},
          {"plan",
           {{"batch", p.batch},
            {"seq", p.seq},
            {"method", p.method},
            {"lora_rank", p.lora_rank},
            {"lora_targets", p.lora_targets},
            {"gradient_checkpointing", p.gradient_checkpointing}}}};
}

}  // namespace biolm::models

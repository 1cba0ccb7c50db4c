// biolm/models/memory.h: what a training step of a model will take in host (or device) memory,
// predicted from the shapes alone (`biolm inspect --memory`), before anything is allocated.
//
// The prediction adds up, in bytes:
//   weights       every parameter in float32, except the blocks' Linears of a quantized model
//                 (ModelConfig::quantize), counted in their stored form (QuantizedTensor::nbytes
//                 arithmetic: NF4/FP4 packed + double-quantized absmax, int8 + row scales);
//   trainable     the parameters that train (all of them, LoRA's A and B on the targets, or none)
//                 with their gradient and AdamW's two moments: 16 bytes each;
//   activations   what autograd keeps for the backward pass of one step, from the block's own
//                 operations (docs/memory.md derives each term): per block, without activation
//                 checkpointing, B·T·(6C + 3C_kv + 4F) float32 values for a pre-norm SwiGLU block
//                 (norm inputs and outputs, q/k/v before and after rotary, the attention output,
//                 gate/up/activation/product) plus the attention probabilities B·H·T²; with
//                 checkpointing only each block's input B·T·C is kept, and one block is recomputed
//                 at a time; the backward's gradient of that block's activations doubles the
//                 block's share once;
//   logits        B·T·V float32 three times (the logits, log_softmax kept for the loss, and their
//                 gradient) for a language-model head;
//   transient     the chunked dequantization of the largest quantized Linear (256 rows, float32),
//                 forward and backward;
//   runtime       the process before any model: LibTorch, BLAS and the C++ runtime (measured).
// The same arithmetic is checked against measured peak RSS by the bench (docs/memory.md: within
// 15 % on the shapes measured there); it does not model allocator fragmentation.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "biolm/models/config.h"

namespace biolm::models {

struct MemoryPlan {
  int64_t batch = 1;   ///< B
  int64_t seq = 512;   ///< T
  /// "full" (every parameter trains), "lora" (the targets' A and B), "none" (inference).
  std::string method = "lora";
  int64_t lora_rank = 8;
  /// Last name components of the Linears LoRA adapts (q_proj, k_proj, v_proj, o_proj, gate, up, down).
  std::vector<std::string> lora_targets = {"q_proj", "v_proj"};
  bool gradient_checkpointing = false;
  /// The process before the model (LibTorch, BLAS, runtime), measured on the bench machine.
  int64_t runtime_bytes = int64_t{216} << 20;
};

struct MemoryEstimate {
  int64_t weights = 0;
  int64_t trainable_parameters = 0;
  int64_t trainable = 0;  ///< parameters, gradients and AdamW moments of the trainable ones
  int64_t activations = 0;
  int64_t logits = 0;
  int64_t transient = 0;
  int64_t runtime = 0;
  int64_t total() const { return weights + trainable + activations + logits + transient + runtime; }
};

/// The estimate for a causal LM (TaskKind::CausalLM) or masked LM step of `config` under `plan`.
/// ConfigError naming the plan field ("memory.method", "memory.lora_targets") on bad input.
MemoryEstimate estimate_memory(const ModelConfig& config, TaskKind task, const MemoryPlan& plan);

/// {"weights_bytes", ..., "total_bytes", "total_gib", "plan": {...}} for `biolm inspect --memory`.
nlohmann::json to_json(const MemoryEstimate& estimate, const MemoryPlan& plan);

}  // namespace biolm::models

// biolm/models/transformer.h: the bodies, Encoder (bidirectional, BERT / Megatron-BERT / GatorTron)
// and Decoder (causal, GPT-2 / LLaMA / Mistral), built from one ModelConfig.
//
//   h = embeddings(ids | inputs_embeds, positions, token types)
//   for each block: h = block(h, mask, rope)      (mask: causal | padding | packed segments)
//   h = final_norm(h)                              (pre-LN models)
// Registered: "embeddings", "layers.N", "final_norm" (when config.final_norm).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <memory>
#include <vector>

#include "biolm/models/config.h"
#include "biolm/nn/attention.h"
#include "biolm/nn/block.h"
#include "biolm/nn/checkpoint.h"
#include "biolm/nn/embeddings.h"
#include "biolm/nn/norm.h"

namespace biolm::models {

/// Keys and values of every layer from earlier calls (decoders).
struct KVCache {
  std::vector<nn::LayerKV> layers;
  /// Cached tokens (Tpast); 0 when empty.
  int64_t length() const { return layers.empty() || !layers[0].k.defined() ? 0 : layers[0].k.size(2); }
  bool empty() const { return length() == 0; }
};

/// Optional inputs of a body; undefined tensors are absent.
struct ModelInputs {
  torch::Tensor input_ids;       ///< (B,T) int64
  torch::Tensor attention_mask;  ///< (B,T), or (B,Tpast+T) with a cache; 1 = real token, 0 = padding
  torch::Tensor token_type_ids;  ///< (B,T); zeros when absent
  /// (B,T); when absent: restarts at 0 in each segment when segment_ids are given; otherwise a
  /// decoder counts real tokens (cumsum(attention_mask) - 1), so left padding does not shift
  /// positions, and an encoder numbers the slots 0..T-1 (as transformers' BertEmbeddings).
  torch::Tensor position_ids;
  torch::Tensor segment_ids;     ///< (B,T) packed examples: attention stays within a segment
  torch::Tensor inputs_embeds;   ///< (B,T,C) instead of input_ids (prompt tuning)
  /// (N,2) (batch, position) pairs, grouped by batch row in ascending order (as nonzero() returns
  /// them): the body then returns hidden (N,C) at these positions only. An encoder without MoE in
  /// its last block computes that block's queries, attention output, norms and FFN at these rows
  /// alone (keys and values still see every position): the MLM step's last layer shrinks to the
  /// ~15 % masked positions. Otherwise the full (B,T,C) is computed and the rows picked.
  torch::Tensor output_positions;
  const KVCache* past = nullptr; ///< decoders: the cache from previous calls
  bool use_cache = false;        ///< decoders: return the updated cache
};

struct BodyOutput {
  torch::Tensor hidden;    ///< (B,T,C); (N,C) with ModelInputs.output_positions
  /// MoE load-balancing loss, already weighted (moe.aux_loss_weight * mean over MoE layers);
  /// a scalar 0 without MoE. Task heads add it to their loss.
  torch::Tensor aux_loss;
  KVCache cache;           ///< past + new keys/values when use_cache
};

/// The shared body; Encoder and Decoder fix the attention direction.
class TransformerImpl : public torch::nn::Module, public nn::BlockSequence {
 public:
  explicit TransformerImpl(const ModelConfig& config);
  BodyOutput forward(const ModelInputs& inputs);
  const ModelConfig& config() const { return config_; }
  /// Switches per-block recomputation in backward (activation checkpointing) on or off.
  void set_gradient_checkpointing(bool enabled) { config_.gradient_checkpointing = enabled; }
  /// ZeRO-3 per block (dist::DataParallel): the blocks, gathered one at a time; a block with a
  /// gather set is always recomputed in backward when training.
  std::vector<std::shared_ptr<torch::nn::Module>> sharding_blocks() override;
  void set_block_gather(std::shared_ptr<nn::BlockGather> gather) override { gather_ = std::move(gather); }
  bool causal() const { return config_.is_decoder(); }
  /// The position ids used when ModelInputs.position_ids is absent (see ModelInputs).
  torch::Tensor default_position_ids(const ModelInputs& inputs, int64_t batch, int64_t length) const;

  nn::Embeddings embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::Norm final_norm{nullptr};

 protected:
  std::vector<nn::Block> blocks_;
  ModelConfig config_;
  std::shared_ptr<nn::BlockGather> gather_;
};

class EncoderImpl : public TransformerImpl {
 public:
  explicit EncoderImpl(const ModelConfig& config);
};
TORCH_MODULE(Encoder);

class DecoderImpl : public TransformerImpl {
 public:
  explicit DecoderImpl(const ModelConfig& config);
};
TORCH_MODULE(Decoder);

/// Encoder or Decoder according to config.family.
std::shared_ptr<TransformerImpl> make_body(const ModelConfig& config);

/// Options of one block as the builder derives them from the config (layer decides MoE).
nn::BlockOptions block_options(const ModelConfig& config, int64_t layer);

/// Distinct parameters of a module (tied tensors once): total and requiring grad.
ParameterCount count_module_parameters(const torch::nn::Module& module);

}  // namespace biolm::models

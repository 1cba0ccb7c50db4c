// biolm/nn/block.h: one transformer block, encoder or decoder alike (the difference, causal or
// bidirectional attention, lives in the mask). Pre- or post-LN is a visible `if` in forward().
//   post-LN (BERT):               h = norm1(x + drop(attn(x)));  y = norm2(h + drop(ffn(h)))
//   pre-LN (Megatron, GPT, LLaMA): h = x + drop(attn(norm1(x)));  y = h + drop(ffn(norm2(h)))
// Registered: "attn", "attn_norm", and "mlp" or "moe", "mlp_norm".
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <optional>

#include "biolm/nn/attention.h"
#include "biolm/nn/kinds.h"
#include "biolm/nn/mlp.h"
#include "biolm/nn/moe.h"
#include "biolm/nn/norm.h"

namespace biolm::nn {

struct BlockOptions {
  BlockOptions(AttentionOptions attention, MlpOptions mlp) : attention_(std::move(attention)), mlp_(std::move(mlp)) {}
  TORCH_ARG(AttentionOptions, attention);
  TORCH_ARG(MlpOptions, mlp);
  /// Replaces the dense FFN by a mixture of experts when set.
  TORCH_ARG(std::optional<MoeOptions>, moe) = std::nullopt;
  TORCH_ARG(NormKind, norm_kind) = NormKind::LayerNorm;
  TORCH_ARG(double, norm_eps) = 1e-12;
  TORCH_ARG(NormPlacement, norm_placement) = NormPlacement::Post;
  TORCH_ARG(double, dropout) = 0.0;  ///< on both residual branches, training only
};

struct BlockOutput {
  torch::Tensor hidden;    // (B,T,C)
  torch::Tensor aux_loss;  // scalar MoE load-balancing loss (unweighted); 0 for dense blocks
  LayerKV present;         // when ctx.use_cache
};

class BlockImpl : public torch::nn::Cloneable<BlockImpl> {
 public:
  explicit BlockImpl(const BlockOptions& options);
  void reset() override;
  /// x: (B,T,C); token_mask (B,T) 1 = real token (for MoE statistics; may be undefined).
  BlockOutput forward(const torch::Tensor& x, const AttentionContext& ctx, const torch::Tensor& token_mask = {});
  /// The block's output at a subset of positions only: x_q (B,M,C) are the rows of x (B,T,C) at
  /// those positions; keys and values come from all of x, everything after attention runs on the
  /// M rows. Row for row equal to forward(x) at those positions (every op after attention is
  /// position-wise). Not for MoE blocks (their balance statistics span all tokens).
  BlockOutput forward_rows(const torch::Tensor& x_q, const torch::Tensor& x, const AttentionContext& ctx);

  BlockOptions options;
  Attention attn{nullptr};
  Norm attn_norm{nullptr};
  Mlp mlp{nullptr};
  Moe moe{nullptr};
  Norm mlp_norm{nullptr};

 private:
  std::pair<torch::Tensor, torch::Tensor> ffn(const torch::Tensor& x, const torch::Tensor& token_mask);
  /// forward and forward_rows: x attends to kv_source (undefined = to itself).
  BlockOutput run(const torch::Tensor& x, const torch::Tensor& kv_source, const AttentionContext& ctx,
                  const torch::Tensor& token_mask);
};
TORCH_MODULE(Block);

}  // namespace biolm::nn

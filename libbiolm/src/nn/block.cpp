#include "biolm/nn/block.h"

#include "biolm/core/error.h"
#include "biolm/nn/dropout.h"

namespace biolm::nn {

BlockImpl::BlockImpl(const BlockOptions& options_) : options(options_) { reset(); }

void BlockImpl::reset() {
  const int64_t C = options.attention().hidden_size();
  BIOLM_CHECK(options.mlp().hidden_size() == C, ShapeError, "Block", "attention and MLP hidden sizes differ");
  auto norm_options = NormOptions(C).kind(options.norm_kind()).eps(options.norm_eps());
  attn = register_module("attn", Attention(options.attention()));
  attn_norm = register_module("attn_norm", Norm(norm_options));
  if (options.moe()) {
    moe = register_module("moe", Moe(*options.moe()));
  } else {
    mlp = register_module("mlp", Mlp(options.mlp()));
  }
  mlp_norm = register_module("mlp_norm", Norm(norm_options));
}

std::pair<torch::Tensor, torch::Tensor> BlockImpl::ffn(const torch::Tensor& x, const torch::Tensor& token_mask) {
  if (!moe.is_empty()) {
    auto r = moe(x, token_mask);
    return {r.out, r.aux_loss};
  }
  return {mlp(x), torch::zeros({}, x.options().dtype(torch::kFloat))};
}

BlockOutput BlockImpl::forward(const torch::Tensor& x, const AttentionContext& ctx, const torch::Tensor& token_mask) {
  return run(x, torch::Tensor(), ctx, token_mask);
}

BlockOutput BlockImpl::forward_rows(const torch::Tensor& x_q, const torch::Tensor& x, const AttentionContext& ctx) {
  BIOLM_CHECK(moe.is_empty(), ShapeError, "Block", "forward_rows is not defined for MoE blocks");
  return run(x_q, x, ctx, torch::Tensor());
}

// x: the rows computed; kv_source: the whole sequence keys and values come from when x is a
// subset of its rows (undefined: x itself).
BlockOutput BlockImpl::run(const torch::Tensor& x, const torch::Tensor& kv_source, const AttentionContext& ctx,
                           const torch::Tensor& token_mask) {
  const double p = options.dropout();
  const bool train = is_training();
  BlockOutput out;
  if (options.norm_placement() == NormPlacement::Pre) {
    auto a = attn(attn_norm(x), ctx, kv_source.defined() ? attn_norm(kv_source) : torch::Tensor());
    const auto h = x + nn::dropout(a.out, p, train);
    auto [f, aux] = ffn(mlp_norm(h), token_mask);
    out.hidden = h + nn::dropout(f, p, train);
    out.aux_loss = aux;
    out.present = a.present;
  } else {
    auto a = attn(x, ctx, kv_source);
    const auto h = attn_norm(x + nn::dropout(a.out, p, train));
    auto [f, aux] = ffn(h, token_mask);
    out.hidden = mlp_norm(h + nn::dropout(f, p, train));
    out.aux_loss = aux;
    out.present = a.present;
  }
  return out;
}

}  // namespace biolm::nn

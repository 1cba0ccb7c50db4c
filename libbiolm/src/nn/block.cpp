#include "biolm/nn/block.h"

#include "biolm/core/error.h"

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
  const double p = options.dropout();
  const bool train = is_training();
  BlockOutput out;
  if (options.norm_placement() == NormPlacement::Pre) {
    auto a = attn(attn_norm(x), ctx);
    const auto h = x + torch::dropout(a.out, p, train);
    auto [f, aux] = ffn(mlp_norm(h), token_mask);
    out.hidden = h + torch::dropout(f, p, train);
    out.aux_loss = aux;
    out.present = a.present;
  } else {
    auto a = attn(x, ctx);
    const auto h = attn_norm(x + torch::dropout(a.out, p, train));
    auto [f, aux] = ffn(h, token_mask);
    out.hidden = mlp_norm(h + torch::dropout(f, p, train));
    out.aux_loss = aux;
    out.present = a.present;
  }
  return out;
}

BlockOutput BlockImpl::forward_rows(const torch::Tensor& x_q, const torch::Tensor& x, const AttentionContext& ctx) {
  BIOLM_CHECK(moe.is_empty(), ShapeError, "Block", "forward_rows is not defined for MoE blocks");
  const double p = options.dropout();
  const bool train = is_training();
  BlockOutput out;
  if (options.norm_placement() == NormPlacement::Pre) {
    auto a = attn(attn_norm(x_q), ctx, attn_norm(x));
    const auto h = x_q + torch::dropout(a.out, p, train);
    out.hidden = h + torch::dropout(mlp(mlp_norm(h)), p, train);
  } else {
    auto a = attn(x_q, ctx, x);
    const auto h = attn_norm(x_q + torch::dropout(a.out, p, train));
    out.hidden = mlp_norm(h + torch::dropout(mlp(h), p, train));
  }
  out.aux_loss = torch::zeros({}, x.options().dtype(torch::kFloat));
  return out;
}

}  // namespace biolm::nn

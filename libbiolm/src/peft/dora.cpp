#include "biolm/peft/dora.h"

#include <torch/torch.h>

#include "biolm/core/error.h"
#include "biolm/nn/dropout.h"

namespace biolm::peft {

DoraAdapterImpl::DoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options,
                                 const torch::Tensor& base_weight)
    : LoraAdapterImpl(in_features, out_features, options, base_weight) {
  BIOLM_CHECK(base_weight.defined() && base_weight.dim() == 2 && base_weight.size(0) == out_features &&
                  base_weight.size(1) == in_features,
              ShapeError, "DoraAdapter", "needs the base weight (out, in) to set the magnitude");
  torch::NoGradGuard no_grad;
  // PEFT's update_layer: m = ||W0 + s·B A||_c with B = 0, i.e. the row norms of W0.
  magnitude = register_parameter("lora_magnitude", weight_norm(base_weight).clone().set_requires_grad(false));
}

torch::Tensor DoraAdapterImpl::weight_norm(const torch::Tensor& weight) const {
  torch::NoGradGuard no_grad;
  const auto adapted = weight + scaling() * torch::matmul(lora_b, lora_a).to(weight.dtype());  // (out, in)
  return at::linalg_vector_norm(adapted, 2, /*dim=*/torch::IntArrayRef{1}, /*keepdim=*/false, c10::nullopt)
      .to(weight.dtype());
}

torch::Tensor DoraAdapterImpl::adapt(const torch::Tensor& x, const torch::Tensor& base_out, const nn::LinearImpl& base) {
  const double p = dropout();
  const bool drop = p > 0 && is_training();
  const auto h = drop ? nn::dropout(x, p, true) : x;
  // (out); the norm is a constant (§4.3). A quantized base is dequantized for it (a transient).
  const auto scale = magnitude / weight_norm(base.dense_weight());
  // (..., in) -> (..., r) -> (..., out)
  const auto lora_out = torch::matmul(torch::matmul(h, lora_a.t()), lora_b.t());
  // W0 h without the bias: recomputed on the dropped input, as PEFT does when dropout is active
  const auto base_wx = drop ? base.base_linear(h, /*with_bias=*/false)
                            : (base.bias.defined() ? base_out - base.bias : base_out);
  return base_out + (scale - 1) * base_wx + scale * (scaling() * lora_out);
}

void DoraAdapterImpl::merge_into(nn::LinearImpl& base) {
  merged_factor_ = (magnitude / weight_norm(base.weight)).unsqueeze(1).to(base.weight.dtype());
  base.weight.add_(delta_weight().to(base.weight.dtype())).mul_(merged_factor_);
}

void DoraAdapterImpl::unmerge_from(nn::LinearImpl& base) {
  BIOLM_CHECK(merged_factor_.defined(), ShapeError, "DoraAdapter", "unmerge without a merge");
  base.weight.div_(merged_factor_).sub_(delta_weight().to(base.weight.dtype()));
  merged_factor_ = torch::Tensor();
}

void DoraAdapterImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::peft::DoraAdapter(rank=" << lora_a.size(0) << ", scaling=" << scaling()
         << ", dropout=" << dropout() << ")";
}

}  // namespace biolm::peft

#include "biolm/nn/norm.h"

#include "biolm/core/error.h"
#include "biolm/nn/fused.h"

namespace biolm::nn {

NormImpl::NormImpl(const NormOptions& options_) : options(options_) { reset(); }

void NormImpl::reset() {
  BIOLM_CHECK(options.dim() > 0, ShapeError, "Norm", "dim must be positive");
  weight = register_parameter("weight", torch::empty({options.dim()}));
  const bool has_bias = options.kind() == NormKind::LayerNorm;
  bias = register_parameter("bias", has_bias ? torch::empty({options.dim()}) : torch::Tensor(), has_bias);
  reset_parameters();
}

void NormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(1.0);
  if (bias.defined()) bias.zero_();
}

void NormImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::nn::Norm(" << (options.kind() == NormKind::LayerNorm ? "LayerNorm" : "RMSNorm")
         << ", dim=" << options.dim() << ", eps=" << options.eps() << ")";
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  BIOLM_CHECK(x.dim() >= 1 && x.size(-1) == options.dim(), ShapeError, "Norm",
              "expected last dimension " + std::to_string(options.dim()));
  if (options.kind() == NormKind::LayerNorm) {
    return torch::layer_norm(x, {options.dim()}, weight, bias, options.eps());
  }
  return rms_norm(x, weight, options.eps());  // one fused pass on CPU float (nn/fused.h)
}

}  // namespace biolm::nn

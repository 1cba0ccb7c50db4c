#include "biolm/nn/mlp.h"

#include "biolm/core/error.h"
#include "biolm/nn/fused.h"

namespace biolm::nn {

torch::Tensor activate(const torch::Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::GeluErf:
      return nn::gelu(x);  // x * Phi(x), exact (erf); one fused pass on CPU float32 (nn/fused.h)
    case Activation::GeluTanh:
      return 0.5 * x * (1.0 + torch::tanh(0.7978845608028654 * (x + 0.044715 * x.pow(3))));  // sqrt(2/pi)
    case Activation::Relu:
      return torch::relu(x);
    case Activation::Silu:
    case Activation::SwiGLU:
      return torch::silu(x);
  }
  return x;
}

MlpImpl::MlpImpl(const MlpOptions& options_) : options(options_) { reset(); }

void MlpImpl::reset() {
  const int64_t C = options.hidden_size(), F = options.ffn_size();
  auto lin = [&](int64_t in, int64_t out) {
    return Linear(LinearOptions(in, out).bias(options.bias()).init_std(options.init_std()));
  };
  up = register_module("up", lin(C, F));
  if (options.activation() == Activation::SwiGLU) gate = register_module("gate", lin(C, F));
  down = register_module("down", lin(F, C));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  if (!gate.is_empty()) {
    if (options.activation() == Activation::SwiGLU) return down(swiglu(gate(x), up(x)));  // nn/fused.h
    return down(activate(gate(x), options.activation()) * up(x));  // (..., C)
  }
  return down(activate(up(x), options.activation()));
}

}  // namespace biolm::nn

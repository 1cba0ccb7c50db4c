// biolm/nn/mlp.h: the position-wise feed-forward network (Vaswani et al. 2017 §3.3).
//   plain:  down(act(up(x)))                  BERT (GELU erf), GPT-2 (GELU tanh)
//   gated:  down(silu(gate(x)) * up(x))       SwiGLU, LLaMA (Shazeer 2020, eq. 6)
// Registered: "up" (C->F), "gate" (C->F, gated only), "down" (F->C), all biolm::nn::Linear.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "biolm/nn/kinds.h"
#include "biolm/nn/linear.h"

namespace biolm::nn {

/// The element-wise activation (SwiGLU's gate uses Silu).
torch::Tensor activate(const torch::Tensor& x, Activation activation);

struct MlpOptions {
  MlpOptions(int64_t hidden_size, int64_t ffn_size) : hidden_size_(hidden_size), ffn_size_(ffn_size) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, ffn_size);
  TORCH_ARG(Activation, activation) = Activation::GeluErf;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(double, init_std) = 0.02;
};

class MlpImpl : public torch::nn::Cloneable<MlpImpl> {
 public:
  explicit MlpImpl(const MlpOptions& options);
  void reset() override;
  /// x: (..., C) -> (..., C)
  torch::Tensor forward(const torch::Tensor& x);

  MlpOptions options;
  Linear up{nullptr}, gate{nullptr}, down{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace biolm::nn

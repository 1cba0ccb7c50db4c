// biolm/nn/norm.h: LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019) as one module.
//
// Registered parameters: "weight" (C) and, for LayerNorm only, "bias" (C). RMSNorm follows HF
// LlamaRMSNorm: statistics in float32 for half/bf16 inputs, y = weight * (x / rms(x)).
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "biolm/nn/kinds.h"

namespace biolm::nn {

struct NormOptions {
  explicit NormOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(NormKind, kind) = NormKind::LayerNorm;
  TORCH_ARG(double, eps) = 1e-5;
};

class NormImpl : public torch::nn::Cloneable<NormImpl> {
 public:
  explicit NormImpl(const NormOptions& options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  /// x: (..., C) -> (..., C)
  torch::Tensor forward(const torch::Tensor& x);

  NormOptions options;
  torch::Tensor weight;  // (C)
  torch::Tensor bias;    // (C); undefined for RMSNorm
};
TORCH_MODULE(Norm);

}  // namespace biolm::nn

// biolm/peft/ia3.h: (IA)^3, learned rescaling vectors on named Linear layers.
//
// Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
// In-Context Learning", §3.3: keys and values are rescaled elementwise, l_k ⊙ k, l_v ⊙ v, and the
// FFN's hidden activation before the down projection, (l_ff ⊙ γ(W1 x)) W2. Vectors start at ones,
// so the adapted model equals the base at step 0.
//   output scaling (k_proj, v_proj): y = l ⊙ (x W^T + b),  l: (out)
//   input scaling  (FFN down):       y = (l ⊙ x) W^T + b,  l: (in)
// Parameter name: "<linear>.adapter.ia3_scale".
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <vector>

#include "biolm/nn/linear.h"

namespace biolm::peft {

struct Ia3Options {
  /// Linears whose outputs are rescaled (the paper's keys and values), e.g. {"**.k_proj", "**.v_proj"}.
  TORCH_ARG(std::vector<std::string>, targets);
  /// Linears whose inputs are rescaled (the paper's FFN down projection), e.g. {"**.mlp.down"}.
  TORCH_ARG(std::vector<std::string>, input_targets);

 public:
  /// Throws ConfigError("peft.ia3.targets") when both lists are empty or share a Linear.
  void validate() const;
};

class Ia3AdapterImpl : public nn::LinearAdapter {
 public:
  /// n = out_features (output scaling) or in_features (input scaling); the vector starts at ones.
  Ia3AdapterImpl(int64_t n, bool scale_input, const torch::Tensor& like);

  torch::Tensor adapt(const torch::Tensor& x, const torch::Tensor& base_out, const nn::LinearImpl& base) override;
  /// Output scaling: W <- diag(l) W, b <- l ⊙ b. Input scaling: W <- W diag(l).
  void merge_into(nn::LinearImpl& base) override;
  /// The inverse division; exact only while no element of l is zero.
  void unmerge_from(nn::LinearImpl& base) override;
  void pretty_print(std::ostream& stream) const override;
  bool scale_input() const { return scale_input_; }

  torch::Tensor ia3_scale;  // (out) or (in)

 private:
  bool scale_input_;
};

/// Attaches IA3 adapters; returns the adapted Linear names (outputs first, then inputs).
std::vector<std::string> apply_ia3(torch::nn::Module& model, const Ia3Options& options);

}  // namespace biolm::peft

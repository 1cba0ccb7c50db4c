// biolm/peft/dora.h: DoRA, weight-decomposed low-rank adaptation.
//
// Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", §4.1 eq. (5):
//   W' = m · (W0 + s·B A) / ||W0 + s·B A||_c
// the adapted weight split into a magnitude m (one per output row, trained) and a direction
// (the LoRA-adapted weight normalised row by row). m starts at ||W0||_c (B = 0), so the model
// equals the base at step 0. §4.3: the norm is treated as a constant in backpropagation (detached),
// which PEFT does too. Computed as PEFT's DoraLinearLayer.forward (peft/tuners/lora/dora.py):
//   y = W0 x + b + (m/n - 1) · W0 x + (m/n) · s · B A x,   n = ||W0 + s·B A||_c (detached)
// so no adapted weight is materialised; only n needs W0 (row norms, out values).
// Tested against PEFT LoraConfig(use_dora=True) by tests/parity/test_peft.py (outputs both ways,
// gradients of one step); the magnitude's PEFT key is "<module>.lora_magnitude_vector".
// Switched on by LoraOptions::use_dora (config key peft.lora.use_dora); apply_lora attaches a
// DoraAdapter instead of a LoraAdapter.
#pragma once

#include "biolm/peft/lora.h"

namespace biolm::peft {

class DoraAdapterImpl : public LoraAdapterImpl {
 public:
  /// `base_weight` (out, in) sets the magnitude to its row norms (the adapter starts at B = 0).
  DoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options,
                  const torch::Tensor& base_weight);

  torch::Tensor adapt(const torch::Tensor& x, const torch::Tensor& base_out, const nn::LinearImpl& base) override;
  /// W <- (m / n) · (W + s·B A); unmerge divides by the same factor and subtracts s·B A.
  void merge_into(nn::LinearImpl& base) override;
  void unmerge_from(nn::LinearImpl& base) override;
  void pretty_print(std::ostream& stream) const override;

  /// n = ||W0 + s·B A||_c for the base weight `weight` (out, in), detached: (out).
  torch::Tensor weight_norm(const torch::Tensor& weight) const;

  torch::Tensor magnitude;  // (out), PEFT's lora_magnitude_vector

 private:
  torch::Tensor merged_factor_;  // m / n at merge time, (out, 1)
};

}  // namespace biolm::peft

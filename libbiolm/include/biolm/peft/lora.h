// biolm/peft/lora.h: LoRA, low-rank adaptation of named Linear layers.
//
// Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", §4.1:
//   h = W0 x + (alpha / r) · B A x,   A: (r, in), B: (out, r), W0 frozen.
// A is initialised kaiming-uniform (a = sqrt(5), as Hugging Face PEFT's LoraLayer), B = 0, so
// the adapted model equals the base at step 0. rsLoRA (Kalajdzievski 2023) scales by
// alpha / sqrt(r) instead, which keeps the update's magnitude stable as r grows.
// The adapter is a LinearAdapter in the Linear's "adapter" slot: parameters are named
// "<linear>.adapter.lora_a" / "<linear>.adapter.lora_b"; the base keeps "<linear>.weight".
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "biolm/nn/linear.h"

namespace biolm::peft {

/// Name pattern -> rank / alpha (LoraOptions::rank_pattern / alpha_pattern).
using RankPattern = std::map<std::string, int64_t>;
using AlphaPattern = std::map<std::string, double>;

struct LoraOptions {
  LoraOptions() = default;
  LoraOptions(int64_t rank, double alpha) : rank_(rank), alpha_(alpha) {}
  /// r, the rank of B A.
  TORCH_ARG(int64_t, rank) = 8;
  /// alpha; the update is scaled by alpha / r (or alpha / sqrt(r) with rank_stabilized).
  TORCH_ARG(double, alpha) = 16.0;
  /// Dropout on the adapter's input (training only), as in PEFT's lora_dropout.
  TORCH_ARG(double, dropout) = 0.0;
  /// Full dotted names of the Linears to adapt (see pattern.h), e.g. {"**.q_proj", "**.v_proj"}.
  TORCH_ARG(std::vector<std::string>, targets);
  /// rsLoRA scaling alpha / sqrt(r).
  TORCH_ARG(bool, rank_stabilized) = false;
  /// Per-Linear overrides, PEFT's rank_pattern / alpha_pattern: the first pattern (pattern.h
  /// syntax, in key order) matching a Linear's full name sets its rank / alpha.
  TORCH_ARG(RankPattern, rank_pattern);
  TORCH_ARG(AlphaPattern, alpha_pattern);
  /// DoRA (peft/dora.h): a trained magnitude per output row on top of the LoRA direction.
  TORCH_ARG(bool, use_dora) = false;


 public:
  double scaling() const;
  /// These options with rank and alpha as the patterns set them for the Linear `name`.
  LoraOptions for_module(const std::string& name) const;
  /// Throws ConfigError("peft.lora.<field>") for r <= 0, alpha <= 0, dropout outside [0, 1), no targets.
  void validate() const;
};

class LoraAdapterImpl : public nn::LinearAdapter {
 public:
  /// A and B on the device and dtype of `like` (the base weight).
  LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options,
                  const torch::Tensor& like);

  torch::Tensor adapt(const torch::Tensor& x, const torch::Tensor& base_out, const nn::LinearImpl& base) override;
  void merge_into(nn::LinearImpl& base) override;
  void unmerge_from(nn::LinearImpl& base) override;
  void pretty_print(std::ostream& stream) const override;

  /// scaling · B A, shape (out, in): what merging adds to the base weight.
  torch::Tensor delta_weight() const;
  double scaling() const { return scaling_; }
  double dropout() const { return dropout_; }

  /// Per-example gradients (DP-SGD, train/dp.h): when set, adapt calls tap(h, u) with the
  /// adapter's input after dropout h (..., in) and u = h A^T (..., r).
  std::function<void(const torch::Tensor& h, const torch::Tensor& u)> forward_tap;

  torch::Tensor lora_a;  // (r, in)
  torch::Tensor lora_b;  // (out, r)

 private:
  double scaling_;
  double dropout_;
};

/// Attaches a fresh LoRA adapter (DoRA with options.use_dora()) to every Linear matched by
/// options.targets(); returns their names. Does not change requires_grad of anything else (peft::apply freezes).
std::vector<std::string> apply_lora(torch::nn::Module& model, const LoraOptions& options);

}  // namespace biolm::peft

// biolm/nn/embeddings.h: the input embedding sum of BERT (Devlin et al. 2019 §3, Fig. 2) and GPT:
//   h = tok[input_ids] + pos[position_ids] + type[token_type_ids], then optional norm and dropout.
// Registered: "tok" (V,C), "pos" (P,C) when max_positions > 0, "type" (TV,C) when
// type_vocab_size > 0, "norm" when norm is on.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "biolm/nn/kinds.h"
#include "biolm/nn/linear.h"
#include "biolm/nn/norm.h"

namespace biolm::nn {

struct EmbeddingsOptions {
  EmbeddingsOptions(int64_t vocab_size, int64_t hidden_size) : vocab_size_(vocab_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, max_positions) = 0;    ///< learned position rows; 0 = no position table
  TORCH_ARG(int64_t, type_vocab_size) = 0;  ///< 0 = no token types
  TORCH_ARG(bool, norm) = false;
  TORCH_ARG(NormKind, norm_kind) = NormKind::LayerNorm;
  TORCH_ARG(double, norm_eps) = 1e-12;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(double, init_std) = 0.02;
};

class EmbeddingsImpl : public torch::nn::Cloneable<EmbeddingsImpl> {
 public:
  explicit EmbeddingsImpl(const EmbeddingsOptions& options);
  void reset() override;
  void reset_parameters();
  /// input_ids (B,T) int64, or inputs_embeds (B,T,C) when defined (prompt tuning: used instead of
  /// tok[input_ids]); position_ids (B,T) (required when the position table exists);
  /// token_type_ids (B,T) (zeros when undefined). Returns (B,T,C).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                        const torch::Tensor& token_type_ids, const torch::Tensor& inputs_embeds = {});

  EmbeddingsOptions options;
  torch::nn::Embedding tok{nullptr};
  torch::nn::Embedding pos{nullptr};
  torch::nn::Embedding type{nullptr};
  Norm norm{nullptr};
};
TORCH_MODULE(Embeddings);

/// Ties `linear`'s weight to `weight` (e.g. lm_head to embeddings.tok.weight): linear.weight becomes
/// the very same tensor and "weight" is removed from linear's own registered parameters, so the
/// shared tensor is trained, counted and saved once (under the embedding's name).
void tie_weight(LinearImpl& linear, const torch::Tensor& weight);

}  // namespace biolm::nn

// biolm/peft/prompt_tuning.h: soft prompts (prompt tuning).
//
// Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning", §2: P learned
// embeddings (P, C) are prepended to the token embeddings of every input; only they are trained.
// The model receives `inputs_embeds` (B, P+T, C) instead of `input_ids`; the attention mask is
// extended with ones, token-level labels with -100 (no loss on virtual tokens), token_type_ids
// with 0, and position_ids with 0..P-1 followed by the original positions shifted by P. A
// multiple-choice batch (choice_ids (B,K,T)) gets the prompt in front of each of its K option rows.
// A decoder generates with the prompt in front of the prompt tokens (models::generate prefills
// with it, so the KV cache holds it, as PEFT's prompt-tuned generate() does).
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "biolm/data/batch.h"
#include "biolm/models/trainable.h"

namespace biolm::peft {

struct PromptTuningOptions {
  PromptTuningOptions() = default;
  PromptTuningOptions(int64_t n_virtual_tokens, int64_t hidden) : n_virtual_tokens_(n_virtual_tokens), hidden_(hidden) {}
  /// P, the number of soft prompt tokens.
  TORCH_ARG(int64_t, n_virtual_tokens) = 20;
  /// C, the model's hidden size.
  TORCH_ARG(int64_t, hidden) = 0;
  /// std of the normal init when no init_from_ids embedding is given.
  TORCH_ARG(double, init_std) = 0.02;

 public:
  void validate() const;
};

/// A models::InputPrefix, so TrainableModel::run prepends it without models/ knowing peft/.
class SoftPromptImpl : public torch::nn::Cloneable<SoftPromptImpl>, public models::InputPrefix {
 public:
  explicit SoftPromptImpl(const PromptTuningOptions& options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// Initialise from embeddings of real tokens (PEFT's "TEXT" init): rows of `token_embeds`
  /// (n, C) repeated cyclically to fill P rows.
  void init_from(const torch::Tensor& token_embeds);

  /// batch with inputs_embeds = cat(prompt, token_embeds) (B, P+T, C) and extended masks/labels;
  /// input_ids is removed. token_embeds: (B, T, C), the model's embedding of batch.input_ids, or
  /// (B, K, T, C) for choice_ids (B, K, T): every option row gets the prompt, so inputs_embeds is
  /// (B, K, P+T, C) and the per-token tensors (B, K, P+T); per-example ones (labels (B),
  /// choice_mask (B, K)) stay as they are.
  /// Throws ConfigError for packed batches (segment_ids): a prompt per packed example is not defined.
  data::Batch prepend(const data::Batch& batch, const torch::Tensor& token_embeds) const override;
  int64_t n_prefix_tokens() const override { return options.n_virtual_tokens(); }
  std::shared_ptr<torch::nn::Module> prefix_module() override { return shared_from_this(); }

  PromptTuningOptions options;
  torch::Tensor embeddings;  // (P, C)
};
TORCH_MODULE(SoftPrompt);

}  // namespace biolm::peft

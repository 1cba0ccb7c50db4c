// biolm/models/trainable.h: what a model must provide to be trained and adapted.
//
// Every libbiolm task model (Encoder/Decoder + head, models/task_model.h) is a TrainableModel.
// The trainer, evaluation code and a user's program call run(batch): it prepends a soft prompt
// (prompt tuning) when one is attached and returns the batch's SUMMED loss and its target count,
// the one training entry point. A model implements it by overriding forward_batch.
//
// The loss contract (docs/trainer.md): loss_sum is the sum of the per-target losses, computed by
// the head with reduction "sum" (never a mean multiplied back); gradient accumulation and data
// parallelism divide the step's summed loss by the step's total target count once.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>

#include "biolm/data/batch.h"

namespace biolm::models {

/// What one forward pass over a batch returns.
struct StepOutput {
  /// Scalar: the SUM (not the mean) of the per-target losses of the batch, float32 (float64 for
  /// a double-precision model); undefined when the batch has no labels. Gradient accumulation and
  /// data parallelism divide by the total target count of the whole step.
  torch::Tensor loss_sum;
  /// Number of positions that carry a loss (labels != -100): tokens for LM / token tasks,
  /// examples for sequence tasks. loss_sum / n_target_tokens is the batch's mean loss.
  int64_t n_target_tokens = 0;
  /// The head's output (for evaluation callbacks); may be undefined during training.
  torch::Tensor logits;
};

/// Something that rewrites a batch before the model sees it by prepending learned input vectors:
/// the soft prompt of prompt tuning (peft::SoftPromptImpl). The model only knows this interface,
/// so models/ does not depend on peft/. Not itself a Module (LibTorch 2.x's Cloneable derives
/// from Module non-virtually, so a second Module base would be ambiguous): prefix_module() is the
/// module that holds its parameters, registered as the model's "soft_prompt".
class InputPrefix {
 public:
  virtual ~InputPrefix() = default;
  /// `batch` with inputs_embeds = cat(prefix, token_embeds) and masks/labels extended (see
  /// peft/prompt_tuning.h); token_embeds (B,T,C) is the model's embedding of batch.input_ids,
  /// or (B,K,T,C) of a multiple-choice batch's choice_ids.
  virtual data::Batch prepend(const data::Batch& batch, const torch::Tensor& token_embeds) const = 0;
  /// P, the number of positions prepended.
  virtual int64_t n_prefix_tokens() const = 0;
  /// The module holding the prefix's parameters (the same object).
  virtual std::shared_ptr<torch::nn::Module> prefix_module() = 0;
};

class TrainableModel : public torch::nn::Module {
 public:
  /// THE entry point: forward_batch after prepending the soft prompt when one is attached.
  /// loss_sum is the summed loss (see StepOutput); token-level logits are (B,P+T,...) with a soft
  /// prompt (per-example logits, e.g. multiple choice's (B,K), keep their shape).
  StepOutput run(const data::Batch& batch);

  /// Token embedding lookup, (...,T) int64 -> (...,T,C). Needed only for prompt tuning; the default
  /// throws ConfigError("peft.method").
  virtual torch::Tensor embed_tokens(const torch::Tensor& input_ids);

  /// Activation checkpointing (recompute block activations in backward). The default accepts
  /// false and throws ConfigError("train.activation_checkpointing") for true.
  virtual void set_activation_checkpointing(bool enabled);

  /// Why DP-SGD cannot run on this model, if it cannot (train/dp.h): a forward pass that mixes
  /// examples (statistics over the batch, a loss term over all examples, rows of several examples
  /// gathered into one tensor). nullopt (the default): every example's loss depends on its row only.
  virtual std::optional<std::string> dp_refusal() const { return std::nullopt; }

  /// Registers `prompt` as submodule "soft_prompt" (replacing a previous one).
  void attach_soft_prompt(std::shared_ptr<InputPrefix> prompt);
  const std::shared_ptr<InputPrefix>& soft_prompt() const { return soft_prompt_; }

 protected:
  /// The model's summed loss on `batch` (names in data/batch.h). Must honour, when present:
  ///   inputs_embeds (B,T,C) instead of input_ids (prompt tuning passes it),
  ///   attention_mask, and segment_ids (packed examples never attend across segments).
  /// Called by run(); callers outside the model call run().
  virtual StepOutput forward_batch(const data::Batch& batch) = 0;

 private:
  std::shared_ptr<InputPrefix> soft_prompt_;
};

}  // namespace biolm::models

// biolm/train/model.h: what a model must provide to be trained and adapted.
//
// Every libbiolm model (Encoder/Decoder + head) derives from TrainableModel and implements
// forward_batch. The trainer, evaluation code and peft call run(), which applies a soft prompt
// (prompt tuning) when one is attached and then calls forward_batch.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>

#include "biolm/data/batch.h"

namespace biolm::peft {
class SoftPromptImpl;
}

namespace biolm::train {

/// What one forward pass over a batch returns.
struct StepOutput {
  /// Scalar: the SUM (not the mean) of the per-target losses of the batch, float32. Gradient
  /// accumulation and data parallelism divide by the total target count of the whole step.
  torch::Tensor loss_sum;
  /// Number of positions that carry a loss (labels != -100): tokens for LM / token tasks,
  /// examples for sequence tasks. loss_sum / n_target_tokens is the batch's mean loss.
  int64_t n_target_tokens = 0;
  /// The head's output (for evaluation callbacks); may be undefined during training.
  torch::Tensor logits;
};

class TrainableModel : public torch::nn::Module {
 public:
  /// The model's loss on `batch` (names in data/batch.h). Must honour, when present:
  ///   inputs_embeds (B,T,C) instead of input_ids (prompt tuning passes it),
  ///   attention_mask, and segment_ids (packed examples never attend across segments).
  virtual StepOutput forward_batch(const data::Batch& batch) = 0;

  /// Token embedding lookup, (B,T) int64 -> (B,T,C). Needed only for prompt tuning; the default
  /// throws ConfigError("peft.method").
  virtual torch::Tensor embed_tokens(const torch::Tensor& input_ids);

  /// Activation checkpointing (recompute block activations in backward). The default accepts
  /// false and throws ConfigError("train.activation_checkpointing") for true.
  virtual void set_activation_checkpointing(bool enabled);

  /// Why DP-SGD cannot run on this model, if it cannot (train/dp.h): a forward pass that mixes
  /// examples (statistics over the batch, a loss term over all examples, rows of several examples
  /// gathered into one tensor). nullopt (the default): every example's loss depends on its row only.
  virtual std::optional<std::string> dp_refusal() const { return std::nullopt; }

  /// forward_batch, after prepending the soft prompt when one is attached. Call this, not
  /// forward_batch, from outside the model.
  StepOutput run(const data::Batch& batch);

  /// Registers `prompt` as submodule "soft_prompt" (replacing a previous one).
  void attach_soft_prompt(std::shared_ptr<peft::SoftPromptImpl> prompt);
  const std::shared_ptr<peft::SoftPromptImpl>& soft_prompt() const { return soft_prompt_; }

 private:
  std::shared_ptr<peft::SoftPromptImpl> soft_prompt_;
};

}  // namespace biolm::train

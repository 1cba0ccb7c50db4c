#include "biolm/models/trainable.h"

#include "biolm/core/error.h"

namespace biolm::models {

torch::Tensor TrainableModel::embed_tokens(const torch::Tensor&) {
  throw ConfigError("peft.method", name() + " does not implement embed_tokens, which prompt tuning needs");
}

void TrainableModel::set_activation_checkpointing(bool enabled) {
  BIOLM_CHECK(!enabled, ConfigError, "train.activation_checkpointing", name() + " does not support it");
}

StepOutput TrainableModel::run(const data::Batch& batch) {
  if (!soft_prompt_) return forward_batch(batch);
  // Multiple-choice batches carry their tokens as choice_ids (B,K,T) (data/batch.h).
  const auto& ids = batch.has("choice_ids") ? batch.at("choice_ids") : batch.at("input_ids");
  return forward_batch(soft_prompt_->prepend(batch, embed_tokens(ids)));
}

void TrainableModel::attach_soft_prompt(std::shared_ptr<InputPrefix> prompt) {
  BIOLM_CHECK(prompt != nullptr, Error, "attach_soft_prompt: no prompt");
  if (soft_prompt_) unregister_module("soft_prompt");
  register_module("soft_prompt", prompt->prefix_module());
  soft_prompt_ = std::move(prompt);
}

}  // namespace biolm::models

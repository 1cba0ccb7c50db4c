// biolm/models/task_model.h: task heads on a body, with their losses, behind one interface a
// trainer can call uniformly: `model->run(batch).loss_sum` (models/trainable.h).
//
// A task model registers the body's children at its top level, so parameter names are
//   embeddings.*, layers.N.*, final_norm.*   (the body)
//   lm_head, mlm_head.{dense,norm}, classifier, qa_outputs, pooler.dense   (the heads)
// Losses are SUMS over the counted targets (labels != data::kIgnoreIndex), computed with
// reduction "sum", with the count beside them: the trainer divides the step's sum by the step's
// count once (gradient accumulation, data parallelism); mean_loss() is the batch's mean, as
// transformers reports it. MoE bodies add their weighted load-balancing loss, once per target,
// so that mean_loss() = task mean + aux as in transformers.
#pragma once

#include "biolm/models/trainable.h"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>

#include "biolm/data/batch.h"
#include "biolm/models/config.h"
#include "biolm/models/transformer.h"
#include "biolm/nn/linear.h"
#include "biolm/nn/norm.h"

namespace biolm::models {

/// A head's typed output: StepOutput's loss_sum / n_target_tokens / logits (shape per head, see
/// each class) and what only some heads have.
struct TaskOutput : StepOutput {
  std::map<std::string, torch::Tensor> extra;  ///< e.g. "start_logits", "end_logits", "aux_loss", "target_index"
  KVCache cache;                ///< causal LM with use_cache
  /// loss_sum / n_target_tokens (0 when nothing counted); undefined without labels.
  torch::Tensor mean_loss() const;
};

/// Base of every task model.
/// Every task model is a TrainableModel: the trainer, peft and evaluation call run(batch)
/// (which prepends a soft prompt when one is attached) and get the summed loss back; a caller
/// that has the tensors at hand calls the head's typed forward(inputs, labels).
class TaskModelImpl : public TrainableModel, public nn::BlockSequence {
 public:
  TaskModelImpl(const ModelConfig& config, TaskKind task, int64_t n_labels);
  /// Token embedding lookup for prompt tuning, (B,T) -> (B,T,C).
  torch::Tensor embed_tokens(const torch::Tensor& input_ids) override;
  /// Recompute every block in backward (config.gradient_checkpointing at run time).
  void set_activation_checkpointing(bool enabled) override;

  TaskKind task() const { return task_; }
  int64_t n_labels() const { return n_labels_; }
  const ModelConfig& config() const { return body_->config(); }
  TransformerImpl& body() { return *body_; }
  const std::shared_ptr<TransformerImpl>& body_ptr() const { return body_; }
  /// The body's blocks (its children are registered here, not the body itself).
  std::vector<std::shared_ptr<torch::nn::Module>> sharding_blocks() override { return body_->sharding_blocks(); }
  void set_block_gather(std::shared_ptr<nn::BlockGather> gather) override { body_->set_block_gather(std::move(gather)); }
  void train(bool on = true) override;
  /// MoE bodies are refused: top-k routing with capacity and the load-balancing loss depend on
  /// every example of the batch.
  std::optional<std::string> dp_refusal() const override;

  /// input_ids, attention_mask, token_type_ids, position_ids, segment_ids, inputs_embeds from a batch.
  static ModelInputs inputs_from_batch(const data::Batch& batch);

 protected:
  /// One vector per sequence (B,C): [CLS] through the pooler for encoders (when config.pooler),
  /// the last real token for decoders (works with left and right padding).
  torch::Tensor pool(const torch::Tensor& hidden, const torch::Tensor& attention_mask);
  /// Adds the body's aux loss, once per target, to out.loss_sum (and records it in out.extra["aux_loss"]).
  void add_aux(TaskOutput& out, const BodyOutput& body_out) const;
  torch::Tensor dropout(const torch::Tensor& x) const;

  std::shared_ptr<TransformerImpl> body_;
  nn::Linear pooler_dense{nullptr};  // registered as "pooler.dense"
  TaskKind task_;
  int64_t n_labels_;
};

/// BERT masked-LM head: lm_head(norm(act(dense(h)))) + vocab bias; lm_head tied to
/// embeddings.tok.weight when config.tie_embeddings.
class MaskedLMModelImpl : public TaskModelImpl {
 public:
  explicit MaskedLMModelImpl(const ModelConfig& config);
  /// labels (B,T), -100 = not masked. With labels and sparse_logits, logits are (N,V) for the N
  /// target positions only (extra["target_index"] (N,2) holds their (b,t)); otherwise (B,T,V).
  TaskOutput forward(const ModelInputs& inputs, const torch::Tensor& labels = {});

 protected:
  /// Reads the tensors this head needs from `batch` (names in data/batch.h) and calls forward.
  StepOutput forward_batch(const data::Batch& batch) override;

 public:
  /// sparse_logits gathers the target rows of all examples into one (N,C) tensor: refused.
  std::optional<std::string> dp_refusal() const override;
  bool sparse_logits = true;
  /// With sparse_logits: the body's last block runs at the target positions only
  /// (ModelInputs.output_positions); false computes every position and picks the rows after.
  bool sparse_last_layer = true;

  nn::Linear mlm_dense{nullptr};  // "mlm_head.dense"
  nn::Norm mlm_norm{nullptr};     // "mlm_head.norm"
  nn::Linear lm_head{nullptr};
};

/// Next-token prediction: logits (B,T,V); the loss compares logits[:, t] with labels[:, t+1]
/// (labels default to input_ids with padding ignored; the first token of each packed segment is
/// never a target of the previous segment's last token).
class CausalLMModelImpl : public TaskModelImpl {
 public:
  explicit CausalLMModelImpl(const ModelConfig& config);
  TaskOutput forward(const ModelInputs& inputs, const torch::Tensor& labels = {});

 protected:
  /// Reads the tensors this head needs from `batch` (names in data/batch.h) and calls forward.
  StepOutput forward_batch(const data::Batch& batch) override;

 public:

  nn::Linear lm_head{nullptr};
};

/// Per-token labels (NER): logits (B,T,n_labels), labels (B,T).
class TokenClassificationModelImpl : public TaskModelImpl {
 public:
  TokenClassificationModelImpl(const ModelConfig& config, int64_t n_labels);
  TaskOutput forward(const ModelInputs& inputs, const torch::Tensor& labels = {});

 protected:
  /// Reads the tensors this head needs from `batch` (names in data/batch.h) and calls forward.
  StepOutput forward_batch(const data::Batch& batch) override;

 public:

  nn::Linear classifier{nullptr};
};

/// One label per sequence or sentence pair (token_type_ids / [SEP] mark the pair): logits
/// (B,n_labels), labels (B), cross entropy. With regression = true: logits (B) and MSE against
/// float scores (B) (batch "scores", or "labels").
class SequenceClassificationModelImpl : public TaskModelImpl {
 public:
  SequenceClassificationModelImpl(const ModelConfig& config, int64_t n_labels, bool regression = false);
  TaskOutput forward(const ModelInputs& inputs, const torch::Tensor& labels = {});

 protected:
  /// Reads the tensors this head needs from `batch` (names in data/batch.h) and calls forward.
  StepOutput forward_batch(const data::Batch& batch) override;

 public:
  bool regression() const { return regression_; }

  nn::Linear classifier{nullptr};

 private:
  bool regression_;
};

/// Extractive QA: logits (B,T,2), extra start_logits/end_logits (B,T); loss = mean of the start
/// and end cross entropies over examples whose positions are not -100.
class SpanQAModelImpl : public TaskModelImpl {
 public:
  explicit SpanQAModelImpl(const ModelConfig& config);
  TaskOutput forward(const ModelInputs& inputs, const torch::Tensor& start_positions = {},
                     const torch::Tensor& end_positions = {});

 protected:
  /// Reads the tensors this head needs from `batch` (names in data/batch.h) and calls forward.
  StepOutput forward_batch(const data::Batch& batch) override;

 public:

  nn::Linear qa_outputs{nullptr};
};

/// Multiple choice: inputs (B,K,T) (input_ids, or batch "choice_ids"; attention_mask and
/// token_type_ids (B,K,T) too), one pooled score per choice: logits (B,K), labels (B).
class MultipleChoiceModelImpl : public TaskModelImpl {
 public:
  explicit MultipleChoiceModelImpl(const ModelConfig& config);
  /// choice_mask (B,K), optional: 0 marks a padding option (a row with fewer options than the
  /// batch's K), scored -inf so it is never predicted and takes no probability mass.
  TaskOutput forward(const ModelInputs& inputs, const torch::Tensor& labels = {},
                     const torch::Tensor& choice_mask = {});

 protected:
  /// Reads the tensors this head needs from `batch` (names in data/batch.h) and calls forward.
  StepOutput forward_batch(const data::Batch& batch) override;

 public:

  nn::Linear classifier{nullptr};
};

TORCH_MODULE(MaskedLMModel);
TORCH_MODULE(CausalLMModel);
TORCH_MODULE(TokenClassificationModel);
TORCH_MODULE(SequenceClassificationModel);
TORCH_MODULE(SpanQAModel);
TORCH_MODULE(MultipleChoiceModel);

/// Builds the task model; n_labels is used by token and sequence classification. ConfigError
/// for TaskKind::Base (it has no loss), for n_labels < 1 where needed, and for the masked-LM head on a
/// decoder or the causal-LM head on an encoder.
std::shared_ptr<TaskModelImpl> make_task_model(const ModelConfig& config, TaskKind task, int64_t n_labels = 2);

/// Parameter-name patterns of the parts a task adds on top of the body and initialises afresh
/// ("classifier.**", "pooler.**", "qa_outputs.**", whichever the model has; none for the LM
/// heads, which come with pretrained weights): what an adapter method trains in full next to its
/// adapter (peft::MethodConfig::train_patterns, PEFT's modules_to_save).
std::vector<std::string> task_head_patterns(const TaskModelImpl& model);

/// Summed cross entropy (reduction "sum", in float32 at least) over rows whose label is not -100:
/// logits (N,K), labels (N). Returns the sum (0, still attached to the graph, when nothing counts)
/// and the number of rows counted.
std::pair<torch::Tensor, int64_t> masked_cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace biolm::models

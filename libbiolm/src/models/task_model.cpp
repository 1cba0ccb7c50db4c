#include "biolm/models/task_model.h"

#include <limits>

#include "biolm/core/error.h"
#include "biolm/nn/dropout.h"
#include "biolm/nn/embeddings.h"
#include "biolm/nn/fused.h"
#include "biolm/nn/mlp.h"

namespace biolm::models {

using data::kIgnoreIndex;

std::pair<torch::Tensor, int64_t> masked_cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t K = logits.size(-1);
  const auto flat_logits = logits.reshape({-1, K});  // a view when logits are contiguous: no copy
  const auto flat_labels = labels.reshape({-1}).to(logits.device(), torch::kLong);
  BIOLM_CHECK(flat_logits.size(0) == flat_labels.size(0), ShapeError, "loss",
              "logits have " + std::to_string(flat_logits.size(0)) + " rows, labels " +
                  std::to_string(flat_labels.size(0)));
  // The count and the range check in one host read (one device sync on CUDA, not three).
  const auto keep = flat_labels != kIgnoreIndex;
  const auto out_of_range = keep & ((flat_labels < 0) | (flat_labels >= K));
  const auto stats = torch::stack({keep.sum(), out_of_range.sum()}).to(torch::kCPU);
  const int64_t n = stats[0].item<int64_t>();
  BIOLM_CHECK(stats[1].item<int64_t>() == 0, ShapeError, "loss",
              "labels must be in [0, " + std::to_string(K) + ") or -100");
  if (n == 0) return {flat_logits.sum() * 0.0, 0};
  // Cross entropy in float32 at least: bf16 log-softmax over a large vocabulary is too coarse.
  // Ignored rows are skipped by the loss itself (ignore_index), so the logits are never gathered
  // into a copy: that copy and its scatter in backward cost as much as the log-softmax.
  // On the CPU (float32/64) one fused pass each way (nn::cross_entropy_sum).
  const auto x = flat_logits.scalar_type() == torch::kDouble ? flat_logits : flat_logits.to(torch::kFloat);
  return {nn::cross_entropy_sum(x, flat_labels, kIgnoreIndex), n};
}

torch::Tensor TaskOutput::mean_loss() const {
  if (!loss_sum.defined()) return loss_sum;
  return n_target_tokens > 0 ? loss_sum / static_cast<double>(n_target_tokens) : loss_sum;
}

// ---- base ---------------------------------------------------------------------------------------

TaskModelImpl::TaskModelImpl(const ModelConfig& config, TaskKind task, int64_t n_labels)
    : body_(make_body(config)), task_(task), n_labels_(n_labels) {
  // The body's children become ours: names are "embeddings...", "layers.N...", not "body...".
  for (const auto& child : body_->named_children()) register_module(child.key(), child.value());
}

std::optional<std::string> TaskModelImpl::dp_refusal() const {
  if (config().moe.n_experts > 0)
    return "a mixture-of-experts body (model.moe.n_experts > 0) routes tokens with capacity limits and a "
           "load-balancing loss computed over the whole batch, so one example changes the others' gradients";
  return std::nullopt;
}

std::optional<std::string> MaskedLMModelImpl::dp_refusal() const {
  if (auto r = TaskModelImpl::dp_refusal()) return r;
  if (sparse_logits)
    return "the masked-LM head with sparse_logits gathers the target rows of all examples into one (N,C) "
           "tensor; set sparse_logits = false";
  return std::nullopt;
}

void TaskModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  body_->train(on);
}

ModelInputs TaskModelImpl::inputs_from_batch(const data::Batch& b) {
  ModelInputs in;
  auto get = [&](const char* name) { return b.has(name) ? b.tensors.at(name) : torch::Tensor(); };
  in.input_ids = get("input_ids");
  in.attention_mask = get("attention_mask");
  in.token_type_ids = get("token_type_ids");
  in.position_ids = get("position_ids");
  in.segment_ids = get("segment_ids");
  in.inputs_embeds = get("inputs_embeds");
  return in;
}

torch::Tensor TaskModelImpl::dropout(const torch::Tensor& x) const {
  return nn::dropout(x, config().hidden_dropout, is_training());
}

torch::Tensor TaskModelImpl::pool(const torch::Tensor& hidden, const torch::Tensor& attention_mask) {
  const int64_t B = hidden.size(0), T = hidden.size(1);
  if (!config().is_decoder()) {
    const auto cls = hidden.select(1, 0);  // (B,C)
    return pooler_dense.is_empty() ? cls : torch::tanh(pooler_dense(cls));
  }
  torch::Tensor last;
  if (attention_mask.defined()) {
    // The largest t with mask 1: right padding -> length-1, left padding -> T-1.
    const auto t = torch::arange(T, attention_mask.options().dtype(torch::kLong)).expand({B, T});
    last = (t * attention_mask.ne(0).to(torch::kLong)).argmax(1);
  } else {
    last = torch::full({B}, T - 1, hidden.options().dtype(torch::kLong));
  }
  return hidden.index({torch::arange(B, last.options()), last.to(hidden.device())});  // (B,C)
}

void TaskModelImpl::add_aux(TaskOutput& out, const BodyOutput& body_out) const {
  out.extra["aux_loss"] = body_out.aux_loss;
  // Once per target: the mean loss is then task mean + aux, as transformers adds it.
  if (out.loss_sum.defined() && config().moe.n_experts > 0)
    out.loss_sum = out.loss_sum + body_out.aux_loss.to(out.loss_sum.scalar_type()) * static_cast<double>(out.n_target_tokens);
}

namespace {

nn::Linear make_linear(const ModelConfig& c, int64_t in, int64_t out, bool bias) {
  return nn::Linear(nn::LinearOptions(in, out).bias(bias).init_std(c.init_std));
}

// Registers "pooler.dense" on `owner` for encoder sequence-level heads (config.pooler).
nn::Linear make_pooler(torch::nn::Module& owner, const ModelConfig& c) {
  if (c.is_decoder() || !c.pooler) return nn::Linear(nullptr);
  auto pooler = std::make_shared<torch::nn::Module>("Pooler");
  auto dense = pooler->register_module("dense", make_linear(c, c.hidden_size, c.hidden_size, true));
  owner.register_module("pooler", pooler);
  return dense;
}

torch::Tensor batch_tensor(const data::Batch& b, const char* name) {
  return b.has(name) ? b.tensors.at(name) : torch::Tensor();
}

}  // namespace

// ---- masked LM ----------------------------------------------------------------------------------

MaskedLMModelImpl::MaskedLMModelImpl(const ModelConfig& c) : TaskModelImpl(c, TaskKind::MaskedLM, c.vocab_size) {
  BIOLM_CHECK(!c.is_decoder(), ConfigError, "model.family", "the masked-LM head needs an encoder");
  auto head = std::make_shared<torch::nn::Module>("MaskedLMHead");
  mlm_dense = head->register_module("dense", make_linear(c, c.hidden_size, c.hidden_size, true));
  mlm_norm = head->register_module("norm", nn::Norm(nn::NormOptions(c.hidden_size).kind(c.norm).eps(c.norm_eps)));
  register_module("mlm_head", head);
  lm_head = register_module("lm_head", make_linear(c, c.hidden_size, c.vocab_size, /*bias=*/true));
  if (c.tie_embeddings) nn::tie_weight(*lm_head, body_->embeddings->tok->weight);
}

TaskOutput MaskedLMModelImpl::forward(const ModelInputs& inputs, const torch::Tensor& labels) {
  TaskOutput out;
  torch::Tensor target_labels;
  BodyOutput body_out;
  torch::Tensor h;
  if (labels.defined() && sparse_logits) {
    const auto& ref = inputs.input_ids.defined() ? inputs.input_ids : inputs.inputs_embeds;
    BIOLM_CHECK(ref.defined() && labels.dim() == 2 && labels.size(0) == ref.size(0) && labels.size(1) == ref.size(1),
                ShapeError, "MaskedLM", "labels must be (B,T)");
    const auto dev_labels = labels.to(ref.device());
    const auto index = (dev_labels != kIgnoreIndex).nonzero();  // (N,2), row-major
    out.extra["target_index"] = index;
    target_labels = dev_labels.index({index.select(1, 0), index.select(1, 1)});
    if (sparse_last_layer) {
      ModelInputs rows = inputs;
      rows.output_positions = index;
      body_out = body_->forward(rows);
      h = body_out.hidden;  // (N,C)
    } else {
      body_out = body_->forward(inputs);
      h = body_out.hidden.index({index.select(1, 0), index.select(1, 1)});  // (N,C)
    }
  } else {
    body_out = body_->forward(inputs);
    h = body_out.hidden;  // (B,T,C)
    if (labels.defined()) {
      BIOLM_CHECK(labels.sizes() == h.sizes().slice(0, 2), ShapeError, "MaskedLM", "labels must be (B,T)");
      target_labels = labels;
    }
  }
  out.logits = lm_head(mlm_norm(nn::activate(mlm_dense(h), config().activation)));  // (..., V)
  if (labels.defined()) std::tie(out.loss_sum, out.n_target_tokens) = masked_cross_entropy_sum(out.logits, target_labels);
  add_aux(out, body_out);
  return out;
}

StepOutput MaskedLMModelImpl::forward_batch(const data::Batch& b) {
  return forward(inputs_from_batch(b), batch_tensor(b, "labels"));
}

// ---- causal LM ----------------------------------------------------------------------------------

CausalLMModelImpl::CausalLMModelImpl(const ModelConfig& c) : TaskModelImpl(c, TaskKind::CausalLM, c.vocab_size) {
  BIOLM_CHECK(c.is_decoder(), ConfigError, "model.family", "the causal-LM head needs a decoder");
  lm_head = register_module("lm_head", make_linear(c, c.hidden_size, c.vocab_size, /*bias=*/false));
  if (c.tie_embeddings) nn::tie_weight(*lm_head, body_->embeddings->tok->weight);
}

TaskOutput CausalLMModelImpl::forward(const ModelInputs& inputs, const torch::Tensor& labels) {
  auto body_out = body_->forward(inputs);
  TaskOutput out;
  out.logits = lm_head(body_out.hidden);  // (B,T,V)
  out.cache = std::move(body_out.cache);
  if (labels.defined()) {
    const int64_t T = out.logits.size(1);
    BIOLM_CHECK(labels.dim() == 2 && labels.size(1) == T, ShapeError, "CausalLM", "labels must be (B,T)");
    // targets[:, t] = labels[:, t+1], and -100 at t = T-1: the loss then reads the logits as they
    // are (B*T,V), instead of copying the non-contiguous slice logits[:, :T-1].
    const auto lab = labels.to(out.logits.device(), torch::kLong);
    auto targets = torch::full_like(lab, kIgnoreIndex);  // (B,T)
    auto shifted = targets.narrow(1, 0, T - 1);          // (B,T-1) view: token t+1
    shifted.copy_(lab.narrow(1, 1, T - 1));
    if (inputs.segment_ids.defined()) {
      const auto s = inputs.segment_ids.to(targets.device());
      shifted.masked_fill_(s.narrow(1, 1, T - 1) != s.narrow(1, 0, T - 1), kIgnoreIndex);
    }
    std::tie(out.loss_sum, out.n_target_tokens) = masked_cross_entropy_sum(out.logits, targets);
  }
  add_aux(out, body_out);
  return out;
}

StepOutput CausalLMModelImpl::forward_batch(const data::Batch& b) {
  auto inputs = inputs_from_batch(b);
  torch::Tensor labels = batch_tensor(b, "labels");
  if (!labels.defined() && inputs.input_ids.defined()) {
    labels = inputs.input_ids.clone();
    if (inputs.attention_mask.defined()) labels.masked_fill_(inputs.attention_mask.eq(0), kIgnoreIndex);
  }
  return forward(inputs, labels);
}

// ---- token classification -------------------------------------------------------------------------

TokenClassificationModelImpl::TokenClassificationModelImpl(const ModelConfig& c, int64_t n_labels)
    : TaskModelImpl(c, TaskKind::TokenClassification, n_labels) {
  BIOLM_CHECK(n_labels >= 1, ConfigError, "n_labels", "must be >= 1, got " + std::to_string(n_labels));
  classifier = register_module("classifier", make_linear(c, c.hidden_size, n_labels, true));
}

TaskOutput TokenClassificationModelImpl::forward(const ModelInputs& inputs, const torch::Tensor& labels) {
  auto body_out = body_->forward(inputs);
  TaskOutput out;
  out.logits = classifier(dropout(body_out.hidden));  // (B,T,n_labels)
  if (labels.defined()) {
    BIOLM_CHECK(labels.sizes() == out.logits.sizes().slice(0, 2), ShapeError, "TokenClassification",
                "labels must be (B,T)");
    std::tie(out.loss_sum, out.n_target_tokens) = masked_cross_entropy_sum(out.logits, labels);
  }
  add_aux(out, body_out);
  return out;
}

StepOutput TokenClassificationModelImpl::forward_batch(const data::Batch& b) {
  return forward(inputs_from_batch(b), batch_tensor(b, "labels"));
}

// ---- sequence classification / regression ---------------------------------------------------------

SequenceClassificationModelImpl::SequenceClassificationModelImpl(const ModelConfig& c, int64_t n_labels,
                                                                 bool regression)
    : TaskModelImpl(c, regression ? TaskKind::Regression : TaskKind::SequenceClassification, regression ? 1 : n_labels),
      regression_(regression) {
  BIOLM_CHECK(regression || n_labels >= 2, ConfigError, "n_labels",
              "sequence classification needs >= 2 labels, got " + std::to_string(n_labels));
  pooler_dense = make_pooler(*this, c);
  // Decoders score the last token without a bias, as transformers' GPT2/Llama/Mistral
  // ForSequenceClassification (`score = nn.Linear(C, n, bias=False)`), so the head exports as is.
  classifier = register_module("classifier", make_linear(c, c.hidden_size, n_labels_, !c.is_decoder()));
}

TaskOutput SequenceClassificationModelImpl::forward(const ModelInputs& inputs, const torch::Tensor& labels) {
  auto body_out = body_->forward(inputs);
  TaskOutput out;
  out.logits = classifier(dropout(pool(body_out.hidden, inputs.attention_mask)));  // (B,n_labels)
  if (regression_) out.logits = out.logits.squeeze(-1);                           // (B)
  if (labels.defined()) {
    const int64_t B = out.logits.size(0);
    const bool multi_label = !regression_ && labels.dim() == 2;
    BIOLM_CHECK((labels.dim() == 1 || multi_label) && labels.size(0) == B, ShapeError, "SequenceClassification",
                "labels must be (B), or (B,n_labels) multi-hot targets");
    if (multi_label) {
      // Multi-label (hoc): a sigmoid per label, binary cross entropy averaged over B x n_labels
      // as transformers' problem_type="multi_label_classification" (BCEWithLogitsLoss).
      BIOLM_CHECK(labels.size(1) == out.logits.size(1), ShapeError, "SequenceClassification",
                  "multi-hot targets must be (B," + std::to_string(out.logits.size(1)) + ")");
      // Summed over examples (the trainer divides by B): per example, the mean over its labels.
      const int64_t L = out.logits.size(1);
      out.loss_sum = torch::binary_cross_entropy_with_logits(
                         out.logits, labels.to(out.logits.device(), out.logits.scalar_type()), {}, {},
                         at::Reduction::Sum) /
                     static_cast<double>(L);
      out.n_target_tokens = B;
    } else if (regression_) {
      const auto y = labels.to(out.logits.device(), out.logits.scalar_type());
      out.loss_sum = torch::mse_loss(out.logits, y, at::Reduction::Sum);
      out.n_target_tokens = B;
    } else {
      std::tie(out.loss_sum, out.n_target_tokens) = masked_cross_entropy_sum(out.logits, labels);
    }
  }
  add_aux(out, body_out);
  return out;
}

StepOutput SequenceClassificationModelImpl::forward_batch(const data::Batch& b) {
  auto labels = regression_ && b.has("scores") ? b.at("scores")
                : b.has("targets")              ? b.at("targets")
                                                : batch_tensor(b, "labels");
  return forward(inputs_from_batch(b), labels);
}

// ---- span QA ---------------------------------------------------------------------------------------

SpanQAModelImpl::SpanQAModelImpl(const ModelConfig& c) : TaskModelImpl(c, TaskKind::SpanQA, 2) {
  qa_outputs = register_module("qa_outputs", make_linear(c, c.hidden_size, 2, true));
}

TaskOutput SpanQAModelImpl::forward(const ModelInputs& inputs, const torch::Tensor& start_positions,
                                    const torch::Tensor& end_positions) {
  auto body_out = body_->forward(inputs);
  TaskOutput out;
  out.logits = qa_outputs(body_out.hidden);  // (B,T,2)
  out.extra["start_logits"] = out.logits.select(2, 0);
  out.extra["end_logits"] = out.logits.select(2, 1);
  if (start_positions.defined() && end_positions.defined()) {
    const int64_t B = out.logits.size(0);
    BIOLM_CHECK(start_positions.numel() == B && end_positions.numel() == B, ShapeError, "SpanQA",
                "start_positions and end_positions must be (B)");
    // transformers: (start CE + end CE) / 2 per example; start and end are -100 together.
    auto [ls, ns] = masked_cross_entropy_sum(out.extra["start_logits"], start_positions.reshape({B}));
    auto [le, ne] = masked_cross_entropy_sum(out.extra["end_logits"], end_positions.reshape({B}));
    out.loss_sum = (ls + le) / 2.0;
    out.n_target_tokens = std::max(ns, ne);
  }
  add_aux(out, body_out);
  return out;
}

StepOutput SpanQAModelImpl::forward_batch(const data::Batch& b) {
  return forward(inputs_from_batch(b), batch_tensor(b, "start_positions"), batch_tensor(b, "end_positions"));
}

// ---- multiple choice ------------------------------------------------------------------------------

MultipleChoiceModelImpl::MultipleChoiceModelImpl(const ModelConfig& c) : TaskModelImpl(c, TaskKind::MultipleChoice, 1) {
  pooler_dense = make_pooler(*this, c);
  classifier = register_module("classifier", make_linear(c, c.hidden_size, 1, true));
}

TaskOutput MultipleChoiceModelImpl::forward(const ModelInputs& inputs, const torch::Tensor& labels,
                                            const torch::Tensor& choice_mask) {
  const auto& ids = inputs.input_ids.defined() ? inputs.input_ids : inputs.inputs_embeds;
  BIOLM_CHECK(ids.defined() && ids.dim() >= 3, ShapeError, "MultipleChoice",
              "expected input_ids (B,K,T) or inputs_embeds (B,K,T,C)");
  const int64_t B = ids.size(0), K = ids.size(1), T = ids.size(2);
  auto flatten = [&](const torch::Tensor& t) {
    if (!t.defined()) return t;
    BIOLM_CHECK(t.size(0) == B && t.size(1) == K, ShapeError, "MultipleChoice", "every input must be (B,K,T...)");
    auto sizes = t.sizes().vec();
    sizes.erase(sizes.begin());
    sizes[0] = B * K;
    return t.reshape(sizes);
  };
  ModelInputs flat;
  flat.input_ids = flatten(inputs.input_ids);
  flat.inputs_embeds = flatten(inputs.inputs_embeds);
  flat.attention_mask = flatten(inputs.attention_mask);
  flat.token_type_ids = flatten(inputs.token_type_ids);
  flat.position_ids = flatten(inputs.position_ids);
  flat.segment_ids = flatten(inputs.segment_ids);
  (void)T;
  auto body_out = body_->forward(flat);
  TaskOutput out;
  out.logits = classifier(dropout(pool(body_out.hidden, flat.attention_mask))).view({B, K});  // (B,K)
  if (choice_mask.defined()) {
    BIOLM_CHECK(choice_mask.size(0) == B && choice_mask.size(1) == K, ShapeError, "MultipleChoice",
                "choice_mask must be (B,K)");
    out.logits = out.logits.masked_fill(choice_mask.to(out.logits.device()).eq(0),
                                        -std::numeric_limits<float>::infinity());
  }
  if (labels.defined()) {
    BIOLM_CHECK(labels.numel() == B, ShapeError, "MultipleChoice", "labels must be (B)");
    std::tie(out.loss_sum, out.n_target_tokens) = masked_cross_entropy_sum(out.logits, labels.reshape({B}));
  }
  add_aux(out, body_out);
  return out;
}

StepOutput MultipleChoiceModelImpl::forward_batch(const data::Batch& b) {
  auto inputs = inputs_from_batch(b);
  if (b.has("choice_ids")) inputs.input_ids = b.at("choice_ids");
  return forward(inputs, batch_tensor(b, "labels"), batch_tensor(b, "choice_mask"));
}

// ---- factory ---------------------------------------------------------------------------------------

std::vector<std::string> task_head_patterns(const TaskModelImpl& model) {
  std::vector<std::string> out;
  for (const auto& child : model.named_children()) {
    if (child.key() == "classifier" || child.key() == "pooler" || child.key() == "qa_outputs") {
      out.push_back(child.key() + ".**");
    }
  }
  return out;
}

std::shared_ptr<TaskModelImpl> make_task_model(const ModelConfig& config, TaskKind task, int64_t n_labels) {
  switch (task) {
    case TaskKind::MaskedLM:
      return std::make_shared<MaskedLMModelImpl>(config);
    case TaskKind::CausalLM:
      return std::make_shared<CausalLMModelImpl>(config);
    case TaskKind::TokenClassification:
      return std::make_shared<TokenClassificationModelImpl>(config, n_labels);
    case TaskKind::SequenceClassification:
      return std::make_shared<SequenceClassificationModelImpl>(config, n_labels, false);
    case TaskKind::Regression:
      return std::make_shared<SequenceClassificationModelImpl>(config, 1, true);
    case TaskKind::SpanQA:
      return std::make_shared<SpanQAModelImpl>(config);
    case TaskKind::MultipleChoice:
      return std::make_shared<MultipleChoiceModelImpl>(config);
    case TaskKind::Base:
      break;
  }
  throw ConfigError("task", "\"base\" has no head and no loss; use make_body() for the bare body");
}

}  // namespace biolm::models

namespace biolm::models {

torch::Tensor TaskModelImpl::embed_tokens(const torch::Tensor& input_ids) {
  return body_->embeddings->tok->forward(input_ids);
}

void TaskModelImpl::set_activation_checkpointing(bool enabled) { body_->set_gradient_checkpointing(enabled); }

}  // namespace biolm::models

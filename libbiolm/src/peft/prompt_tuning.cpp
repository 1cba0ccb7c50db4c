#include "biolm/peft/prompt_tuning.h"

#include "biolm/core/error.h"

namespace biolm::peft {

void PromptTuningOptions::validate() const {
  BIOLM_CHECK(n_virtual_tokens() > 0, ConfigError, "peft.prompt.n_virtual_tokens",
              "must be > 0, got " + std::to_string(n_virtual_tokens()));
  BIOLM_CHECK(hidden() > 0, ConfigError, "peft.prompt.hidden", "must be the model's hidden size (> 0), got " +
                                                                  std::to_string(hidden()));
  BIOLM_CHECK(init_std() > 0, ConfigError, "peft.prompt.init_std", "must be > 0");
}

SoftPromptImpl::SoftPromptImpl(const PromptTuningOptions& options_) : options(options_) {
  options.validate();
  reset();
}

void SoftPromptImpl::reset() {
  embeddings = register_parameter("embeddings", torch::empty({options.n_virtual_tokens(), options.hidden()}));
  reset_parameters();
}

void SoftPromptImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  embeddings.normal_(0.0, options.init_std());
}

void SoftPromptImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::peft::SoftPrompt(n_virtual_tokens=" << options.n_virtual_tokens()
         << ", hidden=" << options.hidden() << ")";
}

void SoftPromptImpl::init_from(const torch::Tensor& token_embeds) {
  BIOLM_CHECK(token_embeds.dim() == 2 && token_embeds.size(1) == options.hidden() && token_embeds.size(0) > 0,
              ShapeError, "SoftPrompt", "init_from expects (n, " + std::to_string(options.hidden()) + ") embeddings");
  torch::NoGradGuard no_grad;
  const int64_t P = options.n_virtual_tokens();
  const auto idx = torch::arange(P, torch::kLong) % token_embeds.size(0);
  embeddings.copy_(token_embeds.detach().index_select(0, idx.to(token_embeds.device())));
}

data::Batch SoftPromptImpl::prepend(const data::Batch& batch, const torch::Tensor& token_embeds) const {
  BIOLM_CHECK(!batch.has("segment_ids"), ConfigError, "peft.method",
              "prompt tuning cannot be combined with packed batches (segment_ids)");
  BIOLM_CHECK(token_embeds.dim() >= 3 && token_embeds.size(-1) == options.hidden(), ShapeError, "SoftPrompt",
              "token embeddings must be (B, T, " + std::to_string(options.hidden()) + ") or (B, K, T, " +
                  std::to_string(options.hidden()) + ")");
  // Rows are everything before the token axis: (B) for one sequence per example, (B, K) for the
  // K options of a multiple-choice example, each of which gets its own copy of the prompt.
  const auto rows = token_embeds.sizes().slice(0, static_cast<size_t>(token_embeds.dim() - 2));
  const int64_t T = token_embeds.size(-2), P = options.n_virtual_tokens(), C = options.hidden();
  const auto with_last = [&](std::initializer_list<int64_t> last) {
    auto v = rows.vec();
    v.insert(v.end(), last);
    return v;
  };
  const auto token_level = [&](const torch::Tensor& t) {
    return t.defined() && t.dim() == static_cast<int64_t>(rows.size()) + 1 && t.sizes().slice(0, rows.size()) == rows &&
           t.size(-1) == T;
  };
  data::Batch out;
  out.n_examples = batch.n_examples;
  out.n_target_tokens = batch.n_target_tokens;
  const auto prompt = embeddings.to(token_embeds.dtype()).expand(with_last({P, C}));
  for (const auto& [name, t] : batch.tensors) {
    if (name == "input_ids" || name == "choice_ids" || name == "inputs_embeds") continue;
    if ((name == "start_positions" || name == "end_positions") && t.defined()) {
      // Span targets index tokens: the virtual tokens come first, so real positions move by P
      // (ignored targets, < 0, stay as they are).
      out.tensors[name] = torch::where(t >= 0, t + P, t);
    } else if (!token_level(t)) {
      out.tensors[name] = t;  // per-example tensors: labels (B), scores, choice_mask (B, K)
    } else if (name == "attention_mask") {
      out.tensors[name] = torch::cat({torch::ones(with_last({P}), t.options()), t}, -1);
    } else if (name == "labels") {
      out.tensors[name] = torch::cat({torch::full(with_last({P}), data::kIgnoreIndex, t.options()), t}, -1);
    } else if (name == "position_ids") {
      out.tensors[name] = torch::cat({torch::arange(P, t.options()).expand(with_last({P})), t + P}, -1);
    } else {  // token_type_ids and other per-token ids: 0 for virtual tokens
      out.tensors[name] = torch::cat({torch::zeros(with_last({P}), t.options()), t}, -1);
    }
  }
  out.tensors["inputs_embeds"] = torch::cat({prompt, token_embeds}, -2);  // (..., P+T, C)
  return out;
}

}  // namespace biolm::peft

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
  BIOLM_CHECK(token_embeds.dim() == 3 && token_embeds.size(2) == options.hidden(), ShapeError, "SoftPrompt",
              "token embeddings must be (B, T, " + std::to_string(options.hidden()) + ")");
  const int64_t B = token_embeds.size(0), T = token_embeds.size(1), P = options.n_virtual_tokens();
  data::Batch out;
  out.n_examples = batch.n_examples;
  out.n_target_tokens = batch.n_target_tokens;
  const auto prompt = embeddings.to(token_embeds.dtype()).unsqueeze(0).expand({B, P, options.hidden()});
  for (const auto& [name, t] : batch.tensors) {
    if (name == "input_ids" || name == "inputs_embeds") continue;
    const bool token_level = t.defined() && t.dim() == 2 && t.size(0) == B && t.size(1) == T;
    if ((name == "start_positions" || name == "end_positions") && t.defined()) {
      // Span targets index tokens: the virtual tokens come first, so real positions move by P
      // (ignored targets, < 0, stay as they are).
      out.tensors[name] = torch::where(t >= 0, t + P, t);
    } else if (!token_level) {
      out.tensors[name] = t;
    } else if (name == "attention_mask") {
      out.tensors[name] = torch::cat({torch::ones({B, P}, t.options()), t}, 1);
    } else if (name == "labels") {
      out.tensors[name] = torch::cat({torch::full({B, P}, data::kIgnoreIndex, t.options()), t}, 1);
    } else if (name == "position_ids") {
      out.tensors[name] = torch::cat({torch::arange(P, t.options()).unsqueeze(0).expand({B, P}), t + P}, 1);
    } else {  // token_type_ids and other per-token ids: 0 for virtual tokens
      out.tensors[name] = torch::cat({torch::zeros({B, P}, t.options()), t}, 1);
    }
  }
  out.tensors["inputs_embeds"] = torch::cat({prompt, token_embeds}, 1);  // (B, P+T, C)
  return out;
}

}  // namespace biolm::peft

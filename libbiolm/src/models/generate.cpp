#include "biolm/models/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <limits>

#include "biolm/core/error.h"

namespace biolm::models {

void validate(const GenerationOptions& o) {
  BIOLM_CHECK(o.max_new_tokens >= 0, ConfigError, "generation.max_new_tokens", "must be >= 0");
  BIOLM_CHECK(o.temperature >= 0, ConfigError, "generation.temperature", "must be >= 0 (0 = greedy)");
  BIOLM_CHECK(o.top_k >= 0, ConfigError, "generation.top_k", "must be >= 0 (0 = off)");
  BIOLM_CHECK(o.top_p > 0 && o.top_p <= 1, ConfigError, "generation.top_p", "must be in (0, 1]");
}

torch::Tensor filter_logits(const torch::Tensor& logits, int64_t top_k, double top_p) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  auto out = logits;
  const int64_t V = logits.size(-1);
  if (top_k > 0 && top_k < V) {
    const auto kth = std::get<0>(torch::topk(out, top_k, -1)).narrow(-1, top_k - 1, 1);  // (B,1)
    out = out.masked_fill(out < kth, neg_inf);
  }
  if (top_p < 1.0) {
    auto [sorted, order] = torch::sort(out, -1, /*descending=*/true);
    const auto probs = torch::softmax(sorted.to(torch::kFloat), -1);
    // Drop a token when the mass before it already reaches top_p (the most likely always stays).
    const auto drop_sorted = (probs.cumsum(-1) - probs) >= top_p;
    const auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    out = out.masked_fill(drop, neg_inf);
  }
  return out;
}

torch::Tensor next_token(const torch::Tensor& logits, const GenerationOptions& o, at::Generator* generator) {
  if (o.temperature == 0.0) return logits.argmax(-1);
  const auto filtered = filter_logits(logits.to(torch::kFloat) / o.temperature, o.top_k, o.top_p);
  const auto probs = torch::softmax(filtered, -1).to(torch::kCPU);
  const auto drawn = generator != nullptr ? torch::multinomial(probs, 1, false, *generator)
                                          : torch::multinomial(probs, 1, false);
  return drawn.squeeze(1).to(logits.device());
}

namespace {
struct ModeRestore {
  explicit ModeRestore(CausalLMModelImpl& m) : model(m), was_training(m.is_training()) { model.eval(); }
  ~ModeRestore() { model.train(was_training); }
  CausalLMModelImpl& model;
  bool was_training;
};
}  // namespace

int64_t apply_soft_prompt(CausalLMModelImpl& model, ModelInputs& in) {
  const auto& prompt = model.soft_prompt();
  if (!prompt) return 0;
  BIOLM_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2, ShapeError, "soft prompt",
              "input_ids must be (B,T)");
  data::Batch b;
  b.tensors["attention_mask"] = in.attention_mask.defined() ? in.attention_mask
                                                            : torch::ones_like(in.input_ids, torch::kLong);
  auto with_prompt = prompt->prepend(b, model.embed_tokens(in.input_ids));
  in.inputs_embeds = with_prompt.at("inputs_embeds");
  in.attention_mask = with_prompt.at("attention_mask");
  in.input_ids = torch::Tensor();
  return prompt->n_prefix_tokens();
}

int64_t token_positions(const CausalLMModelImpl& model) {
  const auto& prompt = model.soft_prompt();
  return model.config().max_positions - (prompt ? prompt->n_prefix_tokens() : 0);
}

GenerationResult generate(CausalLMModelImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationOptions& o) {
  validate(o);
  BIOLM_CHECK(input_ids.dim() == 2 && input_ids.size(1) > 0, ShapeError, "generate", "input_ids must be (B,T), T > 0");
  torch::NoGradGuard no_grad;
  ModeRestore mode(model);
  const int64_t B = input_ids.size(0);
  const auto device = input_ids.device();
  const int64_t pad = o.pad_token_id ? *o.pad_token_id
                      : model.config().pad_token_id ? *model.config().pad_token_id
                      : !o.stop_tokens.empty() ? o.stop_tokens.front()
                                               : 0;
  std::optional<at::Generator> generator;
  if (o.seed) generator = at::make_generator<at::CPUGeneratorImpl>(*o.seed);
  auto mask = attention_mask.defined() ? attention_mask.to(device, torch::kLong)
                                       : torch::ones_like(input_ids, torch::TensorOptions().dtype(torch::kLong));
  BIOLM_CHECK(mask.sizes() == input_ids.sizes(), ShapeError, "generate", "attention_mask must match input_ids (B,T)");
  auto stops = torch::tensor(o.stop_tokens.empty() ? std::vector<int64_t>{-1} : o.stop_tokens,
                             torch::TensorOptions().dtype(torch::kLong).device(device));
  auto finished = torch::zeros({B}, torch::TensorOptions().dtype(torch::kBool).device(device));
  std::vector<torch::Tensor> steps;
  KVCache cache;
  ModelInputs in;
  in.input_ids = input_ids;
  in.attention_mask = mask;
  in.use_cache = true;
  const int64_t P = apply_soft_prompt(model, in);  // the first step runs the soft prompt too
  mask = in.attention_mask;                         // (B,P+T)
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    in.past = cache.empty() ? nullptr : &cache;
    auto out = model.forward(in);
    const auto logits = out.logits.select(1, out.logits.size(1) - 1);  // (B,V)
    auto token = next_token(logits, o, generator ? &*generator : nullptr);
    token = torch::where(finished, torch::full_like(token, pad), token);
    const auto real = finished.logical_not().to(torch::kLong);  // (B) this step counts
    steps.push_back(token);
    mask = torch::cat({mask, real.unsqueeze(1)}, 1);
    finished = finished | torch::isin(token, stops);
    cache = std::move(out.cache);
    in.input_ids = token.unsqueeze(1);  // (B,1)
    in.inputs_embeds = torch::Tensor();
    in.attention_mask = mask;
    if (finished.all().item<bool>()) break;
  }
  GenerationResult r;
  r.new_tokens = steps.empty() ? torch::empty({B, 0}, input_ids.options()) : torch::stack(steps, 1);  // (B,N)
  r.sequences = torch::cat({input_ids, r.new_tokens.to(input_ids.scalar_type())}, 1);
  r.attention_mask = mask.narrow(1, P, mask.size(1) - P);  // the tokens' columns, prompt positions dropped
  r.n_new = r.attention_mask.narrow(1, input_ids.size(1), r.new_tokens.size(1)).sum(1);
  return r;
}

}  // namespace biolm::models

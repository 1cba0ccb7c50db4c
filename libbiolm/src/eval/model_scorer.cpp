// The harness on a real decoder: CausalScorer over CausalLMModelImpl and a GenerateFn over
// models::generate (see biolm/eval/model_scorer.h).
#include "biolm/eval/model_scorer.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "biolm/core/error.h"
#include "eval_mode.h"

namespace biolm::eval {
namespace {

at::Device model_device(models::CausalLMModelImpl& model) {
  const auto params = model.parameters();
  return params.empty() ? at::Device(at::kCPU) : params.front().device();
}

}  // namespace

ModelScorer::ModelScorer(std::shared_ptr<models::CausalLMModelImpl> model) : model_(std::move(model)) {
  BIOLM_CHECK(model_ != nullptr, Error, "ModelScorer: no model");
}

at::Tensor ModelScorer::logits(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  BIOLM_CHECK(input_ids.dim() == 2 && attention_mask.sizes() == input_ids.sizes(), ShapeError, "ModelScorer",
              fmt::format("expected input_ids and attention_mask (B,T) of one shape, got {} and {}",
                          fmt::join(input_ids.sizes().vec(), "x"), fmt::join(attention_mask.sizes().vec(), "x")));
  BIOLM_CHECK(input_ids.size(1) <= max_length(), ShapeError, "ModelScorer",
              fmt::format("{} tokens exceed the model's max_positions {} less its {} soft-prompt positions (set "
                          "LoglikOptions::max_length, see loglik_options_for)", input_ids.size(1),
                          model_->config().max_positions, model_->config().max_positions - max_length()));
  torch::NoGradGuard no_grad;
  detail::EvalModeGuard mode(*model_);
  const auto dev = device();
  models::ModelInputs in;
  in.input_ids = input_ids.to(dev, torch::kLong);
  in.attention_mask = attention_mask.to(dev, torch::kLong);
  // A prompt-tuned model scores with its soft prompt in front, as it was trained; its P
  // positions are dropped from the logits.
  const int64_t P = models::apply_soft_prompt(*model_, in);
  return model_->forward(in).logits.narrow(1, P, input_ids.size(1)).to(torch::kFloat);  // (B,T,V)
}

at::Device ModelScorer::device() const { return model_device(*model_); }

int64_t ModelScorer::max_length() const { return models::token_positions(*model_); }

LoglikOptions loglik_options_for(const models::CausalLMModelImpl& model, int64_t batch_size) {
  LoglikOptions o;
  o.batch_size = batch_size;
  o.max_length = models::token_positions(model);  // a soft prompt takes the first P positions
  return o;
}

std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stop_strings) {
  size_t end = text.size();
  for (const auto& s : stop_strings) {
    if (s.empty()) continue;
    end = std::min(end, text.find(s));
  }
  return text.substr(0, end);
}

GenerateFn make_generate_fn(std::shared_ptr<models::CausalLMModelImpl> model,
                            std::shared_ptr<const tokenize::Tokenizer> tokenizer, const GenerateFnOptions& options) {
  BIOLM_CHECK(model != nullptr && tokenizer != nullptr, Error, "make_generate_fn: model and tokenizer are required");
  models::validate(options.generation);
  const int64_t max_positions = models::token_positions(*model);  // a soft prompt takes the first P
  BIOLM_CHECK(options.generation.max_new_tokens < max_positions, ConfigError, "generation.max_new_tokens",
              fmt::format("{} leaves no room for a prompt within max_positions {}",
                          options.generation.max_new_tokens, max_positions));
  models::GenerationOptions gen = options.generation;
  if (gen.stop_tokens.empty()) {
    if (auto eos = tokenizer->special().eos.has_value() ? tokenizer->special().eos : model->config().eos_token_id) {
      gen.stop_tokens.push_back(*eos);
    }
  }
  return [model, tokenizer, gen, options, max_positions](const std::string& prompt) {
    std::vector<int64_t> ids = tokenizer->encode(prompt, false).ids;
    if (options.add_bos && tokenizer->special().bos) ids.insert(ids.begin(), *tokenizer->special().bos);
    BIOLM_CHECK(!ids.empty(), Error, "generate: the prompt encodes to no token and the tokenizer has no BOS");
    const int64_t keep = max_positions - gen.max_new_tokens;
    if (static_cast<int64_t>(ids.size()) > keep) ids.erase(ids.begin(), ids.end() - keep);  // left truncation
    const auto input = torch::tensor(ids, torch::kLong).unsqueeze(0).to(model_device(*model));  // (1,T)
    const auto result = models::generate(*model, input, torch::Tensor(), gen);
    const int64_t n_new = result.n_new.item<int64_t>();
    const auto new_ids = result.new_tokens.index({0, torch::indexing::Slice(0, n_new)}).to(torch::kCPU).contiguous();
    const std::vector<int64_t> out(new_ids.data_ptr<int64_t>(), new_ids.data_ptr<int64_t>() + n_new);
    return cut_at_stop(tokenizer->decode(out, true), options.stop_strings);
  };
}

}  // namespace biolm::eval

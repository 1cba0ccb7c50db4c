// biolm/eval/model_scorer.h: the zero-/few-shot harness (harness.h) on a real decoder.
//
// ModelScorer implements CausalScorer over models::CausalLMModelImpl: logits of a padded batch
// in eval mode without gradient, on the model's device. Right padding (what loglikelihoods()
// builds) and left padding both give every real token the logits it gets alone: positions
// count real tokens (cumsum(attention_mask) - 1) and padded keys are masked out.
// make_generate_fn wraps models::generate (KV cache; greedy, or seeded sampling) as a
// GenerateFn: prompt -> decoded continuation, cut before the first stop string.
// Long inputs are truncated from the left so that they fit the model's max_positions
// (loglik_options_for sets LoglikOptions::max_length; the generator keeps the last
// max_positions - max_new_tokens prompt tokens), as lm-evaluation-harness does with max_length.
// Tested against an explicit token-by-token log_softmax over the whole sequence in
// tests/eval/test_model_eval.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "biolm/eval/harness.h"
#include "biolm/models/generate.h"
#include "biolm/models/task_model.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::eval {

/// CausalScorer over a causal-LM task model. The model is put in eval mode for each call and
/// its previous mode restored afterwards.
class ModelScorer : public CausalScorer {
 public:
  explicit ModelScorer(std::shared_ptr<models::CausalLMModelImpl> model);
  /// input_ids, attention_mask (B,T) (left or right padding) -> logits (B,T,V) float32.
  /// ShapeError("ModelScorer") when T exceeds max_length() or the shapes disagree.
  at::Tensor logits(const at::Tensor& input_ids, const at::Tensor& attention_mask) override;
  /// The device of the model's parameters.
  at::Device device() const override;
  /// The longest input the model accepts: config.max_positions.
  int64_t max_length() const;

 private:
  std::shared_ptr<models::CausalLMModelImpl> model_;
};

/// LoglikOptions for `model`: max_length = config.max_positions (left truncation), BOS added
/// when the tokenizer has one.
LoglikOptions loglik_options_for(const models::CausalLMModelImpl& model, int64_t batch_size = 8);

struct GenerateFnOptions {
  /// max_new_tokens, temperature (0 = greedy), top_k, top_p, seed. stop_tokens empty: the
  /// tokenizer's EOS (then the config's eos_token_id) when there is one.
  models::GenerationOptions generation;
  /// The continuation ends before the first occurrence of any of these ("" entries ignored).
  std::vector<std::string> stop_strings{"\n\n"};
  bool add_bos = true;  ///< prepend the tokenizer's BOS to the prompt (when it has one)
};

/// prompt -> generated text: encode (+BOS), keep the last max_positions - max_new_tokens
/// tokens, generate, decode the new tokens without specials, cut at the first stop string.
/// The same prompt and options give the same text (sampling draws from options.generation.seed).
GenerateFn make_generate_fn(std::shared_ptr<models::CausalLMModelImpl> model,
                            std::shared_ptr<const tokenize::Tokenizer> tokenizer,
                            const GenerateFnOptions& options = {});

/// `text` up to (not including) the earliest occurrence of any non-empty stop string.
std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stop_strings);

}  // namespace biolm::eval

// biolm/models/generate.h: text generation for decoders with a KV cache: greedy, temperature,
// top-k and nucleus (top-p, Holtzman et al. 2020) sampling, stop tokens, left-padded batches.
//
// The prompt runs once; each later step feeds one token per row with the cache. Rows are
// left-padded (attention_mask 0 on the left); positions count real tokens only, so a padded row
// generates exactly what it would alone. Sampling draws from a CPU generator seeded by
// options.seed (same seed, same tokens, on any device).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "biolm/models/task_model.h"

namespace biolm::models {

struct GenerationOptions {
  int64_t max_new_tokens = 32;
  double temperature = 0.0;          ///< 0 = greedy (argmax); > 0 divides the logits before sampling
  int64_t top_k = 0;                 ///< keep the k most likely tokens; 0 = all
  double top_p = 1.0;                ///< keep the smallest set with probability mass >= top_p; 1 = all
  std::vector<int64_t> stop_tokens;  ///< a row finishes after emitting one of these (kept in the output)
  /// Filler after a row finished; default config.pad_token_id, else the first stop token, else 0.
  std::optional<int64_t> pad_token_id;
  std::optional<uint64_t> seed;      ///< sampling seed; without one the default CPU generator is used
};

struct GenerationResult {
  torch::Tensor sequences;       ///< (B, T + N): prompt followed by the N generated steps
  torch::Tensor attention_mask;  ///< (B, T + N): 1 for prompt tokens and generated tokens up to the stop
  torch::Tensor new_tokens;      ///< (B, N)
  torch::Tensor n_new;           ///< (B) generated tokens per row, stop token included
};

/// Throws ConfigError("generation.<field>") for a negative max_new_tokens or top_k, a negative
/// temperature, or top_p outside (0, 1].
void validate(const GenerationOptions& options);

/// Sets logits outside the top-k / top-p set to -inf. logits (B,V).
torch::Tensor filter_logits(const torch::Tensor& logits, int64_t top_k, double top_p);

/// The next token per row (B) from logits (B,V) under `options` (greedy when temperature == 0).
torch::Tensor next_token(const torch::Tensor& logits, const GenerationOptions& options, at::Generator* generator);

/// Puts the model's soft prompt (prompt tuning), when one is attached, in front of `in`'s
/// input_ids (B,T): in.inputs_embeds becomes (B,P+T,C) and in.attention_mask (B,P+T) (ones for
/// the prompt; an undefined mask is taken as all ones); input_ids is cleared. Returns P (0 without
/// a soft prompt, `in` unchanged). Positions then count the prompt first, as in training, so a
/// left-padded row still sees exactly what it would alone.
int64_t apply_soft_prompt(CausalLMModelImpl& model, ModelInputs& in);

/// The positions left for tokens: config().max_positions less the attached soft prompt's P.
int64_t token_positions(const CausalLMModelImpl& model);

/// Generates from a left-padded prompt: input_ids (B,T), attention_mask (B,T) (undefined = no
/// padding). Runs in no-grad and eval mode (the model's mode is restored afterwards). A model
/// with a soft prompt attached generates with it: the first step runs the P prompt vectors and the
/// prompt tokens together, so the KV cache holds them (what PEFT's prompt-tuned generate() does);
/// the result holds the tokens only (sequences (B,T+N), no prompt positions).
GenerationResult generate(CausalLMModelImpl& model, const torch::Tensor& input_ids,
                          const torch::Tensor& attention_mask, const GenerationOptions& options);

}  // namespace biolm::models

// biolm/nn/attention.h: multi-head and grouped-query self-attention (Vaswani et al. 2017 §3.2;
// GQA: Ainslie et al. 2023), bidirectional or causal through the mask, optional rotary positions
// and a key/value cache.
//
//   q = q_proj(x) (B,H,T,D), k = k_proj(x), v = v_proj(x) (B,Hkv,T,D); rope(q), rope(k);
//   k, v = cat(past, new) along T; each KV head serves H/Hkv query heads;
//   out = o_proj(softmax(q k^T / sqrt(D) masked) v).
// Two paths compute the same thing: the fused compat::scaled_dot_product_attention and an explicit
// softmax (fallback and reference); tests check they agree.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <optional>

#include "biolm/nn/linear.h"

namespace biolm::nn {

/// Cached keys and values of one layer, after rotary, before repeating grouped heads: (B,Hkv,Tpast,D).
struct LayerKV {
  torch::Tensor k;
  torch::Tensor v;
};

/// What one attention call needs besides x. mask: bool (B,1,Tq,Tk), true = may attend, where
/// Tk = Tpast + Tq (see make_attention_mask); undefined = every key visible (or causal, see is_causal). cos/sin: (B,Tq,D) when rotary. past: nullptr or the
/// layer's cache entry.
struct AttentionContext {
  torch::Tensor mask;
  /// With an undefined mask: causal attention over Tq == Tk new tokens (no cache, no padding, no
  /// segments). Fused attention then takes is_causal instead of a materialised mask (flash kernels
  /// on CUDA with LibTorch 2.x; no (B,1,T,T) mask built and converted per layer).
  bool is_causal = false;
  torch::Tensor cos;
  torch::Tensor sin;
  /// Rotary angles of the query rows when queries are a subset of the positions (see forward).
  torch::Tensor q_cos;
  torch::Tensor q_sin;
  const LayerKV* past = nullptr;
  bool use_cache = false;
};

struct AttentionOutput {
  torch::Tensor out;  // (B,T,C)
  LayerKV present;    // (B,Hkv,Tpast+T,D) when use_cache, else undefined
};

struct AttentionOptions {
  AttentionOptions(int64_t hidden_size, int64_t n_heads) : hidden_size_(hidden_size), n_heads_(n_heads), n_kv_heads_(n_heads) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, n_heads);
  TORCH_ARG(int64_t, n_kv_heads);
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(double, dropout) = 0.0;  ///< on attention probabilities, training only
  TORCH_ARG(bool, rotary) = false;   ///< apply ctx.cos/ctx.sin to q and k
  TORCH_ARG(bool, fused) = true;     ///< compat::scaled_dot_product_attention; false = explicit softmax
  TORCH_ARG(double, init_std) = 0.02;
};

class AttentionImpl : public torch::nn::Cloneable<AttentionImpl> {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// x: (B,T,C) -> out (B,T,C)
  /// x (B,T,C). With kv_x (B,Tk,C), queries come from x and keys/values from kv_x (queries at a
  /// subset of kv_x's positions: ctx.mask and ctx.cos/sin must then be given for the query rows);
  /// no cache, not causal.
  AttentionOutput forward(const torch::Tensor& x, const AttentionContext& ctx, const torch::Tensor& kv_x = {});

  AttentionOptions options;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Attention);

/// The explicit path: softmax(q k^T / sqrt(D), masked) v with q: (B,H,Tq,D), k/v: (B,H,Tk,D),
/// mask bool (B or 1, 1 or H, Tq, Tk). Rows with no allowed key would be NaN; make_attention_mask
/// never produces them.
torch::Tensor explicit_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& mask, double dropout_p, bool training);

/// The boolean mask (B,1,Tq,Tk), true = may attend, for Tq new tokens after Tpast cached ones
/// (Tk = Tpast + Tq). Combines:
///   causal: query at absolute position Tpast+i sees keys <= Tpast+i;
///   attention_mask (B,Tk) 1 = real token (undefined = all real): padded keys are hidden;
///   segment_ids (B,Tq) with Tpast == 0 (undefined = one segment): a token sees only its segment.
///   sliding_window W (causal only): query i sees keys j with i - W < j <= i (sequence indices, as
///   transformers' sliding_window_overlay for Mistral).
/// A query row that would see no key at all (a left-padded position under a causal mask) is
/// opened to every key instead: its output is finite and meaningless, never NaN. Callers ignore
/// padded positions.
torch::Tensor make_attention_mask(int64_t batch, int64_t q_len, int64_t past_len, bool causal,
                                  const torch::Tensor& attention_mask, const torch::Tensor& segment_ids,
                                  const torch::Device& device, std::optional<int64_t> sliding_window = std::nullopt);

}  // namespace biolm::nn

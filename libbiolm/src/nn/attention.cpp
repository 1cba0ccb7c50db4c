#include "biolm/nn/attention.h"
#include "biolm/nn/fused.h"

#include "biolm/nn/batched_matmul.h"

#include <cmath>
#include <limits>

#include "biolm/core/compat.h"
#include "biolm/core/error.h"
#include "biolm/nn/dropout.h"
#include "biolm/nn/rotary.h"

namespace biolm::nn {

AttentionImpl::AttentionImpl(const AttentionOptions& options_) : options(options_) { reset(); }

void AttentionImpl::reset() {
  const int64_t C = options.hidden_size(), H = options.n_heads(), Hkv = options.n_kv_heads();
  BIOLM_CHECK(C % H == 0, ShapeError, "Attention", "hidden_size must be divisible by n_heads");
  BIOLM_CHECK(Hkv > 0 && H % Hkv == 0, ShapeError, "Attention", "n_kv_heads must divide n_heads");
  const int64_t D = C / H;
  auto lin = [&](int64_t in, int64_t out) {
    return Linear(LinearOptions(in, out).bias(options.bias()).init_std(options.init_std()));
  };
  q_proj = register_module("q_proj", lin(C, H * D));
  k_proj = register_module("k_proj", lin(C, Hkv * D));
  v_proj = register_module("v_proj", lin(C, Hkv * D));
  o_proj = register_module("o_proj", lin(H * D, C));
}

void AttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::nn::Attention(hidden_size=" << options.hidden_size() << ", n_heads=" << options.n_heads()
         << ", n_kv_heads=" << options.n_kv_heads() << ", rotary=" << (options.rotary() ? "true" : "false")
         << ", fused=" << (options.fused() ? "true" : "false") << ")";
}

torch::Tensor explicit_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& mask, double dropout_p, bool training) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  // The scale inside the product (batched_matmul's alpha), the mask inside the softmax
  // (nn::masked_softmax, one fused pass each way on the CPU).
  const auto scores = batched_matmul(q, k.transpose(-2, -1), scale);  // (B,H,Tq,Tk)
  // softmax in float32 at least: bf16 exponentials lose the small probabilities.
  const bool upcast = q.scalar_type() == torch::kHalf || q.scalar_type() == torch::kBFloat16;
  auto probs = masked_softmax(upcast ? scores.to(torch::kFloat) : scores, mask).to(q.scalar_type());
  probs = nn::dropout(probs, dropout_p, training);
  return batched_matmul(probs, v);  // (B,H,Tq,D)
}

AttentionOutput AttentionImpl::forward(const torch::Tensor& x, const AttentionContext& ctx, const torch::Tensor& kv_x) {
  BIOLM_CHECK(x.dim() == 3 && x.size(2) == options.hidden_size(), ShapeError, "Attention",
              "expected x (B,T," + std::to_string(options.hidden_size()) + ")");
  const int64_t B = x.size(0), T = x.size(1), H = options.n_heads(), Hkv = options.n_kv_heads();
  const int64_t D = options.hidden_size() / H;
  const bool cross = kv_x.defined();
  BIOLM_CHECK(!cross || (kv_x.dim() == 3 && kv_x.size(0) == B && kv_x.size(2) == x.size(2) && ctx.past == nullptr &&
                         !ctx.use_cache && !ctx.is_causal),
              ShapeError, "Attention", "queries at a subset of positions need kv_x (B,Tk,C), no cache, not causal");
  const auto& src = cross ? kv_x : x;
  const int64_t Ts = src.size(1);
  auto q = q_proj(x).view({B, T, H, D}).transpose(1, 2);       // (B,H,T,D)
  auto k = k_proj(src).view({B, Ts, Hkv, D}).transpose(1, 2);  // (B,Hkv,Ts,D)
  auto v = v_proj(src).view({B, Ts, Hkv, D}).transpose(1, 2);  // (B,Hkv,Ts,D)
  if (options.rotary()) {
    BIOLM_CHECK(ctx.cos.defined() && ctx.sin.defined(), ShapeError, "Attention", "rotary attention needs cos/sin");
    if (cross) {
      BIOLM_CHECK(ctx.q_cos.defined() && ctx.q_sin.defined(), ShapeError, "Attention",
                  "rotary attention at a subset of positions needs q_cos/q_sin");
      q = apply_rotary(q, ctx.q_cos, ctx.q_sin);
    } else {
      q = apply_rotary(q, ctx.cos, ctx.sin);
    }
    k = apply_rotary(k, ctx.cos, ctx.sin);
  }
  if (ctx.past != nullptr && ctx.past->k.defined()) {
    BIOLM_CHECK(ctx.past->k.size(0) == B && ctx.past->k.size(1) == Hkv && ctx.past->k.size(3) == D, ShapeError,
                "Attention", "cached keys do not match (B,Hkv,*,D)");
    k = torch::cat({ctx.past->k, k}, 2);  // (B,Hkv,Tpast+T,D)
    v = torch::cat({ctx.past->v, v}, 2);
  }
  AttentionOutput out;
  if (ctx.use_cache) out.present = LayerKV{k, v};
  const int64_t Tk = k.size(2);
  BIOLM_CHECK(!ctx.mask.defined() || (ctx.mask.dim() == 4 && ctx.mask.size(2) == T && ctx.mask.size(3) == Tk),
              ShapeError, "Attention",
              "mask must be (B,1," + std::to_string(T) + "," + std::to_string(Tk) + ")");
  if (Hkv != H) {
    // Each KV head serves H/Hkv consecutive query heads (HF repeat_kv layout).
    k = k.repeat_interleave(H / Hkv, 1);  // (B,H,Tk,D)
    v = v.repeat_interleave(H / Hkv, 1);
  }
  const double p = is_training() ? options.dropout() : 0.0;
  torch::Tensor y;
  const bool causal_flag = ctx.is_causal && !ctx.mask.defined();
  BIOLM_CHECK(!causal_flag || Tk == T, ShapeError, "Attention", "is_causal needs as many keys as queries (no cache)");
  // LibTorch 1.13 without MKL has no fused kernel, only a math path over its per-matrix bmm loop:
  // the explicit path with nn::batched_matmul is the same math without the loop's overhead.
  // On the CPU, SDPA has no fused kernel with dropout (its flash kernel refuses dropout_p > 0 and
  // the math fallback draws with bernoulli_): the explicit path with nn::dropout is that math with
  // the fused dropout kernel.
  const bool fused = options.fused() && !batched_matmul_is_native(q, k.transpose(-2, -1)) &&
                     !(p > 0.0 && dropout_is_fused(q));
  if (fused) {
    y = compat::scaled_dot_product_attention(q, k, v, ctx.mask.defined() ? c10::optional<at::Tensor>(ctx.mask)
                                                                          : c10::nullopt,
                                             p, causal_flag);
  } else {
    const auto mask = causal_flag ? make_attention_mask(1, T, 0, /*causal=*/true, {}, {}, x.device()) : ctx.mask;
    y = explicit_attention(q, k, v, mask, p, is_training());
  }
  y = y.transpose(1, 2).reshape({B, T, H * D});  // (B,T,C)
  out.out = o_proj(y);
  return out;
}

torch::Tensor make_attention_mask(int64_t batch, int64_t q_len, int64_t past_len, bool causal,
                                  const torch::Tensor& attention_mask, const torch::Tensor& segment_ids,
                                  const torch::Device& device, std::optional<int64_t> sliding_window) {
  const int64_t Tk = past_len + q_len;
  auto opts = torch::TensorOptions().device(device);
  auto mask = torch::ones({batch, 1, q_len, Tk}, opts.dtype(torch::kBool));
  if (causal) {
    const auto qpos = torch::arange(past_len, Tk, opts.dtype(torch::kLong)).view({q_len, 1});
    const auto kpos = torch::arange(0, Tk, opts.dtype(torch::kLong)).view({1, Tk});
    mask = mask & (kpos <= qpos).view({1, 1, q_len, Tk});
    if (sliding_window) mask = mask & (kpos > qpos - *sliding_window).view({1, 1, q_len, Tk});
  }
  BIOLM_CHECK(!sliding_window || causal, ShapeError, "Attention", "a sliding window needs causal attention");
  if (attention_mask.defined()) {
    BIOLM_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == batch && attention_mask.size(1) == Tk,
                ShapeError, "Attention",
                "attention_mask must be (B, past+T) = (" + std::to_string(batch) + "," + std::to_string(Tk) + ")");
    mask = mask & attention_mask.to(device).ne(0).view({batch, 1, 1, Tk});
  }
  if (segment_ids.defined()) {
    BIOLM_CHECK(past_len == 0, ShapeError, "Attention", "segment_ids cannot be combined with a KV cache");
    BIOLM_CHECK(segment_ids.dim() == 2 && segment_ids.size(0) == batch && segment_ids.size(1) == q_len, ShapeError,
                "Attention", "segment_ids must be (B,T)");
    const auto s = segment_ids.to(device);
    mask = mask & (s.unsqueeze(2) == s.unsqueeze(1)).unsqueeze(1);  // (B,1,T,T)
  }
  // A row with no visible key gives softmax(-inf...) = NaN: open it to every key instead.
  const auto empty_row = mask.any(-1, /*keepdim=*/true).logical_not();  // (B,1,Tq,1)
  return mask | empty_row;
}

}  // namespace biolm::nn

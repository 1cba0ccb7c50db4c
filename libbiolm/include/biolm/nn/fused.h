// biolm/nn/fused.h: RMSNorm, SwiGLU, GELU, rotary and the cross entropy as one CPU pass each,
// forward and backward.
//
// As ATen calls, RMSNorm is six element-wise operations forward (pow, mean, add, rsqrt, two
// products) and about as many backward, and SwiGLU is silu and a product forward and three
// operations backward; each reads and writes the whole activation once. torch.compile fuses
// them into one loop (docs/performance.md, "Where the time goes"). Here each is one
// at::parallel_for over rows or elements, forward and backward (custom autograd functions):
//   rms_norm: y = w * (x * r), r = 1 / sqrt(mean(x^2) + eps) per row (the sum in double); saves x
//             and r; backward dx = r * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * r, and
//             dw = sum over rows of dy * xhat, in fixed blocks of rows (the same sum for any
//             number of threads);
//   swiglu:   h = silu(a) * b = a * s * b, s = 1 / (1 + exp(-a)); saves a and b (ATen also keeps
//             silu(a)); backward da = dh * b * s * (1 + a * (1 - s)), db = dh * a * s;
//   gelu:     y = x * Phi(x) with Phi from erfc (below), saves x; backward dx = dy * (Phi + x phi).
// exp is a Cephes-style polynomial and erfc a Chebyshev fit, straight-line arithmetic the compiler
// vectorises (loops cloned for AVX2 and AVX-512, picked at load time); about 1 ulp for exp, a
// fractional error below 1.2e-7 for erfc.
// They take CPU float32/float64 tensors (gelu: float32); anything else (CUDA, bf16 under autocast)
// gets the ATen composite, which the tests hold them to. They are first-order: no double backward.
//
// BIOLM_FUSED_KERNELS=0 in the environment (read once) turns these and nn::dropout's kernel off,
// for A/B measurements and to reproduce runs made before them (dropout masks then come from
// torch::dropout again).
#pragma once

#include <torch/types.h>

namespace biolm::nn {

/// False when the environment sets BIOLM_FUSED_KERNELS=0.
bool fused_kernels_enabled();

/// Whether rms_norm / swiglu / gelu (float32 only) and nn::dropout run their fused CPU kernel on x:
/// a non-empty strided CPU float32/float64 tensor, kernels enabled.
bool fused_elementwise(const torch::Tensor& x);

/// RMSNorm over the last dimension: weight * (x / sqrt(mean(x^2) + eps)); x (..., C), weight (C),
/// both of one floating dtype.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

/// GELU with the exact (erf) normal CDF, x * Phi(x) (torch::gelu's default). The fused kernel
/// takes CPU float32 (Phi from an erfc fit with fractional error below 1.2e-7, so the result is
/// within a few ulp of torch::gelu's in both tails); anything else is torch::gelu.
torch::Tensor gelu(const torch::Tensor& x);

/// The SwiGLU gate: silu(gate) * up, gate and up of one shape and dtype.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

/// Summed cross entropy of logits (N,K) against labels (N), rows labelled ignore_index skipped:
/// nll_loss(log_softmax(logits), labels, reduction sum). The fused kernel (CPU float32/float64)
/// reads each row twice forward (max, then the sum of exp) and saves only the log-sum-exp per row;
/// backward writes softmax - onehot in one pass, where ATen's log_softmax + nll_loss write the
/// log-probabilities, a zero-filled gradient and its scatter. A label outside [0, K) that is not
/// ignore_index is an error. Anything else goes through float32 ATen (bf16 logits upcast).
torch::Tensor cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index);

/// Rotary position embedding x * cos + rotate_half(x) * sin for x (B,H,T,D) (any strides with a
/// unit stride along D) and cos/sin (B or 1,T,D): one pass forward and backward, output
/// contiguous (B,H,T,D): the composite's products and sums (bit for bit in float64 and without
/// FMA; the AVX-512 clone's fused multiply-adds differ by about an ulp).
/// Fused for CPU float32/float64 with cos/sin of x's dtype that need no gradient.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

/// Attention probabilities: softmax over the last dimension of scores (B,H,Tq,Tk) with the
/// entries where the bool mask (broadcastable: B or 1, H or 1, Tq or 1, Tk) is false left out (0), as
/// softmax(scores.masked_fill(!mask, -inf)) (a row with nothing kept is NaN there and here). The
/// fused kernel (CPU float32/float64) is one pass forward saving only p, and one backward,
/// ds = p * (dp - sum(dp * p)), where ATen makes a masked copy, the softmax, and masks the gradient.
torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask);

/// The same through ATen operations (what the fused kernels are tested against).
torch::Tensor rms_norm_composite(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor swiglu_composite(const torch::Tensor& gate, const torch::Tensor& up);
torch::Tensor masked_softmax_composite(const torch::Tensor& scores, const torch::Tensor& mask);
torch::Tensor rotary_composite(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace biolm::nn

// biolm/nn/fused.h: RMSNorm, SwiGLU and GELU as one CPU pass each, forward and backward.
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

/// The same through ATen operations (what the fused kernels are tested against).
torch::Tensor rms_norm_composite(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor swiglu_composite(const torch::Tensor& gate, const torch::Tensor& up);

}  // namespace biolm::nn

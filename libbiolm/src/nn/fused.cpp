#include "biolm/nn/fused.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "biolm/core/error.h"
#include "vector_clones.h"

namespace biolm::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// exp for float32 as straight-line arithmetic (no library call), so loops over it vectorise:
// x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for the reduction), a degree-6 polynomial
// for e^r with the coefficients of Cephes' expf (S. Moshier), and 2^n put into the exponent bits.
// Inputs are clamped to [-87.3, 88.7], where e^x stays a normal float; NaN stays NaN.
inline float exp_poly(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // floor(x log2(e) + 1/2) by truncation of a value made positive (a conversion that vectorises).
  const float n = static_cast<float>(static_cast<int32_t>(x * 1.44269504088896341f + 128.5f) - 128);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double exp_poly(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T a) {
  return T(1) / (T(1) + exp_poly(-a));
}

constexpr int64_t kGrain = 1 << 14;  // elements per task of the element-wise kernels

// ---- GELU (erf) ----------------------------------------------------------------------------

// erfc(z) for z >= 0 with a fractional error below 1.2e-7 everywhere (the Chebyshev fit of
// Numerical Recipes' erfcc: t = 1 / (1 + z / 2), erfc = t exp(-z^2 + P(t))), as straight-line
// arithmetic; Phi(x) = erfc(-x / sqrt 2) / 2 then keeps its relative accuracy in both tails.
inline float erfc_nonneg(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_poly(-z * z + p);
}

/// Phi(x), the standard normal CDF, and phi(x), its density.
inline void normal_cdf_pdf(float x, float& cdf, float& pdf) {
  const float e = erfc_nonneg((x < 0.0f ? -x : x) * 0.70710678118654752f);
  cdf = x < 0.0f ? 0.5f * e : 1.0f - 0.5f * e;
  pdf = 0.39894228040143268f * exp_poly(-0.5f * x * x);
}

BIOLM_VECTOR_CLONES void gelu_forward_f32(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float cdf, pdf;
    normal_cdf_pdf(x[i], cdf, pdf);
    y[i] = x[i] * cdf;
  }
}
BIOLM_VECTOR_CLONES void gelu_backward_f32(const float* dy, const float* x, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float cdf, pdf;
    normal_cdf_pdf(x[i], cdf, pdf);
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  }
}

struct FusedGelu : torch::autograd::Function<FusedGelu> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in) {
    const auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t i0, int64_t i1) { gelu_forward_f32(xp + i0, yp + i0, i1 - i0); });
    ctx->save_for_backward({x});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    const auto dy = grads[0].contiguous();
    auto dx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = dy.data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t i0, int64_t i1) {
      gelu_backward_f32(gp + i0, xp + i0, dp + i0, i1 - i0);
    });
    return {dx};
  }
};

// ---- RMSNorm -------------------------------------------------------------------------------

constexpr int64_t kRowsPerBlock = 32;  // rows per partial sum of dw (fixed: thread-count independent)

/// sum_c a[c] * b[c] in double, over eight independent lanes (a loop the compiler vectorises
/// without reassociating one running sum).
template <typename T>
inline double dot8(const T* a, const T* b, int64_t C) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= C; c += 8)
    for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(a[c + j]) * static_cast<double>(b[c + j]);
  double s = 0;
  for (; c < C; ++c) s += static_cast<double>(a[c]) * static_cast<double>(b[c]);
  for (int j = 0; j < 8; ++j) s += lane[j];
  return s;
}

template <typename T>
inline void rms_forward_rows(const T* x, const T* w, T* y, T* rstd, int64_t r0, int64_t r1, int64_t C, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    const T inv = static_cast<T>(1.0 / std::sqrt(dot8(xr, xr, C) / static_cast<double>(C) + eps));
    rstd[r] = inv;
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = w[c] * (xr[c] * inv);
  }
}

/// Rows [r0, r1): dx, and (when part is given) part += dy * xhat summed over those rows.
/// gw is a scratch row of C.
template <typename T>
inline void rms_backward_rows(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* part, T* gw,
                              int64_t r0, int64_t r1, int64_t C) {
  for (int64_t r = r0; r < r1; ++r) {
    const T *g = dy + r * C, *xr = x + r * C;
    const T inv = rstd[r];
    for (int64_t c = 0; c < C; ++c) gw[c] = g[c] * w[c];
    // mean over c of (g w)_c xhat_c = inv * mean(gw * x)
    const T m = static_cast<T>(dot8(gw, xr, C) * static_cast<double>(inv) / static_cast<double>(C));
    T* d = dx + r * C;
    for (int64_t c = 0; c < C; ++c) d[c] = inv * (gw[c] - (xr[c] * inv) * m);
    if (part)
      for (int64_t c = 0; c < C; ++c) part[c] += g[c] * (xr[c] * inv);
  }
}

BIOLM_VECTOR_CLONES void rms_forward_rows_f32(const float* x, const float* w, float* y, float* rstd, int64_t r0,
                                              int64_t r1, int64_t C, double eps) {
  rms_forward_rows(x, w, y, rstd, r0, r1, C, eps);
}
BIOLM_VECTOR_CLONES void rms_backward_rows_f32(const float* dy, const float* x, const float* w, const float* rstd,
                                               float* dx, float* part, float* gw, int64_t r0, int64_t r1, int64_t C) {
  rms_backward_rows(dy, x, w, rstd, dx, part, gw, r0, r1, C);
}
void rms_forward_chunk(const float* x, const float* w, float* y, float* rstd, int64_t r0, int64_t r1, int64_t C,
                       double eps) {
  rms_forward_rows_f32(x, w, y, rstd, r0, r1, C, eps);
}
void rms_forward_chunk(const double* x, const double* w, double* y, double* rstd, int64_t r0, int64_t r1, int64_t C,
                       double eps) {
  rms_forward_rows(x, w, y, rstd, r0, r1, C, eps);
}
void rms_backward_chunk(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* part,
                        float* gw, int64_t r0, int64_t r1, int64_t C) {
  rms_backward_rows_f32(dy, x, w, rstd, dx, part, gw, r0, r1, C);
}
void rms_backward_chunk(const double* dy, const double* x, const double* w, const double* rstd, double* dx,
                        double* part, double* gw, int64_t r0, int64_t r1, int64_t C) {
  rms_backward_rows(dy, x, w, rstd, dx, part, gw, r0, r1, C);
}

template <typename T>
void rms_forward(const T* x, const T* w, T* y, T* rstd, int64_t R, int64_t C, double eps) {
  at::parallel_for(0, R, 8, [&](int64_t r0, int64_t r1) { rms_forward_chunk(x, w, y, rstd, r0, r1, C, eps); });
}

template <typename T>
void rms_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw_partial, int64_t R, int64_t C) {
  const int64_t blocks = (R + kRowsPerBlock - 1) / kRowsPerBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> gw(static_cast<size_t>(C));
    for (int64_t b = b0; b < b1; ++b) {
      rms_backward_chunk(dy, x, w, rstd, dx, dw_partial ? dw_partial + b * C : nullptr, gw.data(), b * kRowsPerBlock,
                         std::min(R, (b + 1) * kRowsPerBlock), C);
    }
  });
}

struct FusedRmsNorm : torch::autograd::Function<FusedRmsNorm> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& w_in, double eps) {
    const auto x = x_in.contiguous(), w = w_in.contiguous();
    const int64_t C = x.size(-1), R = x.numel() / std::max<int64_t>(C, 1);
    auto y = torch::empty_like(x);
    auto rstd = torch::empty({R}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::rms_norm", [&] {
      rms_forward<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                            rstd.data_ptr<scalar_t>(), R, C, eps);
    });
    ctx->save_for_backward({x, w, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &rstd = saved[2];
    const auto dy = grads[0].contiguous();
    const int64_t C = x.size(-1), R = x.numel() / std::max<int64_t>(C, 1);
    auto dx = torch::empty_like(x);
    const bool want_dw = ctx->needs_input_grad(1);
    auto partial = want_dw ? torch::zeros({(R + kRowsPerBlock - 1) / kRowsPerBlock, C}, x.options()) : torch::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::rms_norm_backward", [&] {
      rms_backward<scalar_t>(dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                             rstd.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>(),
                             want_dw ? partial.data_ptr<scalar_t>() : nullptr, R, C);
    });
    return {dx, want_dw ? partial.sum(0) : torch::Tensor(), torch::Tensor()};
  }
};

// ---- SwiGLU --------------------------------------------------------------------------------

template <typename T>
inline void swiglu_forward_body(const T* a, const T* b, T* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = a[i] * sigmoid(a[i]) * b[i];
}
template <typename T>
inline void swiglu_backward_body(const T* dh, const T* a, const T* b, T* da, T* db, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(a[i]);
    da[i] = dh[i] * b[i] * (s * (T(1) + a[i] * (T(1) - s)));
    db[i] = dh[i] * (a[i] * s);
  }
}

// One chunk each: float32 through the vectorised clones (BIOLM_VECTOR_CLONES), float64 plain.
BIOLM_VECTOR_CLONES void swiglu_forward_f32(const float* a, const float* b, float* h, int64_t n) {
  swiglu_forward_body(a, b, h, n);
}
BIOLM_VECTOR_CLONES void swiglu_backward_f32(const float* dh, const float* a, const float* b, float* da, float* db,
                                             int64_t n) {
  swiglu_backward_body(dh, a, b, da, db, n);
}
void swiglu_forward_chunk(const float* a, const float* b, float* h, int64_t n) { swiglu_forward_f32(a, b, h, n); }
void swiglu_backward_chunk(const float* dh, const float* a, const float* b, float* da, float* db, int64_t n) {
  swiglu_backward_f32(dh, a, b, da, db, n);
}
void swiglu_forward_chunk(const double* a, const double* b, double* h, int64_t n) { swiglu_forward_body(a, b, h, n); }
void swiglu_backward_chunk(const double* dh, const double* a, const double* b, double* da, double* db, int64_t n) {
  swiglu_backward_body(dh, a, b, da, db, n);
}

template <typename T>
void swiglu_forward(const T* a, const T* b, T* h, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) { swiglu_forward_chunk(a + i0, b + i0, h + i0, i1 - i0); });
}

template <typename T>
void swiglu_backward(const T* dh, const T* a, const T* b, T* da, T* db, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    swiglu_backward_chunk(dh + i0, a + i0, b + i0, da + i0, db + i0, i1 - i0);
  });
}

struct FusedSwiGlu : torch::autograd::Function<FusedSwiGlu> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a_in, const torch::Tensor& b_in) {
    const auto a = a_in.contiguous(), b = b_in.contiguous();
    auto h = torch::empty_like(a);
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "biolm::nn::swiglu", [&] {
      swiglu_forward<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), a.numel());
    });
    ctx->save_for_backward({a, b});
    return h;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1];
    const auto dh = grads[0].contiguous();
    const bool want_da = ctx->needs_input_grad(0), want_db = ctx->needs_input_grad(1);
    auto da = torch::empty_like(a), db = torch::empty_like(b);  // one pass writes both
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "biolm::nn::swiglu_backward", [&] {
      swiglu_backward<scalar_t>(dh.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                da.data_ptr<scalar_t>(), db.data_ptr<scalar_t>(), a.numel());
    });
    if (!want_da) da = torch::Tensor();
    if (!want_db) db = torch::Tensor();
    return {da, db};
  }
};

}  // namespace

bool fused_kernels_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("BIOLM_FUSED_KERNELS");
    return v == nullptr || std::string(v) != "0";
  }();
  return enabled;
}

bool fused_elementwise(const torch::Tensor& x) {
  return fused_kernels_enabled() && x.device().is_cpu() && (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble) &&
         x.layout() == torch::kStrided && x.numel() > 0;
}

torch::Tensor rms_norm_composite(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  // Statistics at least in float32 (HF LlamaRMSNorm), scaled by the weight in x's dtype.
  const bool upcast = x.scalar_type() == torch::kHalf || x.scalar_type() == torch::kBFloat16;
  const auto xs = upcast ? x.to(torch::kFloat) : x;
  const auto y = xs * torch::rsqrt(xs.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * y.to(x.scalar_type());
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  BIOLM_CHECK(x.dim() >= 1 && weight.dim() == 1 && x.size(-1) == weight.size(0), ShapeError, "rms_norm",
              "expected x (..., C) and weight (C)");
  if (!fused_elementwise(x) || weight.scalar_type() != x.scalar_type() || !weight.device().is_cpu()) {
    return rms_norm_composite(x, weight, eps);
  }
  return FusedRmsNorm::apply(x, weight, eps);
}

torch::Tensor gelu(const torch::Tensor& x) {
  if (!fused_elementwise(x) || x.scalar_type() != torch::kFloat) return torch::gelu(x);
  return FusedGelu::apply(x);
}

torch::Tensor swiglu_composite(const torch::Tensor& gate, const torch::Tensor& up) { return torch::silu(gate) * up; }

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  BIOLM_CHECK(gate.sizes() == up.sizes(), ShapeError, "swiglu", "gate and up must have one shape");
  if (!fused_elementwise(gate) || up.scalar_type() != gate.scalar_type() || !up.device().is_cpu()) {
    return swiglu_composite(gate, up);
  }
  return FusedSwiGlu::apply(gate, up);
}

}  // namespace biolm::nn

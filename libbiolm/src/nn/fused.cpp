#include "biolm/nn/fused.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "biolm/core/error.h"
#include "biolm/nn/rotary.h"
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

/// Rows of `row` elements per task of the row-wise kernels: about kGrain elements, at least one row.
inline int64_t rows_per_task(int64_t row) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(row, 1)); }

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

// ---- Cross entropy -------------------------------------------------------------------------

// Row reductions over sixteen independent lanes, so the compiler vectorises them without
// reassociating one running value. NaN logits make the row's loss NaN (through the sum of exp).
template <typename T>
BIOLM_ALWAYS_INLINE T row_max(const T* x, int64_t K) {
  constexpr T lowest = -std::numeric_limits<T>::infinity();
  T lane[16];
  for (int j = 0; j < 16; ++j) lane[j] = lowest;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int j = 0; j < 16; ++j) lane[j] = x[k + j] > lane[j] ? x[k + j] : lane[j];
  T m = lowest;
  for (; k < K; ++k) m = x[k] > m ? x[k] : m;
  for (int j = 0; j < 16; ++j) m = lane[j] > m ? lane[j] : m;
  return m;
}

template <typename T>
BIOLM_ALWAYS_INLINE T row_sum_exp(const T* x, T m, int64_t K) {
  T lane[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int j = 0; j < 16; ++j) lane[j] += exp_poly(x[k + j] - m);
  T s = 0;
  for (; k < K; ++k) s += exp_poly(x[k] - m);
  for (int j = 0; j < 16; ++j) s += lane[j];
  return s;
}

/// Rows [r0, r1): lse[r] = log sum exp x[r], loss[r] = lse[r] - x[r, label] (0 for ignored rows);
/// bad is set when a kept label lies outside [0, K).
template <typename T>
BIOLM_ALWAYS_INLINE void ce_forward_rows(const T* x, const int64_t* labels, T* lse, double* loss, int64_t r0, int64_t r1, int64_t K,
                            int64_t ignore_index, bool& bad) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t y = labels[r];
    if (y == ignore_index) {
      lse[r] = 0;
      loss[r] = 0;
      continue;
    }
    if (y < 0 || y >= K) {
      bad = true;
      lse[r] = 0;
      loss[r] = 0;
      continue;
    }
    const T* xr = x + r * K;
    const T m = row_max(xr, K);
    lse[r] = m + std::log(row_sum_exp(xr, m, K));
    loss[r] = static_cast<double>(lse[r]) - static_cast<double>(xr[y]);
  }
}

/// Rows [r0, r1): dx = g (softmax(x) - onehot(label)); zero for ignored rows.
template <typename T>
BIOLM_ALWAYS_INLINE void ce_backward_rows(const T* x, const int64_t* labels, const T* lse, T g, T* dx, int64_t r0, int64_t r1,
                             int64_t K, int64_t ignore_index) {
  for (int64_t r = r0; r < r1; ++r) {
    T* d = dx + r * K;
    const int64_t y = labels[r];
    if (y == ignore_index) {
      for (int64_t k = 0; k < K; ++k) d[k] = 0;
      continue;
    }
    const T* xr = x + r * K;
    const T l = lse[r];
    for (int64_t k = 0; k < K; ++k) d[k] = g * exp_poly(xr[k] - l);
    d[y] -= g;
  }
}

BIOLM_VECTOR_CLONES void ce_forward_rows_f32(const float* x, const int64_t* labels, float* lse, double* loss,
                                             int64_t r0, int64_t r1, int64_t K, int64_t ignore_index, bool& bad) {
  ce_forward_rows(x, labels, lse, loss, r0, r1, K, ignore_index, bad);
}
BIOLM_VECTOR_CLONES void ce_backward_rows_f32(const float* x, const int64_t* labels, const float* lse, float g,
                                              float* dx, int64_t r0, int64_t r1, int64_t K, int64_t ignore_index) {
  ce_backward_rows(x, labels, lse, g, dx, r0, r1, K, ignore_index);
}
void ce_forward_chunk(const float* x, const int64_t* labels, float* lse, double* loss, int64_t r0, int64_t r1,
                      int64_t K, int64_t ignore_index, bool& bad) {
  ce_forward_rows_f32(x, labels, lse, loss, r0, r1, K, ignore_index, bad);
}
void ce_forward_chunk(const double* x, const int64_t* labels, double* lse, double* loss, int64_t r0, int64_t r1,
                      int64_t K, int64_t ignore_index, bool& bad) {
  ce_forward_rows(x, labels, lse, loss, r0, r1, K, ignore_index, bad);
}
void ce_backward_chunk(const float* x, const int64_t* labels, const float* lse, float g, float* dx, int64_t r0,
                       int64_t r1, int64_t K, int64_t ignore_index) {
  ce_backward_rows_f32(x, labels, lse, g, dx, r0, r1, K, ignore_index);
}
void ce_backward_chunk(const double* x, const int64_t* labels, const double* lse, double g, double* dx, int64_t r0,
                       int64_t r1, int64_t K, int64_t ignore_index) {
  ce_backward_rows(x, labels, lse, g, dx, r0, r1, K, ignore_index);
}

struct FusedCrossEntropy : torch::autograd::Function<FusedCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& labels_in,
                               int64_t ignore_index) {
    const auto x = x_in.contiguous();
    const auto labels = labels_in.contiguous();
    const int64_t N = x.size(0), K = x.size(1);
    auto lse = torch::empty({N}, x.options());
    std::vector<double> loss(static_cast<size_t>(N));
    std::atomic<bool> any_bad{false};
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::cross_entropy", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* lp = lse.data_ptr<scalar_t>();
      const int64_t* yp = labels.data_ptr<int64_t>();
      at::parallel_for(0, N, rows_per_task(K), [&](int64_t r0, int64_t r1) {
        bool bad = false;
        ce_forward_chunk(xp, yp, lp, loss.data(), r0, r1, K, ignore_index, bad);
        if (bad) any_bad = true;
      });
    });
    BIOLM_CHECK(!any_bad, ShapeError, "cross_entropy",
                "labels must be in [0, " + std::to_string(K) + ") or " + std::to_string(ignore_index));
    double total = 0;  // in row order: the same sum for any number of threads
    for (const double v : loss) total += v;
    ctx->save_for_backward({x, labels, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    return torch::full({}, total, x.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &labels = saved[1], &lse = saved[2];
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const int64_t N = x.size(0), K = x.size(1);
    auto dx = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::cross_entropy_backward", [&] {
      const auto g = grads[0].to(torch::kCPU).item<scalar_t>();
      const scalar_t *xp = x.data_ptr<scalar_t>(), *lp = lse.data_ptr<scalar_t>();
      const int64_t* yp = labels.data_ptr<int64_t>();
      scalar_t* dp = dx.data_ptr<scalar_t>();
      at::parallel_for(0, N, rows_per_task(K), [&](int64_t r0, int64_t r1) {
        ce_backward_chunk(xp, yp, lp, g, dp, r0, r1, K, ignore_index);
      });
    });
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

// ---- Rotary position embedding -------------------------------------------------------------

// One row of D = 2 h: y_i = x_i c_i - x_{i+h} s_i, y_{i+h} = x_{i+h} c_{i+h} + x_i s_{i+h}
// (x c + rotate_half(x) s: the same products and sums); the backward is the
// transposed map, dx_i = dy_i c_i + dy_{i+h} s_{i+h}, dx_{i+h} = dy_{i+h} c_{i+h} - dy_i s_i.
template <typename T>
BIOLM_ALWAYS_INLINE void rotary_row(const T* __restrict x, const T* __restrict c, const T* __restrict s,
                                    T* __restrict y, int64_t h) {
  for (int64_t i = 0; i < h; ++i) {
    y[i] = x[i] * c[i] - x[i + h] * s[i];
    y[i + h] = x[i + h] * c[i + h] + x[i] * s[i + h];
  }
}
template <typename T>
BIOLM_ALWAYS_INLINE void rotary_row_transposed(const T* __restrict dy, const T* __restrict c, const T* __restrict s,
                                               T* __restrict dx, int64_t h) {
  for (int64_t i = 0; i < h; ++i) {
    dx[i] = dy[i] * c[i] + dy[i + h] * s[i + h];
    dx[i + h] = dy[i + h] * c[i + h] - dy[i] * s[i];
  }
}

/// Rows [r0, r1) of (B,H,T) rows: x strided (sb, sh, st; unit stride within a row), cos/sin
/// (Bc,T,D) contiguous with Bc 1 or B, y contiguous (B,H,T,D).
template <typename T>
BIOLM_ALWAYS_INLINE void rotary_rows(const T* x, int64_t sb, int64_t sh, int64_t st, const T* c, const T* s, T* y, int64_t r0,
                        int64_t r1, int64_t H, int64_t Tn, int64_t D, bool cos_batched, bool transposed) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = r % Tn, bh = r / Tn, hh = bh % H, b = bh / H;
    const T* xr = x + b * sb + hh * sh + t * st;
    const int64_t off = ((cos_batched ? b : 0) * Tn + t) * D;
    if (transposed) {
      rotary_row_transposed(xr, c + off, s + off, y + r * D, D / 2);
    } else {
      rotary_row(xr, c + off, s + off, y + r * D, D / 2);
    }
  }
}
BIOLM_VECTOR_CLONES void rotary_rows_f32(const float* x, int64_t sb, int64_t sh, int64_t st, const float* c,
                                         const float* s, float* y, int64_t r0, int64_t r1, int64_t H, int64_t Tn,
                                         int64_t D, bool cos_batched, bool transposed) {
  rotary_rows(x, sb, sh, st, c, s, y, r0, r1, H, Tn, D, cos_batched, transposed);
}
void rotary_chunk(const float* x, int64_t sb, int64_t sh, int64_t st, const float* c, const float* s, float* y,
                  int64_t r0, int64_t r1, int64_t H, int64_t Tn, int64_t D, bool cos_batched, bool transposed) {
  rotary_rows_f32(x, sb, sh, st, c, s, y, r0, r1, H, Tn, D, cos_batched, transposed);
}
void rotary_chunk(const double* x, int64_t sb, int64_t sh, int64_t st, const double* c, const double* s, double* y,
                  int64_t r0, int64_t r1, int64_t H, int64_t Tn, int64_t D, bool cos_batched, bool transposed) {
  rotary_rows(x, sb, sh, st, c, s, y, r0, r1, H, Tn, D, cos_batched, transposed);
}

torch::Tensor rotary_apply(const torch::Tensor& x_in, const torch::Tensor& c, const torch::Tensor& s,
                           bool transposed) {
  const auto x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
  const int64_t B = x.size(0), H = x.size(1), Tn = x.size(2), D = x.size(3);
  auto y = torch::empty({B, H, Tn, D}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::rotary", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *cp = c.data_ptr<scalar_t>(), *sp = s.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    at::parallel_for(0, B * H * Tn, rows_per_task(D), [&](int64_t r0, int64_t r1) {
      rotary_chunk(xp, x.stride(0), x.stride(1), x.stride(2), cp, sp, yp, r0, r1, H, Tn, D, c.size(0) != 1,
                   transposed);
    });
  });
  return y;
}

struct FusedRotary : torch::autograd::Function<FusedRotary> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos_in,
                               const torch::Tensor& sin_in) {
    const auto c = cos_in.contiguous(), s = sin_in.contiguous();
    ctx->save_for_backward({c, s});
    return rotary_apply(x, c, s, /*transposed=*/false);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {rotary_apply(grads[0], saved[0], saved[1], /*transposed=*/true), torch::Tensor(), torch::Tensor()};
  }
};

// ---- Masked softmax (attention probabilities) ----------------------------------------------

/// max over the entries with w > 0 (-inf when there are none), sixteen lanes as row_max.
template <typename T>
BIOLM_ALWAYS_INLINE T row_max_where(const T* x, const T* w, int64_t K) {
  constexpr T lowest = -std::numeric_limits<T>::infinity();
  T lane[16];
  for (int j = 0; j < 16; ++j) lane[j] = lowest;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int j = 0; j < 16; ++j) lane[j] = (w[k + j] > T(0) && x[k + j] > lane[j]) ? x[k + j] : lane[j];
  T m = lowest;
  for (; k < K; ++k) m = (w[k] > T(0) && x[k] > m) ? x[k] : m;
  for (int j = 0; j < 16; ++j) m = lane[j] > m ? lane[j] : m;
  return m;
}

/// Rows [r0, r1) of scores (R, K) contiguous; mask row r at mask + moff(r) with stride ms (null:
/// no mask); w is a scratch row of K. p = softmax over the kept entries, 0 at masked ones; a row
/// with nothing kept is NaN, as softmax over a row of -inf is. The mask row is first read into w
/// (1 kept, 0 masked) so that the exp loop is branch-free and vectorises; a masked entry's
/// exponent is pinned to -100 (no overflow whatever its score) and then multiplied by 0.
template <typename T, typename MaskOffset>
BIOLM_ALWAYS_INLINE void masked_softmax_rows(const T* __restrict x, const bool* __restrict mask, MaskOffset moff,
                                             int64_t ms, T* __restrict p, T* __restrict w, int64_t r0, int64_t r1,
                                             int64_t K) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * K;
    T* pr = p + r * K;
    if (mask == nullptr) {
      const T m = row_max(xr, K);
      for (int64_t k = 0; k < K; ++k) pr[k] = exp_poly(xr[k] - m);
    } else {
      const bool* mr = mask + moff(r);
      for (int64_t k = 0; k < K; ++k) w[k] = mr[k * ms] ? T(1) : T(0);
      const T m = row_max_where(xr, w, K);
      if (m == -std::numeric_limits<T>::infinity()) {  // nothing kept (or every kept score -inf)
        for (int64_t k = 0; k < K; ++k) pr[k] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      for (int64_t k = 0; k < K; ++k) pr[k] = exp_poly(w[k] > T(0) ? xr[k] - m : T(-100)) * w[k];
    }
    T lane[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 16 <= K; k += 16)
      for (int j = 0; j < 16; ++j) lane[j] += pr[k + j];
    T sum = 0;
    for (; k < K; ++k) sum += pr[k];
    for (int j = 0; j < 16; ++j) sum += lane[j];
    const T inv = T(1) / sum;
    for (int64_t k2 = 0; k2 < K; ++k2) pr[k2] *= inv;
  }
}

/// Rows [r0, r1): ds = p * (dp - sum(dp * p)) (0 where p is 0, so at masked entries).
template <typename T>
BIOLM_ALWAYS_INLINE void masked_softmax_backward_rows(const T* __restrict p, const T* __restrict dp, T* __restrict ds,
                                                      int64_t r0, int64_t r1, int64_t K) {
  for (int64_t r = r0; r < r1; ++r) {
    const T *pr = p + r * K, *gr = dp + r * K;
    const T dot = static_cast<T>(dot8(pr, gr, K));
    T* d = ds + r * K;
    for (int64_t k = 0; k < K; ++k) d[k] = pr[k] * (gr[k] - dot);
  }
}

struct MaskGeometry {  // where the mask row of scores row r = ((b * H + h) * T + t) starts
  int64_t H, Tq, sb, sh, st;
  int64_t operator()(int64_t r) const {
    const int64_t t = r % Tq, bh = r / Tq;
    return (bh / H) * sb + (bh % H) * sh + t * st;
  }
};

BIOLM_VECTOR_CLONES void masked_softmax_rows_f32(const float* x, const bool* mask, MaskGeometry g, int64_t ms,
                                                 float* p, float* w, int64_t r0, int64_t r1, int64_t K) {
  masked_softmax_rows(x, mask, g, ms, p, w, r0, r1, K);
}
BIOLM_VECTOR_CLONES void masked_softmax_backward_rows_f32(const float* p, const float* dp, float* ds, int64_t r0,
                                                          int64_t r1, int64_t K) {
  masked_softmax_backward_rows(p, dp, ds, r0, r1, K);
}
void masked_softmax_chunk(const float* x, const bool* mask, MaskGeometry g, int64_t ms, float* p, int64_t r0,
                          int64_t r1, int64_t K) {
  std::vector<float> w(static_cast<size_t>(K));
  masked_softmax_rows_f32(x, mask, g, ms, p, w.data(), r0, r1, K);
}
void masked_softmax_chunk(const double* x, const bool* mask, MaskGeometry g, int64_t ms, double* p, int64_t r0,
                          int64_t r1, int64_t K) {
  std::vector<double> w(static_cast<size_t>(K));
  masked_softmax_rows(x, mask, g, ms, p, w.data(), r0, r1, K);
}
void masked_softmax_backward_chunk(const float* p, const float* dp, float* ds, int64_t r0, int64_t r1, int64_t K) {
  masked_softmax_backward_rows_f32(p, dp, ds, r0, r1, K);
}
void masked_softmax_backward_chunk(const double* p, const double* dp, double* ds, int64_t r0, int64_t r1, int64_t K) {
  masked_softmax_backward_rows(p, dp, ds, r0, r1, K);
}

torch::Tensor masked_softmax_forward(const torch::Tensor& scores, const torch::Tensor& mask) {
  const auto x = scores.contiguous();
  const int64_t B = x.size(0), H = x.size(1), Tq = x.size(2), K = x.size(3), R = B * H * Tq;
  auto p = torch::empty_like(x, x.options().memory_format(at::MemoryFormat::Contiguous));
  torch::Tensor m;
  MaskGeometry g{H, Tq, 0, 0, 0};
  int64_t ms = 0;
  if (mask.defined()) {
    m = mask.expand({B, H, Tq, K});  // broadcast dimensions get stride 0: no copy
    g = {H, Tq, m.stride(0), m.stride(1), m.stride(2)};
    ms = m.stride(3);
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::masked_softmax", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* pp = p.data_ptr<scalar_t>();
    const bool* mp = m.defined() ? m.data_ptr<bool>() : nullptr;
    at::parallel_for(0, R, rows_per_task(K), [&](int64_t r0, int64_t r1) {
      masked_softmax_chunk(xp, mp, g, ms, pp, r0, r1, K);
    });
  });
  return p;
}

struct FusedMaskedSoftmax : torch::autograd::Function<FusedMaskedSoftmax> {
  // mask: a bool tensor, or an empty one for none (an undefined tensor is not an input
  // LibTorch 1.13's custom functions take).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& scores, const torch::Tensor& mask) {
    auto p = masked_softmax_forward(scores, mask.numel() == 0 ? torch::Tensor() : mask);
    ctx->save_for_backward({p});
    return p;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto p = ctx->get_saved_variables()[0];
    const auto dp = grads[0].contiguous();
    auto ds = torch::empty_like(p);
    const int64_t K = p.size(-1), R = p.numel() / std::max<int64_t>(K, 1);
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "biolm::nn::masked_softmax_backward", [&] {
      const scalar_t *pp = p.data_ptr<scalar_t>(), *gp = dp.data_ptr<scalar_t>();
      scalar_t* dsp = ds.data_ptr<scalar_t>();
      at::parallel_for(0, R, rows_per_task(K), [&](int64_t r0, int64_t r1) {
        masked_softmax_backward_chunk(pp, gp, dsp, r0, r1, K);
      });
    });
    return {ds, torch::Tensor()};
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

namespace biolm::nn {

torch::Tensor cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index) {
  BIOLM_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0), ShapeError, "cross_entropy",
              "expected logits (N,K) and labels (N)");
  const auto y = labels.to(logits.device(), torch::kLong);
  if (!fused_elementwise(logits)) {
    const auto x = logits.scalar_type() == torch::kDouble ? logits : logits.to(torch::kFloat);
    return torch::nll_loss(torch::log_softmax(x, -1), y, {}, at::Reduction::Sum, ignore_index);
  }
  return FusedCrossEntropy::apply(logits, y, ignore_index);
}

torch::Tensor rotary_composite(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto c = cos.unsqueeze(1);  // (B,1,T,D)
  const auto s = sin.unsqueeze(1);
  return x * c + rotate_half(x) * s;
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  BIOLM_CHECK(x.dim() == 4 && cos.dim() == 3 && sin.sizes() == cos.sizes() && x.size(2) == cos.size(1) &&
                  x.size(3) == cos.size(2) && x.size(3) % 2 == 0 && (cos.size(0) == 1 || cos.size(0) == x.size(0)),
              ShapeError, "Rotary", "expected x (B,H,T,D), D even, and cos/sin (B or 1,T,D)");
  const bool fused = fused_elementwise(x) && cos.scalar_type() == x.scalar_type() &&
                     sin.scalar_type() == x.scalar_type() && cos.device().is_cpu() && sin.device().is_cpu() &&
                     !cos.requires_grad() && !sin.requires_grad();
  return fused ? FusedRotary::apply(x, cos, sin) : rotary_composite(x, cos, sin);
}

}  // namespace biolm::nn

namespace biolm::nn {

torch::Tensor masked_softmax_composite(const torch::Tensor& scores, const torch::Tensor& mask) {
  const auto x = mask.defined() ? scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity())
                                : scores;
  return torch::softmax(x, -1);
}

torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask) {
  BIOLM_CHECK(scores.dim() == 4, ShapeError, "masked_softmax", "expected scores (B,H,Tq,Tk)");
  const bool mask_ok = !mask.defined() || (mask.scalar_type() == torch::kBool && mask.device().is_cpu() &&
                                          !mask.requires_grad());
  if (mask.defined()) {
    BIOLM_CHECK(mask.dim() == 4 && mask.size(3) == scores.size(3) && (mask.size(2) == 1 || mask.size(2) == scores.size(2)) &&
                    (mask.size(1) == 1 || mask.size(1) == scores.size(1)) &&
                    (mask.size(0) == 1 || mask.size(0) == scores.size(0)),
                ShapeError, "masked_softmax", "mask must broadcast to scores (B,H,Tq,Tk)");
  }
  if (!fused_elementwise(scores) || !mask_ok) return masked_softmax_composite(scores, mask);
  if (!torch::GradMode::is_enabled() || !scores.requires_grad()) return masked_softmax_forward(scores, mask);
  return FusedMaskedSoftmax::apply(scores, mask.defined() ? mask : torch::empty({0}, torch::kBool));
}

}  // namespace biolm::nn

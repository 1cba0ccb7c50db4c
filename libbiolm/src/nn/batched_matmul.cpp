#include "biolm/nn/batched_matmul.h"

#include <dlfcn.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <vector>

#include "biolm/core/compat.h"

namespace biolm::nn {
namespace {

// cblas_sgemm of the BLAS in the process (OpenBLAS under Debian's LibTorch), found at run time:
// libbiolm does not link a BLAS of its own. CBLAS constants: row major 101, no-trans 111, trans 112.
using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
Sgemm cblas_sgemm_fn() {
  static const Sgemm fn = reinterpret_cast<Sgemm>(::dlsym(RTLD_DEFAULT, "cblas_sgemm"));
  return fn;
}

/// How one operand's matrices lie in memory: row-major (last stride 1) or transposed (the
/// row stride 1), with their leading dimension.
struct Layout {
  bool transposed = false;
  int64_t ld = 0;
};

bool layout_of(const torch::Tensor& x, Layout& out) {
  const int64_t R = x.size(-2), C = x.size(-1);
  const int64_t sr = x.stride(-2), sc = x.stride(-1);
  if (sc == 1 && (R == 1 || sr >= std::max<int64_t>(C, 1))) {
    out = {false, R == 1 ? std::max<int64_t>(C, 1) : sr};
    return true;
  }
  if (sr == 1 && (C == 1 || sc >= std::max<int64_t>(R, 1))) {
    out = {true, C == 1 ? std::max<int64_t>(R, 1) : sc};
    return true;
  }
  return false;
}

/// Element offsets of every matrix of x (..., R, C), batch dimensions flattened in order.
std::vector<int64_t> matrix_offsets(const torch::Tensor& x) {
  const int64_t nd = x.dim() - 2;
  int64_t n = 1;
  for (int64_t d = 0; d < nd; ++d) n *= x.size(d);
  std::vector<int64_t> out(static_cast<size_t>(n));
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < nd; ++d) off += idx[static_cast<size_t>(d)] * x.stride(d);
    out[static_cast<size_t>(i)] = off;
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < x.size(d)) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  return out;
}

/// a @ b, one gemm per matrix. The result is contiguous, or, when `like` (the same shape) is a
/// dense layout whose matrices are row-major or transposed (a gradient for a q/k/v view of the
/// projections' (B,T,H,D) output), laid out as `like` is: the gradient then flows back into the
/// projection without the copy a reshape of a transposed gradient costs.
torch::Tensor raw(torch::Tensor a, torch::Tensor b, float alpha, const torch::Tensor& like = {}) {
  Layout la, lb;
  if (!layout_of(a, la)) {
    a = a.contiguous();
    layout_of(a, la);
  }
  if (!layout_of(b, lb)) {
    b = b.contiguous();
    layout_of(b, lb);
  }
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  auto sizes = a.sizes().vec();
  sizes.back() = N;
  torch::Tensor c;
  Layout lc{false, N};
  if (like.defined() && like.sizes().vec() == sizes && like.is_non_overlapping_and_dense() && M > 1 && N > 1 &&
      layout_of(like, lc)) {
    c = torch::empty_strided(like.sizes(), like.strides(), a.options());
  } else {
    lc = {false, N};
    c = torch::empty(sizes, a.options().memory_format(at::MemoryFormat::Contiguous));
  }
  if (c.numel() == 0) return c;
  if (K == 0) return c.zero_();
  const auto oa = matrix_offsets(a), ob = matrix_offsets(b), oc = matrix_offsets(c);
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  const Sgemm sgemm = cblas_sgemm_fn();
  constexpr int kNoTrans = 111, kTrans = 112;
  const int ta = la.transposed ? kTrans : kNoTrans, tb = lb.transposed ? kTrans : kNoTrans;
  // One gemm per matrix, in order, each with the BLAS's own threads. A parallel loop over the
  // batch with single-threaded gemms measured the same in whole steps (interleaved runs), so the
  // simpler loop stays.
  for (size_t i = 0; i < oa.size(); ++i) {
    if (!lc.transposed) {
      sgemm(101, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, pa + oa[i],
            static_cast<int>(la.ld), pb + ob[i], static_cast<int>(lb.ld), 0.0f, pc + oc[i], static_cast<int>(lc.ld));
    } else {  // C stored transposed: C^T (N x M, row-major) = b^T a^T
      sgemm(101, lb.transposed ? kNoTrans : kTrans, la.transposed ? kNoTrans : kTrans, static_cast<int>(N),
            static_cast<int>(M), static_cast<int>(K), alpha, pb + ob[i], static_cast<int>(lb.ld), pa + oa[i],
            static_cast<int>(la.ld), 0.0f, pc + oc[i], static_cast<int>(lc.ld));
    }
  }
  return c;
}

struct BatchedMatmul : torch::autograd::Function<BatchedMatmul> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b,
                               double alpha) {
    ctx->save_for_backward({a, b});
    ctx->saved_data["alpha"] = alpha;
    return raw(a, b, static_cast<float>(alpha));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& a = saved[0];
    const auto& b = saved[1];
    const auto& g = grads[0];
    const auto alpha = static_cast<float>(ctx->saved_data["alpha"].toDouble());
    torch::Tensor ga, gb;
    // Each gradient in its input's layout (see raw); alpha scales both, inside the gemm.
    if (ctx->needs_input_grad(0)) ga = raw(g, b.transpose(-2, -1), alpha, a);  // (..., M, N) @ (..., N, K)
    if (ctx->needs_input_grad(1)) gb = raw(a.transpose(-2, -1), g, alpha, b);  // (..., K, M) @ (..., M, N)
    return {ga, gb, torch::Tensor()};
  }
};

}  // namespace

bool batched_matmul_is_native(const torch::Tensor& a, const torch::Tensor& b) {
  if (!compat::bmm_loops_per_matrix() || cblas_sgemm_fn() == nullptr) return false;
  if (!a.device().is_cpu() || !b.device().is_cpu() || a.scalar_type() != torch::kFloat ||
      b.scalar_type() != torch::kFloat || a.dim() < 3 || a.dim() != b.dim() || a.size(-1) != b.size(-2)) {
    return false;
  }
  for (int64_t d = 0; d < a.dim() - 2; ++d) {
    if (a.size(d) != b.size(d)) return false;
  }
  // 32-bit BLAS integers.
  const int64_t limit = int64_t{1} << 30;
  for (const auto& x : {a, b}) {
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (x.size(d) >= limit || x.stride(d) >= limit) return false;
    }
  }
  return true;
}

torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b, double alpha) {
  if (!batched_matmul_is_native(a, b)) return alpha == 1.0 ? torch::matmul(a, b) : torch::matmul(a, b) * alpha;
  // Nothing to differentiate (inference, decoding): the product alone, no autograd node.
  if (!torch::GradMode::is_enabled() || (!a.requires_grad() && !b.requires_grad())) {
    return raw(a, b, static_cast<float>(alpha));
  }
  return BatchedMatmul::apply(a, b, alpha);
}

}  // namespace biolm::nn

// biolm/nn/batched_matmul.h: a @ b over a batch of small matrices (attention's q k^T and p v).
//
// LibTorch 1.13 built without MKL (Debian's, with OpenBLAS) runs at::bmm as a loop over the
// batch that select()s three tensors per matrix before each BLAS call: on MiniLM's attention
// (16 x 12 heads, 64 x 32) the profiler counted 20,167 select()s in one training step. Measured
// (docs/performance.md): greedy decoding, where each step's matrices are tiny, 1.17x faster;
// training steps unchanged within 2 %. Where that is the case
// (compat::bmm_loops_per_matrix()) and the operands are CPU float32, this calls cblas_sgemm of
// the BLAS LibTorch already loaded, one gemm per matrix on the operands' own strides (no copies
// for transposed views, no select()). Elsewhere it is torch::matmul. Differentiable (its backward
// is two more batched products).
#pragma once

#include <torch/types.h>

namespace biolm::nn {

/// alpha * a (..., M, K) @ b (..., K, N) with equal leading (batch) dimensions -> (..., M, N).
/// On its own path alpha goes into the gemm (attention's 1/sqrt(D) costs no pass of its own,
/// forward or backward); elsewhere it is torch::matmul(a, b) * alpha.
torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b, double alpha = 1.0);

/// Whether batched_matmul takes its own path for these operands (for tests and benches).
bool batched_matmul_is_native(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace biolm::nn

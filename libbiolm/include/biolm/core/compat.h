// biolm/core/compat.h: the one place where LibTorch 1.13 (Debian, CPU) and 2.x (CUDA) differ.
//
//   fused attention  1.13: at::_scaled_dot_product_attention(q,k,v,mask,p,need_weights,causal)
//                          returns (out, weights) and runs the math path;
//                    2.x:  at::scaled_dot_product_attention(q,k,v,mask,p,causal) with flash /
//                          memory-efficient kernels on CUDA.
//   autocast         1.13-2.3: at::autocast::set_enabled / set_autocast_gpu_dtype;
//                    2.4+:     per-device set_autocast_enabled / set_autocast_dtype.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>
#include <torch/version.h>

#include <cstdint>
#include <optional>

#define BIOLM_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace biolm::compat {

/// True when LibTorch has the public fused SDPA (2.0+); false means the 1.13 math path.
constexpr bool has_fused_sdpa() { return BIOLM_TORCH_AT_LEAST(2, 0); }

/// Scaled dot-product attention, softmax(q k^T / sqrt(D) + mask) v.
///   q: (B,H,Tq,D), k/v: (B,H,Tk,D) (same H; repeat grouped KV heads before calling).
///   mask: optional, broadcastable to (B,H,Tq,Tk); bool (true = may attend) or an additive float
///   mask (0 or -inf). Never pass is_causal together with a mask: fold causality into the mask.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const c10::optional<at::Tensor>& mask, double dropout_p,
                                        bool is_causal);

/// RAII: enables autocast to `dtype` on CUDA for its lifetime (no-op when !enabled or CPU).
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::ScalarType::Half;
};

/// Peak bytes held by tensors on CUDA device `device` since start or the last reset, from the
/// caching allocator's statistics (the figure torch.cuda.max_memory_allocated reports);
/// nullopt when this LibTorch has no CUDA.
std::optional<int64_t> cuda_peak_allocated_bytes(int device);
/// Restarts the peak statistics of `device` (no-op without CUDA).
void cuda_reset_peak_memory(int device);

}  // namespace biolm::compat

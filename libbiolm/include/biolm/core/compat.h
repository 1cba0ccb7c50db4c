// biolm/core/compat.h: the one place where LibTorch 1.13 (Debian, CPU) and 2.x (CUDA) differ.
//
//   fused attention  1.13: at::_scaled_dot_product_attention(q,k,v,mask,p,need_weights,causal)
//                          returns (out, weights) and runs the math path;
//                    2.x:  at::scaled_dot_product_attention(q,k,v,mask,p,causal) with flash /
//                          memory-efficient kernels on CUDA.
//   fused AdamW      2.1+ (CUDA), 2.4+ (CPU): at::_fused_adamw_, torch.optim.AdamW(fused=True)'s
//                    kernel; 1.13: none (torch::optim::AdamW's per-tensor loop).
//   CUDA generator   1.13-2.3: CUDAHooksInterface::getDefaultCUDAGenerator; 2.x later (2.15 has
//                    only this): getDefaultGenerator. The 2.4 cut-off is not verified per release.
//   c10d             1.13: ProcessGroupGloo/NCCL derive from c10d::ProcessGroup; 2.x: from
//                    c10d::Backend (a ProcessGroup wraps backends).
//   autocast         1.13-2.3: at::autocast::set_enabled / set_autocast_gpu_dtype (CUDA) and
//                              set_cpu_enabled / set_autocast_cpu_dtype (CPU);
//                    2.4+:     per-device set_autocast_enabled / set_autocast_dtype.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>
#include <torch/optim/optimizer.h>
#include <torch/version.h>

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#define BIOLM_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace biolm::compat {

/// The c10d class Gloo and NCCL process groups derive from, with allreduce/broadcast/barrier.
#if BIOLM_TORCH_AT_LEAST(2, 0)
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

/// The default CUDA generator of device `index` (throws without CUDA).
at::Generator cuda_default_generator(c10::DeviceIndex index);

/// True when LibTorch has the public fused SDPA (2.0+); false means the 1.13 math path.
constexpr bool has_fused_sdpa() { return BIOLM_TORCH_AT_LEAST(2, 0); }

/// True where at::bmm on CPU loops over the batch, one select() per operand and one BLAS call
/// per matrix: LibTorch before 2.0 built without MKL (Debian's 1.13 + OpenBLAS). nn::batched_matmul
/// replaces it there.
bool bmm_loops_per_matrix();

/// Scaled dot-product attention, softmax(q k^T / sqrt(D) + mask) v.
///   q: (B,H,Tq,D), k/v: (B,H,Tk,D) (same H; repeat grouped KV heads before calling).
///   mask: optional, broadcastable to (B,H,Tq,Tk); bool (true = may attend) or an additive float
///   mask (0 or -inf). Never pass is_causal together with a mask: fold causality into the mask.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const c10::optional<at::Tensor>& mask, double dropout_p,
                                        bool is_causal);

/// RAII: enables autocast to `dtype` on `device` (CUDA or CPU) for its lifetime; no-op when
/// !enabled. Matmuls and linears run in `dtype`, reductions and losses stay float32 (the op lists
/// of LibTorch's autocast); parameters, gradients and optimizer state stay float32.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_ = c10::DeviceType::CPU;
  bool prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::ScalarType::Half;
};

/// True where this LibTorch has the fused AdamW kernel for `device` (CUDA from 2.1, CPU from 2.4).
constexpr bool has_fused_adamw(c10::DeviceType device) {
  return device == c10::DeviceType::CUDA ? BIOLM_TORCH_AT_LEAST(2, 1)
                                         : device == c10::DeviceType::CPU && BIOLM_TORCH_AT_LEAST(2, 4);
}

/// One AdamW update of a group through the fused kernel (same math as torch::optim::AdamW:
/// p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/bc1 m / (sqrt(v/bc2) + eps)).
/// All lists are parallel and on one device; steps: 0-dim float32 tensors on that device, already
/// counting this update. Throws biolm::Error where has_fused_adamw is false.
void fused_adamw_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
                  at::TensorList steps, double lr, double beta1, double beta2, double weight_decay, double eps);

/// Whether autocast is on for `device` (CUDA or CPU) in this thread.
bool autocast_enabled(c10::DeviceType device);

/// Peak bytes held by tensors on CUDA device `device` since start or the last reset, from the
/// caching allocator's statistics (the figure torch.cuda.max_memory_allocated reports);
/// nullopt when this LibTorch has no CUDA.
std::optional<int64_t> cuda_peak_allocated_bytes(int device);
/// Restarts the peak statistics of `device` (no-op without CUDA).
void cuda_reset_peak_memory(int device);

/// The key of parameter `p` in torch::optim::Optimizer::state(): its TensorImpl address, printed
/// to a std::string (LibTorch 1.13: c10::guts::to_string, an ostream print) or the pointer itself
/// (2.x). Chosen from the map's key type, so it follows whichever LibTorch is built against.
template <typename Key = typename std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type>
Key optimizer_state_key(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace biolm::compat

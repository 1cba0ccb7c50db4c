#include "biolm/core/compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <limits>

#include "biolm/config.h"
#include "biolm/core/error.h"
#if BIOLM_TORCH_HAS_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace biolm::compat {

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const c10::optional<at::Tensor>& mask, double dropout_p,
                                        bool is_causal) {
#if BIOLM_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal);
#else
  // 1.13's private op: give it an additive float mask so its bool-mask convention never matters.
  c10::optional<at::Tensor> additive;
  if (mask.has_value() && mask->defined()) {
    if (mask->scalar_type() == at::kBool) {
      additive = at::zeros(mask->sizes(), q.options())
                     .masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity());
    } else {
      additive = mask->to(q.scalar_type());
    }
  }
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, additive, dropout_p,
                                                        /*need_attn_weights=*/false, is_causal));
#endif
}

bool bmm_loops_per_matrix() {
#if BIOLM_TORCH_AT_LEAST(2, 0)
  return false;
#else
  static const bool loops = !at::hasMKL();
  return loops;
#endif
}

AutocastGuard::AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled) {
  if (!enabled || (device != c10::DeviceType::CUDA && device != c10::DeviceType::CPU)) return;
  active_ = true;
  device_ = device;
#if BIOLM_TORCH_AT_LEAST(2, 4)
  prev_enabled_ = at::autocast::is_autocast_enabled(device);
  prev_dtype_ = at::autocast::get_autocast_dtype(device);
  at::autocast::set_autocast_enabled(device, true);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CUDA) {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
#if BIOLM_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device_, prev_enabled_);
  at::autocast::set_autocast_dtype(device_, prev_dtype_);
#else
  if (device_ == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
#endif
  at::autocast::clear_cache();
}

void fused_adamw_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
                  at::TensorList steps, double lr, double beta1, double beta2, double weight_decay, double eps) {
  if (params.empty()) return;
  BIOLM_CHECK(has_fused_adamw(params[0].device().type()), Error,
              "fused AdamW is not available in LibTorch " TORCH_VERSION " for " + params[0].device().str());
#if BIOLM_TORCH_AT_LEAST(2, 1)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, weight_decay,
                    eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)grads; (void)exp_avgs; (void)exp_avg_sqs; (void)steps; (void)lr; (void)beta1; (void)beta2;
  (void)weight_decay; (void)eps;
#endif
}

at::Generator cuda_default_generator(c10::DeviceIndex index) {
#if BIOLM_TORCH_AT_LEAST(2, 4)
  return at::detail::getCUDAHooks().getDefaultGenerator(index);
#else
  return at::detail::getCUDAHooks().getDefaultCUDAGenerator(index);
#endif
}

bool autocast_enabled(c10::DeviceType device) {
#if BIOLM_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

// The allocator statistics API: DeviceStats::allocated_bytes is an array indexed by StatType, whose
// entry 0 is AGGREGATE in every release (1.13: c10::cuda::CUDACachingAllocator::StatType; 2.4+:
// c10::CachingDeviceAllocator::StatType, re-exported in the same namespace).
std::optional<int64_t> cuda_peak_allocated_bytes(int device) {
#if BIOLM_TORCH_HAS_CUDA
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return static_cast<int64_t>(stats.allocated_bytes[0].peak);
#else
  (void)device;
  return std::nullopt;
#endif
}

void cuda_reset_peak_memory(int device) {
#if BIOLM_TORCH_HAS_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
#else
  (void)device;
#endif
}

}  // namespace biolm::compat

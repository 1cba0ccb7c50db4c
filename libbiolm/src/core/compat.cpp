#include "biolm/core/compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <limits>

#include "biolm/config.h"
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

AutocastGuard::AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled) {
  if (!enabled || device != c10::DeviceType::CUDA) return;
  active_ = true;
#if BIOLM_TORCH_AT_LEAST(2, 4)
  prev_enabled_ = at::autocast::is_autocast_enabled(c10::DeviceType::CUDA);
  prev_dtype_ = at::autocast::get_autocast_dtype(c10::DeviceType::CUDA);
  at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, true);
  at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, dtype);
#else
  prev_enabled_ = at::autocast::is_enabled();
  prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
  at::autocast::set_enabled(true);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
#if BIOLM_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, prev_enabled_);
  at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, prev_dtype_);
#else
  at::autocast::set_enabled(prev_enabled_);
  at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
  at::autocast::clear_cache();
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

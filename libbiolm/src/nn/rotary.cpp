#include "biolm/nn/rotary.h"

#include <cmath>

#include "biolm/core/error.h"
#include "biolm/nn/fused.h"

namespace biolm::nn {

torch::Tensor rotary_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling, torch::ScalarType work,
                              const torch::Device& device) {
  const auto opts = torch::TensorOptions().dtype(work).device(device);
  // inv_freq_i = 1 / theta^(2i/D), written as transformers writes it (_compute_default_rope_parameters)
  // so that float32 rounding, and the llama3 band decisions below, agree bit for bit.
  auto inv_freq = 1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim));
  switch (scaling.kind) {
    case RopeScalingKind::None: break;
    case RopeScalingKind::Linear: inv_freq = inv_freq / scaling.factor; break;  // _compute_linear_scaling_rope_parameters
    case RopeScalingKind::Llama3: {
      // _compute_llama3_parameters: wavelengths longer than the low-frequency bound are divided by
      // factor, shorter than the high-frequency bound kept, the band between interpolated.
      const double old_len = static_cast<double>(scaling.original_max_positions);
      const double low_wavelen = old_len / scaling.low_freq_factor;
      const double high_wavelen = old_len / scaling.high_freq_factor;
      const auto wavelen = 2.0 * M_PI / inv_freq;
      auto llama = torch::where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq);
      const auto smooth = (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
      const auto smoothed = (1 - smooth) * llama / scaling.factor + smooth * llama;
      const auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
      inv_freq = torch::where(medium, smoothed, llama);
      break;
    }
  }
  return inv_freq;
}

std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const torch::Tensor& position_ids, int64_t head_dim,
                                                        double theta, torch::ScalarType dtype, const RopeScaling& scaling) {
  BIOLM_CHECK(position_ids.dim() == 2, ShapeError, "Rotary", "position_ids must be (B,T)");
  BIOLM_CHECK(head_dim % 2 == 0, ShapeError, "Rotary", "head_dim must be even, got " + std::to_string(head_dim));
  const auto work = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto inv_freq = rotary_inv_freq(head_dim, theta, scaling, work, position_ids.device());
  const auto angles = position_ids.to(work).unsqueeze(-1) * inv_freq;  // (B,T,D/2)
  const auto emb = torch::cat({angles, angles}, -1);                     // (B,T,D)
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  const auto x1 = x.narrow(-1, 0, half);
  const auto x2 = x.narrow(-1, half, half);
  return torch::cat({-x2, x1}, -1);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // nn::rotary checks the shapes; one pass on the CPU (nn/fused.h), else x * cos + rotate_half(x) * sin.
  return rotary(x, cos, sin);
}

}  // namespace biolm::nn

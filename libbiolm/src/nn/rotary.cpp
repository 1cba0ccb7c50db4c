#include "biolm/nn/rotary.h"

#include "biolm/core/error.h"

namespace biolm::nn {

std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const torch::Tensor& position_ids, int64_t head_dim,
                                                        double theta, torch::ScalarType dtype) {
  BIOLM_CHECK(position_ids.dim() == 2, ShapeError, "Rotary", "position_ids must be (B,T)");
  BIOLM_CHECK(head_dim % 2 == 0, ShapeError, "Rotary", "head_dim must be even, got " + std::to_string(head_dim));
  const auto work = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto opts = torch::TensorOptions().dtype(work).device(position_ids.device());
  // inv_freq_i = theta^(-2i/D)
  const auto inv_freq = torch::pow(theta, -torch::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim));
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
  BIOLM_CHECK(x.dim() == 4 && cos.dim() == 3 && x.size(2) == cos.size(1) && x.size(3) == cos.size(2), ShapeError,
              "Rotary", "expected x (B,H,T,D) and cos/sin (B,T,D)");
  const auto c = cos.unsqueeze(1);  // (B,1,T,D)
  const auto s = sin.unsqueeze(1);
  return x * c + rotate_half(x) * s;
}

}  // namespace biolm::nn

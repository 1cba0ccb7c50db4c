// biolm/nn/rotary.h: rotary position embeddings (RoFormer, Su et al. 2021, eq. 34), in the
// "rotate_half" layout of HF transformers' LLaMA (modeling_llama.py): the head dimension is split
// in two halves [x1, x2] that rotate together, so checkpoints converted from HF need no permutation.
//
//   inv_freq_i = 1 / theta^(2i/D), i = 0..D/2-1 (then scaled, see RopeScaling);  angle(p, i) = p * inv_freq_i
//   cos = [cos(angle), cos(angle)], sin = [sin(angle), sin(angle)]        (B,T,D)
//   rope(x) = x * cos + rotate_half(x) * sin,  rotate_half([x1, x2]) = [-x2, x1]
#pragma once

#include <torch/types.h>

#include <utility>

#include "biolm/nn/kinds.h"

namespace biolm::nn {

/// cos and sin tables, each (B,T,D), for integer positions (B,T); computed in float32 (float64 when
/// `dtype` is double) and returned in `dtype`. The frequencies follow transformers'
/// ROPE_INIT_FUNCTIONS for "default", "linear" and "llama3" (same formulas, same float32 order).
std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const torch::Tensor& position_ids, int64_t head_dim,
                                                        double theta, torch::ScalarType dtype,
                                                        const RopeScaling& scaling = {});
/// The D/2 inverse frequencies (float32, or float64 for kDouble) on `device`.
torch::Tensor rotary_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling, torch::ScalarType work,
                              const torch::Device& device);
/// [x1, x2] -> [-x2, x1] along the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x);
/// x: (B,H,T,D), cos/sin: (B,T,D) -> (B,H,T,D).
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace biolm::nn

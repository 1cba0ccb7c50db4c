// biolm/nn/kinds.h: the choices building blocks take (shared with models::ModelConfig).
#pragma once

#include <cstdint>

namespace biolm::nn {

/// FFN non-linearity. GeluErf: BERT/GatorTron (exact erf GELU, Hendrycks & Gimpel 2016);
/// GeluTanh: GPT-2's tanh approximation; SwiGLU is gated: down(silu(gate(x)) * up(x)) (Shazeer 2020).
enum class Activation { GeluErf, GeluTanh, Relu, Silu, SwiGLU };
/// LayerNorm (Ba et al. 2016, with bias) or RMSNorm (Zhang & Sennrich 2019, weight only).
enum class NormKind { LayerNorm, RMSNorm };
/// Post: x = norm(x + f(x)) (BERT). Pre: x = x + f(norm(x)) (Megatron-BERT, GPT-2, LLaMA).
enum class NormPlacement { Post, Pre };

/// How rotary frequencies are stretched for contexts longer than pre-training (transformers'
/// `rope_type`, modeling_rope_utils.py). None: theta^(-2i/D). Linear (kaiokendev): every frequency
/// / factor (= positions / factor). Llama3 (Meta, Llama 3.1): wavelengths above
/// original_max_positions / low_freq_factor are divided by factor, those below
/// original_max_positions / high_freq_factor kept, the band between interpolated smoothly.
enum class RopeScalingKind { None, Linear, Llama3 };
struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::None;
  double factor = 1.0;                    ///< Linear, Llama3
  double low_freq_factor = 1.0;           ///< Llama3
  double high_freq_factor = 4.0;          ///< Llama3
  int64_t original_max_positions = 8192;  ///< Llama3: the pre-training context (tokens)
};

}  // namespace biolm::nn

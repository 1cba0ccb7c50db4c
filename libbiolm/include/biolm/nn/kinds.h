// biolm/nn/kinds.h: the choices building blocks take (shared with models::ModelConfig).
#pragma once

namespace biolm::nn {

/// FFN non-linearity. GeluErf: BERT/GatorTron (exact erf GELU, Hendrycks & Gimpel 2016);
/// GeluTanh: GPT-2's tanh approximation; SwiGLU is gated: down(silu(gate(x)) * up(x)) (Shazeer 2020).
enum class Activation { GeluErf, GeluTanh, Relu, Silu, SwiGLU };
/// LayerNorm (Ba et al. 2016, with bias) or RMSNorm (Zhang & Sennrich 2019, weight only).
enum class NormKind { LayerNorm, RMSNorm };
/// Post: x = norm(x + f(x)) (BERT). Pre: x = x + f(norm(x)) (Megatron-BERT, GPT-2, LLaMA).
enum class NormPlacement { Post, Pre };

}  // namespace biolm::nn

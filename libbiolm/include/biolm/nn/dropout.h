// biolm/nn/dropout.h: inverted dropout (Srivastava et al. 2014) with one fused CPU kernel.
//
// LibTorch's CPU dropout draws a float32 noise tensor with bernoulli_ (a serial loop over the
// CPU generator when LibTorch is built without MKL, as Debian's 1.13 is), divides it by 1-p,
// multiplies, and keeps the float noise for backward. On the study's MiniLM NER step (16 x 64
// pieces, dropout 0.1) that bernoulli_ alone was 19 % of the step (docs/performance.md).
//
// Here, for CPU float32/float64 tensors, one parallel pass draws the keep decisions from a
// counter-based generator (Philox-4x32-10, Salmon et al. 2011, the generator of cuRAND and of
// PyTorch's CUDA dropout), writes y = x * keep / (1-p) and keeps the decisions as one byte per
// element for backward (a quarter of the float noise). The Philox key is one 64-bit draw from
// LibTorch's default CPU generator per call, so torch::manual_seed, the trainer's saved RNG
// state (exact resume) and activation checkpointing's RNG replay govern it exactly as they govern
// torch::dropout; element i's decision depends only on that key and i, so the mask is the same
// for any number of threads. Elsewhere (CUDA, other dtypes, p == 1, BIOLM_FUSED_KERNELS=0) it is
// torch::dropout.
//
// The masks differ from torch::dropout's for the same seed (another generator), and so do the
// trained weights of any run with dropout; the distribution is the same (tested: keep rate,
// scaling, independence of positions, thread count).
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>

namespace biolm::nn {

/// Inverted dropout: in training, each element is zeroed with probability p and the rest are
/// scaled by 1/(1-p); otherwise (or p == 0) x itself. p in [0, 1].
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

/// Whether dropout takes the fused CPU kernel for x (for tests and benches).
bool dropout_is_fused(const torch::Tensor& x);

/// Philox-4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
/// SC 2011): four 32-bit outputs of a 128-bit counter under a 64-bit key, ten rounds. Element i
/// of a dropout call keeps when output i % 4 of counter (i / 4, 0) is below (1-p) * 2^32.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

/// The keep mask (uint8, x's shape) the fused kernel draws for key `key` and keep-probability
/// 1-p: what dropout(x, p, true) uses when its draw from the generator is `key` (for tests).
torch::Tensor dropout_keep_mask(at::IntArrayRef sizes, double p, uint64_t key);

}  // namespace biolm::nn

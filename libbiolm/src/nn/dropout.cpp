#include "biolm/nn/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstring>
#include <mutex>

#include "biolm/core/error.h"
#include "biolm/nn/fused.h"
#include "vector_clones.h"

namespace biolm::nn {

namespace {

inline std::array<uint32_t, 4> philox_rounds(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  return philox_rounds(ctr, key);
}

namespace {

// Element q's block of four draws: counter (q low, q high, 0, 0) under the 64-bit key.
inline std::array<uint32_t, 4> philox(uint64_t counter, uint64_t key) {
  return philox_rounds({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                       {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
}

/// Keep when the 32-bit draw is below keep * 2^32 (exact for keep = 1 - p with p a multiple of 2^-32).
uint64_t keep_threshold(double p) {
  return static_cast<uint64_t>(std::llround((1.0 - p) * 4294967296.0));
}

// Elements per task: a multiple of 4 (one Philox call per 4 elements, aligned to element 0, so
// the decisions do not depend on how the range is split between threads).
constexpr int64_t kGrain = 1 << 14;

/// keep[i] for i in [4 * q0, 4 * q1) (whole blocks): 1 when the element's draw is <= last, the
/// largest kept draw.
inline void draw_keep_blocks(int64_t q0, int64_t q1, uint64_t key, uint32_t last, uint8_t* keep) {
  for (int64_t q = q0; q < q1; ++q) {
    const auto r = philox(static_cast<uint64_t>(q), key);
    for (int j = 0; j < 4; ++j) keep[4 * q + j] = r[j] <= last;
  }
}
BIOLM_VECTOR_CLONES void draw_keep_blocks_vec(int64_t q0, int64_t q1, uint64_t key, uint32_t last, uint8_t* keep) {
  draw_keep_blocks(q0, q1, key, last, keep);
}

/// keep[i] for i in [4 * q0, min(4 * q1, n)): 1 when the element's 32-bit draw is below threshold.
void draw_keep(int64_t q0, int64_t q1, int64_t n, uint64_t key, uint64_t threshold, uint8_t* keep) {
  const int64_t end = std::min(4 * q1, n);
  if (threshold == 0 || threshold > 0xffffffffull) {  // nothing kept / everything kept
    std::memset(keep + 4 * q0, threshold == 0 ? 0 : 1, static_cast<size_t>(end - 4 * q0));
    return;
  }
  const auto last = static_cast<uint32_t>(threshold - 1);
  const int64_t full = std::min(q1, n / 4);
  if (full > q0) draw_keep_blocks_vec(q0, full, key, last, keep);
  for (int64_t q = std::max(q0, full); q < q1; ++q) {  // the last, partial block
    const auto r = philox(static_cast<uint64_t>(q), key);
    for (int64_t j = 0; 4 * q + j < n; ++j) keep[4 * q + j] = r[static_cast<size_t>(j)] <= last;
  }
}

/// out[i] = in[i] * keep[i] * scale over [i0, i1).
template <typename T>
inline void scale_kept(int64_t i0, int64_t i1, const uint8_t* keep, const T* in, T* out, T scale) {
  for (int64_t i = i0; i < i1; ++i) out[i] = in[i] * (static_cast<T>(keep[i]) * scale);
}
BIOLM_VECTOR_CLONES void scale_kept_f32(int64_t i0, int64_t i1, const uint8_t* keep, const float* in, float* out,
                                        float scale) {
  scale_kept(i0, i1, keep, in, out, scale);
}
inline void scale_chunk(int64_t i0, int64_t i1, const uint8_t* keep, const float* in, float* out, float scale) {
  scale_kept_f32(i0, i1, keep, in, out, scale);
}
inline void scale_chunk(int64_t i0, int64_t i1, const uint8_t* keep, const double* in, double* out, double scale) {
  scale_kept(i0, i1, keep, in, out, scale);
}

/// Draws the keep decisions of elements [0, n) into keep and, when x is given, y = x * keep * scale,
/// each task over its own block of the mask while it is in cache.
template <typename T>
void draw(int64_t n, uint64_t key, uint64_t threshold, uint8_t* keep, const T* x, T* y, T scale) {
  at::parallel_for(0, (n + 3) / 4, kGrain / 4, [&](int64_t q0, int64_t q1) {
    draw_keep(q0, q1, n, key, threshold, keep);
    if (x) scale_chunk(4 * q0, std::min(4 * q1, n), keep, x, y, scale);
  });
}

template <typename T>
void apply_mask(int64_t n, const uint8_t* keep, const T* g, T* out, T scale) {
  at::parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) { scale_chunk(i0, i1, keep, g, out, scale); });
}

uint64_t draw_key() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

struct FusedDropout : torch::autograd::Function<FusedDropout> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in, double p) {
    const auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    auto keep = torch::empty(x.sizes(), x.options().dtype(torch::kUInt8));
    const uint64_t key = draw_key();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "biolm::nn::dropout", [&] {
      draw<scalar_t>(x.numel(), key, keep_threshold(p), keep.data_ptr<uint8_t>(), x.data_ptr<scalar_t>(),
                     y.data_ptr<scalar_t>(), static_cast<scalar_t>(1.0 / (1.0 - p)));
    });
    ctx->save_for_backward({keep});
    ctx->saved_data["scale"] = 1.0 / (1.0 - p);
    ctx->mark_non_differentiable({keep});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto keep = ctx->get_saved_variables()[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto g = grads[0].contiguous();
    auto out = torch::empty_like(g);
    AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "biolm::nn::dropout_backward", [&] {
      apply_mask<scalar_t>(g.numel(), keep.data_ptr<uint8_t>(), g.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                           static_cast<scalar_t>(scale));
    });
    return {out, torch::Tensor()};
  }
};

}  // namespace

bool dropout_is_fused(const torch::Tensor& x) { return fused_elementwise(x); }

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  BIOLM_CHECK(p >= 0.0 && p <= 1.0, ConfigError, "dropout", "probability must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0.0) return x;
  if (p == 1.0 || !dropout_is_fused(x)) return torch::dropout(x, p, training);
  return FusedDropout::apply(x, p);
}

torch::Tensor dropout_keep_mask(at::IntArrayRef sizes, double p, uint64_t key) {
  auto keep = torch::empty(sizes, torch::TensorOptions().dtype(torch::kUInt8));
  draw<float>(keep.numel(), key, keep_threshold(p), keep.data_ptr<uint8_t>(), nullptr, nullptr, 0.0f);
  return keep;
}

}  // namespace biolm::nn

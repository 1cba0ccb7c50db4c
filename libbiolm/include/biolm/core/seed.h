// biolm/core/seed.h: one seed drives weights, data order and dropout.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace biolm::core {

/// Seeds LibTorch's CPU and CUDA generators (and returns the seed, for the run record).
std::uint64_t seed_all(std::uint64_t seed);
/// Draws a fresh seed from the OS (for `seed: null` in configs); record what it returns.
std::uint64_t draw_seed();
/// seed_all(seed ? *seed : draw_seed()).
std::uint64_t seed_all(std::optional<std::uint64_t> seed);

/// Serialised state of LibTorch's default generators, for checkpoints: a resumed run continues
/// the exact random stream (dropout masks, sampling) an unbroken run would have drawn.
struct RngState {
  std::vector<std::uint8_t> cpu;
  std::vector<std::vector<std::uint8_t>> cuda;  // one per visible device
};
RngState capture_rng_state();
void restore_rng_state(const RngState& state);

}  // namespace biolm::core

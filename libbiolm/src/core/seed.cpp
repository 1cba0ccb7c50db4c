#include "biolm/core/seed.h"

#include "biolm/core/compat.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <cstring>
#include <random>

#include "biolm/core/device.h"
#include "biolm/core/error.h"

namespace biolm::core {
namespace {

std::vector<std::uint8_t> to_bytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kCPU);
  std::vector<std::uint8_t> out(static_cast<size_t>(c.numel()));
  if (!out.empty()) std::memcpy(out.data(), c.data_ptr(), out.size());
  return out;
}

at::Tensor from_bytes(const std::vector<std::uint8_t>& bytes) {
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::TensorOptions().dtype(at::kByte));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

std::uint64_t seed_all(std::uint64_t seed) {
  torch::manual_seed(seed);  // also seeds every CUDA device when CUDA is present
  return seed;
}

std::uint64_t draw_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

std::uint64_t seed_all(std::optional<std::uint64_t> seed) {
  return seed_all(seed.has_value() ? *seed : draw_seed());
}

RngState capture_rng_state() {
  RngState s;
  auto gen = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cpu = to_bytes(gen.get_state());
  }
  for (int i = 0; i < cuda_device_count(); ++i) {
    auto g = compat::cuda_default_generator(static_cast<c10::DeviceIndex>(i));
    std::lock_guard<std::mutex> lock(g.mutex());
    s.cuda.push_back(to_bytes(g.get_state()));
  }
  return s;
}

void restore_rng_state(const RngState& state) {
  if (state.cpu.empty()) throw Error("restore_rng_state: the saved CPU generator state is empty");
  auto gen = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(from_bytes(state.cpu));
  }
  const int n = std::min<int>(cuda_device_count(), static_cast<int>(state.cuda.size()));
  for (int i = 0; i < n; ++i) {
    auto g = compat::cuda_default_generator(static_cast<c10::DeviceIndex>(i));
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(from_bytes(state.cuda[static_cast<size_t>(i)]));
  }
}

}  // namespace biolm::core

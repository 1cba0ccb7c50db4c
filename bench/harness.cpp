// bench/harness.cpp: timing, memory and hardware probes for biolm-bench (see harness.h).
#include "harness.h"

#include <dlfcn.h>
#include <sys/resource.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "biolm/core/compat.h"

namespace biolm::bench {

namespace {

void sync_if_cuda(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

StepTimes time_steps(int warmup, int steps, const std::function<void()>& step, const c10::Device& device) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) step();
  StepTimes t;
  t.ms.reserve(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    sync_if_cuda(device);
    const auto t0 = clock::now();
    step();
    sync_if_cuda(device);
    t.ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
  t.median_ms = median(t.ms);
  t.min_ms = *std::min_element(t.ms.begin(), t.ms.end());
  t.max_ms = *std::max_element(t.ms.begin(), t.ms.end());
  return t;
}

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream in(line.substr(6));
      double kb = 0;
      in >> kb;
      return kb / 1024.0;
    }
  }
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

std::optional<double> peak_cuda_mb(const c10::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
  const auto bytes = compat::cuda_peak_allocated_bytes(device.index());
  if (!bytes) return std::nullopt;
  return static_cast<double>(*bytes) / (1024.0 * 1024.0);
}

void reset_peak_cuda(const c10::Device& device) {
  if (device.is_cuda()) compat::cuda_reset_peak_memory(device.index());
}

std::string mapped_blas_libraries() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::set<std::string> seen;
  std::string out;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string file = path.substr(path.rfind('/') + 1);
    const bool relevant = file.find("blas") != std::string::npos || file.find("mkl") != std::string::npos ||
                          file.find("lapack") != std::string::npos || file.find("omp") != std::string::npos;
    if (!relevant || !seen.insert(path).second) continue;
    if (!out.empty()) out += ",";
    out += path;
  }
  return out;
}

std::string openblas_config() {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  if (fn == nullptr) return "";
  const char* s = fn();
  return s == nullptr ? "" : std::string(s);
}

std::optional<int> set_openblas_threads(int n) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set == nullptr || get == nullptr) return std::nullopt;
  set(n);
  return get();
}

double measure_matmul_peak(const c10::Device& device, c10::ScalarType dtype, int64_t n, int reps) {
  torch::NoGradGuard no_grad;
  const auto opts = torch::TensorOptions().device(device).dtype(dtype);
  const torch::Tensor a = torch::randn({n, n}, opts);
  const torch::Tensor b = torch::randn({n, n}, opts);
  torch::Tensor c = torch::empty({n, n}, opts);
  for (int i = 0; i < 3; ++i) torch::mm_out(c, a, b);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    sync_if_cuda(device);
    const auto t0 = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    sync_if_cuda(device);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best;
}

}  // namespace biolm::bench

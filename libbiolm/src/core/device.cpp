#include "biolm/core/device.h"

#include <torch/cuda.h>

#include <cctype>

#include "biolm/core/error.h"

namespace biolm::core {

bool cuda_available() { return torch::cuda::is_available(); }

int cuda_device_count() { return cuda_available() ? static_cast<int>(torch::cuda::device_count()) : 0; }

c10::Device parse_device(std::string_view spec, const std::string& key) {
  const std::string s(spec);
  if (s == "auto") {
    return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  if (s == "cpu") return c10::Device(c10::kCPU);
  int index = -1;
  if (s == "cuda") {
    index = 0;
  } else if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    const std::string digits = s.substr(5);
    for (char c : digits) {
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        throw ConfigError(key, "expected auto|cpu|cuda|cuda:N, found \"" + s + "\"");
      }
    }
    index = std::stoi(digits);
  } else {
    throw ConfigError(key, "expected auto|cpu|cuda|cuda:N, found \"" + s + "\"");
  }
  const int n = cuda_device_count();
  if (index >= n) {
    throw ConfigError(key, "\"" + s + "\" requested but " +
                               (n == 0 ? std::string("no CUDA device is available (CPU-only LibTorch or no GPU)")
                                       : std::to_string(n) + " CUDA device(s) are visible"));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace biolm::core

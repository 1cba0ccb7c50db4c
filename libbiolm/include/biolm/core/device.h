// biolm/core/device.h: choosing where tensors live, from a user string.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <string_view>

namespace biolm::core {

/// "auto" (first CUDA device if one is usable, else CPU), "cpu", "cuda" (device 0), "cuda:N".
/// Throws ConfigError(key, ...) naming `key` for anything else, or for a CUDA device that this
/// build or machine does not have.
c10::Device parse_device(std::string_view spec, const std::string& key = "device");

/// True when this LibTorch was built with CUDA and at least one device is visible.
bool cuda_available();
/// Number of visible CUDA devices (0 without CUDA).
int cuda_device_count();

}  // namespace biolm::core

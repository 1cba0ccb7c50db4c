#include "biolm/core/version.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <nlohmann/json.hpp>

#include "biolm/config.h"
#include "biolm/core/compat.h"
#include "biolm/core/device.h"

namespace biolm {

std::string version() { return BIOLM_VERSION_STRING; }
std::string git_commit() { return BIOLM_GIT_COMMIT; }
std::string torch_version() { return TORCH_VERSION; }

std::string cuda_version() {
  try {
    // Throws on CPU-only builds (no ATen_cuda library loaded).
    const long v = at::detail::getCUDAHooks().versionCUDART();
    if (v > 0) return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
  } catch (const std::exception&) {
  }
  // Builds that do not load the CUDA hooks: read the configuration LibTorch reports.
  const std::string cfg = at::show_config();
  const std::string key = "CUDA Runtime ";
  const auto pos = cfg.find(key);
  if (pos != std::string::npos) {
    const auto end = cfg.find('\n', pos);
    return cfg.substr(pos + key.size(), end - pos - key.size());
  }
  return "none";
}

nlohmann::json build_info() {
  nlohmann::json j;
  j["biolm"] = version();
  j["git_commit"] = git_commit();
  j["libtorch"] = torch_version();
  j["cuda"] = cuda_version();
  j["cuda_devices"] = core::cuda_device_count();
  j["fused_sdpa"] = compat::has_fused_sdpa();  // false: attention runs the math path
  // false: AdamW falls back to torch::optim::AdamW's per-tensor loop on that device
  j["fused_adamw"] = {{"cpu", compat::has_fused_adamw(c10::DeviceType::CPU)},
                      {"cuda", compat::has_fused_adamw(c10::DeviceType::CUDA)}};
  j["sentencepiece"] = static_cast<bool>(BIOLM_HAS_SENTENCEPIECE);
  j["hdf5"] = static_cast<bool>(BIOLM_HAS_HDF5);
  j["intra_op_threads"] = at::get_num_threads();
  return j;
}

std::string version_banner() {
  std::string s = "biolm " + version() + " (" + git_commit() + ")\n";
  s += "LibTorch " + torch_version() + "\n";
  s += "CUDA " + cuda_version() + " (" + std::to_string(core::cuda_device_count()) + " device(s) visible)\n";
  s += std::string("SentencePiece ") + (BIOLM_HAS_SENTENCEPIECE ? "yes" : "no") +
       ", HDF5 " + (BIOLM_HAS_HDF5 ? "yes" : "no") +
       ", fused attention " + (compat::has_fused_sdpa() ? "yes" : "no (math path)") + "\n";
  return s;
}

}  // namespace biolm

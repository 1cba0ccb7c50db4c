// biolm/core/version.h: what this build is, for `biolm --version` and every run's versions.json.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace biolm {

std::string version();        ///< libbiolm, e.g. "0.1.0"
std::string git_commit();     ///< short commit the library was built from, or "unknown"
std::string torch_version();  ///< LibTorch, e.g. "1.13.0"
std::string cuda_version();   ///< CUDA runtime LibTorch was built with, e.g. "12.4", or "none"
/// Everything above plus build features (SentencePiece, HDF5, fused SDPA, CUDA devices seen).
nlohmann::json build_info();
/// Multi-line human summary for `biolm --version`.
std::string version_banner();

}  // namespace biolm

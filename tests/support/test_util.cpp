#include "support/test_util.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace biolm::test {

std::string TensorDiff::describe() const {
  std::ostringstream os;
  os << "max|a-b| = " << max_abs << " at " << where;
  return os.str();
}

TensorDiff max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  TensorDiff d;
  if (a.sizes() != b.sizes()) {
    std::ostringstream os;
    os << "shape mismatch " << a.sizes() << " vs " << b.sizes();
    d.max_abs = std::numeric_limits<double>::infinity();
    d.where = os.str();
    return d;
  }
  if (a.numel() == 0) return d;
  const auto diff = (a.detach().to(torch::kCPU, torch::kDouble) - b.detach().to(torch::kCPU, torch::kDouble)).abs();
  if (torch::isnan(diff).any().item<bool>()) {
    d.max_abs = std::numeric_limits<double>::infinity();
    d.where = "a NaN";
    return d;
  }
  const auto flat_idx = diff.reshape({-1}).argmax().item<int64_t>();
  d.max_abs = diff.reshape({-1})[flat_idx].item<double>();
  std::ostringstream os;
  os << "[";
  int64_t rem = flat_idx;
  std::vector<int64_t> idx(static_cast<size_t>(diff.dim()));
  for (int64_t i = diff.dim() - 1; i >= 0; --i) {
    idx[static_cast<size_t>(i)] = rem % diff.size(i);
    rem /= diff.size(i);
  }
  for (size_t i = 0; i < idx.size(); ++i) os << (i ? ", " : "") << idx[i];
  os << "]";
  d.where = os.str();
  return d;
}

TempDir::TempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("biolm_test_" + tag + "_" + std::to_string(rd()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path source_dir() { return BIOLM_SOURCE_DIR; }

std::optional<std::filesystem::path> shared_data(const std::string& rel) {
  // BIOLM_SHARED_DATA (as the parity suite's) points elsewhere, e.g. from a git worktree.
  const char* env = std::getenv("BIOLM_SHARED_DATA");
  const std::filesystem::path p = std::filesystem::path(env && *env ? env : BIOLM_SHARED_DATA_DIR) / rel;
  if (std::filesystem::exists(p)) return p;
  return std::nullopt;
}

void write_text(const std::filesystem::path& p, const std::string& text) {
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + p.string());
  f << text;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

}  // namespace biolm::test

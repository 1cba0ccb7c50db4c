// Helpers shared by the tests: tensor comparison that names the worst element, scratch
// directories, and paths to our data and the optional real samples in ../shared/data.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

namespace biolm::test {

/// max|a-b| with the index where it occurs, e.g. "max|a-b| = 3e-07 at [1, 4, 17]".
struct TensorDiff {
  double max_abs = 0.0;
  std::string where;
  std::string describe() const;
};
TensorDiff max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

/// A fresh directory under the build tree's temp area, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path source_dir();  ///< repository root
/// ../shared/data/<rel> (or $BIOLM_SHARED_DATA/<rel>) when present, else nullopt (callers WARN and skip visibly).
std::optional<std::filesystem::path> shared_data(const std::string& rel);
void write_text(const std::filesystem::path& p, const std::string& text);
std::string read_text(const std::filesystem::path& p);

}  // namespace biolm::test

/// Compares two tensors elementwise; on failure prints the worst element.
#define BIOLM_REQUIRE_CLOSE(a, b, tol)                                       \
  do {                                                                       \
    const auto biolm_diff_ = ::biolm::test::max_abs_diff((a), (b));          \
    INFO(biolm_diff_.describe() << " (tolerance " << (tol) << ")");          \
    REQUIRE(biolm_diff_.max_abs <= (tol));                                   \
  } while (0)

/// Skips the rest of a test visibly when an optional real sample is absent.
#define BIOLM_SHARED_DATA_OR_SKIP(var, rel)                                           \
  auto var##_opt_ = ::biolm::test::shared_data(rel);                                 \
  if (!var##_opt_) {                                                                  \
    WARN("SKIPPED: ../shared/data/" << (rel) << " is not present");                   \
    return;                                                                           \
  }                                                                                   \
  const std::filesystem::path var = *var##_opt_

#include "biolm/train/checkpoint.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/peft/tensor_file.h"

namespace fs = std::filesystem;

namespace biolm::train {
namespace {

constexpr const char* kPrefix = "step-";
constexpr const char* kFormat = "biolm-checkpoint";

bool is_step_dir(const fs::path& p) {
  const std::string n = p.filename().string();
  if (n.rfind(kPrefix, 0) != 0 || n.size() == std::string(kPrefix).size()) return false;
  return std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

int64_t checkpoint_step(const fs::path& dir) {
  BIOLM_CHECK(is_step_dir(dir), CheckpointError, dir.string(), "", "not a checkpoint directory name (step-<N>)");
  return std::stoll(dir.filename().string().substr(5));
}

fs::path commit_checkpoint(const fs::path& root, int64_t step, const std::function<void(const fs::path&)>& write_files) {
  fs::create_directories(root);
  const fs::path final_dir = root / fmt::format("{}{:08d}", kPrefix, step);
  const fs::path tmp = root / fmt::format(".tmp-{}{:08d}-{}", kPrefix, step, ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_files(tmp);
  nlohmann::json manifest;
  manifest["format"] = kFormat;
  manifest["version"] = 1;
  manifest["step"] = step;
  manifest["files"] = nlohmann::json::object();
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(tmp)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    peft::fsync_path(f);
    manifest["files"][f.filename().string()] = {{"bytes", fs::file_size(f)}, {"sha256", sha256_file(f)}};
  }
  const fs::path mpath = tmp / "manifest.json";
  {
    std::ofstream out(mpath);
    out << manifest.dump(2) << "\n";
    if (!out.good()) throw IoError(mpath.string(), "cannot write manifest");
  }
  peft::fsync_path(mpath);
  peft::fsync_path(tmp);
  // rename() cannot replace a non-empty directory: move an old checkpoint of this step aside first.
  const fs::path old = root / fmt::format(".old-{}{:08d}-{}", kPrefix, step, ::getpid());
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  peft::fsync_path(root);
  fs::remove_all(old);
  return final_dir;
}

nlohmann::json verify_checkpoint(const fs::path& dir) {
  const fs::path mpath = dir / "manifest.json";
  BIOLM_CHECK(fs::is_regular_file(mpath), CheckpointError, mpath.string(), "",
              "missing: the checkpoint is incomplete or not a biolm checkpoint");
  nlohmann::json manifest;
  try {
    std::ifstream in(mpath);
    manifest = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(mpath.string(), "", std::string("unreadable manifest: ") + e.what());
  }
  BIOLM_CHECK(manifest.is_object() && manifest.value("format", "") == kFormat && manifest.contains("files") &&
                  manifest["files"].is_object(),
              CheckpointError, mpath.string(), "", "not a biolm-checkpoint manifest");
  for (const auto& item : manifest["files"].items()) {
    const fs::path f = dir / item.key();
    BIOLM_CHECK(fs::is_regular_file(f), CheckpointError, f.string(), "", "listed in the manifest but missing");
    const auto expected_bytes = item.value().at("bytes").get<uint64_t>();
    const auto bytes = fs::file_size(f);
    BIOLM_CHECK(bytes == expected_bytes, CheckpointError, f.string(), "",
                fmt::format("size {} bytes, manifest says {} (truncated or overwritten)", bytes, expected_bytes));
    const std::string expected = item.value().at("sha256").get<std::string>();
    const std::string found = sha256_file(f);
    BIOLM_CHECK(found == expected, CheckpointError, f.string(), "",
                "sha256 mismatch: manifest " + expected + ", file " + found + " (corrupted)");
  }
  return manifest;
}

std::vector<fs::path> list_checkpoints(const fs::path& root) {
  std::vector<fs::path> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory() && is_step_dir(e.path())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end(),
            [](const fs::path& a, const fs::path& b) { return checkpoint_step(a) < checkpoint_step(b); });
  return out;
}

std::optional<fs::path> find_latest_valid(const fs::path& root) {
  const auto all = list_checkpoints(root);
  if (all.empty()) return std::nullopt;
  std::string reasons;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verify_checkpoint(*it);
      return *it;
    } catch (const CheckpointError& e) {
      log::warn("skipping invalid checkpoint {}: {}", it->string(), e.what());
      reasons += std::string(reasons.empty() ? "" : "; ") + e.what();
    }
  }
  throw CheckpointError(root.string(), "", "no valid checkpoint among " + std::to_string(all.size()) + ": " + reasons);
}

void prune_checkpoints(const fs::path& root, int64_t keep_last, std::optional<int64_t> protect) {
  if (!fs::is_directory(root)) return;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    const bool ours = n.rfind(".tmp-", 0) == 0 || n.rfind(".old-", 0) == 0;
    const std::string mine = "-" + std::to_string(::getpid());
    const bool by_us = n.size() > mine.size() && n.compare(n.size() - mine.size(), mine.size(), mine) == 0;
    if (ours && e.is_directory() && !by_us) {
      fs::remove_all(e.path());  // left behind by a writer that crashed mid-checkpoint
    }
  }
  auto all = list_checkpoints(root);
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i < n - keep_last; ++i) {
    if (protect && checkpoint_step(all[static_cast<size_t>(i)]) == *protect) continue;
    fs::remove_all(all[static_cast<size_t>(i)]);
  }
}

}  // namespace biolm::train

#include "biolm/train/checkpoint.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/io/files.h"
#include "biolm/io/tensor_file.h"
#include "biolm/nn/linear.h"
#include "biolm/peft/method.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"
#include "checkpoint_format.h"

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

fs::path checkpoint_tmp_dir(const fs::path& root, int64_t step, int64_t tag) {
  return root / fmt::format(".tmp-{}{:08d}-{}", kPrefix, step, tag);
}

fs::path begin_checkpoint(const fs::path& root, int64_t step, int64_t tag) {
  fs::create_directories(root);
  const fs::path tmp = checkpoint_tmp_dir(root, step, tag);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  return tmp;
}

fs::path finish_checkpoint(const fs::path& root, int64_t step, const fs::path& tmp, const std::vector<KnownFile>& known) {
  const fs::path final_dir = root / fmt::format("{}{:08d}", kPrefix, step);
  nlohmann::json manifest;
  manifest["format"] = kFormat;
  manifest["version"] = 1;
  manifest["step"] = step;
  manifest["files"] = nlohmann::json::object();
  std::map<std::string, const KnownFile*> by_name;
  for (const auto& k : known) {
    const fs::path f = tmp / k.name;
    BIOLM_CHECK(fs::is_regular_file(f), CheckpointError, f.string(), "",
                "missing: its writer reported it written; the checkpoint is not committed");
    BIOLM_CHECK(fs::file_size(f) == k.bytes, CheckpointError, f.string(), "",
                fmt::format("{} bytes on disk, its writer reported {}; the checkpoint is not committed",
                            fs::file_size(f), k.bytes));
    by_name[k.name] = &k;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(tmp)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string name = f.lexically_relative(tmp).generic_string();
    const auto it = by_name.find(name);
    if (it != by_name.end()) {  // fsynced and hashed by its writer
      manifest["files"][name] = {{"bytes", it->second->bytes}, {"sha256", it->second->sha256}};
      continue;
    }
    io::fsync_path(f);
    manifest["files"][name] = {{"bytes", fs::file_size(f)}, {"sha256", sha256_file(f)}};
  }
  for (const auto& e : fs::recursive_directory_iterator(tmp)) {
    if (e.is_directory()) io::fsync_path(e.path());
  }
  const fs::path mpath = tmp / "manifest.json";
  {
    std::ofstream out(mpath);
    out << manifest.dump(2) << "\n";
    if (!out.good()) throw IoError(mpath.string(), "cannot write manifest");
  }
  io::fsync_path(mpath);
  io::fsync_path(tmp);
  // rename() cannot replace a non-empty directory: move an old checkpoint of this step aside first.
  const fs::path old = root / fmt::format(".old-{}{:08d}-{}", kPrefix, step, ::getpid());
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  io::fsync_path(root);
  fs::remove_all(old);
  return final_dir;
}

fs::path commit_checkpoint(const fs::path& root, int64_t step, const std::function<void(const fs::path&)>& write_files) {
  const fs::path tmp = begin_checkpoint(root, step, ::getpid());
  write_files(tmp);
  return finish_checkpoint(root, step, tmp);
}

nlohmann::json verify_checkpoint(const fs::path& dir, bool hash_shards) {
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
    if (!hash_shards && item.key().rfind("shards/", 0) == 0) continue;
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

std::optional<fs::path> find_latest_valid(const fs::path& root, bool hash_shards) {
  const auto all = list_checkpoints(root);
  if (all.empty()) return std::nullopt;
  std::string reasons;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verify_checkpoint(*it, hash_shards);
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

// ---- the contents of a trainer checkpoint (checkpoint_format.h) --------------------------------

namespace detail {

std::string rank_file(int rank) { return fmt::format("rank-{:05d}.safetensors", rank); }

torch::Tensor bytes_tensor(const std::vector<std::uint8_t>& bytes) {
  auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

std::vector<std::uint8_t> tensor_bytes(const torch::Tensor& t) {
  const auto c = t.contiguous().to(torch::kCPU);
  std::vector<std::uint8_t> out(static_cast<size_t>(c.numel()));
  if (!out.empty()) std::memcpy(out.data(), c.data_ptr(), out.size());
  return out;
}

io::TensorMap rng_tensors(const core::RngState& rng) {
  io::TensorMap out{{"cpu", bytes_tensor(rng.cpu)}};
  for (size_t i = 0; i < rng.cuda.size(); ++i) out["cuda." + std::to_string(i)] = bytes_tensor(rng.cuda[i]);
  return out;
}

core::RngState rng_from_tensors(const io::TensorMap& map, const fs::path& file) {
  BIOLM_CHECK(map.count("cpu"), CheckpointError, file.string(), "cpu", "missing");
  core::RngState rng;
  rng.cpu = tensor_bytes(map.at("cpu"));
  for (size_t i = 0; map.count("cuda." + std::to_string(i)); ++i) {
    rng.cuda.push_back(tensor_bytes(map.at("cuda." + std::to_string(i))));
  }
  return rng;
}

void write_model_state(const fs::path& file, torch::nn::Module& model, bool adapter_only,
                       const std::set<std::string>& exclude) {
  io::TensorMap weights;
  if (adapter_only) {
    weights = peft::adapter_state(model);
  } else {
    // A quantized base weight (QLoRA) is written in its stored form, so the checkpoint holds the
    // whole model (and `biolm convert checkpoint` can rebuild it).
    const auto linears = nn::linears_by_weight(model);
    for (const auto& item : model.named_parameters(true)) {
      if (exclude.count(item.key())) continue;
      const auto lin = linears.find(item.key());
      if (lin != linears.end() && lin->second->quantized_weight()) {
        quant::to_tensors(*lin->second->quantized_weight(), item.key(), weights);
      } else {
        weights[item.key()] = item.value();
      }
    }
    for (const auto& item : model.named_buffers(true)) {
      if (item.value().defined()) weights[item.key()] = item.value();
    }
  }
  io::write_tensor_file(file, weights);
}

void read_model_state(const fs::path& file, torch::nn::Module& model, bool adapter_only,
                      const std::set<std::string>& exclude) {
  if (adapter_only) {
    peft::load_adapter(model, file);
    return;
  }
  const auto saved = io::read_tensor_file(file);
  torch::NoGradGuard no_grad;
  const auto linears = nn::linears_by_weight(model);
  const auto has = [&](const std::string& n) { return saved.count(n) > 0; };
  const auto get = [&](const std::string& n) { return saved.at(n); };
  auto assign = [&](const std::string& name, torch::Tensor& dst) {
    if (exclude.count(name)) return;
    const auto lin = linears.find(name);
    if (lin != linears.end() && lin->second->quantized_weight()) {
      // The stored 4-/8-bit form; a checkpoint written before it was stored holds an empty
      // placeholder, and the base stays as the run rebuilt it from model.init.
      if (!quant::load_stored_weight(*lin->second, has, get, name, file.string()).empty()) return;
      const auto it = saved.find(name);
      BIOLM_CHECK(it != saved.end() && it->second.numel() == 0, CheckpointError, file.string(), name,
                  "the model's weight is quantized but the checkpoint holds neither its quantized form nor a placeholder");
      return;
    }
    const auto it = saved.find(name);
    BIOLM_CHECK(it != saved.end(), CheckpointError, file.string(), name, "missing from the checkpoint");
    BIOLM_CHECK(it->second.sizes() == dst.sizes(), CheckpointError, file.string(), name,
                "shape " + c10::str(it->second.sizes()) + " in the checkpoint, " + c10::str(dst.sizes()) +
                    " in the model");
    dst.copy_(it->second);
  };
  for (auto& item : model.named_parameters(true)) assign(item.key(), item.value());
  for (auto& item : model.named_buffers(true)) {
    if (item.value().defined()) assign(item.key(), item.value());
  }
}

void write_optimizer_state(const fs::path& file, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(file.string());
}

void read_optimizer_state(const fs::path& file, torch::optim::Optimizer& optimizer, c10::Device device) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string(), device);
  optimizer.load(archive);
}

nlohmann::json read_checkpoint_json(const fs::path& path) {
  std::ifstream in(path);
  BIOLM_CHECK(in.good(), CheckpointError, path.string(), "", "cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path.string(), "", std::string("unreadable JSON: ") + e.what());
  }
}

}  // namespace detail
}  // namespace biolm::train

#include "biolm/dist/sharded_checkpoint.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "biolm/core/error.h"
#include "biolm/io/files.h"
#include "biolm/io/safetensors.h"
#include "biolm/io/tensor_file.h"

namespace fs = std::filesystem;

namespace biolm::dist {

std::string shard_file_name(int rank, int world) {
  return fmt::format("shards/state-rank{:05d}-of-{:05d}.safetensors", rank, world);
}

train::KnownFile write_shard_file(const fs::path& tmp, int rank, int world, int64_t begin, int64_t end,
                                  const std::map<std::string, torch::Tensor>& tensors) {
  for (const auto& [key, t] : tensors) {
    BIOLM_CHECK(t.dim() == 1 && t.numel() == end - begin && t.scalar_type() == torch::kFloat32, Error,
                fmt::format("dist::write_shard_file: '{}' must be 1-D F32 of {} elements", key, end - begin));
  }
  const std::string name = shard_file_name(rank, world);
  const std::string bytes = io::serialize_safetensors(
      tensors, {{"format", "pt"},
                {"writer", "biolm"},
                {"rank", std::to_string(rank)},
                {"world_size", std::to_string(world)},
                {"begin", std::to_string(begin)},
                {"end", std::to_string(end)}});
  fs::create_directories(tmp / "shards");
  io::write_file_atomic(tmp / name, bytes);  // fsynced
  return {name, bytes.size(), train::sha256_hex(bytes.data(), bytes.size())};
}

// ---- metadata ----------------------------------------------------------------------------------

std::vector<std::string> ShardMetadata::state_keys() const {
  return adamw ? std::vector<std::string>{"exp_avg", "exp_avg_sq"} : std::vector<std::string>{"momentum_buffer"};
}

nlohmann::json ShardMetadata::to_json() const {
  nlohmann::json j;
  j["format"] = kShardMetadataFormat;
  j["version"] = 1;
  j["stage"] = stage;
  j["world_size"] = world_size;
  j["total_numel"] = total_numel;
  j["shard_numel"] = shard_numel;
  j["dtype"] = "F32";
  j["optimizer"] = adamw ? "adamw" : "sgd";
  j["state_keys"] = state_keys();
  j["has_parameters"] = has_parameters;
  j["parameters"] = nlohmann::json::array();
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& p = parameters[i];
    j["parameters"].push_back(
        {{"name", p.name}, {"shape", p.shape}, {"offset", p.offset}, {"numel", p.numel}, {"step", steps.at(i)}});
  }
  j["shards"] = nlohmann::json::array();
  for (const auto& s : shards) {
    j["shards"].push_back({{"rank", s.rank},
                           {"file", s.file},
                           {"begin", s.begin},
                           {"end", s.end},
                           {"bytes", s.bytes},
                           {"sha256", s.sha256}});
  }
  return j;
}

ShardMetadata ShardMetadata::from_json(const nlohmann::json& j, const std::string& file) {
  ShardMetadata m;
  std::string at = "format";
  try {
    BIOLM_CHECK(j.is_object() && j.value("format", "") == kShardMetadataFormat, CheckpointError, file, "format",
                std::string("not a ") + kShardMetadataFormat + " file");
    at = "version";
    BIOLM_CHECK(j.at("version").get<int>() == 1, CheckpointError, file, "version",
                fmt::format("version {} is not supported (1 is)", j.at("version").dump()));
    at = "dtype";
    BIOLM_CHECK(j.at("dtype").get<std::string>() == "F32", CheckpointError, file, "dtype",
                "only F32 shards are supported, found " + j.at("dtype").dump());
    at = "stage";
    m.stage = j.at("stage").get<int>();
    at = "world_size";
    m.world_size = j.at("world_size").get<int>();
    at = "total_numel";
    m.total_numel = j.at("total_numel").get<int64_t>();
    at = "shard_numel";
    m.shard_numel = j.at("shard_numel").get<int64_t>();
    at = "optimizer";
    const auto opt = j.at("optimizer").get<std::string>();
    BIOLM_CHECK(opt == "adamw" || opt == "sgd", CheckpointError, file, "optimizer",
                "expected adamw or sgd, found \"" + opt + "\"");
    m.adamw = opt == "adamw";
    at = "has_parameters";
    m.has_parameters = j.at("has_parameters").get<bool>();
    at = "parameters";
    int64_t offset = 0;
    for (const auto& p : j.at("parameters")) {
      FlatEntry e{p.at("name").get<std::string>(), p.at("shape").get<std::vector<int64_t>>(),
                  p.at("offset").get<int64_t>(), p.at("numel").get<int64_t>()};
      BIOLM_CHECK(e.offset == offset && e.numel >= 0, CheckpointError, file, "parameters." + e.name,
                  fmt::format("offset {} numel {}: the parameters must tile the flat vector (next offset {})", e.offset,
                              e.numel, offset));
      offset += e.numel;
      m.parameters.push_back(std::move(e));
      m.steps.push_back(p.at("step").get<int64_t>());
    }
    BIOLM_CHECK(offset == m.total_numel, CheckpointError, file, "parameters",
                fmt::format("{} elements listed, total_numel is {}", offset, m.total_numel));
    at = "shards";
    int64_t next = 0;
    for (const auto& s : j.at("shards")) {
      Shard sh{s.at("rank").get<int>(),        s.at("file").get<std::string>(), s.at("begin").get<int64_t>(),
               s.at("end").get<int64_t>(),     s.at("bytes").get<uint64_t>(),   s.at("sha256").get<std::string>()};
      BIOLM_CHECK(sh.begin == next && sh.end > sh.begin && sh.file.rfind("shards/", 0) == 0 &&
                      sh.file.find("..") == std::string::npos,
                  CheckpointError, file, "shards." + std::to_string(sh.rank),
                  fmt::format("file \"{}\" range [{}, {}): the shards must tile [0, total_numel) in order (next "
                              "begin {}) and lie under shards/",
                              sh.file, sh.begin, sh.end, next));
      next = sh.end;
      m.shards.push_back(std::move(sh));
    }
    BIOLM_CHECK(next == m.total_numel && static_cast<int>(m.shards.size()) == m.world_size, CheckpointError, file,
                "shards",
                fmt::format("{} shards covering [0, {}), expected {} covering [0, {})", m.shards.size(), next,
                            m.world_size, m.total_numel));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(file, at, std::string("malformed: ") + e.what());
  }
  return m;
}

// ---- reading -----------------------------------------------------------------------------------

ShardedCheckpointReader::ShardedCheckpointReader(const fs::path& dir) : dir_(dir) {
  const fs::path f = dir / kShardMetadataFile;
  BIOLM_CHECK(fs::is_regular_file(f), CheckpointError, f.string(), "", "missing: not a sharded checkpoint");
  nlohmann::json j;
  try {
    j = io::read_json_file(f);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(f.string(), "", std::string("unreadable JSON: ") + e.what());
  }
  meta_ = ShardMetadata::from_json(j, f.string());
}

ShardedCheckpointReader::~ShardedCheckpointReader() = default;

const io::SafetensorsFile& ShardedCheckpointReader::open(size_t i) {
  auto it = files_.find(i);
  if (it != files_.end()) return *it->second;
  const auto& sh = meta_.shards[i];
  const fs::path f = dir_ / sh.file;
  BIOLM_CHECK(fs::is_regular_file(f), CheckpointError, f.string(), "",
              fmt::format("missing: shard of rank {} of {} (flat elements [{}, {})); the checkpoint is incomplete",
                          sh.rank, meta_.world_size, sh.begin, sh.end));
  BIOLM_CHECK(fs::file_size(f) == sh.bytes, CheckpointError, f.string(), "",
              fmt::format("size {} bytes, metadata says {} (truncated or overwritten)", fs::file_size(f), sh.bytes));
  const std::string found = train::sha256_file(f);
  BIOLM_CHECK(found == sh.sha256, CheckpointError, f.string(), "",
              "sha256 mismatch: metadata " + sh.sha256 + ", file " + found + " (corrupted)");
  auto file = std::make_unique<io::SafetensorsFile>(f);
  std::vector<std::string> keys = meta_.state_keys();
  if (meta_.has_parameters) keys.push_back("param");
  for (const auto& key : keys) {
    const auto& info = file->info(key);  // CheckpointError naming the tensor when absent
    BIOLM_CHECK(info.dtype == io::Dtype::F32 && info.numel() == sh.end - sh.begin, CheckpointError, f.string(), key,
                fmt::format("expected F32 with {} elements, found {} with {}", sh.end - sh.begin,
                            io::dtype_name(info.dtype), info.numel()));
  }
  return *files_.emplace(i, std::move(file)).first->second;
}

torch::Tensor ShardedCheckpointReader::read(const std::string& key, int64_t begin, int64_t numel) {
  BIOLM_CHECK(begin >= 0 && numel >= 0 && begin + numel <= meta_.total_numel, CheckpointError,
              (dir_ / kShardMetadataFile).string(), key,
              fmt::format("flat elements [{}, {}) requested, the checkpoint has {}", begin, begin + numel,
                          meta_.total_numel));
  auto out = torch::empty({numel}, torch::kFloat32);
  const int64_t end = begin + numel;
  for (size_t i = 0; i < meta_.shards.size(); ++i) {
    const auto& sh = meta_.shards[i];
    const int64_t b = std::max(begin, sh.begin), e = std::min(end, sh.end);
    if (b >= e) continue;
    out.narrow(0, b - begin, e - b).copy_(open(i).flat_range(key, b - sh.begin, e - b));
  }
  return out;
}

FlatReader ShardedCheckpointReader::reader() {
  return [this](const std::string& key, int64_t begin, int64_t numel) { return read(key, begin, numel); };
}

void ShardedCheckpointReader::check_layout(const std::vector<FlatEntry>& layout) const {
  const std::string f = (dir_ / kShardMetadataFile).string();
  BIOLM_CHECK(layout.size() == meta_.parameters.size(), CheckpointError, f, "parameters",
              fmt::format("{} trainable parameters in the checkpoint, {} in the model (another model, adapter or "
                          "freezing policy?)",
                          meta_.parameters.size(), layout.size()));
  for (size_t i = 0; i < layout.size(); ++i) {
    const auto& want = meta_.parameters[i];
    const auto& got = layout[i];
    BIOLM_CHECK(want.name == got.name && want.shape == got.shape, CheckpointError, f, "parameters." + want.name,
                fmt::format("trainable parameter {} is {} {} in the checkpoint, {} {} in the model", i, want.name,
                            c10::str(c10::IntArrayRef(want.shape)), got.name, c10::str(c10::IntArrayRef(got.shape))));
  }
}

std::set<std::string> ShardedCheckpointReader::opened() const {
  std::set<std::string> out;
  for (const auto& [i, f] : files_) out.insert(meta_.shards[i].file);
  return out;
}

std::map<std::string, torch::Tensor> consolidated_model_tensors(const fs::path& dir) {
  auto tensors = io::read_tensor_file(dir / "model.safetensors");
  if (!fs::exists(dir / kShardMetadataFile)) return tensors;
  ShardedCheckpointReader shards(dir);
  if (!shards.metadata().has_parameters) return tensors;
  for (const auto& p : shards.metadata().parameters) {
    BIOLM_CHECK(!tensors.count(p.name), CheckpointError, (dir / "model.safetensors").string(), p.name,
                "also held by the shards (shards/metadata.json has_parameters): which one is meant?");
    tensors[p.name] = shards.read("param", p.offset, p.numel).view(p.shape);
  }
  return tensors;
}

}  // namespace biolm::dist

// The biolm model directory (model.json + model.safetensors + tokenizer/).
#include "biolm/io/model_dir.h"

#include <torch/torch.h>

#include <set>
#include <sstream>

#include "biolm/core/error.h"
#include "biolm/core/version.h"
#include "biolm/io/safetensors.h"
#include "biolm/io/files.h"
#include "biolm/nn/linear.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"

namespace biolm::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool is_adapter_name(const std::string& name) {
  return name.find(".adapter.") != std::string::npos || name.rfind("adapter.", 0) == 0 ||
         name.rfind("soft_prompt.", 0) == 0;
}

std::string join_some(const std::vector<std::string>& names) {
  std::ostringstream os;
  const size_t shown = std::min<size_t>(names.size(), 8);
  for (size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << names[i];
  if (names.size() > shown) os << ", ... (" << names.size() - shown << " more)";
  return os.str();
}

}  // namespace

std::string WeightLoadReport::to_string() const {
  std::ostringstream os;
  os << "loaded " << loaded.size() << ", missing " << missing.size();
  if (!missing.empty()) os << " [" << join_some(missing) << "]";
  os << ", unexpected " << unexpected.size();
  if (!unexpected.empty()) os << " [" << join_some(unexpected) << "]";
  return os.str();
}

bool is_model_dir(const fs::path& dir) {
  const auto path = dir / "model.json";
  if (!fs::is_regular_file(path)) return false;
  try {
    const json j = read_json_file(path);
    return j.is_object() && j.value("format", std::string()) == kModelDirFormat;
  } catch (const std::exception&) {
    return false;
  }
}

void save_model_dir(models::TaskModelImpl& model, const ModelDirInfo& info, const fs::path& dir,
                    const ModelDirSaveOptions& options) {
  fs::create_directories(dir);
  ModelDirInfo out = info;
  if (options.merge_adapters) peft::merge_adapters(model);
  try {
    std::map<std::string, at::Tensor> tensors;
    bool any_adapter = false;
    const auto linears = nn::linears_by_weight(model);
    for (const auto& item : model.named_parameters(/*recurse=*/true)) {
      // A quantized base weight is written in its stored form (transformers + bitsandbytes names).
      const auto lin = linears.find(item.key());
      if (lin != linears.end() && lin->second->quantized_weight()) {
        quant::to_tensors(*lin->second->quantized_weight(), item.key(), tensors);
        continue;
      }
      if (is_adapter_name(item.key())) {
        // Merged adapters are already inside the base weights.
        if (options.merge_adapters && item.key().rfind("soft_prompt.", 0) != 0) continue;
        any_adapter = true;
      }
      auto t = item.value().detach().to(torch::kCPU);
      if (options.dtype && t.is_floating_point()) t = t.to(*options.dtype);
      tensors[item.key()] = t.contiguous();
    }
    if (!any_adapter) {
      out.peft.reset();
    } else if (!out.peft) {
      throw Error("save_model_dir(" + dir.string() +
                  "): the model carries adapter or soft-prompt parameters but ModelDirInfo::peft is unset; "
                  "set it to the MethodConfig that was applied, or save with merge_adapters");
    }
    json j;
    j["format"] = kModelDirFormat;
    j["version"] = kModelDirVersion;
    j["config"] = models::to_json(out.config);
    j["task"] = models::to_string(out.task);
    j["n_labels"] = out.n_labels;
    j["labels"] = out.labels;
    if (out.peft) j["peft"] = peft::to_json(*out.peft);
    j["info"] = out.info;
    save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}, {"biolm", version()}});
    if (options.tokenizer) options.tokenizer->save(dir / "tokenizer");
    // model.json last: a directory whose model.json exists has its weights.
    write_file_atomic(dir / "model.json", j.dump(2) + "\n");
  } catch (...) {
    if (options.merge_adapters) peft::unmerge_adapters(model);
    throw;
  }
  if (options.merge_adapters) peft::unmerge_adapters(model);
}

ModelDirInfo read_model_dir_info(const fs::path& dir) {
  const auto path = dir / "model.json";
  if (!fs::is_regular_file(path)) {
    throw CheckpointError(path.string(), "", "not a biolm model directory (no model.json)");
  }
  const json j = read_json_file(path);
  auto field = [&](const char* name) -> const json& {
    if (!j.is_object() || !j.contains(name)) throw CheckpointError(path.string(), name, "missing");
    return j.at(name);
  };
  if (field("format") != kModelDirFormat) {
    throw CheckpointError(path.string(), "format", "expected \"" + std::string(kModelDirFormat) + "\"");
  }
  if (!field("version").is_number_integer() || field("version").get<int>() > kModelDirVersion) {
    throw CheckpointError(path.string(), "version",
                          "unsupported version " + field("version").dump() + " (this build reads up to " +
                              std::to_string(kModelDirVersion) + ")");
  }
  ModelDirInfo info;
  try {
    info.config = models::config_from_json(field("config"), "config");
    info.task = models::parse_task_kind(field("task").get<std::string>(), "task");
    info.n_labels = j.value("n_labels", int64_t{2});
    info.labels = j.value("labels", std::vector<std::string>{});
    if (j.contains("peft") && !j.at("peft").is_null()) info.peft = peft::method_config_from_json(j.at("peft"), "peft");
    if (j.contains("info")) info.info = j.at("info");
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(path.string(), "", e.what());
  }
  return info;
}

LoadedModel load_model_dir(const fs::path& dir) {
  LoadedModel out;
  out.info = read_model_dir_info(dir);
  out.model = models::make_task_model(out.info.config, out.info.task, out.info.n_labels);
  if (out.info.peft) peft::apply(*out.model, *out.info.peft);
  const auto report = load_weights(*out.model, dir, /*strict=*/true);
  (void)report;
  if (fs::exists(dir / "tokenizer")) out.tokenizer = tokenize::load_tokenizer(dir / "tokenizer");
  return out;
}

WeightLoadReport load_weights(torch::nn::Module& model, const fs::path& path, bool strict) {
  const fs::path file = fs::is_directory(path) ? path / "model.safetensors" : path;
  if (!fs::is_regular_file(file)) throw CheckpointError(file.string(), "", "no such weights file");
  return load_weights(model, load_safetensors(file), file.string(), strict);
}

WeightLoadReport load_weights(torch::nn::Module& model, const std::map<std::string, at::Tensor>& tensors,
                              const std::string& where, bool strict) {
  WeightLoadReport report;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  const auto linears = nn::linears_by_weight(model);
  const auto has = [&](const std::string& n) { return tensors.count(n) > 0; };
  const auto get = [&](const std::string& n) { return tensors.at(n); };
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const auto it = tensors.find(item.key());
    if (it == tensors.end()) {
      if (!is_adapter_name(item.key())) report.missing.push_back(item.key());
      continue;
    }
    // Quantized on either side: the file's quantized form (installed, or dequantized into a dense
    // Linear), or a dense tensor for a quantized Linear (quantized now).
    const auto lin = linears.find(item.key());
    nn::LinearImpl* linear = lin == linears.end() ? nullptr : lin->second;
    if (linear) {
      const auto stored = quant::load_stored_weight(*linear, has, get, item.key(), where);
      if (!stored.empty()) {
        used.insert(stored.begin(), stored.end());
        report.loaded.push_back(item.key());
        continue;
      }
    }
    if (linear && linear->quantized_weight()) {
      try {
        quant::load_weight(*linear, it->second, item.key());
      } catch (const ShapeError& e) {
        throw CheckpointError(where, item.key(), e.what());
      }
      used.insert(item.key());
      report.loaded.push_back(item.key());
      continue;
    }
    auto& param = item.value();
    if (it->second.sizes() != param.sizes()) {
      std::ostringstream os;
      os << "shape " << it->second.sizes() << " in the file, " << param.sizes() << " in the model";
      throw CheckpointError(where, item.key(), os.str());
    }
    param.copy_(it->second.to(param.dtype()));
    used.insert(item.key());
    report.loaded.push_back(item.key());
  }
  for (auto& item : model.named_buffers(/*recurse=*/true)) {
    const auto it = tensors.find(item.key());
    if (it == tensors.end() || !item.value().defined() || used.count(item.key())) continue;
    if (it->second.sizes() != item.value().sizes()) {
      std::ostringstream os;
      os << "shape " << it->second.sizes() << " in the file, " << item.value().sizes() << " in the model";
      throw CheckpointError(where, item.key(), os.str());
    }
    item.value().copy_(it->second.to(item.value().dtype()));
    used.insert(item.key());
  }
  for (const auto& kv : tensors) {
    if (!used.count(kv.first)) report.unexpected.push_back(kv.first);
  }
  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    throw CheckpointError(where, "", "weights do not match the model: " + report.to_string());
  }
  return report;
}

}  // namespace biolm::io

// biolm convert: Hugging Face directories <-> biolm model directories, PEFT adapters both ways, and
// the logits of a model for given token ids or a padded batch (what tests/parity/test_models.py
// and tools/hf_reference.py compare against).
//   biolm convert from-hf HF_DIR OUT_DIR [--task KIND] [--labels a,b,c] [--n-labels N] [--strict]
//   biolm convert to-hf MODEL_DIR OUT_DIR [--dtype bf16|f16|f32] [--merge] [--arch TYPE]
//   biolm convert checkpoint CHECKPOINT_DIR OUT_DIR [--dtype bf16|f16|f32] [--merge] [--arch TYPE]
//   biolm convert adapter MODEL_DIR OUT_DIR --base-hf NAME_OR_PATH [--arch TYPE]
//   biolm convert from-peft HF_DIR PEFT_DIR OUT_DIR [--task KIND] [--labels a,b,c] [--n-labels N]
//   biolm convert logits DIR (--ids 2,7,11 | --batch FILE.json) [--task KIND] [--dtype f32|bf16] [--out FILE]
//                        [--adapter PEFT_DIR] [--lora-rank R ...]
// Each prints one JSON object on stdout; errors go to stderr with the exit codes of docs/cli.md.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/dist/sharded_checkpoint.h"
#include "biolm/io/files.h"
#include "biolm/io/hf_config.h"
#include "biolm/io/hf_weights.h"
#include "biolm/quant/quantize.h"
#include "biolm/io/model_dir.h"
#include "biolm/io/peft_export.h"
#include "biolm/io/peft_import.h"
#include "biolm/models/task_model.h"
#include "biolm/models/transformer.h"
#include "biolm/peft/lora.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/train/checkpoint.h"
#include "command.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using biolm::CheckpointError;
using biolm::ConfigError;
using biolm::models::TaskKind;

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  for (const auto& item : split_list(s)) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0) throw ConfigError("--ids", fmt::format("expected token ids like 2,7,11, found \"{}\"", item));
    ids.push_back(v);
  }
  if (ids.empty()) throw ConfigError("--ids", "give at least one token id");
  return ids;
}

/// A rectangular JSON array of integers (any depth) -> int64 tensor; errors name file, field and
/// the first ragged or non-integer element.
torch::Tensor int_tensor_from_json(const json& v, const std::string& where) {
  std::vector<int64_t> shape, data;
  std::function<void(const json&, size_t, const std::string&)> walk = [&](const json& x, size_t depth,
                                                                         const std::string& at) {
    if (x.is_array()) {
      if (depth == shape.size()) {
        BIOLM_CHECK(data.empty(), ConfigError, at, "ragged array: every row must have the same depth");
        shape.push_back(static_cast<int64_t>(x.size()));
      } else if (depth > shape.size() || shape[depth] != static_cast<int64_t>(x.size())) {
        throw ConfigError(at, fmt::format("ragged array: expected {} elements, found {} (pad the rows and give "
                                          "attention_mask)",
                                          depth < shape.size() ? shape[depth] : 0, x.size()));
      }
      for (size_t i = 0; i < x.size(); ++i) walk(x[i], depth + 1, fmt::format("{}[{}]", at, i));
      return;
    }
    BIOLM_CHECK(x.is_number_integer() && depth == shape.size(), ConfigError, at,
                fmt::format("expected an integer at depth {}, found {}", shape.size(), x.dump()));
    data.push_back(x.get<int64_t>());
  };
  walk(v, 0, where);
  BIOLM_CHECK(!shape.empty() && !data.empty(), ConfigError, where, "expected a non-empty array of rows");
  return torch::tensor(data, torch::kLong).reshape(shape);
}

/// The --batch file of `convert logits`: {"input_ids": rows, "attention_mask": rows,
/// "token_type_ids": rows, "position_ids": rows} (only input_ids required; rows (B,T), or (B,K,T)
/// for multiple choice), as a data::Batch.
biolm::data::Batch read_batch_file(const std::string& path) {
  std::ifstream in(path);
  BIOLM_CHECK(in.good(), biolm::IoError, path, "cannot open the batch file");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError(path, fmt::format("malformed JSON: {}", e.what()));
  }
  BIOLM_CHECK(j.is_object() && j.contains("input_ids"), ConfigError, path + ": input_ids",
              "expected {\"input_ids\": [[...], ...], \"attention_mask\": ..., \"token_type_ids\": ...}");
  biolm::data::Batch batch;
  for (const auto& [key, value] : j.items()) {
    if (key != "input_ids" && key != "attention_mask" && key != "token_type_ids" && key != "position_ids") {
      throw ConfigError(path + ": " + key, "unknown field (expected input_ids, attention_mask, token_type_ids, position_ids)");
    }
    batch[key] = int_tensor_from_json(value, path + ": " + key);
  }
  const auto ids = batch.at("input_ids");
  BIOLM_CHECK(ids.min().item<int64_t>() >= 0, ConfigError, path + ": input_ids", "token ids must be >= 0");
  for (const char* key : {"attention_mask", "token_type_ids", "position_ids"}) {
    if (!batch.has(key)) continue;
    BIOLM_CHECK(batch.at(key).sizes() == ids.sizes(), ConfigError, fmt::format("{}: {}", path, key),
                fmt::format("shape ({}) differs from input_ids ({})", fmt::join(batch.at(key).sizes(), ","),
                            fmt::join(ids.sizes(), ",")));
  }
  return batch;
}

c10::ScalarType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "float32") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "f16" || s == "float16") return at::kHalf;
  throw ConfigError("--dtype", fmt::format("expected bf16, f16 or f32, found \"{}\"", s));
}

std::optional<biolm::io::HfArch> parse_arch(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return biolm::io::parse_hf_arch(s, "--arch");
}

bool has_hf_tokenizer(const fs::path& dir) {
  for (const auto& name : biolm::io::hf_tokenizer_files()) {
    if (name != "tokenizer_config.json" && name != "special_tokens_map.json" && fs::exists(dir / name)) return true;
  }
  return false;
}

bool carries_adapters(const biolm::peft::MethodConfig& m) {
  using biolm::peft::Method;
  return m.method == Method::Lora || m.method == Method::Ia3 || m.method == Method::Hybrid;
}

/// The HF model type a model directory came from (from-hf records it), else none.
std::optional<biolm::io::HfArch> recorded_arch(const biolm::io::ModelDirInfo& info) {
  if (info.info.contains("hf_model_type") && info.info["hf_model_type"].is_string()) {
    return biolm::io::parse_hf_arch(info.info["hf_model_type"].get<std::string>(), "model.json: info.hf_model_type");
  }
  return std::nullopt;
}

// ---- from-hf -------------------------------------------------------------------------------------

struct FromHfArgs {
  std::string hf_dir, out_dir, task, labels;
  int64_t n_labels = 0;
  bool strict = false;
  bool qk_interleaved = false;
};

void from_hf(const FromHfArgs& a) {
  const auto info = biolm::io::load_hf_config(a.hf_dir);
  TaskKind task;
  if (!a.task.empty()) {
    task = biolm::models::parse_task_kind(a.task, "--task");
  } else if (info.task) {
    task = *info.task;
  } else {
    throw ConfigError("--task", fmt::format("{}/config.json names no task class we recognise; give --task", a.hf_dir));
  }
  if (task == TaskKind::Base) {
    throw ConfigError("--task", fmt::format("{} holds a bare body ({}); a biolm model directory holds a task model: "
                                            "give --task masked_lm, causal_lm, token_classification, ... (the new "
                                            "head starts from its initial weights and is reported missing)",
                                            a.hf_dir, info.architectures.empty() ? "no architectures" : info.architectures[0]));
  }
  std::vector<std::string> labels = a.labels.empty() ? info.labels : split_list(a.labels);
  int64_t n_labels = a.n_labels > 0 ? a.n_labels : (labels.empty() ? 2 : static_cast<int64_t>(labels.size()));
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != n_labels) {
    throw ConfigError("--labels", fmt::format("{} labels given for --n-labels {}", labels.size(), n_labels));
  }
  auto model = biolm::models::make_task_model(info.config, task, n_labels);
  biolm::io::HfLoadOptions opt;
  opt.strict = a.strict;
  if (a.qk_interleaved) opt.qk_layout = biolm::io::QkLayout::Interleaved;
  const auto report = biolm::io::load_hf_directory(*model, a.hf_dir, opt);
  if (!report.missing.empty()) {
    biolm::log::warn("{}: {} parameters keep their initial values (not in the file): {}", a.hf_dir,
                     report.missing.size(), fmt::join(report.missing, ", "));
  }
  std::shared_ptr<biolm::tokenize::Tokenizer> tokenizer;
  if (has_hf_tokenizer(a.hf_dir)) tokenizer = biolm::tokenize::load_tokenizer(a.hf_dir);

  biolm::io::ModelDirInfo dir_info;
  dir_info.config = info.config;
  dir_info.task = task;
  dir_info.n_labels = model->n_labels();
  dir_info.labels = labels;
  dir_info.info = {{"source", "hf"},
                   {"hf_dir", fs::absolute(a.hf_dir).string()},
                   {"hf_model_type", biolm::io::to_string(info.arch)},
                   {"hf_architectures", info.architectures}};
  biolm::io::ModelDirSaveOptions save;
  save.tokenizer = tokenizer.get();
  biolm::io::save_model_dir(*model, dir_info, a.out_dir, save);
  json out = {{"command", "convert from-hf"},
              {"model_type", biolm::io::to_string(info.arch)},
              {"task", biolm::models::to_string(task)},
              {"n_labels", dir_info.n_labels},
              {"labels", labels},
              {"loaded", report.loaded.size()},
              {"missing", report.missing},
              {"unexpected", report.unexpected},
              {"ignored", report.ignored.size()},
              {"tokenizer", tokenizer != nullptr},
              {"output", a.out_dir}};
  std::cout << out.dump() << "\n";
}

// ---- to-hf ---------------------------------------------------------------------------------------

struct ToHfArgs {
  std::string model_dir, out_dir, dtype = "f32", arch;
  bool merge = false;
};

/// Writes `loaded` as a Hugging Face directory (the one exporter, io::save_hf_directory); `source`
/// names it in errors. Returns the summary fields shared by to-hf and checkpoint.
json export_hf(biolm::io::LoadedModel& loaded, const std::string& source, const ToHfArgs& a,
               const std::optional<fs::path>& tokenizer_dir) {
  const auto& info = loaded.info;
  bool merged = false;
  if (info.peft && info.peft->method == biolm::peft::Method::PromptTuning) {
    throw ConfigError("peft", fmt::format("{} carries a soft prompt, which no Hugging Face model class holds; it "
                                          "cannot be merged into the weights",
                                          source));
  }
  if (info.peft && carries_adapters(*info.peft)) {
    if (!a.merge) {
      throw ConfigError("--merge", fmt::format("{} carries {} adapters: pass --merge to write the merged model, or "
                                               "export the adapter alone with `biolm convert adapter {} OUT_DIR "
                                               "--base-hf NAME_OR_PATH`",
                                               source, biolm::peft::to_string(info.peft->method), source));
    }
    biolm::peft::merge_adapters(*loaded.model);
    merged = true;
  }
  biolm::io::HfSaveOptions opt;
  opt.arch = parse_arch(a.arch);
  if (!opt.arch) opt.arch = recorded_arch(info);
  opt.task = info.task;
  opt.labels = info.labels;
  const auto dtype = parse_dtype(a.dtype);
  if (dtype != at::kFloat) opt.dtype = dtype;
  opt.tokenizer_dir = tokenizer_dir;
  const auto files = biolm::io::save_hf_directory(*loaded.model, info.config, a.out_dir, opt);
  const json written = json::parse(std::ifstream(fs::path(a.out_dir) / "config.json"));
  return {{"model_type", written["model_type"]},
          {"architecture", written["architectures"][0]},
          {"dtype", written["torch_dtype"]},
          {"merged_adapters", merged},
          {"tokenizer", opt.tokenizer_dir.has_value()},
          {"files", files.size()},
          {"output", a.out_dir}};
}

void to_hf(const ToHfArgs& a) {
  auto loaded = biolm::io::load_model_dir(a.model_dir);
  std::optional<fs::path> tokenizer_dir;
  if (fs::exists(fs::path(a.model_dir) / "tokenizer")) tokenizer_dir = fs::path(a.model_dir) / "tokenizer";
  json out = {{"command", "convert to-hf"}};
  out.update(export_hf(loaded, a.model_dir, a, tokenizer_dir));
  std::cout << out.dump() << "\n";
}

// ---- checkpoint ----------------------------------------------------------------------------------

/// The task model a trainer checkpoint holds: rebuilt from trainer_state.json's "run" (model
/// config, head, labels, peft), weights from model.safetensors and, for ZeRO-3 sharded
/// checkpoints, the parameter shards (dist::consolidated_model_tensors). Strict: every tensor of
/// the model must be there with its shape, and nothing else.
biolm::io::LoadedModel model_from_checkpoint(const fs::path& dir) {
  biolm::train::verify_checkpoint(dir);  // every file, shards included, against the manifest
  const fs::path ts_path = dir / "trainer_state.json";
  const json ts = biolm::io::read_json_file(ts_path);
  if (ts.value("adapter_only", false)) {
    throw CheckpointError(ts_path.string(), "adapter_only",
                          "written with train.save_adapter_only: it holds the trained tensors only, not a whole "
                          "model; convert the run's model directory (`biolm convert to-hf RUN/model OUT_DIR`)");
  }
  const json run = ts.value("run", json::object());
  for (const char* key : {"model", "head"}) {
    if (!run.contains(key)) {
      throw CheckpointError(ts_path.string(), std::string("run.") + key,
                            "missing: the checkpoint does not say which model it holds (written by `biolm finetune` / "
                            "`biolm pretrain` of an older version?)");
    }
  }
  biolm::io::LoadedModel loaded;
  auto& info = loaded.info;
  info.config = biolm::models::config_from_json(run["model"], "run.model");
  info.task = biolm::models::parse_task_kind(run["head"].get<std::string>(), "run.head");
  info.n_labels = run.value("n_labels", int64_t{2});
  if (run.contains("labels")) info.labels = run["labels"].get<std::vector<std::string>>();
  loaded.model = biolm::models::make_task_model(info.config, info.task, info.n_labels);
  if (run.contains("peft")) {
    const auto method = biolm::peft::method_config_from_json(run["peft"], "run.peft");
    if (method.method != biolm::peft::Method::Full) {
      biolm::peft::apply(*loaded.model, method);
      info.peft = method;
    }
  }
  // Strict, and 4-bit bases (QLoRA checkpoints keep them in stored form) installed as stored.
  const auto tensors = biolm::dist::consolidated_model_tensors(dir);
  (void)biolm::io::load_weights(*loaded.model, tensors, (dir / "model.safetensors").string(), /*strict=*/true);
  info.info = {{"source", "checkpoint"}, {"checkpoint", fs::absolute(dir).string()}};
  return loaded;
}

void checkpoint(const ToHfArgs& a) {
  const fs::path dir = a.model_dir;
  auto loaded = model_from_checkpoint(dir);
  const json ts = biolm::io::read_json_file(dir / "trainer_state.json");
  json out = {{"command", "convert checkpoint"},
              {"step", ts.value("step", int64_t{0})},
              {"world_size", ts.value("world_size", 1)},
              {"sharded", fs::exists(dir / biolm::dist::kShardMetadataFile)}};
  out.update(export_hf(loaded, a.model_dir, a, std::nullopt));
  std::cout << out.dump() << "\n";
}

// ---- adapter -------------------------------------------------------------------------------------

struct AdapterArgs {
  std::string model_dir, out_dir, base_hf, arch;
};

void adapter(const AdapterArgs& a) {
  auto loaded = biolm::io::load_model_dir(a.model_dir);
  const auto& info = loaded.info;
  using biolm::peft::Method;
  if (!info.peft || info.peft->method == Method::Full) {
    throw ConfigError("peft", fmt::format("{} carries no adapter ({}); PEFT adapter directories hold LoRA, IA3 or a "
                                          "soft prompt (use `biolm convert to-hf` for a plain model)",
                                          a.model_dir, info.peft ? biolm::peft::to_string(info.peft->method) : "no peft"));
  }
  biolm::io::PeftExportOptions opt;
  opt.base_model_name_or_path = a.base_hf;
  opt.arch = parse_arch(a.arch);
  if (!opt.arch) opt.arch = recorded_arch(info);
  opt.task = info.task;
  opt.lora_dropout = info.peft->lora.dropout();
  opt.use_rslora = info.peft->lora.rank_stabilized();
  const auto files = biolm::io::export_peft_adapter(*loaded.model, info.config, a.out_dir, opt);
  const json config = json::parse(std::ifstream(fs::path(a.out_dir) / "adapter_config.json"));
  json out = {{"command", "convert adapter"},
              {"peft_type", config["peft_type"]},
              {"r", config.value("r", json(nullptr))},
              {"lora_alpha", config.value("lora_alpha", json(nullptr))},
              {"target_modules", config.value("target_modules", json(nullptr))},
              {"modules_to_save", config["modules_to_save"]},
              {"task_type", config["task_type"]},
              {"base_model_name_or_path", a.base_hf},
              {"files", files.size()},
              {"output", a.out_dir}};
  std::cout << out.dump() << "\n";
}

// ---- from-peft -----------------------------------------------------------------------------------

struct FromPeftArgs {
  std::string hf_dir, peft_dir, out_dir, task, labels;
  int64_t n_labels = 0;
};

/// The task a PEFT task_type names, when config.json does not say.
std::optional<TaskKind> peft_task_kind(const std::string& task_type) {
  if (task_type == "CAUSAL_LM") return TaskKind::CausalLM;
  if (task_type == "SEQ_CLS") return TaskKind::SequenceClassification;
  if (task_type == "TOKEN_CLS") return TaskKind::TokenClassification;
  if (task_type == "QUESTION_ANS") return TaskKind::SpanQA;
  return std::nullopt;
}

void from_peft(const FromPeftArgs& a) {
  const auto info = biolm::io::load_hf_config(a.hf_dir);
  const fs::path peft_config_path = fs::path(a.peft_dir) / "adapter_config.json";
  if (!fs::exists(peft_config_path)) {
    throw biolm::IoError(peft_config_path.string(), "missing: not a PEFT adapter directory (save_pretrained writes it)");
  }
  json peft_config;
  try {
    peft_config = json::parse(std::ifstream(peft_config_path));
  } catch (const json::exception& e) {
    throw CheckpointError(peft_config_path.string(), "", std::string("unreadable JSON: ") + e.what());
  }
  std::optional<TaskKind> task;
  if (!a.task.empty()) task = biolm::models::parse_task_kind(a.task, "--task");
  if (!task && info.task && *info.task != TaskKind::Base) task = info.task;
  if (!task && peft_config.contains("task_type") && peft_config["task_type"].is_string()) {
    task = peft_task_kind(peft_config["task_type"].get<std::string>());
  }
  if (!task || *task == TaskKind::Base) {
    throw ConfigError("--task", fmt::format("{}: neither config.json nor the adapter's task_type names a task model; "
                                            "give --task",
                                            a.hf_dir));
  }
  std::vector<std::string> labels = a.labels.empty() ? info.labels : split_list(a.labels);
  const int64_t n_labels = a.n_labels > 0 ? a.n_labels : (labels.empty() ? 2 : static_cast<int64_t>(labels.size()));
  auto model = biolm::models::make_task_model(info.config, *task, n_labels);
  const auto report = biolm::io::load_hf_directory(*model, a.hf_dir);
  if (!report.missing.empty()) {
    throw CheckpointError(a.hf_dir, "", fmt::format("no tensor for {} parameter(s): {} (the adapter's base must be "
                                                    "complete)",
                                                    report.missing.size(), fmt::join(report.missing, ", ")));
  }
  biolm::io::PeftImportOptions opt;
  opt.arch = info.arch;
  const auto imported = biolm::io::load_peft_adapter(*model, info.config, a.peft_dir, opt);
  biolm::io::ModelDirInfo dir_info;
  dir_info.config = info.config;
  dir_info.task = *task;
  dir_info.n_labels = model->n_labels();
  dir_info.labels = labels;
  dir_info.peft = imported.method;
  dir_info.info = {{"source", "peft"},
                   {"hf_dir", fs::absolute(a.hf_dir).string()},
                   {"peft_dir", fs::absolute(a.peft_dir).string()},
                   {"hf_model_type", biolm::io::to_string(info.arch)},
                   {"hf_architectures", info.architectures}};
  std::shared_ptr<biolm::tokenize::Tokenizer> tokenizer;
  if (has_hf_tokenizer(a.hf_dir)) tokenizer = biolm::tokenize::load_tokenizer(a.hf_dir);
  biolm::io::ModelDirSaveOptions save;
  save.tokenizer = tokenizer.get();
  biolm::io::save_model_dir(*model, dir_info, a.out_dir, save);
  json out = {{"command", "convert from-peft"},
              {"peft_type", imported.peft_type},
              {"method", biolm::peft::to_string(imported.method.method)},
              {"task", biolm::models::to_string(*task)},
              {"adapted_modules", imported.adapted_modules.size()},
              {"trained_in_full", imported.trained_in_full},
              {"output", a.out_dir}};
  std::cout << out.dump() << "\n";
}

// ---- logits --------------------------------------------------------------------------------------

struct LogitsArgs {
  std::string dir, ids, batch, task, out, dtype = "f32";
  int64_t n_labels = 0;
  int64_t lora_rank = 0;
  double lora_alpha = 16.0;
  std::string lora_targets = "**.attn.q_proj,**.attn.v_proj";
  uint64_t lora_seed = 0;
  std::string export_adapter, base_name, adapter;
  std::string quantize;  ///< HF directory: nf4 | fp4 | int8 quantize-on-load of the blocks' Linears
};

void logits(const LogitsArgs& a) {
  BIOLM_CHECK(a.ids.empty() != a.batch.empty(), ConfigError, "--ids", "give exactly one of --ids and --batch");
  biolm::data::Batch batch;
  if (!a.batch.empty()) {
    batch = read_batch_file(a.batch);
  } else {
    batch["input_ids"] = torch::tensor(parse_ids(a.ids), torch::kLong).reshape({1, -1});  // (B=1,T)
  }
  // The model: a biolm model directory as it is, or an HF directory into the class for --task
  // (default: the class config.json names; "base" is the bare body and gives hidden states).
  std::shared_ptr<torch::nn::Module> model;
  biolm::models::ModelConfig config;
  TaskKind task = TaskKind::Base;
  std::optional<biolm::io::HfArch> arch;
  json load_info = json::object();
  if (biolm::io::is_model_dir(a.dir)) {
    auto loaded = biolm::io::load_model_dir(a.dir);
    if (!a.task.empty() && biolm::models::parse_task_kind(a.task, "--task") != loaded.info.task) {
      throw ConfigError("--task", fmt::format("{} holds a {} model", a.dir, biolm::models::to_string(loaded.info.task)));
    }
    model = loaded.model;
    config = loaded.info.config;
    task = loaded.info.task;
    arch = recorded_arch(loaded.info);
  } else {
    const auto info = biolm::io::load_hf_config(a.dir);
    config = info.config;
    if (!a.quantize.empty()) {
      BIOLM_CHECK(biolm::quant::parse_quant_type(a.quantize), ConfigError, "--quantize",
                  "expected nf4, fp4 or int8, got \"" + a.quantize + "\"");
      config.quantize = biolm::models::QuantizeConfig{a.quantize, true};
    }
    arch = info.arch;
    task = !a.task.empty() ? biolm::models::parse_task_kind(a.task, "--task") : info.task.value_or(TaskKind::Base);
    const int64_t n_labels = a.n_labels > 0 ? a.n_labels : (info.labels.empty() ? 2 : static_cast<int64_t>(info.labels.size()));
    if (task == TaskKind::Base) {
      model = biolm::models::make_body(config);
    } else {
      model = biolm::models::make_task_model(config, task, n_labels);
    }
    const auto report = biolm::io::load_hf_directory(*model, a.dir);
    // Logits of initial weights would say nothing about the file: every parameter must load.
    if (!report.missing.empty()) {
      throw CheckpointError(a.dir, "", fmt::format("no tensor for {} parameter(s) of the {} model: {}", report.missing.size(),
                                                   biolm::models::to_string(task), fmt::join(report.missing, ", ")));
    }
    load_info = {{"loaded", report.loaded.size()}, {"unexpected", report.unexpected}};
    if (!a.adapter.empty()) {
      biolm::io::PeftImportOptions opt;
      opt.arch = arch;
      opt.task = task;
      const auto imported = biolm::io::load_peft_adapter(*model, config, a.adapter, opt);
      load_info["adapter"] = {{"peft_type", imported.peft_type},
                              {"adapted_modules", imported.adapted_modules.size()},
                              {"trained_in_full", imported.trained_in_full}};
    }
  }
  if (!a.adapter.empty() && load_info.empty()) {
    throw ConfigError("--adapter", "a PEFT adapter goes onto a Hugging Face directory (its base), not a biolm model "
                                   "directory: use `biolm convert from-peft` to make one");
  }
  if (a.lora_rank > 0) {
    biolm::peft::apply_lora(*model, biolm::peft::LoraOptions(a.lora_rank, a.lora_alpha).targets(split_list(a.lora_targets)));
    // A fresh adapter has B = 0 and changes nothing; a random B makes the comparison meaningful.
    // Only the adapters train, as after peft::apply (PEFT saves nothing else with a LoRA adapter).
    torch::manual_seed(a.lora_seed);
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      const bool adapter = p.key().find(".adapter.") != std::string::npos;
      p.value().set_requires_grad(adapter);
      if (p.key().find(".adapter.lora_b") != std::string::npos) p.value().normal_(0.0, 0.1);
    }
  }
  const auto dtype = parse_dtype(a.dtype);
  if (dtype != at::kFloat) model->to(dtype);
  torch::Tensor output;
  {
    torch::NoGradGuard no_grad;
    model->eval();
    // --ids gives one sequence; a multiple-choice model reads it as one question with one choice.
    if (task == TaskKind::MultipleChoice && batch.at("input_ids").dim() == 2 && a.batch.empty()) {
      batch["input_ids"] = batch.at("input_ids").unsqueeze(0);  // (1,K=1,T)
    }
    const int64_t want_dim = task == TaskKind::MultipleChoice ? 3 : 2;
    BIOLM_CHECK(batch.at("input_ids").dim() == want_dim, ConfigError, "--batch: input_ids",
                fmt::format("a {} model takes rows {}, found {} dimension(s)", biolm::models::to_string(task),
                            want_dim == 3 ? "(B,K,T)" : "(B,T)", batch.at("input_ids").dim()));
    if (task == TaskKind::Base) {
      biolm::models::ModelInputs in = biolm::models::TaskModelImpl::inputs_from_batch(batch);
      output = dynamic_cast<biolm::models::TransformerImpl&>(*model).forward(in).hidden;  // (B,T,C)
    } else {
      // The logits alone: without labels in the batch no loss is computed (a causal LM would
      // otherwise derive labels from the ids; harmless, but not asked for).
      auto& task_model = dynamic_cast<biolm::models::TaskModelImpl&>(*model);
      // A soft prompt (prompt tuning) comes first (TrainableModel::run): logits (B,P+T,...).
      output = task_model.run(batch).logits;
    }
  }
  output = output.to(torch::kFloat).contiguous();
  if (!a.export_adapter.empty()) {
    if (a.lora_rank <= 0) throw ConfigError("--export-adapter", "needs --lora-rank");
    biolm::io::PeftExportOptions opt;
    opt.base_model_name_or_path = a.base_name.empty() ? a.dir : a.base_name;
    opt.arch = arch;
    opt.task = task;
    biolm::io::export_peft_adapter(*model, config, a.export_adapter, opt);
  }
  const auto flat = output.reshape({-1});
  std::vector<double> data(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  json out = {{"command", "convert logits"},
              {"task", biolm::models::to_string(task)},
              {"shape", output.sizes().vec()},
              {"max_abs", output.abs().max().item<double>()}};
  if (!load_info.empty()) out["load"] = load_info;
  if (!a.out.empty()) {
    std::ofstream f(a.out);
    f << json{{"shape", output.sizes().vec()}, {"data", data}}.dump() << "\n";
    if (!f.good()) throw biolm::IoError(a.out, "cannot write the logits");
    out["out"] = a.out;
  } else {
    out["data"] = data;
  }
  std::cout << out.dump() << "\n";
}

void setup(CLI::App& sub) {
  sub.require_subcommand(1);
  const std::string tasks =
      "base, masked_lm, causal_lm, token_classification, sequence_classification, regression, span_qa, multiple_choice";

  auto* f = sub.add_subcommand("from-hf", "Hugging Face directory -> biolm model directory");
  auto fa = std::make_shared<FromHfArgs>();
  f->add_option("hf_dir", fa->hf_dir, "HF directory (config.json + model.safetensors)")->required();
  f->add_option("out_dir", fa->out_dir, "biolm model directory to write")->required();
  f->add_option("--task", fa->task, "task head (default: from config.json architectures): " + tasks);
  f->add_option("--labels", fa->labels, "label names, comma-separated (default: config.json id2label)");
  f->add_option("--n-labels", fa->n_labels, "classes of a classification head (default: from the labels, else 2)");
  f->add_flag("--strict", fa->strict, "refuse missing or unexpected tensors");
  f->add_flag("--qk-interleaved", fa->qk_interleaved, "LLaMA q/k rows in Meta's interleaved RoPE order");
  f->callback([fa] { from_hf(*fa); });

  auto* t = sub.add_subcommand("to-hf", "biolm model directory -> Hugging Face directory");
  auto ta = std::make_shared<ToHfArgs>();
  t->add_option("model_dir", ta->model_dir, "biolm model directory")->required();
  t->add_option("out_dir", ta->out_dir, "HF directory to write")->required();
  t->add_option("--dtype", ta->dtype, "bf16, f16 or f32")->capture_default_str();
  t->add_flag("--merge", ta->merge, "merge LoRA/IA3 adapters into the weights");
  t->add_option("--arch", ta->arch, "model_type to write: bert, megatron-bert, gpt2, llama, mistral (default: the "
                                    "type it was converted from, else inferred)");
  t->callback([ta] { to_hf(*ta); });

  auto* k = sub.add_subcommand("checkpoint", "trainer checkpoint directory (ZeRO sharded or consolidated) -> Hugging "
                                            "Face directory");
  auto ka = std::make_shared<ToHfArgs>();
  k->add_option("checkpoint_dir", ka->model_dir, "checkpoint directory (RUN/checkpoints/step-N)")->required();
  k->add_option("out_dir", ka->out_dir, "HF directory to write")->required();
  k->add_option("--dtype", ka->dtype, "bf16, f16 or f32")->capture_default_str();
  k->add_flag("--merge", ka->merge, "merge LoRA/IA3 adapters into the weights");
  k->add_option("--arch", ka->arch, "model_type to write: bert, megatron-bert, gpt2, llama, mistral (default: "
                                    "inferred)");
  k->callback([ka] { checkpoint(*ka); });

  auto* d = sub.add_subcommand("adapter", "model directory with LoRA, IA3 or a soft prompt -> PEFT adapter directory");
  auto da = std::make_shared<AdapterArgs>();
  d->add_option("model_dir", da->model_dir, "biolm model directory with LoRA/IA3 adapters or a soft prompt")->required();
  d->add_option("out_dir", da->out_dir, "PEFT directory to write")->required();
  d->add_option("--base-hf", da->base_hf, "HF name or path of the base model (base_model_name_or_path)")->required();
  d->add_option("--arch", da->arch, "model_type of the base (default: recorded, else inferred)");
  d->callback([da] { adapter(*da); });

  auto* p = sub.add_subcommand("from-peft", "Hugging Face base + PEFT adapter directory -> biolm model directory");
  auto pa = std::make_shared<FromPeftArgs>();
  p->add_option("hf_dir", pa->hf_dir, "HF directory of the base model the adapter was trained on")->required();
  p->add_option("peft_dir", pa->peft_dir, "PEFT adapter directory (adapter_config.json + adapter_model.safetensors)")
      ->required();
  p->add_option("out_dir", pa->out_dir, "biolm model directory to write")->required();
  p->add_option("--task", pa->task, "task head (default: config.json's class, else the adapter's task_type): " + tasks);
  p->add_option("--labels", pa->labels, "label names, comma-separated (default: config.json id2label)");
  p->add_option("--n-labels", pa->n_labels, "classes of a classification head");
  p->callback([pa] { from_peft(*pa); });

  auto* l = sub.add_subcommand("logits", "logits (hidden states for base) of a model for token ids or a padded batch");
  auto la = std::make_shared<LogitsArgs>();
  l->add_option("dir", la->dir, "HF directory or biolm model directory")->required();
  l->add_option("--ids", la->ids, "token ids of one sequence, comma-separated");
  l->add_option("--batch", la->batch,
                "JSON file {\"input_ids\": [[...], ...], \"attention_mask\", \"token_type_ids\", \"position_ids\"} "
                "(rows (B,T); (B,K,T) for multiple_choice; only input_ids required)");
  l->add_option("--dtype", la->dtype, "run the model in f32, bf16 or f16 (output written as float32)")
      ->capture_default_str();
  l->add_option("--task", la->task, "HF directory: the head to build (default: config.json's class): " + tasks);
  l->add_option("--n-labels", la->n_labels, "classes of a classification head");
  l->add_option("--out", la->out, "write {\"shape\", \"data\"} JSON here instead of printing the data");
  l->add_option("--lora-rank", la->lora_rank, "attach LoRA of this rank with a random B (seeded)");
  l->add_option("--lora-alpha", la->lora_alpha, "LoRA alpha")->capture_default_str();
  l->add_option("--lora-targets", la->lora_targets, "LoRA target patterns, comma-separated")->capture_default_str();
  l->add_option("--lora-seed", la->lora_seed, "seed of the random B")->capture_default_str();
  l->add_option("--adapter", la->adapter, "HF directory only: load this PEFT adapter directory (LoRA, IA3, prompt "
                                         "tuning) onto it first");
  l->add_option("--quantize", la->quantize,
                 "HF directory: quantize the blocks' Linears on load, nf4 | fp4 (double-quantized) | int8 (QLoRA)");
  l->add_option("--export-adapter", la->export_adapter, "write the LoRA adapter as a PEFT directory here");
  l->add_option("--base-name", la->base_name, "base_model_name_or_path of the exported adapter");
  l->callback([la] { logits(*la); });
}

const bool registered = biolm::cli::register_command(
    {"convert", "convert between Hugging Face and biolm model directories, export and import PEFT adapters", setup});

}  // namespace

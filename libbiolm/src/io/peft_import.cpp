// A Hugging Face PEFT adapter directory onto one of our models (see peft_import.h).
#include "biolm/io/peft_import.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/safetensors.h"
#include "biolm/peft/dora.h"
#include "biolm/peft/ia3.h"
#include "biolm/peft/lora.h"
#include "biolm/peft/prompt_tuning.h"
#include "biolm/models/trainable.h"

namespace biolm::io {
namespace {

using json = nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return ends_with(s, suffix) ? s.substr(0, s.size() - suffix.size()) : s;
}

/// PEFT's rank/alpha pattern lookup (peft/utils/other.py get_pattern_key): the first key k with
/// re.match(rf"(.*\.)?({k})$", module).
std::optional<double> pattern_value(const json& patterns, const std::string& module) {
  if (!patterns.is_object()) return std::nullopt;
  for (const auto& item : patterns.items()) {
    if (std::regex_match(module, std::regex("(.*\\.)?(" + item.key() + ")"))) return item.value().get<double>();
  }
  return std::nullopt;
}

template <typename T>
T config_value(const json& c, const std::string& key, T fallback, const std::string& path) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  try {
    return c[key].get<T>();
  } catch (const json::exception& e) {
    throw ConfigError(path + ": " + key, std::string("wrong type: ") + e.what());
  }
}

/// Where one HF module lives in our model: a Linear (or one part of GPT-2's fused c_attn).
struct Target {
  std::string ours;  ///< our Linear, e.g. "layers.0.attn.q_proj"
  HfTransform transform = HfTransform::Copy;
  int part = 0;
};

}  // namespace

PeftImportReport load_peft_adapter(torch::nn::Module& model, const models::ModelConfig& config,
                                   const std::filesystem::path& dir, const PeftImportOptions& options) {
  const auto config_path = dir / "adapter_config.json";
  const auto weights_path = dir / "adapter_model.safetensors";
  json c;
  {
    std::ifstream in(config_path);
    BIOLM_CHECK(in.good(), IoError, config_path.string(), "cannot open (is this a PEFT adapter directory?)");
    try {
      c = json::parse(in);
    } catch (const json::exception& e) {
      throw CheckpointError(config_path.string(), "", std::string("unreadable JSON: ") + e.what());
    }
  }
  BIOLM_CHECK(std::filesystem::exists(weights_path), IoError, weights_path.string(),
              "missing (PEFT's adapter_model.bin is a pickle LibTorch cannot read: re-save with "
              "save_pretrained(safe_serialization=True))");
  const std::string where = config_path.string();
  const std::string peft_type = config_value<std::string>(c, "peft_type", "", where);
  BIOLM_CHECK(peft_type == "LORA" || peft_type == "IA3" || peft_type == "PROMPT_TUNING", ConfigError,
              where + ": peft_type", fmt::format("expected LORA, IA3 or PROMPT_TUNING, found \"{}\"", peft_type));
  for (const char* key : {"lora_bias", "use_qalora"}) {
    BIOLM_CHECK(!config_value<bool>(c, key, false, where), ConfigError, where + ": " + key, "not supported by libbiolm");
  }
  BIOLM_CHECK(config_value<std::string>(c, "bias", "none", where) == "none", ConfigError, where + ": bias",
              "only \"none\" is supported (LoRA/IA3 bias training)");
  for (const char* key : {"target_parameters", "trainable_token_indices", "layer_replication"}) {
    BIOLM_CHECK(!c.contains(key) || c[key].is_null() || (c[key].is_object() && c[key].empty()) ||
                    (c[key].is_array() && c[key].empty()),
                ConfigError, where + ": " + key, "not supported by libbiolm");
  }

  const HfArch arch = options.arch ? *options.arch : infer_hf_arch(config);
  const models::TaskKind task = options.task ? *options.task : hf_task_of(model);
  const std::string our_body = our_body_prefix(model);
  const std::string hf_body = hf_body_prefix(arch, task);
  const auto pairs = hf_name_pairs(arch, task, config.n_layers, our_body, hf_body);
  std::map<std::string, std::vector<Target>> by_module;  // HF module -> our Linear(s)
  std::map<std::string, const HfNamePair*> by_param;     // HF parameter -> pair
  for (const auto& pair : pairs) {
    by_param.emplace(pair.hf, &pair);
    if (ends_with(pair.ours, ".weight") && ends_with(pair.hf, ".weight")) {
      by_module[strip_suffix(pair.hf, ".weight")].push_back({strip_suffix(pair.ours, ".weight"), pair.transform, pair.part});
    }
  }
  std::map<std::string, std::shared_ptr<nn::LinearImpl>> linears;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto lin = std::dynamic_pointer_cast<nn::LinearImpl>(item.value())) linears[item.key()] = lin;
  }
  auto linear = [&](const std::string& ours, const std::string& tensor) -> nn::LinearImpl& {
    const auto it = linears.find(ours);
    BIOLM_CHECK(it != linears.end(), CheckpointError, weights_path.string(), tensor,
                fmt::format("{} is not a Linear of this model", ours));
    BIOLM_CHECK(!it->second->adapter(), ConfigError, "peft", fmt::format("{} already carries an adapter", ours));
    return *it->second;
  };
  auto targets_of = [&](const std::string& module, const std::string& tensor) -> const std::vector<Target>& {
    const auto it = by_module.find(module);
    BIOLM_CHECK(it != by_module.end(), CheckpointError, weights_path.string(), tensor,
                fmt::format("{} is no {} {} module libbiolm knows (adapters on embeddings are not supported)", module,
                            to_string(arch), models::to_string(task)));
    return it->second;
  };
  const int64_t D = config.head_dim();
  const std::array<int64_t, 3> qkv_rows = {config.n_heads * D, config.n_kv_heads * D, config.n_kv_heads * D};
  auto part_rows = [&](const Target& t, const at::Tensor& x, int64_t dim) {
    if (t.transform != HfTransform::FusedQkv) return x;
    int64_t start = 0;
    for (int i = 0; i < t.part; ++i) start += qkv_rows[static_cast<size_t>(i)];
    return x.narrow(dim, start, qkv_rows[static_cast<size_t>(t.part)]);
  };

  const bool prompt_learning = peft_type == "PROMPT_TUNING";
  const std::string prefix = prompt_learning ? "base_model." : "base_model.model.";
  const auto tensors = load_safetensors(weights_path);
  peft::set_requires_grad(model, false);

  PeftImportReport report;
  report.peft_type = peft_type;
  std::map<std::string, std::pair<int64_t, double>> lora_shapes;  // our Linear -> (r, alpha)
  std::vector<std::string> ia3_out, ia3_in;
  std::vector<std::string> full_names;
  std::optional<peft::PromptTuningOptions> prompt_options;
  torch::NoGradGuard no_grad;
  for (const auto& [key, value] : tensors) {
    if (key == "prompt_embeddings") {
      BIOLM_CHECK(prompt_learning, CheckpointError, weights_path.string(), key, "a soft prompt in a non-prompt adapter");
      const int64_t P = config_value<int64_t>(c, "num_virtual_tokens", 0, where);
      const int64_t n_sub = config_value<int64_t>(c, "num_transformer_submodules", 1, where);
      BIOLM_CHECK(n_sub == 1, ConfigError, where + ": num_transformer_submodules",
                  "prompts for encoder-decoder models (2 submodules) are not supported");
      BIOLM_CHECK(value.dim() == 2 && value.size(0) == P && value.size(1) == config.hidden_size, CheckpointError,
                  weights_path.string(), key,
                  fmt::format("shape {}, expected ({}, {})", c10::str(value.sizes()), P, config.hidden_size));
      auto* trainable = dynamic_cast<models::TrainableModel*>(&model);
      BIOLM_CHECK(trainable != nullptr, ConfigError, "peft",
                  "prompt tuning needs a task model (the soft prompt is prepended by TrainableModel::run)");
      BIOLM_CHECK(!trainable->soft_prompt(), ConfigError, "peft", "the model already carries a soft prompt");
      prompt_options = peft::PromptTuningOptions(P, config.hidden_size);
      auto prompt = std::make_shared<peft::SoftPromptImpl>(*prompt_options);
      prompt->embeddings.copy_(value);
      if (auto p = model.parameters(); !p.empty()) prompt->to(p.front().device(), p.front().scalar_type());
      trainable->attach_soft_prompt(prompt);
      peft::set_requires_grad(*prompt, true);
      continue;
    }
    BIOLM_CHECK(key.rfind(prefix, 0) == 0, CheckpointError, weights_path.string(), key,
                fmt::format("expected a name starting with \"{}\"", prefix));
    const std::string name = key.substr(prefix.size());
    if (ends_with(name, ".lora_B.weight") || ends_with(name, ".lora_magnitude_vector")) continue;  // with lora_A
    if (ends_with(name, ".lora_A.weight")) {
      BIOLM_CHECK(peft_type == "LORA", CheckpointError, weights_path.string(), key, "LoRA tensor in a " + peft_type + " adapter");
      const std::string module = strip_suffix(name, ".lora_A.weight");
      const auto b_it = tensors.find(prefix + module + ".lora_B.weight");
      BIOLM_CHECK(b_it != tensors.end(), CheckpointError, weights_path.string(), prefix + module + ".lora_B.weight",
                  "missing (lora_A without lora_B)");
      const at::Tensor& a = value;        // (r, in)
      const at::Tensor& b = b_it->second;  // (out, r)
      BIOLM_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(1), CheckpointError, weights_path.string(), key,
                  fmt::format("lora_A {} and lora_B {} do not form B A", c10::str(a.sizes()), c10::str(b.sizes())));
      const int64_t r = a.size(0);
      const double alpha = pattern_value(c.value("alpha_pattern", json::object()), module)
                               .value_or(config_value<double>(c, "lora_alpha", 8.0, where));
      const bool rs = config_value<bool>(c, "use_rslora", false, where);
      const bool dora = config_value<bool>(c, "use_dora", false, where);
      const auto lora = peft::LoraOptions(r, alpha).rank_stabilized(rs).use_dora(dora);
      at::Tensor magnitude;  // (out), DoRA
      if (dora) {
        const std::string mkey = prefix + module + ".lora_magnitude_vector";
        const auto m_it = tensors.find(mkey);
        BIOLM_CHECK(m_it != tensors.end(), CheckpointError, weights_path.string(), mkey,
                    "missing (use_dora is true: every lora_A needs its magnitude vector)");
        magnitude = m_it->second.reshape({-1});
        BIOLM_CHECK(magnitude.numel() == b.size(0), CheckpointError, weights_path.string(), mkey,
                    fmt::format("{} values for {} output rows", magnitude.numel(), b.size(0)));
      }
      for (const auto& t : targets_of(module, key)) {
        const at::Tensor part_b = part_rows(t, b, 0);
        // A fused c_attn part whose rows of B are all zero has no update (our own export writes
        // such blocks for q/k/v parts without an adapter): no adapter for it.
        if (t.transform == HfTransform::FusedQkv && !part_b.ne(0).any().item<bool>()) continue;
        auto& lin = linear(t.ours, key);
        BIOLM_CHECK(a.size(1) == lin.options.in_features() && part_b.size(0) == lin.options.out_features(),
                    CheckpointError, weights_path.string(), key,
                    fmt::format("A {} / B {} do not fit {} ({} -> {})", c10::str(a.sizes()), c10::str(part_b.sizes()),
                                t.ours, lin.options.in_features(), lin.options.out_features()));
        BIOLM_CHECK(!dora || t.transform != HfTransform::FusedQkv, CheckpointError, weights_path.string(), key,
                    "DoRA on GPT-2's fused c_attn is not supported");
        std::shared_ptr<peft::LoraAdapterImpl> adapter;
        if (dora) {
          auto d = std::make_shared<peft::DoraAdapterImpl>(lin.options.in_features(), lin.options.out_features(), lora,
                                                           lin.dense_weight());
          d->magnitude.copy_(magnitude);
          adapter = d;
        } else {
          adapter = std::make_shared<peft::LoraAdapterImpl>(lin.options.in_features(), lin.options.out_features(), lora,
                                                            lin.weight);
        }
        adapter->lora_a.copy_(a);
        adapter->lora_b.copy_(part_b);
        lin.attach_adapter(adapter);
        report.adapted_modules.push_back(t.ours);
        lora_shapes[t.ours] = {r, alpha};
      }
      continue;
    }
    if (ends_with(name, ".ia3_l")) {
      BIOLM_CHECK(peft_type == "IA3", CheckpointError, weights_path.string(), key, "IA3 tensor in a " + peft_type + " adapter");
      const std::string module = strip_suffix(name, ".ia3_l");
      // (out, 1): l ⊙ (W x + b); (1, in): W (l ⊙ x) + b, PEFT's feedforward modules.
      BIOLM_CHECK(value.dim() == 2 && (value.size(0) == 1 || value.size(1) == 1), CheckpointError,
                  weights_path.string(), key, "expected (out, 1) or (1, in), found " + c10::str(value.sizes()));
      const bool scale_input = value.size(0) == 1 && !(value.size(1) == 1 && value.numel() == 1);
      const at::Tensor l = value.reshape({-1});
      for (const auto& t : targets_of(module, key)) {
        auto& lin = linear(t.ours, key);
        const at::Tensor part = scale_input ? l : part_rows(t, l, 0);
        const int64_t n = scale_input ? lin.options.in_features() : lin.options.out_features();
        BIOLM_CHECK(part.numel() == n, CheckpointError, weights_path.string(), key,
                    fmt::format("{} elements, {} has {} {} features", part.numel(), t.ours, n, scale_input ? "in" : "out"));
        auto adapter = std::make_shared<peft::Ia3AdapterImpl>(n, scale_input, lin.weight);
        adapter->ia3_scale.copy_(part);
        lin.attach_adapter(adapter);
        report.adapted_modules.push_back(t.ours);
        (scale_input ? ia3_in : ia3_out).push_back(t.ours);
      }
      continue;
    }
    // modules_to_save: a whole module trained next to the adapter, under its HF name.
    const auto it = by_param.find(name);
    BIOLM_CHECK(it != by_param.end(), CheckpointError, weights_path.string(), key,
                fmt::format("no parameter of the {} {} model has this name", to_string(arch), models::to_string(task)));
    const HfNamePair& pair = *it->second;
    BIOLM_CHECK(pair.transform != HfTransform::FusedQkv, CheckpointError, weights_path.string(), key,
                "a fully trained fused c_attn cannot be split into our q/k/v projections here");
    auto params = model.named_parameters(/*recurse=*/true);
    auto* p = params.find(pair.ours);
    BIOLM_CHECK(p != nullptr, CheckpointError, weights_path.string(), key, pair.ours + " is not a parameter of the model");
    const at::Tensor v = pair.transform == HfTransform::Conv1D ? value.t() : value;
    BIOLM_CHECK(v.sizes() == p->sizes(), CheckpointError, weights_path.string(), key,
                "shape " + c10::str(v.sizes()) + " in the file, " + c10::str(p->sizes()) + " in the model");
    p->copy_(v);
    p->set_requires_grad(true);
    full_names.push_back(pair.ours);
  }
  BIOLM_CHECK(!report.adapted_modules.empty() || prompt_options, CheckpointError, weights_path.string(), "",
              "holds no adapter tensor (lora_A / ia3_l / prompt_embeddings)");
  // Adapters are created frozen like their base (peft::apply turns them on); make them trainable.
  for (const auto& name : report.adapted_modules) {
    for (auto& p : linears.at(name)->adapter()->parameters()) p.set_requires_grad(true);
  }
  report.trained_in_full = full_names;

  peft::MethodConfig m;
  m.train_patterns = full_names;
  if (peft_type == "LORA") {
    // The most common (r, alpha) is the default; the other Linears get exact-name patterns.
    m.method = peft::Method::Lora;
    std::map<std::pair<int64_t, double>, int> votes;
    for (const auto& [name, ra] : lora_shapes) ++votes[ra];
    const auto common = std::max_element(votes.begin(), votes.end(), [](const auto& x, const auto& y) {
                          return x.second < y.second;
                        })->first;
    std::map<std::string, int64_t> rank_pattern;
    std::map<std::string, double> alpha_pattern;
    for (const auto& [name, ra] : lora_shapes) {
      if (ra.first != common.first) rank_pattern[name] = ra.first;
      if (ra.second != common.second) alpha_pattern[name] = ra.second;
    }
    m.lora = peft::LoraOptions(common.first, common.second)
                 .rank_stabilized(config_value<bool>(c, "use_rslora", false, where))
                 .use_dora(config_value<bool>(c, "use_dora", false, where))
                 .dropout(config_value<double>(c, "lora_dropout", 0.0, where))
                 .targets(report.adapted_modules)
                 .rank_pattern(rank_pattern)
                 .alpha_pattern(alpha_pattern);
    report.method = m;
  } else if (peft_type == "IA3") {
    m.method = peft::Method::Ia3;
    m.ia3.targets(ia3_out).input_targets(ia3_in);
    report.method = m;
  } else {
    BIOLM_CHECK(prompt_options.has_value(), CheckpointError, weights_path.string(), "prompt_embeddings", "missing");
    m.method = peft::Method::PromptTuning;
    m.prompt = *prompt_options;
    report.method = m;
  }
  log::info("loaded PEFT {} adapter {} ({} adapted modules, {} parameters trained in full)", peft_type, dir.string(),
            report.adapted_modules.size(), full_names.size());
  return report;
}

}  // namespace biolm::io

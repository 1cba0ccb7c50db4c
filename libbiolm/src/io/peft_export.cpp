// Our LoRA adapters as a Hugging Face PEFT directory (see peft_export.h).
#include "biolm/io/peft_export.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <fstream>
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

using models::TaskKind;
using json = nlohmann::json;

constexpr const char* kPeftPrefix = "base_model.model.";

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0
             ? s.substr(0, s.size() - suffix.size())
             : s;
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string leaf(const std::string& module) {
  const size_t dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

/// One HF module with LoRA: its A and B in PEFT's shapes and its scaling.
struct HfLora {
  at::Tensor a;  // (r, in)
  at::Tensor b;  // (out, r)
  double scaling = 1.0;
  at::Tensor magnitude;  // (out), DoRA only: PEFT's lora_magnitude_vector
};

/// GPT-2's fused c_attn adapter from up to three part adapters (q, k, v); see peft_export.h.
HfLora fuse_qkv(const std::array<const peft::LoraAdapterImpl*, 3>& parts, const std::array<int64_t, 3>& out_sizes,
                const std::string& module) {
  std::vector<at::Tensor> as;
  double scaling = 0.0;
  int64_t rank = 0;
  for (const auto* p : parts) {
    if (!p) continue;
    if (scaling == 0.0) scaling = p->scaling();
    BIOLM_CHECK(std::abs(p->scaling() - scaling) <= 1e-12 * std::abs(scaling), ConfigError, "peft.lora",
                fmt::format("{}: q/k/v adapters with different scalings cannot be fused into one c_attn adapter", module));
    as.push_back(p->lora_a.detach().to(at::kCPU));
    rank += p->lora_a.size(0);
  }
  const int64_t total_out = out_sizes[0] + out_sizes[1] + out_sizes[2];
  at::Tensor b = at::zeros({total_out, rank}, as.front().options());
  int64_t row = 0, col = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (parts[i]) {
      const at::Tensor part_b = parts[i]->lora_b.detach().to(at::kCPU);
      b.narrow(0, row, out_sizes[i]).narrow(1, col, part_b.size(1)).copy_(part_b);
      col += part_b.size(1);
    }
    row += out_sizes[i];
  }
  return {at::cat(as, 0).contiguous(), b, scaling, at::Tensor()};
}

}  // namespace

std::optional<std::string> peft_task_type(TaskKind task, HfArch /*arch*/) {
  switch (task) {
    case TaskKind::Base: return std::string("FEATURE_EXTRACTION");  // BertModel, GPT2Model, LlamaModel
    case TaskKind::CausalLM: return std::string("CAUSAL_LM");
    case TaskKind::SequenceClassification:
    case TaskKind::Regression: return std::string("SEQ_CLS");
    case TaskKind::TokenClassification: return std::string("TOKEN_CLS");
    case TaskKind::SpanQA: return std::string("QUESTION_ANS");
    case TaskKind::MaskedLM:
    case TaskKind::MultipleChoice: return std::nullopt;
  }
  return std::nullopt;
}

PeftAdapter make_peft_adapter(torch::nn::Module& model, const models::ModelConfig& config,
                              const PeftExportOptions& options) {
  const HfArch arch = options.arch ? *options.arch : infer_hf_arch(config);
  check_hf_compatible(config, arch);
  hf_architecture_name(arch, options.task);  // refuses tasks transformers has no class for
  const std::string our_body = our_body_prefix(model);
  const std::string hf_body = hf_body_prefix(arch, options.task);
  const auto pairs = hf_name_pairs(arch, options.task, config.n_layers, our_body, hf_body);
  std::map<std::string, const HfNamePair*> by_ours;
  for (const auto& pair : pairs) by_ours.emplace(pair.ours, &pair);
  auto find_pair = [&](const std::string& param) -> const HfNamePair& {
    const auto it = by_ours.find(param);
    BIOLM_CHECK(it != by_ours.end(), ConfigError, "peft.export",
                fmt::format("{} has no {} name, so PEFT could not find it", param, to_string(arch)));
    return *it->second;
  };

  // Which kind of adapter the model carries: LoRA, IA3 (in Linear slots) or a soft prompt.
  const auto* trainable = dynamic_cast<const models::TrainableModel*>(&model);
  const auto* prompt = trainable ? dynamic_cast<const peft::SoftPromptImpl*>(trainable->soft_prompt().get()) : nullptr;
  std::map<std::string, HfLora> loras;  // HF module -> adapter
  std::map<std::string, std::array<const peft::LoraAdapterImpl*, 3>> fused;
  std::map<std::string, at::Tensor> ia3s;  // HF module -> ia3_l in PEFT's shape
  std::set<std::string> ia3_feedforward;   // HF modules scaled on the input side
  std::map<std::string, std::array<const peft::Ia3AdapterImpl*, 3>> ia3_fused;
  std::set<std::string> adapted_ours;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* linear = item.value()->as<nn::LinearImpl>();
    if (!linear || !linear->adapter()) continue;
    BIOLM_CHECK(!linear->merged(), ConfigError, "peft.export",
                fmt::format("{}: the adapter is merged into the base weight; unmerge it before exporting", item.key()));
    adapted_ours.insert(item.key());
    const HfNamePair& pair = find_pair(item.key() + ".weight");
    const std::string module = strip_suffix(pair.hf, ".weight");
    if (const auto* lora = dynamic_cast<const peft::LoraAdapterImpl*>(linear->adapter().get())) {
      const auto* dora = dynamic_cast<const peft::DoraAdapterImpl*>(lora);
      if (pair.transform == HfTransform::FusedQkv) {
        BIOLM_CHECK(!dora, ConfigError, "peft.export",
                    fmt::format("{}: DoRA on GPT-2's fused c_attn has no PEFT form here (one magnitude per fused "
                                "row over q, k and v parts)", item.key()));
        fused[module][static_cast<size_t>(pair.part)] = lora;
      } else {
        loras[module] = {lora->lora_a.detach().to(at::kCPU).contiguous(),
                         lora->lora_b.detach().to(at::kCPU).contiguous(), lora->scaling(),
                         dora ? dora->magnitude.detach().to(at::kCPU).contiguous() : at::Tensor()};
      }
    } else if (const auto* ia3 = dynamic_cast<const peft::Ia3AdapterImpl*>(linear->adapter().get())) {
      if (pair.transform == HfTransform::FusedQkv) {
        ia3_fused[module][static_cast<size_t>(pair.part)] = ia3;
      } else {
        // PEFT's ia3_l: (out, 1) scales the output, (1, in) the input (feedforward_modules).
        const at::Tensor l = ia3->ia3_scale.detach().to(at::kCPU);
        ia3s[module] = (ia3->scale_input() ? l.reshape({1, -1}) : l.reshape({-1, 1})).contiguous();
        if (ia3->scale_input()) ia3_feedforward.insert(module);
      }
    } else {
      throw ConfigError("peft.export", fmt::format("{} carries an adapter PEFT has no type for", item.key()));
    }
  }
  const int64_t D = config.head_dim();
  const std::array<int64_t, 3> qkv_rows = {config.n_heads * D, config.n_kv_heads * D, config.n_kv_heads * D};
  for (const auto& [module, parts] : fused) loras[module] = fuse_qkv(parts, qkv_rows, module);
  for (const auto& [module, parts] : ia3_fused) {
    // One c_attn vector: output scaling per part (ones where a part has none); an input scaling
    // is shared by the three parts, so they must agree.
    BIOLM_CHECK(parts[0] && parts[1] && parts[2] && !parts[0]->scale_input() && !parts[1]->scale_input() &&
                    !parts[2]->scale_input(),
                ConfigError, "peft.export",
                fmt::format("{}: IA3 on GPT-2's fused c_attn exports only as output scaling of q, k and v together",
                            module));
    std::vector<at::Tensor> ls;
    for (const auto* p : parts) ls.push_back(p->ia3_scale.detach().to(at::kCPU));
    ia3s[module] = at::cat(ls, 0).reshape({-1, 1}).contiguous();
  }
  const int kinds = (!loras.empty() ? 1 : 0) + (!ia3s.empty() ? 1 : 0) + (prompt ? 1 : 0);
  BIOLM_CHECK(kinds > 0, ConfigError, "peft.export",
              "the model carries no adapter (peft::apply with lora, ia3 or prompt)");
  BIOLM_CHECK(kinds == 1, ConfigError, "peft.export",
              "the model mixes LoRA, IA3 and a soft prompt; a PEFT directory holds one adapter type");
  const char* peft_type = !loras.empty() ? "LORA" : !ia3s.empty() ? "IA3" : "PROMPT_TUNING";
  // PEFT wraps the base model (LoraModel / IA3Model) as base_model.model; prompt learning keeps
  // it as base_model itself, so its modules_to_save keys start with "base_model." only.
  const std::string prefix = prompt ? "base_model." : kPeftPrefix;

  // Trainable parameters outside the adapters (heads, norms of hybrid fine-tuning) go to
  // modules_to_save, whole modules at a time as PEFT keeps them.
  std::set<std::string> save_modules;  // our module names
  for (const auto& p : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = p.key();
    if (!p.value().requires_grad() || name.find(".adapter.") != std::string::npos || name.rfind("soft_prompt.", 0) == 0) {
      continue;
    }
    const std::string module = name.substr(0, name.rfind('.'));
    BIOLM_CHECK(!adapted_ours.count(module), ConfigError, "peft.export",
                fmt::format("{} is trainable inside an adapted Linear; PEFT cannot save it with the adapter "
                            "(freeze it, or export the merged model with save_hf_directory)",
                            name));
    save_modules.insert(module);
  }
  // PEFT's task models always train (and expect in the file) their head: PeftModelFor
  // SequenceClassification / TokenClassification add "classifier" and "score" to modules_to_save,
  // PeftModelForQuestionAnswering "qa_outputs", and loading an adapter without them fails
  // (KeyError 'base_model.model.classifier.weight', peft 0.21). A frozen head is saved as it is.
  const auto task_type_name = peft_task_type(options.task, arch);
  std::set<std::string> auto_heads;
  if (task_type_name == "SEQ_CLS" || task_type_name == "TOKEN_CLS") auto_heads = {"classifier", "score"};
  if (task_type_name == "QUESTION_ANS") auto_heads = {"qa_outputs"};
  for (const auto& pair : pairs) {
    const size_t dot = pair.hf.rfind('.');
    if (dot != std::string::npos && auto_heads.count(pair.hf.substr(0, dot))) {
      save_modules.insert(pair.ours.substr(0, pair.ours.rfind('.')));
    }
  }
  std::map<std::string, at::Tensor> tensors;
  std::set<std::string> modules_to_save;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = p.key();
    if (name.find(".adapter.") != std::string::npos || !save_modules.count(name.substr(0, name.rfind('.')))) continue;
    const HfNamePair& pair = find_pair(name);
    BIOLM_CHECK(pair.transform != HfTransform::FusedQkv, ConfigError, "peft.export",
                fmt::format("{} is trainable in full but lives in GPT-2's fused c_attn; PEFT cannot save a part of it",
                            name));
    const at::Tensor value = p.value().detach().to(at::kCPU);
    tensors[prefix + pair.hf] = (pair.transform == HfTransform::Conv1D ? value.t() : value).contiguous();
    modules_to_save.insert(pair.hf.substr(0, pair.hf.rfind('.')));
  }
  // PEFT matches modules_to_save entries against module paths from the root of the transformers
  // model, by suffix: our full HF paths ("classifier", "bert.pooler.dense") match exactly.
  const json save_json =
      modules_to_save.empty() ? json(nullptr) : json(std::vector<std::string>(modules_to_save.begin(), modules_to_save.end()));

  json c;
  c["peft_type"] = peft_type;
  const auto task_type = peft_task_type(options.task, arch);
  c["task_type"] = task_type ? json(*task_type) : json(nullptr);
  c["base_model_name_or_path"] = options.base_model_name_or_path;
  c["modules_to_save"] = save_json;
  c["inference_mode"] = true;
  c["revision"] = nullptr;

  if (prompt) {
    tensors["prompt_embeddings"] = prompt->embeddings.detach().to(at::kCPU).contiguous();  // (P, C)
    c["num_virtual_tokens"] = prompt->options.n_virtual_tokens();
    c["token_dim"] = config.hidden_size;
    c["num_transformer_submodules"] = 1;
    c["num_attention_heads"] = config.n_heads;
    c["num_layers"] = config.n_layers;
    c["prompt_tuning_init"] = "RANDOM";
    c["prompt_tuning_init_text"] = nullptr;
    c["tokenizer_name_or_path"] = nullptr;
    c["tokenizer_kwargs"] = nullptr;
    return {c, tensors};
  }

  // target_modules: the leaf names when they pick exactly the adapted modules among the HF
  // modules of the table, else the full module paths (PEFT matches a target t against a module
  // path m when m == t or m ends with "." + t).
  std::vector<std::string> modules;
  for (const auto& [module, l] : loras) modules.push_back(module);
  for (const auto& [module, l] : ia3s) modules.push_back(module);
  auto target_list = [&](const std::vector<std::string>& chosen) {
    std::set<std::string> leaves;
    for (const auto& m : chosen) leaves.insert(leaf(m));
    std::set<std::string> picked_by_leaves;
    for (const auto& pair : pairs) {
      const std::string module = strip_suffix(pair.hf, ".weight");
      if (module != pair.hf && leaves.count(leaf(module))) picked_by_leaves.insert(module);
    }
    json out = json::array();
    if (picked_by_leaves == std::set<std::string>(chosen.begin(), chosen.end())) {
      for (const auto& l : leaves) out.push_back(l);
    } else {
      for (const auto& m : chosen) out.push_back(m);
    }
    return out;
  };

  if (!ia3s.empty()) {
    for (const auto& [module, l] : ia3s) tensors[prefix + module + ".ia3_l"] = l;
    // target_modules and feedforward_modules (a subset) as full paths whenever leaves would
    // select modules of the other kind.
    const std::vector<std::string> ff(ia3_feedforward.begin(), ia3_feedforward.end());
    json targets = target_list(modules), feedforward = ff.empty() ? json::array() : target_list(ff);
    bool leaves_clash = false;
    for (const auto& m : modules) {
      const bool is_ff = ia3_feedforward.count(m) > 0;
      for (const auto& f : feedforward) {
        const std::string t = f.get<std::string>();
        if (!is_ff && (m == t || ends_with(m, "." + t))) leaves_clash = true;
      }
    }
    if (leaves_clash) {
      targets = json(modules);
      feedforward = json(ff);
    }
    c["target_modules"] = targets;
    c["feedforward_modules"] = feedforward;
    c["fan_in_fan_out"] = arch == HfArch::Gpt2;
    c["init_ia3_weights"] = true;
    return {c, tensors};
  }

  // The most common (r, alpha) is the default; other modules get rank_pattern / alpha_pattern
  // entries keyed by their path below the HF body (PEFT matches "(.*\.)?<key>$").
  auto alpha_of = [&](const HfLora& l) {
    const double r = static_cast<double>(l.a.size(0));
    return l.scaling * (options.use_rslora ? std::sqrt(r) : r);
  };
  std::map<std::pair<int64_t, double>, int> votes;
  for (const auto& [module, l] : loras) ++votes[{l.a.size(0), alpha_of(l)}];
  const auto common = std::max_element(votes.begin(), votes.end(), [](const auto& x, const auto& y) {
                        return x.second < y.second;
                      })->first;
  json rank_pattern = json::object(), alpha_pattern = json::object();
  size_t n_dora = 0;
  for (const auto& [module, l] : loras) {
    tensors[prefix + module + ".lora_A.weight"] = l.a;
    tensors[prefix + module + ".lora_B.weight"] = l.b;
    if (l.magnitude.defined()) {
      tensors[prefix + module + ".lora_magnitude_vector"] = l.magnitude;
      ++n_dora;
    }
    const std::string key = module.compare(0, hf_body.size(), hf_body) == 0 ? module.substr(hf_body.size()) : module;
    if (l.a.size(0) != common.first) rank_pattern[key] = l.a.size(0);
    if (std::abs(alpha_of(l) - common.second) > 1e-9 * std::abs(common.second)) alpha_pattern[key] = alpha_of(l);
  }
  c["r"] = common.first;
  c["lora_alpha"] = common.second;
  c["lora_dropout"] = options.lora_dropout;
  c["use_rslora"] = options.use_rslora;
  c["target_modules"] = target_list(modules);
  c["rank_pattern"] = rank_pattern;
  c["alpha_pattern"] = alpha_pattern;
  c["bias"] = "none";
  // Conv1D weights are (in, out); PEFT must know to transpose them when it merges.
  c["fan_in_fan_out"] = arch == HfArch::Gpt2;
  c["init_lora_weights"] = true;
  BIOLM_CHECK(n_dora == 0 || n_dora == loras.size(), ConfigError, "peft.export",
              fmt::format("{} of {} adapted modules use DoRA: a PEFT adapter is DoRA throughout or not at all", n_dora,
                          loras.size()));
  c["use_dora"] = n_dora > 0;
  c["layers_to_transform"] = nullptr;
  c["layers_pattern"] = nullptr;
  return {c, tensors};
}

std::vector<std::filesystem::path> export_peft_adapter(torch::nn::Module& model, const models::ModelConfig& config,
                                                       const std::filesystem::path& dir,
                                                       const PeftExportOptions& options) {
  const PeftAdapter adapter = make_peft_adapter(model, config, options);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  BIOLM_CHECK(!ec, IoError, dir.string(), fmt::format("cannot create directory: {}", ec.message()));
  const auto config_path = dir / "adapter_config.json";
  {
    std::ofstream out(config_path);
    out << adapter.config.dump(2) << "\n";
    BIOLM_CHECK(out.good(), IoError, config_path.string(), "cannot write adapter_config.json");
  }
  const auto weights_path = dir / "adapter_model.safetensors";
  save_safetensors(weights_path, adapter.tensors, {{"format", "pt"}});
  log::info("wrote PEFT {} adapter {} ({} tensors)", adapter.config["peft_type"].get<std::string>(), dir.string(),
            adapter.tensors.size());
  return {config_path, weights_path};
}

}  // namespace biolm::io

#include "biolm/peft/method.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

#include "biolm/core/config.h"
#include "biolm/core/error.h"
#include "biolm/peft/pattern.h"

namespace biolm::peft {
namespace {

// The JSON spellings of Method (read by ConfigReader::choice, written by to_json).
constexpr std::pair<Method, const char*> kMethods[] = {{Method::Full, "full"},
                                                       {Method::Lora, "lora"},
                                                       {Method::Ia3, "ia3"},
                                                       {Method::PromptTuning, "prompt"},
                                                       {Method::Hybrid, "hybrid"}};

void for_each_adapter(torch::nn::Module& model, const std::function<void(nn::LinearImpl&)>& fn) {
  for (const auto& m : model.modules(/*include_self=*/true)) {
    if (auto lin = std::dynamic_pointer_cast<nn::LinearImpl>(m); lin && lin->adapter()) fn(*lin);
  }
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

}  // namespace

Method parse_method(const std::string& name, const std::string& key) {
  std::string list;
  for (const auto& [value, spelling] : kMethods) {
    if (name == spelling) return value;
    list += (list.empty() ? "" : "|") + std::string(spelling);
  }
  throw ConfigError(key, "expected " + list + ", found '" + name + "'");
}

std::string to_string(Method method) {
  for (const auto& [value, spelling] : kMethods)
    if (value == method) return spelling;
  return "full";
}

void MethodConfig::validate() const {
  core::ConfigReader r(nlohmann::json::object(), "peft");
  validate(r);
  r.throw_if_errors();
}

void MethodConfig::validate(core::ConfigReader& r) const {
  // The options' own checks throw at their first problem (keys "peft.lora.*", ...); collected here.
  if (method == Method::Lora || method == Method::Hybrid) r.capture([&] { lora.validate(); });
  if (method == Method::Ia3) r.capture([&] { ia3.validate(); });
  if (method == Method::PromptTuning) r.capture([&] { prompt.validate(); });
  r.check(train_top_layers >= 0, "train_top_layers", "must be >= 0");
  r.check(layer_lr_decay > 0 && layer_lr_decay <= 1, "layer_lr_decay",
          "must be in (0, 1], got " + std::to_string(layer_lr_decay));
  r.check(layer_lr_decay == 1.0 || method == Method::Full, "layer_lr_decay",
          "discriminative learning rates apply to method 'full' only");
  r.check(freeze_patterns.empty() || method == Method::Full, "freeze_patterns",
          "only method 'full' freezes by pattern (the other methods freeze everything but the adapter)");
  r.check(train_patterns.empty() || method != Method::Full, "train_patterns",
          "method 'full' trains everything already (use freeze_patterns to hold parts fixed)");
  r.check(!layers.container.empty(), "layers.container", "must not be empty");
}

nlohmann::json to_json(const MethodConfig& c) {
  nlohmann::json j;
  j["method"] = to_string(c.method);
  j["lora"] = {{"rank", c.lora.rank()}, {"alpha", c.lora.alpha()}, {"dropout", c.lora.dropout()},
               {"targets", c.lora.targets()}, {"rank_stabilized", c.lora.rank_stabilized()},
               {"use_dora", c.lora.use_dora()}};
  if (!c.lora.rank_pattern().empty()) j["lora"]["rank_pattern"] = c.lora.rank_pattern();
  if (!c.lora.alpha_pattern().empty()) j["lora"]["alpha_pattern"] = c.lora.alpha_pattern();
  j["ia3"] = {{"targets", c.ia3.targets()}, {"input_targets", c.ia3.input_targets()}};
  j["prompt"] = {{"n_virtual_tokens", c.prompt.n_virtual_tokens()}, {"hidden", c.prompt.hidden()},
                 {"init_std", c.prompt.init_std()}};
  j["train_patterns"] = c.train_patterns;
  j["freeze_patterns"] = c.freeze_patterns;
  j["train_top_layers"] = c.train_top_layers;
  j["layer_lr_decay"] = c.layer_lr_decay;
  j["layers"] = {{"container", c.layers.container}, {"embedding_patterns", c.layers.embedding_patterns}};
  return j;
}

MethodConfig read_method_config(core::ConfigReader& r) {
  const size_t n_errors = r.errors().size();
  MethodConfig c;
  c.method = r.choice("method", kMethods, c.method);
  if (r.present("lora")) {
    auto& l = r.child("lora");
    c.lora.rank_pattern(l.get<std::map<std::string, int64_t>>("rank_pattern", {}))
        .alpha_pattern(l.get<std::map<std::string, double>>("alpha_pattern", {}));
    c.lora.rank(l.get<int64_t>("rank", c.lora.rank()))
        .alpha(l.get<double>("alpha", c.lora.alpha()))
        .dropout(l.get<double>("dropout", c.lora.dropout()))
        .targets(l.get<std::vector<std::string>>("targets", {}))
        .rank_stabilized(l.get<bool>("rank_stabilized", false))
        .use_dora(l.get<bool>("use_dora", false));
  }
  if (r.present("ia3")) {
    auto& l = r.child("ia3");
    c.ia3.targets(l.get<std::vector<std::string>>("targets", {}))
        .input_targets(l.get<std::vector<std::string>>("input_targets", {}));
  }
  if (r.present("prompt")) {
    auto& l = r.child("prompt");
    c.prompt.n_virtual_tokens(l.get<int64_t>("n_virtual_tokens", c.prompt.n_virtual_tokens()))
        .hidden(l.get<int64_t>("hidden", 0))
        .init_std(l.get<double>("init_std", c.prompt.init_std()));
  }
  c.train_patterns = r.get<std::vector<std::string>>("train_patterns", {});
  c.freeze_patterns = r.get<std::vector<std::string>>("freeze_patterns", {});
  c.train_top_layers = r.get<int64_t>("train_top_layers", 0);
  c.layer_lr_decay = r.get<double>("layer_lr_decay", 1.0);
  if (r.present("layers")) {
    auto& l = r.child("layers");
    c.layers.container = l.get<std::string>("container", c.layers.container);
    c.layers.embedding_patterns = l.get<std::vector<std::string>>("embedding_patterns", c.layers.embedding_patterns);
  }
  // Consistency checks only on values that were read cleanly (a wrong type would report twice).
  if (r.errors().size() == n_errors) c.validate(r);
  return c;
}

MethodConfig method_config_from_json(const nlohmann::json& j, const std::string& key) {
  return core::read_section(j, key, read_method_config);
}

std::string PeftSummary::to_string() const {
  const double pct = total_parameters ? 100.0 * static_cast<double>(trainable_parameters) / total_parameters : 0.0;
  return fmt::format("method={} trainable {} / {} ({:.2f}%) in {} tensors; adapted {} Linears",
                     peft::to_string(method), with_commas(trainable_parameters), with_commas(total_parameters), pct,
                     trainable_names.size(), adapted_modules.size());
}

void set_requires_grad(torch::nn::Module& model, bool requires_grad) {
  for (auto& p : model.parameters(/*recurse=*/true)) p.set_requires_grad(requires_grad);
}

std::optional<int64_t> layer_index(const std::string& name, const LayerSelector& layers) {
  const std::string needle = layers.container + ".";
  size_t pos = 0;
  while ((pos = name.find(needle, pos)) != std::string::npos) {
    const bool starts_component = pos == 0 || name[pos - 1] == '.';
    size_t i = pos + needle.size(), j = i;
    while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
    if (starts_component && j > i && (j == name.size() || name[j] == '.')) return std::stoll(name.substr(i, j - i));
    pos += 1;
  }
  return std::nullopt;
}

int64_t count_layers(torch::nn::Module& model, const LayerSelector& layers) {
  int64_t n = 0;
  for (const auto& item : model.named_parameters(true)) {
    if (auto i = layer_index(item.key(), layers)) n = std::max(n, *i + 1);
  }
  return n;
}

std::map<std::string, double> layer_lr_scales(torch::nn::Module& model, const LayerSelector& layers, double decay) {
  std::map<std::string, double> out;
  if (decay == 1.0) return out;
  const int64_t L = count_layers(model, layers);
  const auto embed = compile_patterns(layers.embedding_patterns, "peft.layers.embedding_patterns");
  for (const auto& item : model.named_parameters(true)) {
    double scale = 1.0;
    if (auto i = layer_index(item.key(), layers)) {
      scale = std::pow(decay, static_cast<double>(L - *i));
    } else if (matches_any(embed, item.key())) {
      scale = std::pow(decay, static_cast<double>(L + 1));
    }
    if (scale != 1.0) out[item.key()] = scale;
  }
  return out;
}

PeftSummary summarize(torch::nn::Module& model) {
  PeftSummary s;
  for (const auto& item : model.named_parameters(true)) {
    s.total_parameters += item.value().numel();
    if (item.value().requires_grad()) {
      s.trainable_parameters += item.value().numel();
      s.trainable_names.push_back(item.key());
    }
  }
  for (const auto& item : model.named_modules("", false)) {
    if (auto lin = std::dynamic_pointer_cast<nn::LinearImpl>(item.value()); lin && lin->adapter()) {
      s.adapted_modules.push_back(item.key());
    }
  }
  return s;
}

PeftSummary apply(models::TrainableModel& model, const MethodConfig& config) {
  config.validate();
  for_each_adapter(model, [](nn::LinearImpl&) {
    throw ConfigError("peft.method", "the model already carries adapters; apply a method to a plain model");
  });
  BIOLM_CHECK(!model.soft_prompt(), ConfigError, "peft.method", "the model already carries a soft prompt");

  auto train_top = [&](int64_t n) {
    const int64_t L = count_layers(model, config.layers);
    BIOLM_CHECK(L > 0, ConfigError, "peft.train_top_layers",
                "no parameter has a '" + config.layers.container + ".<i>' component");
    BIOLM_CHECK(n <= L, ConfigError, "peft.train_top_layers",
                fmt::format("the model has {} layers, asked for the top {}", L, n));
    return L - n;  // first trained layer
  };

  switch (config.method) {
    case Method::Full: {
      set_requires_grad(model, true);
      if (!config.freeze_patterns.empty()) {
        const auto names = find_parameters(model, config.freeze_patterns, "peft.freeze_patterns");
        const std::set<std::string> frozen(names.begin(), names.end());
        for (auto& item : model.named_parameters(true)) {
          if (frozen.count(item.key())) item.value().set_requires_grad(false);
        }
      }
      if (config.train_top_layers > 0) {
        const int64_t first = train_top(config.train_top_layers);
        const auto embed = compile_patterns(config.layers.embedding_patterns, "peft.layers.embedding_patterns");
        for (auto& item : model.named_parameters(true)) {
          const auto i = layer_index(item.key(), config.layers);
          if ((i && *i < first) || (!i && matches_any(embed, item.key()))) item.value().set_requires_grad(false);
        }
      }
      break;
    }
    case Method::Lora:
    case Method::Hybrid:
      set_requires_grad(model, false);
      apply_lora(model, config.lora);
      break;
    case Method::Ia3:
      set_requires_grad(model, false);
      apply_ia3(model, config.ia3);
      break;
    case Method::PromptTuning: {
      set_requires_grad(model, false);
      auto prompt = std::make_shared<SoftPromptImpl>(config.prompt);
      if (auto p = model.parameters(); !p.empty()) prompt->to(p.front().device());
      model.attach_soft_prompt(prompt);
      break;
    }
  }
  // Adapters (and the soft prompt) are created trainable; make sure of it after the freezing above.
  for_each_adapter(model, [](nn::LinearImpl& lin) {
    for (auto& p : lin.adapter()->parameters()) p.set_requires_grad(true);
  });
  if (model.soft_prompt()) set_requires_grad(*model.soft_prompt()->prefix_module(), true);

  // Parts trained in full next to the adapter (PEFT's modules_to_save: a new task head), and for
  // hybrid also the top layers.
  if (config.method != Method::Full) {
    std::set<std::string> extra;
    if (!config.train_patterns.empty()) {
      for (const auto& n : find_parameters(model, config.train_patterns, "peft.train_patterns")) extra.insert(n);
    }
    const int64_t first =
        config.method == Method::Hybrid && config.train_top_layers > 0 ? train_top(config.train_top_layers) : -1;
    for (auto& item : model.named_parameters(true)) {
      const auto i = layer_index(item.key(), config.layers);
      if (extra.count(item.key()) || (first >= 0 && i && *i >= first)) item.value().set_requires_grad(true);
    }
  }

  PeftSummary s = summarize(model);
  s.method = config.method;
  if (config.method == Method::Full) {
    for (const auto& [name, scale] : layer_lr_scales(model, config.layers, config.layer_lr_decay)) {
      s.lr_scales[name] = scale;
    }
  }
  return s;
}

void merge_adapters(torch::nn::Module& model) {
  for_each_adapter(model, [](nn::LinearImpl& lin) { lin.merge_adapter(); });
}

void unmerge_adapters(torch::nn::Module& model) {
  for_each_adapter(model, [](nn::LinearImpl& lin) { lin.unmerge_adapter(); });
}

TensorMap adapter_state(torch::nn::Module& model) {
  TensorMap out;
  for (const auto& item : model.named_parameters(true)) {
    if (item.value().requires_grad()) out[item.key()] = item.value().detach();
  }
  return out;
}

void save_adapter(torch::nn::Module& model, const std::filesystem::path& path) {
  const auto state = adapter_state(model);
  BIOLM_CHECK(!state.empty(), ConfigError, "peft.method", "the model has no trainable parameters to save");
  io::write_tensor_file(path, state);  // atomic (io/files.h): temp file, fsync, rename, directory fsync
}

void load_adapter(torch::nn::Module& model, const std::filesystem::path& path) {
  const auto saved = io::read_tensor_file(path);
  auto params = model.named_parameters(true);
  for (const auto& [name, t] : saved) {
    const auto* p = params.find(name);
    BIOLM_CHECK(p != nullptr, CheckpointError, path.string(), name, "not a parameter of the model");
    BIOLM_CHECK(p->requires_grad(), CheckpointError, path.string(), name,
                "is frozen in the model: apply the same peft method before loading");
    BIOLM_CHECK(p->sizes() == t.sizes(), CheckpointError, path.string(), name,
                "shape " + c10::str(t.sizes()) + " in the file, " + c10::str(p->sizes()) + " in the model");
  }
  for (const auto& item : params) {
    BIOLM_CHECK(!item.value().requires_grad() || saved.count(item.key()), CheckpointError, path.string(), item.key(),
                "trainable parameter missing from the adapter file");
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : saved) params[name].copy_(t);
}

}  // namespace biolm::peft

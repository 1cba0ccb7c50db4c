#include "biolm/io/init_source.h"

#include <torch/torch.h>

#include <set>

#include "biolm/core/error.h"
#include "biolm/io/hf_config.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/model_dir.h"

namespace biolm::io {

namespace fs = std::filesystem;

InitSource read_init_source(const fs::path& dir, const std::string& key, bool need_tokenizer) {
  InitSource s;
  s.dir = dir;
  if (is_model_dir(dir)) {
    s.config = read_model_dir_info(dir).config;
    s.tokenizer_path = dir / "tokenizer";
  } else if (fs::exists(dir / "config.json")) {
    s.hugging_face = true;
    s.config = load_hf_config(dir).config;
    s.tokenizer_path = dir;
  } else {
    throw ConfigError(key, "\"" + dir.string() +
                               "\" is neither a biolm model directory (model.json) nor a Hugging Face directory "
                               "(config.json)");
  }
  if (need_tokenizer) {
    const auto& t = s.tokenizer_path;
    if (!fs::exists(t / "tokenizer.json") && !fs::exists(t / "vocab.txt") && !fs::exists(t / "tokenizer.model") &&
        !fs::exists(t / "vocab.json"))
      throw ConfigError(key, dir.string() + " has no tokenizer files (" + t.string() +
                                 ": tokenizer.json, vocab.txt, tokenizer.model or vocab.json); give tokenizer.path");
  }
  return s;
}

std::optional<InitSource> take_init_source(nlohmann::json& model_section, bool need_tokenizer, const std::string& key) {
  if (!model_section.contains("init")) return std::nullopt;
  const std::string init_key = key + ".init";
  if (!model_section["init"].is_string()) throw ConfigError(init_key, "expected a directory path");
  auto init = read_init_source(model_section["init"].get<std::string>(), init_key, need_tokenizer);
  model_section.erase("init");
  static const std::set<std::string> kOverridable = {"hidden_dropout", "attention_dropout", "gradient_checkpointing",
                                                     "fused_attention", "quantize"};
  for (const auto& [name, value] : model_section.items())
    if (!kOverridable.count(name))
      throw ConfigError(key + "." + name, "cannot be combined with " + init_key + ": the architecture comes from " +
                                              init.dir.string() + " (" + init.format() +
                                              "; only hidden_dropout, attention_dropout, gradient_checkpointing, "
                                              "fused_attention and quantize may override it)");
  return init;
}

InitLoadReport load_init_weights(torch::nn::Module& model, const InitSource& init, const std::string& key) {
  InitLoadReport r;
  if (init.hugging_face) {
    const auto rep = load_hf_directory(model, init.dir);
    r.loaded = rep.loaded;
    r.missing = rep.missing;
    r.unexpected = rep.unexpected;
    r.summary = rep.to_string();
  } else {
    const auto rep = load_weights(model, init.dir, /*strict=*/false);
    r.loaded = rep.loaded;
    r.missing = rep.missing;
    r.unexpected = rep.unexpected;
    r.summary = rep.to_string();
  }
  if (r.loaded.empty())
    throw ConfigError(key, init.dir.string() + " (" + init.format() +
                               "): no tensor matched a parameter of the model (" + r.summary + ")");
  return r;
}

}  // namespace biolm::io

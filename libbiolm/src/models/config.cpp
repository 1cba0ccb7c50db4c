// ModelConfig: validation, JSON, presets, closed-form parameter counts.
#include "biolm/models/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "biolm/core/config.h"
#include "biolm/core/error.h"

namespace biolm::models {
namespace {

using json = nlohmann::json;

template <typename E>
struct EnumTable;

template <>
struct EnumTable<Family> {
  static constexpr std::pair<Family, const char*> items[] = {{Family::Encoder, "encoder"},
                                                             {Family::Decoder, "decoder"}};
};
template <>
struct EnumTable<Activation> {
  static constexpr std::pair<Activation, const char*> items[] = {{Activation::GeluErf, "gelu_erf"},
                                                                 {Activation::GeluTanh, "gelu_tanh"},
                                                                 {Activation::Relu, "relu"},
                                                                 {Activation::Silu, "silu"},
                                                                 {Activation::SwiGLU, "swiglu"}};
};
template <>
struct EnumTable<NormKind> {
  static constexpr std::pair<NormKind, const char*> items[] = {{NormKind::LayerNorm, "layer_norm"},
                                                               {NormKind::RMSNorm, "rms_norm"}};
};
template <>
struct EnumTable<NormPlacement> {
  static constexpr std::pair<NormPlacement, const char*> items[] = {{NormPlacement::Post, "post"},
                                                                    {NormPlacement::Pre, "pre"}};
};
template <>
struct EnumTable<PositionKind> {
  static constexpr std::pair<PositionKind, const char*> items[] = {{PositionKind::Learned, "learned"},
                                                                   {PositionKind::Rotary, "rotary"},
                                                                   {PositionKind::None, "none"}};
};
template <>
struct EnumTable<RopeScalingKind> {
  static constexpr std::pair<RopeScalingKind, const char*> items[] = {{RopeScalingKind::None, "none"},
                                                                      {RopeScalingKind::Linear, "linear"},
                                                                      {RopeScalingKind::Llama3, "llama3"}};
};
template <>
struct EnumTable<TaskKind> {
  static constexpr std::pair<TaskKind, const char*> items[] = {
      {TaskKind::Base, "base"},
      {TaskKind::MaskedLM, "masked_lm"},
      {TaskKind::CausalLM, "causal_lm"},
      {TaskKind::TokenClassification, "token_classification"},
      {TaskKind::SequenceClassification, "sequence_classification"},
      {TaskKind::Regression, "regression"},
      {TaskKind::SpanQA, "span_qa"},
      {TaskKind::MultipleChoice, "multiple_choice"}};
};

template <typename E>
std::string enum_name(E v) {
  for (const auto& [value, name] : EnumTable<E>::items) {
    if (value == v) return name;
  }
  return "?";
}

template <typename E>
E parse_enum(const std::string& s, const std::string& key) {
  std::string valid;
  for (const auto& [value, name] : EnumTable<E>::items) {
    if (s == name) return value;
    valid += (valid.empty() ? "" : ", ") + std::string(name);
  }
  throw ConfigError(key, fmt::format("expected one of {}, found \"{}\"", valid, s));
}

json opt_json(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

std::string to_string(Family v) { return enum_name(v); }
std::string to_string(Activation v) { return enum_name(v); }
std::string to_string(NormKind v) { return enum_name(v); }
std::string to_string(NormPlacement v) { return enum_name(v); }
std::string to_string(PositionKind v) { return enum_name(v); }
std::string to_string(RopeScalingKind v) { return enum_name(v); }
std::string to_string(TaskKind v) { return enum_name(v); }
TaskKind parse_task_kind(const std::string& name, const std::string& key) { return parse_enum<TaskKind>(name, key); }

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (moe.n_experts == 0) return false;
  if (moe.layers.empty()) return true;
  return std::find(moe.layers.begin(), moe.layers.end(), layer) != moe.layers.end();
}

void ModelConfig::validate(const std::string& p) const {
  core::ConfigReader r(json::object(), p);
  validate(r);
  r.throw_if_errors();
}

void ModelConfig::validate(core::ConfigReader& r) const {
  const auto k = [](const std::string& field) { return field; };
  const auto check = [&](bool ok, const std::string& key, const std::string& message) { r.check(ok, key, message); };
  check(vocab_size > 0, k("vocab_size"), fmt::format("must be > 0, got {}", vocab_size));
  check(hidden_size > 0, k("hidden_size"), fmt::format("must be > 0, got {}", hidden_size));
  check(n_layers > 0, k("n_layers"), fmt::format("must be > 0, got {}", n_layers));
  check(n_heads > 0, k("n_heads"), fmt::format("must be > 0, got {}", n_heads));
  check(hidden_size % n_heads == 0, k("n_heads"),
        fmt::format("hidden_size {} is not divisible by n_heads {}", hidden_size, n_heads));
  check(n_kv_heads > 0 && n_heads % n_kv_heads == 0, k("n_kv_heads"),
        fmt::format("must be > 0 and divide n_heads {}, got {}", n_heads, n_kv_heads));
  check(ffn_size > 0, k("ffn_size"), fmt::format("must be > 0, got {}", ffn_size));
  check(norm_eps > 0 && norm_eps < 1, k("norm_eps"), fmt::format("must be in (0, 1), got {}", norm_eps));
  check(max_positions > 0, k("max_positions"), fmt::format("must be > 0, got {}", max_positions));
  check(type_vocab_size >= 0, k("type_vocab_size"), fmt::format("must be >= 0, got {}", type_vocab_size));
  check(rope_theta > 0, k("rope_theta"), fmt::format("must be > 0, got {}", rope_theta));
  if (quantize) {
    check(quantize->type == "nf4" || quantize->type == "fp4" || quantize->type == "int8", k("quantize.type"),
          fmt::format("expected nf4 | fp4 | int8, got \"{}\"", quantize->type));
  }
  if (rope_scaling.kind != RopeScalingKind::None) {
    check(positions == PositionKind::Rotary, k("rope_scaling.kind"), "rope scaling needs positions rotary");
    check(rope_scaling.factor > 0, k("rope_scaling.factor"), fmt::format("must be > 0, got {}", rope_scaling.factor));
  }
  if (rope_scaling.kind == RopeScalingKind::Llama3) {
    check(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor && rope_scaling.low_freq_factor > 0,
          k("rope_scaling.high_freq_factor"),
          fmt::format("needs high_freq_factor > low_freq_factor > 0, got {} and {}", rope_scaling.high_freq_factor,
                      rope_scaling.low_freq_factor));
    check(rope_scaling.original_max_positions > 0, k("rope_scaling.original_max_positions"),
          fmt::format("must be > 0, got {}", rope_scaling.original_max_positions));
  }
  check(!sliding_window || (*sliding_window > 0 && family == Family::Decoder), k("sliding_window"),
        fmt::format("must be > 0 and needs family decoder, got {}", sliding_window ? *sliding_window : 0));
  check(positions != PositionKind::Rotary || head_dim() % 2 == 0, k("positions"),
        fmt::format("rotary embeddings need an even head_dim, got {}", head_dim()));
  check(hidden_dropout >= 0 && hidden_dropout < 1, k("hidden_dropout"),
        fmt::format("must be in [0, 1), got {}", hidden_dropout));
  check(attention_dropout >= 0 && attention_dropout < 1, k("attention_dropout"),
        fmt::format("must be in [0, 1), got {}", attention_dropout));
  check(init_std >= 0, k("init_std"), fmt::format("must be >= 0, got {}", init_std));
  check(moe.n_experts >= 0, k("moe.n_experts"), fmt::format("must be >= 0, got {}", moe.n_experts));
  if (moe.n_experts > 0) {
    check(moe.top_k >= 1 && moe.top_k <= moe.n_experts, k("moe.top_k"),
          fmt::format("must be in [1, n_experts={}], got {}", moe.n_experts, moe.top_k));
    check(moe.aux_loss_weight >= 0, k("moe.aux_loss_weight"), fmt::format("must be >= 0, got {}", moe.aux_loss_weight));
    std::set<int64_t> seen;
    for (size_t i = 0; i < moe.layers.size(); ++i) {
      const auto l = moe.layers[i];
      check(l >= 0 && l < n_layers, fmt::format("moe.layers[{}]", i),
            fmt::format("must be in [0, n_layers={}), got {}", n_layers, l));
      check(seen.insert(l).second, fmt::format("moe.layers[{}]", i), fmt::format("layer {} listed twice", l));
    }
  }
  for (const auto& [name, id] : {std::pair<const char*, std::optional<int64_t>>{"pad_token_id", pad_token_id},
                                 {"bos_token_id", bos_token_id},
                                 {"eos_token_id", eos_token_id}}) {
    check(!id || (*id >= 0 && *id < vocab_size), k(name),
          fmt::format("must be in [0, vocab_size={}), got {}", vocab_size, id ? *id : 0));
  }
}

nlohmann::json to_json(const ModelConfig& c) {
  json moe = {{"n_experts", c.moe.n_experts},
              {"top_k", c.moe.top_k},
              {"aux_loss_weight", c.moe.aux_loss_weight},
              {"normalize_top_k", c.moe.normalize_top_k},
              {"layers", c.moe.layers}};
  json rope = {{"kind", to_string(c.rope_scaling.kind)},
               {"factor", c.rope_scaling.factor},
               {"low_freq_factor", c.rope_scaling.low_freq_factor},
               {"high_freq_factor", c.rope_scaling.high_freq_factor},
               {"original_max_positions", c.rope_scaling.original_max_positions}};
  json out{{"name", c.name},
              {"family", to_string(c.family)},
              {"vocab_size", c.vocab_size},
              {"hidden_size", c.hidden_size},
              {"n_layers", c.n_layers},
              {"n_heads", c.n_heads},
              {"n_kv_heads", c.n_kv_heads},
              {"ffn_size", c.ffn_size},
              {"activation", to_string(c.activation)},
              {"norm", to_string(c.norm)},
              {"norm_placement", to_string(c.norm_placement)},
              {"norm_eps", c.norm_eps},
              {"embedding_norm", c.embedding_norm},
              {"final_norm", c.final_norm},
              {"positions", to_string(c.positions)},
              {"rope_theta", c.rope_theta},
              {"rope_scaling", rope},
              {"sliding_window", opt_json(c.sliding_window)},
              {"max_positions", c.max_positions},
              {"type_vocab_size", c.type_vocab_size},
              {"attention_bias", c.attention_bias},
              {"mlp_bias", c.mlp_bias},
              {"hidden_dropout", c.hidden_dropout},
              {"attention_dropout", c.attention_dropout},
              {"tie_embeddings", c.tie_embeddings},
              {"pooler", c.pooler},
              {"moe", moe},
              {"pad_token_id", opt_json(c.pad_token_id)},
              {"bos_token_id", opt_json(c.bos_token_id)},
              {"eos_token_id", opt_json(c.eos_token_id)},
              {"init_std", c.init_std},
              {"gradient_checkpointing", c.gradient_checkpointing},
              {"fused_attention", c.fused_attention}};
  // Only when set, so dense models' JSON (model.json, run info, checkpoints) is unchanged.
  if (c.quantize) out["quantize"] = {{"type", c.quantize->type}, {"double_quant", c.quantize->double_quant}};
  return out;
}

ModelConfig read_model_config(core::ConfigReader& r) {
  const size_t n_errors = r.errors().size();
  ModelConfig c;
  // A preset as the starting point ("preset": "gpt2" + overrides) keeps configs short.
  if (const auto name = r.optional<std::string>("preset")) {
    const auto names = preset_names();
    if (std::find(names.begin(), names.end(), *name) != names.end()) {
      c = preset(*name);
    } else {
      r.error("preset", fmt::format("unknown preset \"{}\" (valid: {})", *name, fmt::join(names, ", ")));
    }
  }
  c.name = r.get("name", c.name);
  c.family = r.choice("family", EnumTable<Family>::items, c.family);
  c.vocab_size = r.get("vocab_size", c.vocab_size);
  c.hidden_size = r.get("hidden_size", c.hidden_size);
  c.n_layers = r.get("n_layers", c.n_layers);
  c.n_heads = r.get("n_heads", c.n_heads);
  c.n_kv_heads = r.get("n_kv_heads", c.n_kv_heads);
  c.ffn_size = r.get("ffn_size", c.ffn_size);
  c.activation = r.choice("activation", EnumTable<Activation>::items, c.activation);
  c.norm = r.choice("norm", EnumTable<NormKind>::items, c.norm);
  c.norm_placement = r.choice("norm_placement", EnumTable<NormPlacement>::items, c.norm_placement);
  c.norm_eps = r.get("norm_eps", c.norm_eps);
  c.embedding_norm = r.get("embedding_norm", c.embedding_norm);
  c.final_norm = r.get("final_norm", c.final_norm);
  c.positions = r.choice("positions", EnumTable<PositionKind>::items, c.positions);
  c.rope_theta = r.get("rope_theta", c.rope_theta);
  if (r.present("rope_scaling")) {
    auto& rs = r.child("rope_scaling");
    c.rope_scaling.kind = rs.choice("kind", EnumTable<RopeScalingKind>::items, c.rope_scaling.kind);
    c.rope_scaling.factor = rs.get("factor", c.rope_scaling.factor);
    c.rope_scaling.low_freq_factor = rs.get("low_freq_factor", c.rope_scaling.low_freq_factor);
    c.rope_scaling.high_freq_factor = rs.get("high_freq_factor", c.rope_scaling.high_freq_factor);
    c.rope_scaling.original_max_positions = rs.get("original_max_positions", c.rope_scaling.original_max_positions);
  }
  // Optional ids: an absent key keeps the preset's value, null clears it.
  const auto opt_int = [&](const char* key, std::optional<int64_t>& field) {
    if (r.present(key)) field = r.optional<int64_t>(key);
  };
  opt_int("sliding_window", c.sliding_window);
  c.max_positions = r.get("max_positions", c.max_positions);
  c.type_vocab_size = r.get("type_vocab_size", c.type_vocab_size);
  c.attention_bias = r.get("attention_bias", c.attention_bias);
  c.mlp_bias = r.get("mlp_bias", c.mlp_bias);
  c.hidden_dropout = r.get("hidden_dropout", c.hidden_dropout);
  c.attention_dropout = r.get("attention_dropout", c.attention_dropout);
  c.tie_embeddings = r.get("tie_embeddings", c.tie_embeddings);
  c.pooler = r.get("pooler", c.pooler);
  if (r.present("moe")) {
    auto& m = r.child("moe");
    c.moe.n_experts = m.get("n_experts", c.moe.n_experts);
    c.moe.top_k = m.get("top_k", c.moe.top_k);
    c.moe.aux_loss_weight = m.get("aux_loss_weight", c.moe.aux_loss_weight);
    c.moe.normalize_top_k = m.get("normalize_top_k", c.moe.normalize_top_k);
    if (const auto* layers = m.raw("layers")) {
      if (!layers->is_array()) {
        m.error("layers", "expected an array of layer indices, found " + layers->dump());
      } else {
        c.moe.layers.clear();
        for (size_t i = 0; i < layers->size(); ++i) {
          const auto& v = (*layers)[i];
          if (v.is_number_integer()) {
            c.moe.layers.push_back(v.get<int64_t>());
          } else {
            m.error(fmt::format("layers[{}]", i), "expected an integer, found " + v.dump());
          }
        }
      }
    }
  }
  opt_int("pad_token_id", c.pad_token_id);
  opt_int("bos_token_id", c.bos_token_id);
  opt_int("eos_token_id", c.eos_token_id);
  c.init_std = r.get("init_std", c.init_std);
  c.gradient_checkpointing = r.get("gradient_checkpointing", c.gradient_checkpointing);
  c.fused_attention = r.get("fused_attention", c.fused_attention);
  // "quantize": nf4 (shorthand) or {type, double_quant}; null = dense.
  if (const auto* q = r.raw("quantize")) {
    if (q->is_null()) {
      c.quantize.reset();
    } else if (q->is_string()) {
      c.quantize = QuantizeConfig{q->get<std::string>(), true};
    } else if (q->is_object()) {
      auto& qr = r.child("quantize");
      QuantizeConfig qc;
      qc.type = qr.get("type", qc.type);
      qc.double_quant = qr.get("double_quant", qc.double_quant);
      c.quantize = qc;
    } else {
      r.error("quantize", "expected nf4 | fp4 | int8 or {type, double_quant}, found " + q->dump());
    }
  }
  // Cross-field checks only on values that were read cleanly (a wrong type would report twice).
  if (r.errors().size() == n_errors) c.validate(r);
  return c;
}

ModelConfig config_from_json(const nlohmann::json& j, const std::string& p) {
  return core::read_section(j, p, read_model_config);
}

ModelConfig load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw ConfigError(path, "cannot open the model config file");
  json j;
  try {
    j = json::parse(f);
  } catch (const json::parse_error& e) {
    throw ConfigError(path, std::string("not valid JSON: ") + e.what());
  }
  return config_from_json(j, "model");
}

// ---- presets ----------------------------------------------------------------------------------

std::vector<std::string> preset_names() {
  return {"bert-base", "megatron-bert-345m", "gpt2", "llama-7b", "tiny-encoder", "tiny-decoder"};
}

namespace {

ModelConfig bert_like() {
  ModelConfig c;  // the defaults are BERT-base (Devlin et al. 2019, Table 1 / HF bert-base-uncased)
  return c;
}

ModelConfig llama_like() {
  ModelConfig c;
  c.family = Family::Decoder;
  c.activation = Activation::SwiGLU;
  c.norm = NormKind::RMSNorm;
  c.norm_placement = NormPlacement::Pre;
  c.norm_eps = 1e-6;
  c.embedding_norm = false;
  c.final_norm = true;
  c.positions = PositionKind::Rotary;
  c.rope_theta = 10000.0;
  c.type_vocab_size = 0;
  c.attention_bias = false;
  c.mlp_bias = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.pooler = false;
  c.tie_embeddings = false;
  return c;
}

}  // namespace

ModelConfig preset(const std::string& name) {
  ModelConfig c;
  if (name == "bert-base") {
    c = bert_like();
    c.pad_token_id = 0;
  } else if (name == "megatron-bert-345m") {
    // Megatron-BERT 345M as GatorTron-base (UFNLP/gatortron-base config.json): pre-LN, no
    // embedding LayerNorm, a final LayerNorm (HF MegatronBertEncoder.ln).
    c.vocab_size = 50176;
    c.hidden_size = 1024;
    c.n_layers = 24;
    c.n_heads = 16;
    c.n_kv_heads = 16;
    c.ffn_size = 4096;
    c.norm_placement = NormPlacement::Pre;
    c.embedding_norm = false;
    c.final_norm = true;
    c.pad_token_id = 0;
  } else if (name == "gpt2") {
    // GPT-2 small (Radford et al. 2019; HF gpt2): learned positions, pre-LN, tanh GELU, tied.
    c.family = Family::Decoder;
    c.vocab_size = 50257;
    c.max_positions = 1024;
    c.activation = Activation::GeluTanh;
    c.norm_placement = NormPlacement::Pre;
    c.norm_eps = 1e-5;
    c.embedding_norm = false;
    c.final_norm = true;
    c.type_vocab_size = 0;
    c.tie_embeddings = true;
    c.pooler = false;
    c.bos_token_id = 50256;
    c.eos_token_id = 50256;
  } else if (name == "llama-7b") {
    // LLaMA-7B shapes (Touvron et al. 2023, Table 2; HF LlamaConfig defaults).
    c = llama_like();
    c.vocab_size = 32000;
    c.hidden_size = 4096;
    c.n_layers = 32;
    c.n_heads = 32;
    c.n_kv_heads = 32;
    c.ffn_size = 11008;
    c.max_positions = 2048;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
  } else if (name == "tiny-encoder") {
    c = bert_like();
    c.vocab_size = 100;
    c.hidden_size = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 4;
    c.ffn_size = 64;
    c.max_positions = 64;
    c.pad_token_id = 0;
  } else if (name == "tiny-decoder") {
    c = llama_like();
    c.vocab_size = 100;
    c.hidden_size = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn_size = 64;
    c.max_positions = 128;
    c.pad_token_id = 0;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
  } else {
    std::string valid;
    for (const auto& n : preset_names()) valid += (valid.empty() ? "" : ", ") + n;
    throw ConfigError("preset", fmt::format("unknown preset \"{}\" (valid: {})", name, valid));
  }
  c.name = name;
  c.validate();
  return c;
}

// ---- parameter counting ----------------------------------------------------------------------

namespace {

int64_t norm_params(const ModelConfig& c, int64_t dim) { return c.norm == NormKind::LayerNorm ? 2 * dim : dim; }

int64_t linear_params(int64_t in, int64_t out, bool bias) { return in * out + (bias ? out : 0); }

int64_t mlp_params(const ModelConfig& c) {
  const int64_t C = c.hidden_size, F = c.ffn_size;
  int64_t n = linear_params(C, F, c.mlp_bias) + linear_params(F, C, c.mlp_bias);
  if (c.gated_mlp()) n += linear_params(C, F, c.mlp_bias);
  return n;
}

int64_t layer_params(const ModelConfig& c, int64_t layer) {
  const int64_t C = c.hidden_size, kv = c.n_kv_heads * c.head_dim();
  int64_t n = 2 * linear_params(C, C, c.attention_bias) + 2 * linear_params(C, kv, c.attention_bias);
  n += 2 * norm_params(c, C);
  if (c.is_moe_layer(layer)) {
    n += linear_params(C, c.moe.n_experts, false) + c.moe.n_experts * mlp_params(c);
  } else {
    n += mlp_params(c);
  }
  return n;
}

}  // namespace

ParameterCount count_parameters(const ModelConfig& c, TaskKind task, int64_t n_labels) {
  const int64_t C = c.hidden_size, V = c.vocab_size;
  ParameterCount out;
  out.embeddings = V * C;
  if (c.positions == PositionKind::Learned) out.embeddings += c.max_positions * C;
  if (c.type_vocab_size > 0) out.embeddings += c.type_vocab_size * C;
  if (c.embedding_norm) out.embeddings += norm_params(c, C);
  for (int64_t l = 0; l < c.n_layers; ++l) out.layers += layer_params(c, l);
  int64_t head = c.final_norm ? norm_params(c, C) : 0;
  const int64_t pooler = linear_params(C, C, true);
  const int64_t lm_head = c.tie_embeddings ? 0 : V * C;
  // Sequence-level heads of encoders read the pooled [CLS] (dense + tanh) when config.pooler.
  const bool uses_pooler = !c.is_decoder() && c.pooler;
  switch (task) {
    case TaskKind::Base:
      head += c.is_decoder() ? lm_head : (uses_pooler ? pooler : 0);
      break;
    case TaskKind::MaskedLM:
      head += linear_params(C, C, true) + norm_params(c, C) + lm_head + V;  // transform + projection + vocab bias
      break;
    case TaskKind::CausalLM:
      head += lm_head;
      break;
    case TaskKind::TokenClassification:
      head += linear_params(C, n_labels, true);
      break;
    case TaskKind::SequenceClassification:  // decoders: no bias, as transformers' `score`
      head += (uses_pooler ? pooler : 0) + linear_params(C, n_labels, !c.is_decoder());
      break;
    case TaskKind::Regression:
      head += (uses_pooler ? pooler : 0) + linear_params(C, 1, !c.is_decoder());
      break;
    case TaskKind::SpanQA:
      head += linear_params(C, 2, true);
      break;
    case TaskKind::MultipleChoice:
      head += (uses_pooler ? pooler : 0) + linear_params(C, 1, true);
      break;
  }
  out.head = head;
  out.total = out.embeddings + out.layers + out.head;
  out.trainable = out.total;
  return out;
}

std::string human_count(int64_t n) {
  const double x = static_cast<double>(n);
  if (x >= 1e9) return fmt::format("{:.2f}B", x / 1e9);
  if (x >= 1e6) return fmt::format("{:.1f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.1f}K", x / 1e3);
  return std::to_string(n);
}

nlohmann::json describe(const ModelConfig& c, TaskKind task, int64_t n_labels) {
  const auto count = count_parameters(c, task, n_labels);
  return json{{"config", to_json(c)},
              {"task", to_string(task)},
              {"parameters", count.total},
              {"trainable", count.trainable},
              {"parameters_human", human_count(count.total)},
              {"parameters_by_part",
               {{"embeddings", count.embeddings}, {"layers", count.layers}, {"head", count.head}}},
              {"head_dim", c.head_dim()}};
}

std::string summary(const ModelConfig& c, TaskKind task, int64_t n_labels) {
  const auto n = count_parameters(c, task, n_labels);
  std::ostringstream os;
  os << fmt::format("{} ({} {}, task {})\n", c.name, to_string(c.family),
                    c.is_decoder() ? "causal" : "bidirectional", to_string(task));
  os << fmt::format("  V={} C={} L={} H={} Hkv={} D={} F={}\n", c.vocab_size, c.hidden_size, c.n_layers, c.n_heads,
                    c.n_kv_heads, c.head_dim(), c.ffn_size);
  os << fmt::format("  {} {}-LN eps={}, activation {}, positions {}{}\n", to_string(c.norm),
                    to_string(c.norm_placement), c.norm_eps, to_string(c.activation), to_string(c.positions),
                    c.positions == PositionKind::Rotary ? fmt::format(" (theta {})", c.rope_theta) : "");
  if (c.moe.n_experts > 0) {
    os << fmt::format("  MoE: {} experts, top-{}, aux weight {}, layers {}\n", c.moe.n_experts, c.moe.top_k,
                      c.moe.aux_loss_weight,
                      c.moe.layers.empty() ? std::string("all") : fmt::format("{}", fmt::join(c.moe.layers, ",")));
  }
  os << fmt::format("  parameters: embeddings {} ({}), layers {} ({}), head {} ({})\n", n.embeddings,
                    human_count(n.embeddings), n.layers, human_count(n.layers), n.head, human_count(n.head));
  os << fmt::format("  total {} ({}), trainable {}\n", n.total, human_count(n.total), n.trainable);
  return os.str();
}

}  // namespace biolm::models

// Hugging Face config.json <-> ModelConfig (see hf_config.h for what each model type fixes).
#include "biolm/io/hf_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "biolm/core/error.h"
#include "biolm/core/log.h"

namespace biolm::io {
namespace {

using json = nlohmann::json;
using models::Activation;
using models::Family;
using models::ModelConfig;
using models::NormKind;
using models::NormPlacement;
using models::PositionKind;
using models::TaskKind;

constexpr std::pair<HfArch, const char*> kArchNames[] = {{HfArch::Bert, "bert"},
                                                         {HfArch::MegatronBert, "megatron-bert"},
                                                         {HfArch::Gpt2, "gpt2"},
                                                         {HfArch::Llama, "llama"},
                                                         {HfArch::Mistral, "mistral"}};

/// The transformers class-name stem of each architecture.
const char* class_stem(HfArch arch) {
  switch (arch) {
    case HfArch::Bert: return "Bert";
    case HfArch::MegatronBert: return "MegatronBert";
    case HfArch::Gpt2: return "GPT2";
    case HfArch::Llama: return "Llama";
    case HfArch::Mistral: return "Mistral";
  }
  return "?";
}

/// Typed access to config.json fields; errors name "<origin>: <key>".
class Reader {
 public:
  Reader(const json& j, std::string origin) : j_(j), origin_(std::move(origin)) {}

  std::string key(const std::string& k) const { return fmt::format("{}: {}", origin_, k); }
  bool has(const std::string& k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  const json& raw(const std::string& k) const { return j_.at(k); }

  int64_t integer(const std::string& k, int64_t fallback) const {
    if (!has(k)) return fallback;
    const json& v = j_.at(k);
    BIOLM_CHECK(v.is_number_integer(), ConfigError, key(k), fmt::format("expected an integer, found {}", v.dump()));
    return v.get<int64_t>();
  }
  double number(const std::string& k, double fallback) const {
    if (!has(k)) return fallback;
    const json& v = j_.at(k);
    BIOLM_CHECK(v.is_number(), ConfigError, key(k), fmt::format("expected a number, found {}", v.dump()));
    return v.get<double>();
  }
  bool boolean(const std::string& k, bool fallback) const {
    if (!has(k)) return fallback;
    const json& v = j_.at(k);
    BIOLM_CHECK(v.is_boolean(), ConfigError, key(k), fmt::format("expected true or false, found {}", v.dump()));
    return v.get<bool>();
  }
  std::string string(const std::string& k, const std::string& fallback) const {
    if (!has(k)) return fallback;
    const json& v = j_.at(k);
    BIOLM_CHECK(v.is_string(), ConfigError, key(k), fmt::format("expected a string, found {}", v.dump()));
    return v.get<std::string>();
  }
  /// A token id: null/absent -> nullopt; a list (LLaMA-3 eos) -> its first element, logged.
  std::optional<int64_t> token_id(const std::string& k) const {
    if (!has(k)) return std::nullopt;
    const json& v = j_.at(k);
    if (v.is_array()) {
      BIOLM_CHECK(!v.empty() && v.front().is_number_integer(), ConfigError, key(k),
                  fmt::format("expected an integer or a list of integers, found {}", v.dump()));
      if (v.size() > 1) log::info("{}: {} lists {} ids; using the first, {}", origin_, k, v.size(), v.front().dump());
      return v.front().get<int64_t>();
    }
    return integer(k, 0);
  }
  /// Refuses a key whose value would change what the model computes.
  void require(const std::string& k, const json& expected_when_present, const std::string& why) const {
    if (has(k) && j_.at(k) != expected_when_present) {
      throw ConfigError(key(k), fmt::format("{} is not supported ({}); expected {}", j_.at(k).dump(), why,
                                            expected_when_present.dump()));
    }
  }

 private:
  const json& j_;
  std::string origin_;
};

Activation plain_activation(const Reader& r, const std::string& k, const std::string& fallback) {
  const std::string act = r.string(k, fallback);
  // transformers/activations.py: "gelu" is the exact erf GELU; gelu_new, gelu_pytorch_tanh and
  // gelu_fast are the tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
  if (act == "gelu") return Activation::GeluErf;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return Activation::GeluTanh;
  if (act == "relu") return Activation::Relu;
  if (act == "silu" || act == "swish") return Activation::Silu;
  throw ConfigError(r.key(k), fmt::format("activation \"{}\" is not supported (supported: gelu, gelu_new, "
                                          "gelu_pytorch_tanh, gelu_fast, relu, silu)",
                                          act));
}

void read_bert_like(const Reader& r, HfArch arch, ModelConfig& c) {
  c.family = Family::Encoder;
  c.vocab_size = r.integer("vocab_size", arch == HfArch::Bert ? 30522 : 29056);
  c.hidden_size = r.integer("hidden_size", 768);
  c.n_layers = r.integer("num_hidden_layers", 12);
  c.n_heads = r.integer("num_attention_heads", 12);
  c.n_kv_heads = c.n_heads;
  c.ffn_size = r.integer("intermediate_size", 3072);
  c.activation = plain_activation(r, "hidden_act", "gelu");
  c.norm = NormKind::LayerNorm;
  c.norm_eps = r.number("layer_norm_eps", 1e-12);
  c.positions = PositionKind::Learned;
  c.max_positions = r.integer("max_position_embeddings", 512);
  c.type_vocab_size = r.integer("type_vocab_size", 2);
  c.attention_bias = true;
  c.mlp_bias = true;
  c.hidden_dropout = r.number("hidden_dropout_prob", 0.1);
  c.attention_dropout = r.number("attention_probs_dropout_prob", 0.1);
  c.tie_embeddings = r.boolean("tie_word_embeddings", true);
  c.pooler = true;
  r.require("position_embedding_type", "absolute", "only absolute learned positions are implemented");
  r.require("is_decoder", false, "BERT used as a causal decoder is not supported (use model_type gpt2/llama)");
  r.require("add_cross_attention", false, "cross-attention (encoder-decoder) is not supported by libbiolm models");
  if (arch == HfArch::Bert) {
    // BertLayer: x = LN(x + attn(x)); x = LN(x + ffn(x)); BertEmbeddings ends in a LayerNorm.
    c.norm_placement = NormPlacement::Post;
    c.embedding_norm = true;
    c.final_norm = false;
  } else {
    // MegatronBertLayer: x = x + attn(ln(x)); x = x + ffn(ln(x)); MegatronBertEncoder.ln after the
    // last layer; MegatronBertEmbeddings has no LayerNorm.
    c.norm_placement = NormPlacement::Pre;
    c.embedding_norm = false;
    c.final_norm = true;
  }
}

void read_gpt2(const Reader& r, ModelConfig& c) {
  c.family = Family::Decoder;
  c.vocab_size = r.integer("vocab_size", 50257);
  c.hidden_size = r.integer("n_embd", 768);
  c.n_layers = r.integer("n_layer", 12);
  c.n_heads = r.integer("n_head", 12);
  c.n_kv_heads = c.n_heads;
  c.ffn_size = r.integer("n_inner", 4 * c.hidden_size);
  c.activation = plain_activation(r, "activation_function", "gelu_new");
  c.norm = NormKind::LayerNorm;
  c.norm_placement = NormPlacement::Pre;
  c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
  c.embedding_norm = false;
  c.final_norm = true;
  c.positions = PositionKind::Learned;
  c.max_positions = r.integer("n_positions", 1024);
  c.type_vocab_size = 0;
  c.attention_bias = true;
  c.mlp_bias = true;
  c.hidden_dropout = r.number("resid_pdrop", 0.1);
  c.attention_dropout = r.number("attn_pdrop", 0.1);
  if (r.number("embd_pdrop", c.hidden_dropout) != c.hidden_dropout) {
    log::warn("{}: embd_pdrop differs from resid_pdrop; using resid_pdrop {} for both", r.key("embd_pdrop"),
              c.hidden_dropout);
  }
  c.tie_embeddings = r.boolean("tie_word_embeddings", true);
  c.pooler = false;
  if (c.vocab_size > 50256) {  // GPT2Config's defaults, meaningful only with GPT-2's vocabulary
    c.bos_token_id = 50256;
    c.eos_token_id = 50256;
  }
  r.require("scale_attn_weights", true, "attention is always scaled by 1/sqrt(D)");
  r.require("scale_attn_by_inverse_layer_idx", false, "per-layer attention scaling is not supported by libbiolm models");
  r.require("add_cross_attention", false, "cross-attention (encoder-decoder) is not supported by libbiolm models");
}

// Rotary parameters. transformers >= 5 writes `rope_parameters: {rope_type, rope_theta, factor,
// ...}`; older files write `rope_theta` at the top and `rope_scaling: {type | rope_type, factor,
// ...}` (or null). modeling_rope_utils.py ROPE_INIT_FUNCTIONS: "default", "linear" and "llama3"
// are implemented (nn/rotary.h); "dynamic", "yarn", "longrope", ... are refused by name.
void read_rope(const Reader& r, ModelConfig& c) {
  c.rope_theta = r.number("rope_theta", 10000.0);
  const char* key = r.has("rope_parameters") ? "rope_parameters" : (r.has("rope_scaling") ? "rope_scaling" : nullptr);
  if (key == nullptr) return;
  const json& rope = r.raw(key);
  BIOLM_CHECK(rope.is_object(), ConfigError, r.key(key), fmt::format("expected an object or null, found {}", rope.dump()));
  const Reader p(rope, r.key(key));
  if (p.has("rope_theta")) c.rope_theta = p.number("rope_theta", c.rope_theta);
  const std::string type = p.has("rope_type") ? p.string("rope_type", "default") : p.string("type", "default");
  if (p.has("partial_rotary_factor") && p.number("partial_rotary_factor", 1.0) != 1.0) {
    throw ConfigError(p.key("partial_rotary_factor"), "partial rotary embeddings are not supported; expected 1.0");
  }
  auto& s = c.rope_scaling;
  if (type == "default") {
    s = models::RopeScaling{};
  } else if (type == "linear") {
    s.kind = models::RopeScalingKind::Linear;
    BIOLM_CHECK(p.has("factor"), ConfigError, p.key("factor"), "rope_type linear needs a factor");
    s.factor = p.number("factor", 1.0);
  } else if (type == "llama3") {
    s.kind = models::RopeScalingKind::Llama3;
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor"}) {
      BIOLM_CHECK(p.has(k), ConfigError, p.key(k), "rope_type llama3 needs factor, low_freq_factor and high_freq_factor");
    }
    s.factor = p.number("factor", 8.0);
    s.low_freq_factor = p.number("low_freq_factor", 1.0);
    s.high_freq_factor = p.number("high_freq_factor", 4.0);
    s.original_max_positions = p.integer("original_max_position_embeddings", r.integer("max_position_embeddings", 8192));
  } else {
    throw ConfigError(p.key("rope_type"), fmt::format("rope_type \"{}\" is not supported (supported: default, linear, "
                                                      "llama3)",
                                                      type));
  }
  // transformers scales cos/sin by attention_factor for yarn/longrope only; a stray one here would
  // change nothing it computes for these types, so it is not read.
}

void read_llama_like(const Reader& r, HfArch arch, ModelConfig& c) {
  const bool mistral = arch == HfArch::Mistral;
  c.family = Family::Decoder;
  c.vocab_size = r.integer("vocab_size", 32000);
  c.hidden_size = r.integer("hidden_size", 4096);
  c.n_layers = r.integer("num_hidden_layers", 32);
  c.n_heads = r.integer("num_attention_heads", 32);
  c.n_kv_heads = r.integer("num_key_value_heads", mistral ? 8 : c.n_heads);
  c.ffn_size = r.integer("intermediate_size", mistral ? 14336 : 11008);
  const std::string act = r.string("hidden_act", "silu");
  BIOLM_CHECK(act == "silu" || act == "swish", ConfigError, r.key("hidden_act"),
              fmt::format("\"{}\" is not supported: the gated MLP is implemented as SwiGLU (\"silu\") only", act));
  c.activation = Activation::SwiGLU;
  c.norm = NormKind::RMSNorm;
  c.norm_placement = NormPlacement::Pre;
  c.norm_eps = r.number("rms_norm_eps", 1e-6);
  c.embedding_norm = false;
  c.final_norm = true;
  c.positions = PositionKind::Rotary;
  c.max_positions = r.integer("max_position_embeddings", mistral ? 4096 * 32 : 2048);
  c.type_vocab_size = 0;
  c.attention_bias = mistral ? false : r.boolean("attention_bias", false);
  c.mlp_bias = mistral ? false : r.boolean("mlp_bias", false);
  c.hidden_dropout = 0.0;
  c.attention_dropout = r.number("attention_dropout", 0.0);
  c.tie_embeddings = r.boolean("tie_word_embeddings", false);
  c.pooler = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  read_rope(r, c);
  if (r.has("head_dim") && c.n_heads > 0 && r.integer("head_dim", 0) != c.hidden_size / c.n_heads) {
    throw ConfigError(r.key("head_dim"), fmt::format("head_dim {} != hidden_size / num_attention_heads = {} is not "
                                                     "supported",
                                                     r.integer("head_dim", 0), c.hidden_size / c.n_heads));
  }
}

std::optional<TaskKind> task_of_class(const std::string& name, const std::optional<std::string>& problem_type,
                                      size_t n_labels) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("ForMaskedLM") || ends_with("ForPreTraining")) return TaskKind::MaskedLM;
  if (ends_with("LMHeadModel") || ends_with("ForCausalLM")) return TaskKind::CausalLM;
  if (ends_with("ForTokenClassification")) return TaskKind::TokenClassification;
  if (ends_with("ForSequenceClassification")) {
    const bool regression = problem_type ? *problem_type == "regression" : n_labels == 1;
    return regression ? TaskKind::Regression : TaskKind::SequenceClassification;
  }
  if (ends_with("ForQuestionAnswering")) return TaskKind::SpanQA;
  if (ends_with("ForMultipleChoice")) return TaskKind::MultipleChoice;
  if (ends_with("Model")) return TaskKind::Base;
  return std::nullopt;
}

void check_field(bool ok, const char* field, HfArch arch, const std::string& expected) {
  BIOLM_CHECK(ok, ConfigError, fmt::format("model.{}", field),
              fmt::format("a {} checkpoint needs {}", to_string(arch), expected));
}

}  // namespace

std::string to_string(HfArch arch) {
  for (const auto& [a, name] : kArchNames) {
    if (a == arch) return name;
  }
  return "?";
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& item : kArchNames) out.emplace_back(item.second);
  return out;
}

HfArch parse_hf_arch(const std::string& model_type, const std::string& origin) {
  for (const auto& [arch, name] : kArchNames) {
    if (model_type == name) return arch;
  }
  // transformers also writes the type with an underscore in some old files.
  if (model_type == "megatron_bert") return HfArch::MegatronBert;
  throw ConfigError(fmt::format("{}: model_type", origin),
                    fmt::format("model_type '{}' is not supported (supported: {})", model_type,
                                fmt::join(supported_model_types(), ", ")));
}

HfModelInfo hf_config_from_json(const json& j, const std::string& origin) {
  BIOLM_CHECK(j.is_object(), ConfigError, origin, "config.json must hold a JSON object");
  const Reader r(j, origin);
  BIOLM_CHECK(r.has("model_type"), ConfigError, r.key("model_type"),
              fmt::format("missing (supported: {})", fmt::join(supported_model_types(), ", ")));
  HfModelInfo info;
  info.arch = parse_hf_arch(r.string("model_type", ""), origin);
  ModelConfig& c = info.config;
  switch (info.arch) {
    case HfArch::Bert:
    case HfArch::MegatronBert: read_bert_like(r, info.arch, c); break;
    case HfArch::Gpt2: read_gpt2(r, c); break;
    case HfArch::Llama:
    case HfArch::Mistral: read_llama_like(r, info.arch, c); break;
  }
  c.init_std = r.number("initializer_range", 0.02);
  c.moe = models::MoeConfig{};
  // transformers + bitsandbytes checkpoints (save_pretrained of a load_in_4bit / load_in_8bit
  // model): the blocks' Linears are quantized (ModelConfig::quantize) and their stored quant state
  // is installed as is (io/hf_weights.h). Other quantization methods are refused by name.
  if (j.contains("quantization_config") && !j.at("quantization_config").is_null()) {
    const json& q = j.at("quantization_config");
    const std::string qkey = r.key("quantization_config");
    BIOLM_CHECK(q.is_object(), ConfigError, qkey, "expected an object");
    const std::string method = q.value("quant_method", std::string("bitsandbytes"));
    BIOLM_CHECK(method == "bitsandbytes", ConfigError, qkey + ".quant_method",
                "\"" + method + "\" is not supported (only bitsandbytes 4-bit and 8-bit checkpoints are read)");
    const bool four = q.value("load_in_4bit", q.value("_load_in_4bit", false));
    const bool eight = q.value("load_in_8bit", q.value("_load_in_8bit", false));
    BIOLM_CHECK(four != eight, ConfigError, qkey, "expected exactly one of load_in_4bit and load_in_8bit to be true");
    models::QuantizeConfig qc;
    if (four) {
      qc.type = q.value("bnb_4bit_quant_type", std::string("fp4"));
      qc.double_quant = q.value("bnb_4bit_use_double_quant", false);
    } else {
      qc.type = "int8";
      qc.double_quant = false;
    }
    // Our quantized set is the blocks' projections; a skip list may only name Linears outside them.
    if (q.contains("llm_int8_skip_modules") && q.at("llm_int8_skip_modules").is_array()) {
      for (const auto& m : q.at("llm_int8_skip_modules")) {
        const std::string name = m.is_string() ? m.get<std::string>() : m.dump();
        BIOLM_CHECK(name == "lm_head" || name == "score" || name == "classifier" || name == "qa_outputs" ||
                        name == "pooler" || name == "cls",
                    ConfigError, qkey + ".llm_int8_skip_modules",
                    "\"" + name + "\" would keep some block projections dense; libbiolm quantizes all of a block's "
                    "Linears or none");
      }
    }
    c.quantize = qc;
  }
  if (r.has("pad_token_id")) c.pad_token_id = r.token_id("pad_token_id");
  if (r.has("bos_token_id")) c.bos_token_id = r.token_id("bos_token_id");
  if (r.has("eos_token_id")) c.eos_token_id = r.token_id("eos_token_id");
  // transformers writes its class defaults (GPT2Config: bos/eos 50256) even into configs of tiny
  // vocabularies; an id outside the vocabulary names no token, so it is dropped, visibly.
  for (const auto& [key, id] : {std::pair<const char*, std::optional<int64_t>*>{"pad_token_id", &c.pad_token_id},
                                std::pair<const char*, std::optional<int64_t>*>{"bos_token_id", &c.bos_token_id},
                                std::pair<const char*, std::optional<int64_t>*>{"eos_token_id", &c.eos_token_id}}) {
    if (*id && (**id < 0 || **id >= c.vocab_size)) {
      log::warn("{}: {} {} is outside the vocabulary of {} tokens; ignored", origin, key, **id, c.vocab_size);
      id->reset();
    }
  }
  c.name = r.string("_name_or_path", to_string(info.arch));
  if (c.name.empty()) c.name = to_string(info.arch);

  if (info.arch == HfArch::Mistral) {
    // MistralConfig's default window is 4096 when the key is absent; null turns it off.
    // Each query sees the last `sliding_window` keys (ModelConfig::sliding_window, the mask of
    // transformers' sliding_window_overlay); a window at least max_positions long hides nothing.
    const bool absent = !j.contains("sliding_window");
    if (absent || !j.at("sliding_window").is_null()) {
      info.sliding_window = absent ? 4096 : r.integer("sliding_window", 4096);
      BIOLM_CHECK(*info.sliding_window > 0, ConfigError, r.key("sliding_window"),
                  fmt::format("must be > 0 or null, found {}", *info.sliding_window));
      if (*info.sliding_window < c.max_positions) c.sliding_window = info.sliding_window;
    }
  }

  if (r.has("architectures")) {
    const json& a = j.at("architectures");
    BIOLM_CHECK(a.is_array(), ConfigError, r.key("architectures"), "expected a list of class names");
    for (const auto& name : a) {
      BIOLM_CHECK(name.is_string(), ConfigError, r.key("architectures"), "expected a list of class names");
      info.architectures.push_back(name.get<std::string>());
    }
  }
  if (r.has("problem_type")) info.problem_type = r.string("problem_type", "");
  if (r.has("id2label")) {
    const json& m = j.at("id2label");
    BIOLM_CHECK(m.is_object(), ConfigError, r.key("id2label"), "expected an object {\"0\": \"label\", ...}");
    std::map<int64_t, std::string> by_id;
    for (const auto& [k, v] : m.items()) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(k, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      BIOLM_CHECK(used == k.size() && id >= 0 && v.is_string(), ConfigError, r.key("id2label." + k),
                  "expected a non-negative integer key and a string label");
      by_id[id] = v.get<std::string>();
    }
    for (size_t i = 0; i < by_id.size(); ++i) {
      BIOLM_CHECK(by_id.count(static_cast<int64_t>(i)), ConfigError, r.key("id2label"),
                  fmt::format("ids must be 0..{} without gaps; {} is missing", by_id.size() - 1, i));
      info.labels.push_back(by_id[static_cast<int64_t>(i)]);
    }
  }
  if (!info.architectures.empty()) info.task = task_of_class(info.architectures.front(), info.problem_type, info.labels.size());
  info.torch_dtype = r.string("torch_dtype", r.string("dtype", ""));
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: {}", origin, e.key()), e.message());
  }
  return info;
}

HfModelInfo load_hf_config(const std::filesystem::path& path) {
  const auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file);
  BIOLM_CHECK(in.good(), CheckpointError, file.string(), "", "cannot open config.json");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError(file.string(), fmt::format("malformed JSON: {}", e.what()));
  }
  return hf_config_from_json(j, file.string());
}

HfArch infer_hf_arch(const ModelConfig& c) {
  if (!c.is_decoder()) return c.norm_placement == NormPlacement::Post ? HfArch::Bert : HfArch::MegatronBert;
  return c.positions == PositionKind::Learned ? HfArch::Gpt2 : HfArch::Llama;
}

void check_hf_compatible(const ModelConfig& c, HfArch arch) {
  check_field(c.moe.n_experts == 0, "moe.n_experts", arch, "dense FFNs (n_experts = 0)");
  const bool encoder = arch == HfArch::Bert || arch == HfArch::MegatronBert;
  const bool llama = arch == HfArch::Llama || arch == HfArch::Mistral;
  check_field(c.is_decoder() != encoder, "family", arch, encoder ? "family encoder" : "family decoder");
  check_field(c.norm == (llama ? NormKind::RMSNorm : NormKind::LayerNorm), "norm", arch,
              llama ? "norm rms_norm" : "norm layer_norm");
  const bool post = arch == HfArch::Bert;
  check_field(c.norm_placement == (post ? NormPlacement::Post : NormPlacement::Pre), "norm_placement", arch,
              post ? "norm_placement post" : "norm_placement pre");
  check_field(c.embedding_norm == post, "embedding_norm", arch, post ? "embedding_norm true" : "embedding_norm false");
  check_field(c.final_norm == !post, "final_norm", arch, post ? "final_norm false" : "final_norm true");
  check_field(c.positions == (llama ? PositionKind::Rotary : PositionKind::Learned), "positions", arch,
              llama ? "positions rotary" : "positions learned");
  check_field(!c.sliding_window || arch == HfArch::Mistral, "sliding_window", arch,
              "no sliding window (only mistral has one)");
  check_field(c.rope_scaling.kind == models::RopeScalingKind::None || llama, "rope_scaling", arch,
              "no rope scaling (rotary positions only)");
  if (llama) {
    check_field(c.activation == Activation::SwiGLU, "activation", arch, "activation swiglu");
  } else {
    check_field(!c.gated_mlp(), "activation", arch, "a plain (not gated) activation");
    check_field(c.n_kv_heads == c.n_heads, "n_kv_heads", arch, "n_kv_heads == n_heads");
  }
  if (!llama || arch == HfArch::Mistral) {
    const bool biases = !llama;
    check_field(c.attention_bias == biases, "attention_bias", arch, biases ? "attention_bias true" : "attention_bias false");
    check_field(c.mlp_bias == biases, "mlp_bias", arch, biases ? "mlp_bias true" : "mlp_bias false");
  }
  if (encoder) {
    check_field(c.type_vocab_size >= 1, "type_vocab_size", arch, "type_vocab_size >= 1");
  } else {
    check_field(c.type_vocab_size == 0, "type_vocab_size", arch, "type_vocab_size 0");
  }
}

std::string hf_architecture_name(HfArch arch, TaskKind task) {
  const std::string stem = class_stem(arch);
  const bool encoder = arch == HfArch::Bert || arch == HfArch::MegatronBert;
  switch (task) {
    case TaskKind::Base: return stem + "Model";  // the bare body: BertModel, GPT2Model, LlamaModel, ...
    case TaskKind::CausalLM:
      if (!encoder) return arch == HfArch::Gpt2 ? "GPT2LMHeadModel" : stem + "ForCausalLM";
      break;
    case TaskKind::MaskedLM:
      if (encoder) return stem + "ForMaskedLM";
      break;
    case TaskKind::TokenClassification: return stem + "ForTokenClassification";
    case TaskKind::SequenceClassification:
    case TaskKind::Regression: return stem + "ForSequenceClassification";
    case TaskKind::SpanQA: return stem + "ForQuestionAnswering";
    case TaskKind::MultipleChoice:
      if (encoder) return stem + "ForMultipleChoice";
      break;
  }
  throw ConfigError("task", fmt::format("transformers has no {} class for task {}", to_string(arch), models::to_string(task)));
}

json hf_config_to_json(const ModelConfig& c, const HfExportConfig& e) {
  check_hf_compatible(c, e.arch);
  json j;
  j["architectures"] = json::array({hf_architecture_name(e.arch, e.task)});
  j["model_type"] = to_string(e.arch);
  j["vocab_size"] = c.vocab_size;
  j["initializer_range"] = c.init_std;
  j["torch_dtype"] = e.torch_dtype;
  j["tie_word_embeddings"] = c.tie_embeddings;
  const auto act_name = [&]() -> std::string {
    switch (c.activation) {
      case Activation::GeluErf: return "gelu";
      case Activation::GeluTanh: return "gelu_new";
      case Activation::Relu: return "relu";
      case Activation::Silu:
      case Activation::SwiGLU: return "silu";
    }
    return "?";
  }();
  switch (e.arch) {
    case HfArch::Bert:
    case HfArch::MegatronBert:
      j["hidden_size"] = c.hidden_size;
      j["num_hidden_layers"] = c.n_layers;
      j["num_attention_heads"] = c.n_heads;
      j["intermediate_size"] = c.ffn_size;
      j["hidden_act"] = act_name;
      j["hidden_dropout_prob"] = c.hidden_dropout;
      j["attention_probs_dropout_prob"] = c.attention_dropout;
      j["max_position_embeddings"] = c.max_positions;
      j["type_vocab_size"] = c.type_vocab_size;
      j["layer_norm_eps"] = c.norm_eps;
      j["position_embedding_type"] = "absolute";
      break;
    case HfArch::Gpt2:
      j["n_embd"] = c.hidden_size;
      j["n_layer"] = c.n_layers;
      j["n_head"] = c.n_heads;
      j["n_inner"] = c.ffn_size;
      j["n_positions"] = c.max_positions;
      j["activation_function"] = act_name;
      j["layer_norm_epsilon"] = c.norm_eps;
      j["resid_pdrop"] = c.hidden_dropout;
      j["embd_pdrop"] = c.hidden_dropout;
      j["attn_pdrop"] = c.attention_dropout;
      j["scale_attn_weights"] = true;
      break;
    case HfArch::Llama:
    case HfArch::Mistral:
      j["hidden_size"] = c.hidden_size;
      j["num_hidden_layers"] = c.n_layers;
      j["num_attention_heads"] = c.n_heads;
      j["num_key_value_heads"] = c.n_kv_heads;
      j["intermediate_size"] = c.ffn_size;
      j["hidden_act"] = act_name;
      j["max_position_embeddings"] = c.max_positions;
      j["rms_norm_eps"] = c.norm_eps;
      j["rope_theta"] = c.rope_theta;
      {
        // transformers 5 reads rope_parameters; older versions rope_theta + rope_scaling. Both say
        // the same thing.
        json params = {{"rope_theta", c.rope_theta}};
        const auto& rs = c.rope_scaling;
        switch (rs.kind) {
          case models::RopeScalingKind::None: params["rope_type"] = "default"; break;
          case models::RopeScalingKind::Linear:
            params["rope_type"] = "linear";
            params["factor"] = rs.factor;
            break;
          case models::RopeScalingKind::Llama3:
            params["rope_type"] = "llama3";
            params["factor"] = rs.factor;
            params["low_freq_factor"] = rs.low_freq_factor;
            params["high_freq_factor"] = rs.high_freq_factor;
            params["original_max_position_embeddings"] = rs.original_max_positions;
            break;
        }
        j["rope_parameters"] = params;
        if (rs.kind == models::RopeScalingKind::None) {
          j["rope_scaling"] = nullptr;
        } else {
          json legacy = params;
          legacy.erase("rope_theta");
          j["rope_scaling"] = legacy;
        }
      }
      j["attention_dropout"] = c.attention_dropout;
      if (e.arch == HfArch::Llama) {
        j["attention_bias"] = c.attention_bias;
        j["mlp_bias"] = c.mlp_bias;
      } else {
        // null: full causal attention (absent would mean MistralConfig's default window of 4096).
        j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
      }
      break;
  }
  const auto put_id = [&](const char* key, const std::optional<int64_t>& id) {
    j[key] = id ? json(*id) : json(nullptr);
  };
  put_id("pad_token_id", c.pad_token_id);
  put_id("bos_token_id", c.bos_token_id);
  put_id("eos_token_id", c.eos_token_id);
  if (!e.labels.empty()) {
    json id2label = json::object(), label2id = json::object();
    for (size_t i = 0; i < e.labels.size(); ++i) {
      id2label[std::to_string(i)] = e.labels[i];
      label2id[e.labels[i]] = static_cast<int64_t>(i);
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
  }
  if (e.task == TaskKind::Regression) {
    j["problem_type"] = "regression";
    j["id2label"] = json{{"0", "LABEL_0"}};
    j["label2id"] = json{{"LABEL_0", 0}};
  } else if (e.task == TaskKind::SequenceClassification) {
    j["problem_type"] = "single_label_classification";
  }
  return j;
}

}  // namespace biolm::io

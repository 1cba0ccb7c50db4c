// Tests of the Hugging Face interop (io/hf_config, io/hf_weights, io/peft_export).
//
// Golden HF files are written here by a writer of our own (8-byte length, JSON header, raw
// little-endian bytes: the safetensors layout), filled with sin(k + 0.1·n) so every element of
// every tensor is distinct. The expected correspondences are restated below from transformers'
// modeling files, independently of the table in hf_weights.cpp, and GPT-2's transposed, fused
// c_attn is checked element by element.
//
// The model side is libbiolm's real models (models::make_task_model for every head, make_body for
// the bare body). For every (architecture, head) the HF key set of an export is compared with a
// list restated here from transformers' modeling files (modeling_bert.py, modeling_megatron_bert.py,
// modeling_gpt2.py, modeling_llama.py, modeling_mistral.py), and a strict load into a fresh model
// must give identical parameters and identical logits.
//
// The hidden case [.make_hf_models] writes tiny random model directories for the command-line
// parity test (tests/cli/convert.cmake): `biolm convert to-hf`, then tools/hf_reference.py.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdlib>
#include <set>
#include <cstring>
#include <fstream>

#include "biolm/core/error.h"
#include "biolm/io/hf_config.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/model_dir.h"
#include "biolm/io/peft_export.h"
#include "biolm/io/peft_import.h"
#include "biolm/io/safetensors.h"
#include "biolm/models/task_model.h"
#include "biolm/models/transformer.h"
#include "biolm/nn/linear.h"
#include "biolm/peft/lora.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/tokenizer.h"
#include "support/test_util.h"

using namespace biolm;
using io::HfArch;
using models::TaskKind;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// ---- a golden safetensors writer of our own (F32 only) ---------------------------------------
void write_golden(const fs::path& path, const std::map<std::string, torch::Tensor>& tensors) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    const auto c = t.to(torch::kFloat).contiguous();
    const uint64_t begin = data.size();
    data.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * 4);
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((text.size() >> (8 * i)) & 0xFF));
  out << text << data;
}

torch::Tensor golden_values(std::vector<int64_t> shape, int64_t k) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return torch::sin(torch::arange(n, torch::kFloat) * 0.1 + static_cast<double>(k)).reshape(shape);
}

// ---- the real models ---------------------------------------------------------------------------
/// A task model as libbiolm builds it (models::make_task_model), or the bare body for Base.
std::shared_ptr<torch::nn::Module> real_model(const models::ModelConfig& c, TaskKind task, int64_t n_labels) {
  if (task == TaskKind::Base) return models::make_body(c);
  return models::make_task_model(c, task, n_labels);
}

/// What peft::apply does for LoRA: only the adapters train.
void freeze_base(torch::nn::Module& m) {
  for (auto& p : m.named_parameters()) p.value().set_requires_grad(p.key().find(".adapter.") != std::string::npos);
}

std::map<std::string, torch::Tensor> params_of(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

// ---- tiny configs and their HF tensors --------------------------------------------------------
// C=8, H=2 (D=4), L=2, F=12, V=10, positions 6, 2 token types; LLaMA/Mistral with Hkv=1.
json hf_config_json(const std::string& type) {
  if (type == "bert" || type == "megatron-bert") {
    return {{"model_type", type}, {"architectures", {type == "bert" ? "BertForMaskedLM" : "MegatronBertForMaskedLM"}},
            {"vocab_size", 10}, {"hidden_size", 8}, {"num_hidden_layers", 2}, {"num_attention_heads", 2},
            {"intermediate_size", 12}, {"max_position_embeddings", 6}, {"type_vocab_size", 2},
            {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-12}, {"pad_token_id", 0}};
  }
  if (type == "gpt2") {
    return {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"vocab_size", 10}, {"n_embd", 8},
            {"n_layer", 2}, {"n_head", 2}, {"n_inner", 12}, {"n_positions", 6}, {"activation_function", "gelu_new"}};
  }
  json j = {{"model_type", type}, {"architectures", {type == "llama" ? "LlamaForCausalLM" : "MistralForCausalLM"}},
            {"vocab_size", 10}, {"hidden_size", 8}, {"num_hidden_layers", 2}, {"num_attention_heads", 2},
            {"num_key_value_heads", 1}, {"intermediate_size", 12}, {"max_position_embeddings", 64},
            {"rms_norm_eps", 1e-5}, {"rope_theta", 500.0}, {"hidden_act", "silu"}, {"tie_word_embeddings", false}};
  if (type == "mistral") j["sliding_window"] = nullptr;
  return j;
}

/// The HF tensors of a golden checkpoint (names and shapes as transformers saves them).
std::map<std::string, torch::Tensor> hf_tensors(const std::string& type) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> spec;
  const int64_t C = 8, F = 12, V = 10;
  if (type == "bert" || type == "megatron-bert") {
    const bool mg = type == "megatron-bert";
    spec = {{"bert.embeddings.word_embeddings.weight", {V, C}},
            {"bert.embeddings.position_embeddings.weight", {6, C}},
            {"bert.embeddings.token_type_embeddings.weight", {2, C}},
            {"cls.predictions.transform.dense.weight", {C, C}},
            {"cls.predictions.transform.dense.bias", {C}},
            {"cls.predictions.transform.LayerNorm.weight", {C}},
            {"cls.predictions.transform.LayerNorm.bias", {C}},
            {"cls.predictions.bias", {V}}};
    if (!mg) {
      spec.push_back({"bert.embeddings.LayerNorm.weight", {C}});
      spec.push_back({"bert.embeddings.LayerNorm.bias", {C}});
    } else {
      spec.push_back({"bert.encoder.ln.weight", {C}});
      spec.push_back({"bert.encoder.ln.bias", {C}});
    }
    for (int i = 0; i < 2; ++i) {
      const std::string l = "bert.encoder.layer." + std::to_string(i) + ".";
      for (const char* p : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
        spec.push_back({l + p + ".weight", {C, C}});
        spec.push_back({l + p + ".bias", {C}});
      }
      spec.push_back({l + "intermediate.dense.weight", {F, C}});
      spec.push_back({l + "intermediate.dense.bias", {F}});
      spec.push_back({l + "output.dense.weight", {C, F}});
      spec.push_back({l + "output.dense.bias", {C}});
      for (const char* n : mg ? std::vector<const char*>{"attention.ln", "ln"}
                              : std::vector<const char*>{"attention.output.LayerNorm", "output.LayerNorm"}) {
        spec.push_back({l + n + ".weight", {C}});
        spec.push_back({l + n + ".bias", {C}});
      }
    }
  } else if (type == "gpt2") {
    spec = {{"transformer.wte.weight", {V, C}}, {"transformer.wpe.weight", {6, C}},
            {"transformer.ln_f.weight", {C}},   {"transformer.ln_f.bias", {C}}};
    for (int i = 0; i < 2; ++i) {
      const std::string l = "transformer.h." + std::to_string(i) + ".";
      spec.insert(spec.end(), {{l + "ln_1.weight", {C}},
                               {l + "ln_1.bias", {C}},
                               {l + "attn.c_attn.weight", {C, 3 * C}},
                               {l + "attn.c_attn.bias", {3 * C}},
                               {l + "attn.c_proj.weight", {C, C}},
                               {l + "attn.c_proj.bias", {C}},
                               {l + "ln_2.weight", {C}},
                               {l + "ln_2.bias", {C}},
                               {l + "mlp.c_fc.weight", {C, F}},
                               {l + "mlp.c_fc.bias", {F}},
                               {l + "mlp.c_proj.weight", {F, C}},
                               {l + "mlp.c_proj.bias", {C}}});
    }
  } else {
    spec = {{"model.embed_tokens.weight", {V, C}}, {"model.norm.weight", {C}}, {"lm_head.weight", {V, C}}};
    for (int i = 0; i < 2; ++i) {
      const std::string l = "model.layers." + std::to_string(i) + ".";
      spec.insert(spec.end(), {{l + "self_attn.q_proj.weight", {C, C}},
                               {l + "self_attn.k_proj.weight", {4, C}},
                               {l + "self_attn.v_proj.weight", {4, C}},
                               {l + "self_attn.o_proj.weight", {C, C}},
                               {l + "mlp.gate_proj.weight", {F, C}},
                               {l + "mlp.up_proj.weight", {F, C}},
                               {l + "mlp.down_proj.weight", {C, F}},
                               {l + "input_layernorm.weight", {C}},
                               {l + "post_attention_layernorm.weight", {C}}});
    }
  }
  std::map<std::string, torch::Tensor> out;
  int64_t k = 0;
  for (const auto& [name, shape] : spec) out[name] = golden_values(shape, k++);
  return out;
}

/// (our name, HF name) pairs that are plain copies, restated from transformers' modeling files.
std::vector<std::pair<std::string, std::string>> expected_copies(const std::string& type) {
  std::vector<std::pair<std::string, std::string>> e;
  auto add = [&](std::string ours, std::string hf) { e.emplace_back(ours, hf); };
  if (type == "bert" || type == "megatron-bert") {
    const bool mg = type == "megatron-bert";
    add("embeddings.tok.weight", "bert.embeddings.word_embeddings.weight");
    add("embeddings.pos.weight", "bert.embeddings.position_embeddings.weight");
    add("embeddings.type.weight", "bert.embeddings.token_type_embeddings.weight");
    if (!mg) add("embeddings.norm.weight", "bert.embeddings.LayerNorm.weight");
    if (mg) add("final_norm.bias", "bert.encoder.ln.bias");
    for (int i = 0; i < 2; ++i) {
      const std::string o = "layers." + std::to_string(i) + ".", h = "bert.encoder.layer." + std::to_string(i) + ".";
      add(o + "attn.q_proj.weight", h + "attention.self.query.weight");
      add(o + "attn.k_proj.bias", h + "attention.self.key.bias");
      add(o + "attn.v_proj.weight", h + "attention.self.value.weight");
      add(o + "attn.o_proj.weight", h + "attention.output.dense.weight");
      add(o + "mlp.up.weight", h + "intermediate.dense.weight");
      add(o + "mlp.down.weight", h + "output.dense.weight");
      add(o + "attn_norm.weight", h + (mg ? "attention.ln.weight" : "attention.output.LayerNorm.weight"));
      add(o + "mlp_norm.bias", h + (mg ? "ln.bias" : "output.LayerNorm.bias"));
    }
    e.emplace_back("mlm_head.dense.weight", "cls.predictions.transform.dense.weight");
    e.emplace_back("mlm_head.norm.weight", "cls.predictions.transform.LayerNorm.weight");
    e.emplace_back("lm_head.bias", "cls.predictions.bias");
  } else if (type == "gpt2") {
    add("embeddings.tok.weight", "transformer.wte.weight");
    add("embeddings.pos.weight", "transformer.wpe.weight");
    add("final_norm.weight", "transformer.ln_f.weight");
    for (int i = 0; i < 2; ++i) {
      const std::string o = "layers." + std::to_string(i) + ".", h = "transformer.h." + std::to_string(i) + ".";
      add(o + "attn_norm.bias", h + "ln_1.bias");
      add(o + "mlp_norm.weight", h + "ln_2.weight");
      add(o + "attn.o_proj.bias", h + "attn.c_proj.bias");
      add(o + "mlp.up.bias", h + "mlp.c_fc.bias");
    }
  } else {
    add("embeddings.tok.weight", "model.embed_tokens.weight");
    add("final_norm.weight", "model.norm.weight");
    e.emplace_back("lm_head.weight", "lm_head.weight");
    for (int i = 0; i < 2; ++i) {
      const std::string o = "layers." + std::to_string(i) + ".", h = "model.layers." + std::to_string(i) + ".";
      add(o + "attn.q_proj.weight", h + "self_attn.q_proj.weight");
      add(o + "attn.k_proj.weight", h + "self_attn.k_proj.weight");
      add(o + "attn.v_proj.weight", h + "self_attn.v_proj.weight");
      add(o + "attn.o_proj.weight", h + "self_attn.o_proj.weight");
      add(o + "mlp.gate.weight", h + "mlp.gate_proj.weight");
      add(o + "mlp.up.weight", h + "mlp.up_proj.weight");
      add(o + "mlp.down.weight", h + "mlp.down_proj.weight");
      add(o + "attn_norm.weight", h + "input_layernorm.weight");
      add(o + "mlp_norm.weight", h + "post_attention_layernorm.weight");
    }
  }
  return e;
}

TaskKind task_of(const std::string& type) {
  return type == "bert" || type == "megatron-bert" ? TaskKind::MaskedLM : TaskKind::CausalLM;
}

fs::path write_hf_dir(const fs::path& dir, const std::string& type) {
  fs::create_directories(dir);
  test::write_text(dir / "config.json", hf_config_json(type).dump(2));
  write_golden(dir / "model.safetensors", hf_tensors(type));
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config.json maps onto ModelConfig per model type", "[hf][config]") {
  SECTION("bert: post-LN, embedding LayerNorm, erf GELU") {
    const auto info = io::hf_config_from_json(hf_config_json("bert"));
    const auto& c = info.config;
    CHECK(info.arch == HfArch::Bert);
    CHECK(c.family == models::Family::Encoder);
    CHECK(c.norm_placement == models::NormPlacement::Post);
    CHECK(c.embedding_norm);
    CHECK_FALSE(c.final_norm);
    CHECK(c.activation == models::Activation::GeluErf);
    CHECK(c.hidden_size == 8);
    CHECK(c.ffn_size == 12);
    CHECK(c.max_positions == 6);
    CHECK(c.type_vocab_size == 2);
    CHECK(c.norm_eps == 1e-12);
    CHECK(info.task == TaskKind::MaskedLM);
  }
  SECTION("megatron-bert: pre-LN, final LayerNorm, no embedding norm") {
    const auto c = io::hf_config_from_json(hf_config_json("megatron-bert")).config;
    CHECK(c.norm_placement == models::NormPlacement::Pre);
    CHECK_FALSE(c.embedding_norm);
    CHECK(c.final_norm);
  }
  SECTION("gpt2: tanh GELU, tied, learned positions, no token types") {
    const auto info = io::hf_config_from_json(hf_config_json("gpt2"));
    const auto& c = info.config;
    CHECK(c.is_decoder());
    CHECK(c.activation == models::Activation::GeluTanh);
    CHECK(c.tie_embeddings);
    CHECK(c.positions == models::PositionKind::Learned);
    CHECK(c.type_vocab_size == 0);
    CHECK(c.norm_eps == 1e-5);
    CHECK(info.task == TaskKind::CausalLM);
  }
  SECTION("llama: RMSNorm, rotary theta, grouped KV heads, SwiGLU, no biases") {
    const auto c = io::hf_config_from_json(hf_config_json("llama")).config;
    CHECK(c.norm == models::NormKind::RMSNorm);
    CHECK(c.positions == models::PositionKind::Rotary);
    CHECK(c.rope_theta == 500.0);
    CHECK(c.n_kv_heads == 1);
    CHECK(c.activation == models::Activation::SwiGLU);
    CHECK_FALSE(c.attention_bias);
    CHECK_FALSE(c.mlp_bias);
    CHECK_FALSE(c.tie_embeddings);
    CHECK(c.max_positions == 64);
  }
  SECTION("mistral: a sliding window shorter than the context becomes the attention window") {
    json j = hf_config_json("mistral");
    j["sliding_window"] = 16;
    const auto info = io::hf_config_from_json(j);
    CHECK(info.sliding_window == 16);
    CHECK(info.config.sliding_window == 16);
    CHECK(info.config.max_positions == 64);
    j.erase("sliding_window");  // MistralConfig's default window is 4096 > 64: it hides nothing
    CHECK_FALSE(io::hf_config_from_json(j).config.sliding_window.has_value());
  }
  SECTION("rope: transformers 5 rope_parameters and the older rope_theta + rope_scaling") {
    json j = hf_config_json("llama");
    j.erase("rope_theta");
    j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 250.0}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 16}};
    auto c = io::hf_config_from_json(j).config;
    CHECK(c.rope_theta == 250.0);
    CHECK(c.rope_scaling.kind == models::RopeScalingKind::Llama3);
    CHECK(c.rope_scaling.factor == 8.0);
    CHECK(c.rope_scaling.original_max_positions == 16);
    j = hf_config_json("llama");
    j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
    c = io::hf_config_from_json(j).config;
    CHECK(c.rope_theta == 500.0);
    CHECK(c.rope_scaling.kind == models::RopeScalingKind::Linear);
    CHECK(c.rope_scaling.factor == 2.0);
  }
  SECTION("gelu_new / gelu_pytorch_tanh are the tanh GELU") {
    json j = hf_config_json("bert");
    j["hidden_act"] = "gelu_pytorch_tanh";
    CHECK(io::hf_config_from_json(j).config.activation == models::Activation::GeluTanh);
  }
}

TEST_CASE("config.json: what we cannot compute is refused by name", "[hf][config]") {
  json t5 = {{"model_type", "t5"}};
  CHECK_THAT(error_of([&] { io::hf_config_from_json(t5, "x/config.json"); }),
             Catch::Contains("model_type 't5' is not supported (supported: bert, megatron-bert, gpt2, llama, mistral)"));
  json j = hf_config_json("llama");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  CHECK_THAT(error_of([&] { io::hf_config_from_json(j, "x/config.json"); }),
             Catch::Contains("x/config.json: rope_scaling: rope_type") && Catch::Contains("\"yarn\" is not supported"));
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 10000.0}};
  CHECK_THAT(error_of([&] { io::hf_config_from_json(j, "x/config.json"); }), Catch::Contains("\"dynamic\" is not supported"));
  json b = hf_config_json("bert");
  b["position_embedding_type"] = "relative_key";
  CHECK_THAT(error_of([&] { io::hf_config_from_json(b); }), Catch::Contains("position_embedding_type"));
  json g = hf_config_json("gpt2");
  g["scale_attn_by_inverse_layer_idx"] = true;
  CHECK_THAT(error_of([&] { io::hf_config_from_json(g); }), Catch::Contains("scale_attn_by_inverse_layer_idx"));
  b = hf_config_json("bert");
  b["hidden_act"] = "mish";
  CHECK_THAT(error_of([&] { io::hf_config_from_json(b); }), Catch::Contains("\"mish\" is not supported"));
}

TEST_CASE("config.json round trip: ours -> HF -> ours keeps every field transformers has", "[hf][config]") {
  for (const std::string type : {"bert", "megatron-bert", "gpt2", "llama", "mistral"}) {
    DYNAMIC_SECTION(type) {
      const auto info = io::hf_config_from_json(hf_config_json(type));
      io::HfExportConfig e;
      e.arch = info.arch;
      e.task = task_of(type);
      const json out = io::hf_config_to_json(info.config, e);
      CHECK(out["model_type"] == type);
      CHECK(out["architectures"][0] == io::hf_architecture_name(info.arch, e.task));
      const auto back = io::hf_config_from_json(out).config;
      CHECK(models::to_json(back).dump() == models::to_json(info.config).dump());
      CHECK(io::infer_hf_arch(info.config) == (type == "mistral" ? HfArch::Llama : info.arch));
    }
  }
  // A post-LN model cannot be written as GPT-2.
  auto c = io::hf_config_from_json(hf_config_json("bert")).config;
  CHECK_THROWS_AS(io::check_hf_compatible(c, HfArch::Gpt2), ConfigError);
}

TEST_CASE("golden HF checkpoints load into the mapped parameters", "[hf][weights]") {
  for (const std::string type : {"bert", "megatron-bert", "gpt2", "llama", "mistral"}) {
    DYNAMIC_SECTION(type) {
      test::TempDir tmp("hf");
      const auto dir = write_hf_dir(tmp / type, type);
      const auto info = io::load_hf_config(dir);
      auto model_ptr = real_model(info.config, task_of(type), 2);
      auto& model = *model_ptr;
      io::HfLoadOptions strict;
      strict.strict = true;
      const auto report = io::load_hf_directory(model, dir, strict);
      CHECK(report.missing.empty());
      CHECK(report.unexpected.empty());
      const auto hf = hf_tensors(type);
      auto ours = params_of(model);
      CHECK(report.loaded.size() == ours.size());
      for (const auto& [o, h] : expected_copies(type)) {
        INFO(o << " <- " << h);
        REQUIRE(ours.count(o));
        CHECK(torch::equal(ours[o], hf.at(h)));
      }
      if (type == "gpt2") {
        // c_attn.weight (C, 3C) is Conv1D (in, out): q_proj.weight[o][i] = c_attn[i][o], k at
        // column C + o, v at 2C + o; c_proj / c_fc are transposed.
        for (int l = 0; l < 2; ++l) {
          const std::string o = "layers." + std::to_string(l) + ".", h = "transformer.h." + std::to_string(l) + ".";
          const auto w = hf.at(h + "attn.c_attn.weight").accessor<float, 2>();
          const auto bias = hf.at(h + "attn.c_attn.bias").accessor<float, 1>();
          const char* parts[] = {"attn.q_proj", "attn.k_proj", "attn.v_proj"};
          for (int p = 0; p < 3; ++p) {
            const auto ow = ours[o + parts[p] + ".weight"].accessor<float, 2>();
            const auto ob = ours[o + parts[p] + ".bias"].accessor<float, 1>();
            for (int r = 0; r < 8; ++r) {
              REQUIRE(ob[r] == bias[p * 8 + r]);
              for (int i = 0; i < 8; ++i) REQUIRE(ow[r][i] == w[i][p * 8 + r]);
            }
          }
          CHECK(torch::equal(ours[o + "attn.o_proj.weight"], hf.at(h + "attn.c_proj.weight").t()));
          CHECK(torch::equal(ours[o + "mlp.up.weight"], hf.at(h + "mlp.c_fc.weight").t()));
          CHECK(torch::equal(ours[o + "mlp.down.weight"], hf.at(h + "mlp.c_proj.weight").t()));
          CHECK(ours[o + "mlp.up.weight"].sizes() == torch::IntArrayRef({12, 8}));
        }
      }
    }
  }
}

TEST_CASE("our model -> HF directory -> our model is bit-exact", "[hf][weights]") {
  for (const std::string type : {"bert", "megatron-bert", "gpt2", "llama", "mistral"}) {
    DYNAMIC_SECTION(type) {
      test::TempDir tmp("hfrt");
      auto config = io::hf_config_from_json(hf_config_json(type)).config;
      torch::manual_seed(7);
      auto a_ptr = real_model(config, task_of(type), 2);
      auto& a = *a_ptr;
      {
        torch::NoGradGuard g;
        for (auto& p : a.parameters()) p.normal_();
      }
      io::HfSaveOptions opt;
      opt.arch = io::parse_hf_arch(type);
      opt.task = task_of(type);
      test::write_text(tmp / "vocab.txt", "[PAD]\n[UNK]\n");
      opt.tokenizer_dir = tmp.path();
      io::save_hf_directory(a, config, tmp / "out", opt);
      CHECK(fs::exists(tmp / "out" / "vocab.txt"));
      const json written = json::parse(test::read_text(tmp / "out" / "config.json"));
      CHECK(written["model_type"] == type);
      io::SafetensorsFile file(tmp / "out" / "model.safetensors");
      CHECK(file.metadata().at("format") == "pt");
      if (type == "gpt2") {
        CHECK(file.info("transformer.h.1.attn.c_attn.weight").shape == std::vector<int64_t>{8, 24});
        CHECK_FALSE(file.contains("lm_head.weight"));  // tied: transformers re-ties it
      }
      const auto info = io::load_hf_config(tmp / "out");
      auto b_ptr = real_model(info.config, task_of(type), 2);
      auto& b = *b_ptr;
      io::HfLoadOptions strict;
      strict.strict = true;
      io::load_hf_directory(b, tmp / "out", strict);
      auto pa = params_of(a), pb = params_of(b);
      REQUIRE(pa.size() == pb.size());
      for (const auto& [name, t] : pa) {
        INFO(name);
        CHECK(torch::equal(t, pb.at(name)));
      }
    }
  }
}

TEST_CASE("missing and unexpected keys are named, strict mode refuses", "[hf][weights]") {
  test::TempDir tmp("hfmiss");
  auto tensors = hf_tensors("llama");
  tensors.erase("model.layers.1.mlp.up_proj.weight");
  tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch::ones({2});  // old buffer: ignored
  tensors["score.weight"] = torch::ones({3, 8});                                 // a head we do not have
  fs::create_directories(tmp / "m");
  test::write_text(tmp / "m" / "config.json", hf_config_json("llama").dump());
  write_golden(tmp / "m" / "model.safetensors", tensors);
  const auto config = io::load_hf_config(tmp / "m").config;
  auto model_ptr = real_model(config, TaskKind::CausalLM, 2);
  auto& model = *model_ptr;
  const auto before = params_of(model);
  io::HfLoadOptions strict;
  strict.strict = true;
  const std::string err = error_of([&] { io::load_hf_directory(model, tmp / "m", strict); });
  CHECK_THAT(err, Catch::Contains("layers.1.mlp.up.weight") && Catch::Contains("score.weight"));
  auto after_strict = params_of(model);
  CHECK(torch::equal(after_strict["final_norm.weight"], before.at("final_norm.weight")));  // untouched
  const auto report = io::load_hf_directory(model, tmp / "m");
  CHECK(report.missing == std::vector<std::string>{"layers.1.mlp.up.weight"});
  CHECK(report.unexpected == std::vector<std::string>{"score.weight"});
  CHECK(report.ignored == std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
  CHECK(torch::equal(params_of(model)["final_norm.weight"], tensors.at("model.norm.weight")));

  SECTION("a shape that does not fit is an error naming the tensor") {
    tensors = hf_tensors("llama");
    tensors["model.norm.weight"] = torch::ones({9});
    write_golden(tmp / "m" / "model.safetensors", tensors);
    CHECK_THAT(error_of([&] { io::load_hf_directory(model, tmp / "m"); }),
               Catch::Contains("model.norm.weight") && Catch::Contains("(9)"));
  }
  SECTION("a pytorch_model.bin that is not torch.save's zip format is refused with a way out") {
    fs::create_directories(tmp / "bin");
    test::write_text(tmp / "bin" / "config.json", hf_config_json("llama").dump());
    test::write_text(tmp / "bin" / "pytorch_model.bin", "\x80\x02legacy pickle");
    CHECK_THAT(error_of([&] { io::load_hf_directory(model, tmp / "bin"); }),
               Catch::Contains("not a zip archive") && Catch::Contains("safe_serialization=True"));
    test::write_text(tmp / "bin" / "pytorch_model.bin", "PK\x03\x04 broken");
    CHECK_THAT(error_of([&] { io::load_hf_directory(model, tmp / "bin"); }),
               Catch::Contains("cannot read the zip archive") && Catch::Contains("safe_serialization=True"));
  }
  SECTION("a pytorch_model.bin written by torch::pickle_save (torch.save's format) loads") {
    // pickle_save writes the zip format torch.save writes (a plain dict); transformers' real .bin
    // files, OrderedDict state dicts included, are checked in tests/parity/test_models.py.
    fs::create_directories(tmp / "bin2");
    test::write_text(tmp / "bin2" / "config.json", hf_config_json("llama").dump());
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& [name, t] : hf_tensors("llama")) dict.insert(name, t);
    const auto bytes = torch::pickle_save(dict);
    std::ofstream(tmp / "bin2" / "pytorch_model.bin", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const auto report = io::load_hf_directory(model, tmp / "bin2");
    CHECK(report.missing.empty());
    CHECK(report.unexpected.empty());
  }
}

TEST_CASE("Meta's interleaved q/k rows permute to rotate_half rows", "[hf][weights]") {
  // Interleaved RoPE rotates pairs (x_{2j}, x_{2j+1}) by angle p·theta^(-2j/D); rotate_half
  // rotates (x_j, x_{j+D/2}) by the same angle. With W' = permute(W), rotate_half(W' x) must be
  // the permuted interleaved result, so attention scores q·k agree.
  const int64_t H = 2, D = 6, C = 5, pos = 3;
  const double theta = 100.0;
  const auto w = golden_values({H * D, C}, 1).to(torch::kDouble);
  const auto x = golden_values({C}, 2).to(torch::kDouble);
  const auto wh = io::permute_qk_interleaved_to_half(w, H);
  CHECK(torch::equal(io::permute_qk_half_to_interleaved(wh, H), w));
  const auto qi = torch::mv(w, x), qh = torch::mv(wh, x);
  auto rope_interleaved = torch::zeros_like(qi), rope_half = torch::zeros_like(qh);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t j = 0; j < D / 2; ++j) {
      const double a = pos * std::pow(theta, -2.0 * j / D), c = std::cos(a), s = std::sin(a);
      const int64_t i0 = h * D + 2 * j, i1 = i0 + 1;
      rope_interleaved[i0] = qi[i0] * c - qi[i1] * s;
      rope_interleaved[i1] = qi[i1] * c + qi[i0] * s;
      const int64_t h0 = h * D + j, h1 = h0 + D / 2;
      rope_half[h0] = qh[h0] * c - qh[h1] * s;
      rope_half[h1] = qh[h1] * c + qh[h0] * s;
    }
  }
  BIOLM_REQUIRE_CLOSE(io::permute_qk_interleaved_to_half(rope_interleaved, H), rope_half, 1e-12);
  CHECK_FALSE(torch::allclose(w, wh));
}

TEST_CASE("PEFT export: key names, shapes and adapter_config.json", "[hf][peft]") {
  SECTION("llama: q_proj and v_proj") {
    const auto config = io::hf_config_from_json(hf_config_json("llama")).config;
    auto model_ptr = real_model(config, TaskKind::CausalLM, 2);
    auto& model = *model_ptr;
    peft::apply_lora(model, peft::LoraOptions(4, 8.0).targets({"**.attn.q_proj", "**.attn.v_proj"}));
    freeze_base(model);
    test::TempDir tmp("peft");
    io::PeftExportOptions opt;
    opt.base_model_name_or_path = "org/tiny-llama";
    opt.lora_dropout = 0.05;
    io::export_peft_adapter(model, config, tmp / "a", opt);
    const json c = json::parse(test::read_text(tmp / "a" / "adapter_config.json"));
    CHECK(c["peft_type"] == "LORA");
    CHECK(c["task_type"] == "CAUSAL_LM");
    CHECK(c["r"] == 4);
    CHECK(c["lora_alpha"].get<double>() == 8.0);
    CHECK(c["lora_dropout"].get<double>() == 0.05);
    CHECK(c["use_rslora"] == false);
    CHECK(c["base_model_name_or_path"] == "org/tiny-llama");
    CHECK(c["target_modules"] == json::array({"q_proj", "v_proj"}));
    CHECK(c["fan_in_fan_out"] == false);
    io::SafetensorsFile f(tmp / "a" / "adapter_model.safetensors");
    CHECK(f.tensors().size() == 8);
    CHECK(f.info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").shape == std::vector<int64_t>{4, 8});
    CHECK(f.info("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").shape == std::vector<int64_t>{8, 4});
    CHECK(f.info("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight").shape == std::vector<int64_t>{4, 4});
    auto* q = model.named_modules("", false)["layers.1.attn.v_proj"]->as<nn::LinearImpl>();
    auto* lora = dynamic_cast<peft::LoraAdapterImpl*>(q->adapter().get());
    CHECK(torch::equal(f.tensor("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"), lora->lora_a));
  }
  SECTION("gpt2: q and v adapters become one block-diagonal c_attn adapter") {
    const auto config = io::hf_config_from_json(hf_config_json("gpt2")).config;
    auto model_ptr = real_model(config, TaskKind::CausalLM, 2);
    auto& model = *model_ptr;
    peft::apply_lora(model, peft::LoraOptions(2, 4.0).targets({"**.attn.q_proj", "**.attn.v_proj"}));
    freeze_base(model);
    torch::manual_seed(3);
    {
      torch::NoGradGuard g;
      for (auto& p : model.named_parameters()) {
        if (p.key().find("lora_b") != std::string::npos) p.value().normal_();
      }
    }
    const auto adapter = io::make_peft_adapter(model, config, {});
    CHECK(adapter.config["fan_in_fan_out"] == true);
    CHECK(adapter.config["r"] == 4);  // 2 parts x rank 2
    CHECK(adapter.config["lora_alpha"].get<double>() == 8.0);  // same scaling 4/2 = 8/4
    CHECK(adapter.config["target_modules"] == json::array({"c_attn"}));
    const auto A = adapter.tensors.at("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
    const auto B = adapter.tensors.at("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight");
    CHECK(A.sizes() == torch::IntArrayRef({4, 8}));
    CHECK(B.sizes() == torch::IntArrayRef({24, 4}));
    // B A (out = [q | k | v]) equals the separate updates, with zeros for k.
    auto mods = model.named_modules("", false);
    auto delta = [&](const char* name) {
      auto* l = mods[std::string("layers.0.attn.") + name]->as<nn::LinearImpl>();
      auto* a = dynamic_cast<peft::LoraAdapterImpl*>(l->adapter().get());
      return torch::mm(a->lora_b, a->lora_a).detach();
    };
    const auto fused = torch::mm(B, A);
    BIOLM_REQUIRE_CLOSE(fused.narrow(0, 0, 8), delta("q_proj"), 1e-6);
    CHECK(torch::count_nonzero(fused.narrow(0, 8, 8)).item<int64_t>() == 0);
    BIOLM_REQUIRE_CLOSE(fused.narrow(0, 16, 8), delta("v_proj"), 1e-6);
    CHECK(torch::count_nonzero(delta("v_proj")).item<int64_t>() > 0);
  }
  SECTION("bert MLM: a trained head goes to modules_to_save") {
    const auto config = io::hf_config_from_json(hf_config_json("bert")).config;
    auto model_ptr = real_model(config, TaskKind::TokenClassification, 3);
    auto& model = *model_ptr;
    peft::apply_lora(model, peft::LoraOptions(2, 2.0).targets({"**.attn.q_proj"}));
    freeze_base(model);
    for (auto& p : model.named_parameters()) {
      if (p.key().rfind("classifier.", 0) == 0) p.value().set_requires_grad(true);
    }
    io::PeftExportOptions opt;
    opt.task = TaskKind::TokenClassification;
    const auto adapter = io::make_peft_adapter(model, config, opt);
    CHECK(adapter.config["task_type"] == "TOKEN_CLS");
    CHECK(adapter.config["target_modules"] == json::array({"query"}));
    CHECK(adapter.config["modules_to_save"] == json::array({"classifier"}));
    CHECK(adapter.tensors.count("base_model.model.classifier.weight"));
    CHECK(adapter.tensors.count("base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.weight"));
  }
  SECTION("no adapter, or a merged one, is refused") {
    const auto config = io::hf_config_from_json(hf_config_json("llama")).config;
    auto model_ptr = real_model(config, TaskKind::CausalLM, 2);
    auto& model = *model_ptr;
    CHECK_THAT(error_of([&] { io::make_peft_adapter(model, config, {}); }), Catch::Contains("carries no adapter"));
    peft::apply_lora(model, peft::LoraOptions(2, 2.0).targets({"**.attn.q_proj"}));
    CHECK_THAT(error_of([&] { io::to_hf_state(model, config, HfArch::Llama, TaskKind::CausalLM); }),
               Catch::Contains("unmerged adapter"));
  }
}

namespace {

/// Random non-identity values for every adapter tensor and the soft prompt (seeded).
void randomize_adapters(torch::nn::Module& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters()) {
    const auto& k = p.key();
    if (k.find(".adapter.lora_") != std::string::npos) p.value().normal_(0.0, 0.5);
    if (k.find(".adapter.ia3_scale") != std::string::npos) p.value().normal_(1.0, 0.5);
    if (k.rfind("soft_prompt.", 0) == 0) p.value().normal_();
    if (k.rfind("classifier.", 0) == 0) p.value().normal_();
  }
}

torch::Tensor logits_of(models::TaskModelImpl& m, const torch::Tensor& ids) {
  torch::NoGradGuard g;
  m.eval();
  data::Batch b;
  b["input_ids"] = ids;
  return m.run(b).logits;
}

}  // namespace

TEST_CASE("PEFT import: our exports load back (LoRA, fused GPT-2 LoRA, IA3, prompt)", "[hf][peft]") {
  struct Case {
    const char* name;
    const char* type;
    TaskKind task;
    peft::MethodConfig method;
  };
  std::vector<Case> cases;
  {
    peft::MethodConfig m;
    m.method = peft::Method::Lora;
    m.lora = peft::LoraOptions(2, 4.0).targets({"**.attn.q_proj", "**.attn.v_proj", "**.mlp.up"})
                 .rank_pattern({{"layers.1.mlp.up", 3}}).alpha_pattern({{"layers.0.mlp.up", 1.0}});
    cases.push_back({"gpt2 LoRA q, v (fused c_attn) and c_fc with rank/alpha patterns", "gpt2", TaskKind::CausalLM, m});
    m.lora.rank_stabilized(true);
    m.train_patterns = {"classifier.**"};
    cases.push_back({"llama rsLoRA + trained head", "llama", TaskKind::SequenceClassification, m});
  }
  {
    peft::MethodConfig m;
    m.method = peft::Method::Ia3;
    m.ia3.targets({"**.attn.q_proj", "**.attn.k_proj", "**.attn.v_proj"}).input_targets({"**.mlp.down"});
    cases.push_back({"gpt2 IA3 on c_attn and the input of mlp.c_proj", "gpt2", TaskKind::CausalLM, m});
    m.ia3.targets({"**.attn.k_proj", "**.attn.v_proj"}).input_targets({"**.attn.o_proj", "**.mlp.down"});
    m.train_patterns = {"classifier.**"};
    cases.push_back({"bert IA3 + trained head", "bert", TaskKind::TokenClassification, m});
  }
  {
    peft::MethodConfig m;
    m.method = peft::Method::PromptTuning;
    m.prompt = peft::PromptTuningOptions(2, 8);
    cases.push_back({"llama prompt tuning", "llama", TaskKind::CausalLM, m});
    m.train_patterns = {"classifier.**"};
    cases.push_back({"bert prompt tuning + trained head", "bert", TaskKind::SequenceClassification, m});
  }
  const auto ids = torch::tensor({{1, 4, 7, 2}}, torch::kLong);
  for (const auto& c : cases) {
    SECTION(c.name) {
      const auto config = io::hf_config_from_json(hf_config_json(c.type)).config;
      torch::manual_seed(11);
      auto ours = models::make_task_model(config, c.task, 3);
      torch::manual_seed(11);
      auto fresh = models::make_task_model(config, c.task, 3);  // the same base weights
      auto again = models::make_task_model(config, c.task, 3);
      {
        torch::NoGradGuard g;
        auto src = ours->named_parameters();
        for (auto& p : again->named_parameters()) p.value().copy_(src[p.key()]);
      }
      const auto base_logits = logits_of(*ours, ids);
      peft::apply(*ours, c.method);
      randomize_adapters(*ours, 5);
      const auto expected = logits_of(*ours, ids);
      REQUIRE((expected.sizes() != base_logits.sizes() || (expected - base_logits).abs().max().item<double>() > 1e-2));

      test::TempDir tmp("peft_import");
      io::PeftExportOptions opt;
      opt.task = c.task;
      opt.use_rslora = c.method.lora.rank_stabilized();
      io::export_peft_adapter(*ours, config, tmp / "a", opt);
      const auto report = io::load_peft_adapter(*fresh, config, tmp / "a");
      BIOLM_REQUIRE_CLOSE(logits_of(*fresh, ids), expected, 1e-5);
      // Only the adapter (and the saved head) trains, as after peft::apply.
      for (const auto& p : fresh->named_parameters()) {
        // (the classifier of a SEQ_CLS / TOKEN_CLS adapter is always saved, as PEFT wants it)
        const bool adapter = p.key().find(".adapter.") != std::string::npos || p.key().rfind("soft_prompt.", 0) == 0 ||
                             p.key().rfind("classifier.", 0) == 0;
        CHECK(p.value().requires_grad() == adapter);
      }
      // The reported MethodConfig rebuilds the same setup: apply it, copy the adapter state.
      peft::apply(*again, report.method);
      {
        torch::NoGradGuard g;
        auto state = peft::adapter_state(*fresh);
        auto params = again->named_parameters();
        for (const auto& [name, t] : state) {
          REQUIRE(params.find(name) != nullptr);
          REQUIRE(params[name].sizes() == t.sizes());
          params[name].copy_(t);
        }
        CHECK(peft::adapter_state(*again).size() == state.size());
      }
      BIOLM_REQUIRE_CLOSE(logits_of(*again, ids), expected, 1e-5);
    }
  }
}

TEST_CASE("PEFT import: refusals name the file, tensor or field", "[hf][peft]") {
  const auto config = io::hf_config_from_json(hf_config_json("llama")).config;
  auto model = models::make_task_model(config, TaskKind::CausalLM, 2);
  test::TempDir tmp("peft_refuse");
  std::filesystem::create_directories(tmp / "a");
  auto write = [&](const json& c, const std::map<std::string, at::Tensor>& t) {
    test::write_text(tmp / "a" / "adapter_config.json", c.dump());
    io::save_safetensors(tmp / "a" / "adapter_model.safetensors", t, {{"format", "pt"}});
  };
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj";
  write({{"peft_type", "LORA"}, {"lora_alpha", 8}, {"use_dora", true}},
        {{q + ".lora_A.weight", torch::zeros({2, 8})}, {q + ".lora_B.weight", torch::zeros({8, 2})}});
  CHECK_THAT(error_of([&] { io::load_peft_adapter(*model, config, tmp / "a"); }), Catch::Contains("use_dora"));
  write({{"peft_type", "LORA"}, {"lora_alpha", 8}},
        {{q + ".lora_A.weight", torch::zeros({2, 8})}, {q + ".lora_B.weight", torch::zeros({5, 2})}});
  CHECK_THAT(error_of([&] { io::load_peft_adapter(*model, config, tmp / "a"); }), Catch::Contains("do not fit"));
  write({{"peft_type", "LORA"}, {"lora_alpha", 8}},
        {{"base_model.model.model.embed_tokens.lora_embedding_A", torch::zeros({2, 10})}});
  CHECK_THAT(error_of([&] { io::load_peft_adapter(*model, config, tmp / "a"); }),
             Catch::Contains("no parameter of the llama causal_lm model"));
  write({{"peft_type", "LOHA"}}, {});
  CHECK_THAT(error_of([&] { io::load_peft_adapter(*model, config, tmp / "a"); }), Catch::Contains("LOHA"));
}

// ---- the real task models: every (architecture, head) ------------------------------------------
namespace {

/// The tensor names transformers' class for (type, task) holds, restated from its modeling file
/// (not from io/hf_weights.cpp). `tied`: the output projection shares the input embedding and
/// save_pretrained writes it once (under the embedding's name).
std::set<std::string> expected_hf_keys(const std::string& type, TaskKind task, int64_t n_layers, bool tied) {
  const bool encoder = type == "bert" || type == "megatron-bert";
  const bool mg = type == "megatron-bert";
  const bool llama = type == "llama" || type == "mistral";
  std::string body;  // the attribute holding the body in the task class
  if (task != TaskKind::Base) {
    body = encoder ? "bert." : type == "gpt2" ? "transformer." : "model.";
    // modeling_llama.py: LlamaForQuestionAnswering.base_model_prefix = "transformer".
    if (type == "llama" && task == TaskKind::SpanQA) body = "transformer.";
  }
  std::set<std::string> k;
  auto wb = [&](const std::string& name) {
    k.insert(name + ".weight");
    k.insert(name + ".bias");
  };
  if (encoder) {
    // BertEmbeddings / MegatronBertEmbeddings (Megatron has no embedding LayerNorm).
    k.insert(body + "embeddings.word_embeddings.weight");
    k.insert(body + "embeddings.position_embeddings.weight");
    k.insert(body + "embeddings.token_type_embeddings.weight");
    if (!mg) wb(body + "embeddings.LayerNorm");
    for (int64_t i = 0; i < n_layers; ++i) {
      const std::string l = body + "encoder.layer." + std::to_string(i) + ".";
      wb(l + "attention.self.query");
      wb(l + "attention.self.key");
      wb(l + "attention.self.value");
      wb(l + "attention.output.dense");
      wb(l + "intermediate.dense");
      wb(l + "output.dense");
      if (mg) {
        wb(l + "attention.ln");  // MegatronBertAttention.ln (pre-LN)
        wb(l + "ln");            // MegatronBertLayer.ln
      } else {
        wb(l + "attention.output.LayerNorm");
        wb(l + "output.LayerNorm");
      }
    }
    if (mg) wb(body + "encoder.ln");  // MegatronBertEncoder.ln
  } else if (type == "gpt2") {
    k.insert(body + "wte.weight");
    k.insert(body + "wpe.weight");
    for (int64_t i = 0; i < n_layers; ++i) {
      const std::string l = body + "h." + std::to_string(i) + ".";
      for (const char* m : {"ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"}) wb(l + m);
    }
    wb(body + "ln_f");
  } else {
    k.insert(body + "embed_tokens.weight");
    for (int64_t i = 0; i < n_layers; ++i) {
      const std::string l = body + "layers." + std::to_string(i) + ".";
      for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
                            "post_attention_layernorm"}) {
        k.insert(l + m + ".weight");
      }
    }
    k.insert(body + "norm.weight");
  }
  switch (task) {
    case TaskKind::Base: break;  // our bare body has no pooler (BertModel's is initialised by transformers)
    case TaskKind::MaskedLM:     // BertOnlyMLMHead: cls.predictions.{transform.dense, transform.LayerNorm, decoder, bias}
      wb("cls.predictions.transform.dense");
      wb("cls.predictions.transform.LayerNorm");
      k.insert("cls.predictions.bias");
      if (!tied) k.insert("cls.predictions.decoder.weight");
      break;
    case TaskKind::CausalLM:
      if (!tied) k.insert("lm_head.weight");
      break;
    case TaskKind::TokenClassification:
      wb(llama ? "score" : "classifier");  // GenericForTokenClassification.score has a bias
      break;
    case TaskKind::SequenceClassification:
    case TaskKind::Regression:
      if (encoder) {
        wb("bert.pooler.dense");
        wb("classifier");
      } else {
        k.insert("score.weight");  // nn.Linear(hidden, num_labels, bias=False)
      }
      break;
    case TaskKind::SpanQA: wb("qa_outputs"); break;
    case TaskKind::MultipleChoice:
      wb("bert.pooler.dense");
      wb("classifier");
      break;
  }
  return k;
}

/// Logits of `model` for fixed inputs (hidden states for a bare body), in eval mode.
torch::Tensor logits_of(torch::nn::Module& model, TaskKind task, int64_t vocab) {
  torch::NoGradGuard no_grad;
  model.eval();
  const auto ids = torch::arange(2, 7, torch::kLong).remainder(vocab).reshape({1, 5});  // (B=1,T=5)
  if (task == TaskKind::Base) {
    models::ModelInputs in;
    in.input_ids = ids;
    return dynamic_cast<models::TransformerImpl&>(model).forward(in).hidden;
  }
  auto& tm = dynamic_cast<models::TaskModelImpl&>(model);
  data::Batch b;
  // Multiple choice: K=2 choices (B,K,T).
  b["input_ids"] = task == TaskKind::MultipleChoice ? torch::stack({ids, ids.flip(1)}, 1) : ids;
  return tm.run(b).logits;
}

std::vector<TaskKind> hf_tasks(const std::string& type) {
  const bool encoder = type == "bert" || type == "megatron-bert";
  std::vector<TaskKind> t = {TaskKind::Base, encoder ? TaskKind::MaskedLM : TaskKind::CausalLM,
                             TaskKind::TokenClassification, TaskKind::SequenceClassification,
                             TaskKind::Regression, TaskKind::SpanQA};
  if (encoder) t.push_back(TaskKind::MultipleChoice);
  return t;
}

}  // namespace

TEST_CASE("real task models: HF key set, strict reload, identical parameters and logits", "[hf][weights][heads]") {
  for (const std::string type : {"bert", "megatron-bert", "gpt2", "llama", "mistral"}) {
    for (const TaskKind task : hf_tasks(type)) {
      // Tied and untied output projections where the head has one.
      const bool has_output = task == TaskKind::MaskedLM || task == TaskKind::CausalLM;
      for (const bool tied : has_output ? std::vector<bool>{true, false} : std::vector<bool>{true}) {
        DYNAMIC_SECTION(type << " " << models::to_string(task) << (tied ? "" : " untied")) {
          test::TempDir tmp("hfheads");
          auto config = io::hf_config_from_json(hf_config_json(type)).config;
          config.tie_embeddings = tied;
          const int64_t n_labels = 3;
          torch::manual_seed(11);
          auto a = real_model(config, task, n_labels);
          {
            // Non-trivial norms and biases too (they start at 1 and 0).
            torch::NoGradGuard g;
            for (auto& p : a->parameters()) p.add_(0.1 * torch::randn_like(p));
          }
          io::HfSaveOptions opt;
          opt.arch = io::parse_hf_arch(type);
          io::save_hf_directory(*a, config, tmp / "hf", opt);

          const json written = json::parse(test::read_text(tmp / "hf" / "config.json"));
          CHECK(written["architectures"][0] == io::hf_architecture_name(*opt.arch, task));
          CHECK(written["tie_word_embeddings"] == tied);
          if (task == TaskKind::TokenClassification || task == TaskKind::SequenceClassification) {
            CHECK(written["id2label"].size() == 3);  // num_labels for transformers
          }
          io::SafetensorsFile file(tmp / "hf" / "model.safetensors");
          std::set<std::string> keys;
          for (const auto& name : file.names()) keys.insert(name);
          const auto expected = expected_hf_keys(type, task, config.n_layers, tied);
          std::vector<std::string> extra, absent;
          std::set_difference(keys.begin(), keys.end(), expected.begin(), expected.end(), std::back_inserter(extra));
          std::set_difference(expected.begin(), expected.end(), keys.begin(), keys.end(), std::back_inserter(absent));
          INFO("written but not in transformers' class: " << fmt::format("{}", fmt::join(extra, ", ")));
          INFO("transformers' class has but not written: " << fmt::format("{}", fmt::join(absent, ", ")));
          CHECK(extra.empty());
          CHECK(absent.empty());

          // A fresh model (another seed), strict load: identical parameters, identical logits.
          const auto info = io::load_hf_config(tmp / "hf");
          CHECK(info.arch == *opt.arch);
          if (task != TaskKind::Base) CHECK(info.task == task);
          torch::manual_seed(12);
          auto b = real_model(info.config, task, n_labels);
          io::HfLoadOptions strict;
          strict.strict = true;
          const auto report = io::load_hf_directory(*b, tmp / "hf", strict);
          CHECK(report.unexpected.empty());
          CHECK(report.missing.empty());
          auto pa = params_of(*a), pb = params_of(*b);
          REQUIRE(pa.size() == pb.size());
          for (const auto& [name, t] : pa) {
            INFO(name);
            REQUIRE(pb.count(name));
            CHECK(torch::equal(t, pb.at(name)));
          }
          const auto la = logits_of(*a, task, config.vocab_size), lb = logits_of(*b, task, config.vocab_size);
          CHECK(la.sizes() == lb.sizes());
          CHECK(torch::equal(la, lb));
          if (tied && has_output) {
            // The tie survives: the output projection is the embedding itself.
            auto& tm = dynamic_cast<models::TaskModelImpl&>(*b);
            const auto named = tm.named_parameters();
            CHECK_FALSE(named.contains("lm_head.weight"));
          }
        }
      }
    }
  }
}

TEST_CASE("a body saved by another class loads into a new head (non-strict), heads reported", "[hf][weights][heads]") {
  // BertForMaskedLM -> BertForTokenClassification: the body loads, cls.* is unexpected, the
  // classifier is missing. LlamaForCausalLM -> LlamaForSequenceClassification likewise.
  for (const std::string type : {"bert", "llama"}) {
    DYNAMIC_SECTION(type) {
      test::TempDir tmp("hfbody");
      const auto dir = write_hf_dir(tmp / type, type);
      const auto info = io::load_hf_config(dir);
      const TaskKind task = type == "bert" ? TaskKind::TokenClassification : TaskKind::SequenceClassification;
      auto model = real_model(info.config, task, 3);
      const auto report = io::load_hf_directory(*model, dir);
      if (type == "bert") {
        CHECK(report.missing == std::vector<std::string>{"classifier.weight", "classifier.bias"});
        CHECK(report.unexpected.size() == 5);  // cls.predictions.{bias, transform.dense.*, transform.LayerNorm.*}
      } else {
        CHECK(report.missing == std::vector<std::string>{"classifier.weight"});
        CHECK(report.unexpected == std::vector<std::string>{"lm_head.weight"});
      }
      CHECK(torch::equal(params_of(*model)["embeddings.tok.weight"],
                         hf_tensors(type).at(type == "bert" ? "bert.embeddings.word_embeddings.weight"
                                                            : "model.embed_tokens.weight")));
      io::HfLoadOptions strict;
      strict.strict = true;
      CHECK_THROWS_AS(io::load_hf_directory(*model, dir, strict), CheckpointError);
    }
  }
}

TEST_CASE("make tiny model directories for the command-line parity test", "[.make_hf_models]") {
  // BIOLM_HF_OUT=<dir>: writes <dir>/<type>/model (a biolm model directory: masked LM for the
  // encoders, causal LM for the decoders; random weights, non-trivial norms and biases; bert with
  // a WordPiece tokenizer), <dir>/heads/<type>-<task> (one classification or QA head per type),
  // and <dir>/{llama,gpt2}/lora: the model with LoRA on q_proj and v_proj
  // (rank 4, alpha 8, B random so the adapter moves the output).
  const char* out = std::getenv("BIOLM_HF_OUT");
  REQUIRE(out != nullptr);
  fs::create_directories(out);
  {
    std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int i = 5; i < 64; ++i) vocab += fmt::format("w{}\n", i);
    test::write_text(fs::path(out) / "vocab.txt", vocab);
  }
  const auto wordpiece = tokenize::load_tokenizer(fs::path(out) / "vocab.txt");
  for (const std::string type : {"bert", "megatron-bert", "gpt2", "llama", "mistral"}) {
    const bool encoder = type == "bert" || type == "megatron-bert";
    json j = hf_config_json(type);
    // A little larger than the golden configs: C=32, H=4 (LLaMA/Mistral Hkv=2), F=48, V=64.
    if (type == "gpt2") {
      j.update({{"vocab_size", 64}, {"n_embd", 32}, {"n_head", 4}, {"n_inner", 48}, {"n_positions", 16}});
    } else {
      j.update({{"vocab_size", 64}, {"hidden_size", 32}, {"num_attention_heads", 4}, {"intermediate_size", 48}});
      if (encoder) j["max_position_embeddings"] = 16;
      if (!encoder) j.update({{"num_key_value_heads", 2}, {"tie_word_embeddings", type == "mistral"}});
    }
    const auto info = io::hf_config_from_json(j);
    io::ModelDirInfo dir_info;
    dir_info.config = info.config;
    dir_info.task = encoder ? TaskKind::MaskedLM : TaskKind::CausalLM;
    dir_info.n_labels = info.config.vocab_size;
    dir_info.info = {{"hf_model_type", type}};
    torch::manual_seed(static_cast<uint64_t>(std::hash<std::string>{}(type) % 1000));
    auto model = models::make_task_model(info.config, dir_info.task);
    {
      torch::NoGradGuard g;
      for (auto& p : model->parameters()) p.add_(0.1 * torch::randn_like(p));
    }
    io::ModelDirSaveOptions save;
    if (type == "bert") save.tokenizer = wordpiece.get();
    io::save_model_dir(*model, dir_info, fs::path(out) / type / "model", save);
    // Heads the reference checks too: <dir>/heads/<type>-<task>.
    const std::map<std::string, TaskKind> heads = {{"bert", TaskKind::SequenceClassification},
                                                   {"megatron-bert", TaskKind::TokenClassification},
                                                   {"gpt2", TaskKind::SequenceClassification},
                                                   {"llama", TaskKind::SpanQA},
                                                   {"mistral", TaskKind::TokenClassification}};
    {
      io::ModelDirInfo head_info = dir_info;
      head_info.task = heads.at(type);
      head_info.labels = {"neg", "neutral", "pos"};
      head_info.n_labels = 3;
      auto head = models::make_task_model(info.config, head_info.task, 3);
      torch::NoGradGuard g;
      for (auto& p : head->parameters()) p.add_(0.1 * torch::randn_like(p));
      if (head_info.task == TaskKind::SpanQA) head_info.labels.clear();
      head_info.n_labels = head->n_labels();
      io::save_model_dir(*head, head_info, fs::path(out) / "heads" / (type + "-" + models::to_string(head_info.task)));
    }
    if (type == "llama" || type == "gpt2") {
      peft::MethodConfig lora;
      lora.method = peft::Method::Lora;
      lora.lora = peft::LoraOptions(4, 8.0).targets({"**.attn.q_proj", "**.attn.v_proj"});
      peft::apply(*model, lora);
      {
        torch::NoGradGuard g;
        for (auto& p : model->named_parameters()) {
          if (p.key().find(".adapter.lora_b") != std::string::npos) p.value().normal_(0.0, 0.2);
        }
      }
      dir_info.peft = lora;
      io::save_model_dir(*model, dir_info, fs::path(out) / type / "lora");
    }
  }
}

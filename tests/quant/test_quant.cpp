// quant/: NF4 / FP4 / int8 weights (bit equality with bitsandbytes is tests/parity/test_quant.py)
// and the quantized Linear: chunked forward = dense product with the dequantized weight, input
// gradients, adapters training on top, merge into a dequantized base, bad input refused.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "biolm/core/error.h"
#include "biolm/data/batch.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/model_dir.h"
#include "biolm/io/safetensors.h"
#include "biolm/models/config.h"
#include "biolm/models/memory.h"
#include "biolm/models/task_model.h"
#include "biolm/nn/linear.h"
#include "biolm/peft/method.h"
#include "biolm/peft/dora.h"
#include "biolm/peft/lora.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"
#include "support/test_util.h"

using namespace biolm;
namespace fs = std::filesystem;

namespace {

torch::Tensor weights(int64_t out, int64_t in, uint64_t seed) {
  auto g = torch::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn({out, in}, g) * 0.05;
}

}  // namespace

TEST_CASE("quant: every value within half a code gap of its block's scale, layout as documented", "[quant]") {
  for (auto type : {quant::QuantType::NF4, quant::QuantType::FP4}) {
    const auto w = weights(33, 17, 3);  // 561 values: 8 full blocks and 49 in the last, odd count
    const auto q = quant::quantize(w, type, /*double_quant=*/false);
    CHECK(q.data.numel() == 281);
    CHECK(q.absmax.numel() == 9);
    const auto& code = quant::code_4bit(type);
    std::vector<float> sorted(code.begin(), code.end());
    std::sort(sorted.begin(), sorted.end());
    float max_gap = 0;
    for (size_t i = 1; i < sorted.size(); ++i) max_gap = std::max(max_gap, sorted[i] - sorted[i - 1]);
    const auto deq = quant::dequantize(q).reshape({-1});
    const auto flat = w.reshape({-1});
    const auto scale = q.absmax.repeat_interleave(64).narrow(0, 0, flat.numel());
    const auto err = ((deq - flat).abs() / scale).max().item<float>();
    CHECK(err <= max_gap / 2 + 1e-6f);
    CHECK(err > 0);
    // the block's largest magnitude is exact (code holds +-1 for NF4, -1 and 1 for FP4)
    CHECK(torch::allclose(deq.abs().narrow(0, 0, 512).view({8, 64}).amax(1), q.absmax.narrow(0, 0, 8)));
  }
  const auto q8 = quant::quantize(weights(5, 7, 4), quant::QuantType::Int8);
  CHECK(q8.data.scalar_type() == torch::kChar);
  CHECK(q8.data.abs().amax(1).eq(127).all().item<bool>());  // each row's absmax maps to +-127
}

TEST_CASE("quant: double quantization stores uint8 scales within the 8-bit code's resolution", "[quant]") {
  const auto w = weights(256, 512, 5);  // 2048 blocks: the 1 KiB nested code is small beside them
  const auto plain = quant::quantize(w, quant::QuantType::NF4, false);
  const auto nested = quant::quantize(w, quant::QuantType::NF4, true);
  CHECK(torch::equal(plain.data, nested.data));  // the 4-bit indices do not depend on it
  CHECK(nested.absmax.scalar_type() == torch::kByte);
  const auto rel = ((nested.scales() - plain.absmax).abs() / plain.absmax).max().item<float>();
  CHECK(rel < 0.02f);  // measured ~0.4 %: the dynamic code around the centred constants
  CHECK(rel > 0.0f);
  CHECK(nested.nbytes() < plain.nbytes());
}

TEST_CASE("quant: bad arguments and stored forms are refused by name", "[quant]") {
  const auto w = weights(4, 64, 6);
  CHECK_THROWS_AS(quant::quantize(w, quant::QuantType::NF4, true, 48), ConfigError);
  CHECK_THROWS_AS(quant::quantize(w.to(torch::kInt64), quant::QuantType::NF4), ConfigError);
  CHECK_THROWS_AS(quant::quantize(torch::randn({2, 3, 4}), quant::QuantType::Int8), ConfigError);
  std::map<std::string, at::Tensor> stored;
  quant::to_tensors(quant::quantize(w, quant::QuantType::FP4), "l.weight", stored);
  CHECK(torch::equal(quant::dequantize(quant::from_tensors(stored, "l.weight", "f")), quant::dequantize(quant::quantize(w, quant::QuantType::FP4))));
  auto missing = stored;
  missing.erase("l.weight.nested_absmax");
  CHECK_THROWS_WITH(quant::from_tensors(missing, "l.weight", "x.safetensors"),
                    Catch::Contains("x.safetensors") && Catch::Contains("l.weight.nested_absmax"));
  auto short_data = stored;
  short_data["l.weight"] = stored["l.weight"].narrow(0, 0, 10);
  CHECK_THROWS_AS(quant::from_tensors(short_data, "l.weight", "x"), CheckpointError);
}

TEST_CASE("quantized Linear: chunked forward and input gradient equal the dense dequantized product", "[quant]") {
  for (auto type : {quant::QuantType::NF4, quant::QuantType::FP4, quant::QuantType::Int8}) {
    nn::Linear lin(nn::LinearOptions(40, 70));
    lin->quantize_weight(type);
    CHECK(lin->weight.numel() == 0);  // no dense copy kept
    const auto dense = lin->dense_weight();
    const auto x = torch::randn({2, 5, 40}).requires_grad_(true);
    const auto y = lin->forward(x);
    const auto x2 = x.detach().clone().requires_grad_(true);
    const auto ref = at::linear(x2, dense, lin->bias.detach());
    BIOLM_REQUIRE_CLOSE(y, ref, 1e-5);
    // chunks of 3 rows (70 = 23 * 3 + 1) equal one chunk of all rows
    BIOLM_REQUIRE_CLOSE(quant::quantized_linear(x, lin->quantized_weight(), lin->bias, 3), y, 1e-6);
    const auto gy = torch::randn_like(ref);
    y.backward(gy);
    ref.backward(gy);
    BIOLM_REQUIRE_CLOSE(x.grad(), x2.grad(), 1e-5);
    CHECK(!lin->weight.grad().defined());
  }
}

TEST_CASE("QLoRA / QDoRA: adapters train on a quantized base, merge goes into the dequantized base", "[quant]") {
  for (bool dora : {false, true}) {
    nn::Linear lin(nn::LinearOptions(24, 16));
    lin->quantize_weight(quant::QuantType::NF4);
    const auto dense = lin->dense_weight();
    const auto x = torch::randn({3, 24});
    const auto base_y = lin->forward(x).detach();
    const auto opts = peft::LoraOptions(4, 8.0).use_dora(dora);
    std::shared_ptr<peft::LoraAdapterImpl> adapter =
        dora ? std::make_shared<peft::DoraAdapterImpl>(24, 16, opts, lin->dense_weight())
             : std::make_shared<peft::LoraAdapterImpl>(24, 16, opts, lin->weight);
    lin->attach_adapter(adapter);
    BIOLM_REQUIRE_CLOSE(lin->forward(x), base_y, 1e-6);  // identity at init
    for (auto& p : adapter->parameters()) p.set_requires_grad(true);
    {
      torch::NoGradGuard ng;
      adapter->lora_b.copy_(torch::sin(torch::arange(adapter->lora_b.numel(), torch::kFloat)).view_as(adapter->lora_b));
    }
    const auto y = lin->forward(x);
    y.pow(2).sum().backward();
    CHECK(adapter->lora_a.grad().defined());
    CHECK(adapter->lora_b.grad().abs().sum().item<float>() > 0);
    if (!dora) {
      const auto expected =
          at::linear(x, dense, lin->bias) + 2.0 * torch::matmul(torch::matmul(x, adapter->lora_a.t()), adapter->lora_b.t());
      BIOLM_REQUIRE_CLOSE(y, expected, 1e-5);
    } else {  // eq. (5) on the dequantized base
      const auto adapted_w = dense + 2.0 * torch::matmul(adapter->lora_b, adapter->lora_a);
      const auto m = std::dynamic_pointer_cast<peft::DoraAdapterImpl>(adapter)->magnitude;
      const auto w_prime = m.unsqueeze(1) * adapted_w / adapted_w.norm(2, {1}, true);
      BIOLM_REQUIRE_CLOSE(y, at::linear(x, w_prime, lin->bias), 1e-5);
    }
    lin->merge_adapter();
    CHECK(!lin->quantized_weight());
    CHECK(lin->weight.sizes() == torch::IntArrayRef({16, 24}));
    BIOLM_REQUIRE_CLOSE(lin->forward(x), y.detach(), 1e-5);
  }
}

namespace {

models::ModelConfig tiny_llama() {
  auto c = models::preset("tiny-decoder");
  c.hidden_size = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_size = 96;
  c.n_layers = 2;
  c.vocab_size = 50;
  c.tie_embeddings = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  return c;
}

torch::Tensor logits_of(models::TaskModelImpl& m, const torch::Tensor& ids) {
  torch::NoGradGuard ng;
  m.eval();
  data::Batch b;
  b["input_ids"] = ids;
  return m.run(b).logits;
}

}  // namespace

TEST_CASE("model.quantize: every block Linear is built quantized, the rest stays dense, config by key", "[quant]") {
  auto c = tiny_llama();
  c.quantize = models::QuantizeConfig{"nf4", true};
  const auto m = models::make_task_model(c, models::TaskKind::CausalLM);
  int quantized = 0;
  for (const auto& [name, lin] : nn::linears_by_weight(*m)) {
    const bool in_block = name.rfind("layers.", 0) == 0;
    CHECK(static_cast<bool>(lin->quantized_weight()) == in_block);
    if (in_block) {
      ++quantized;
      CHECK(lin->quantized_weight()->type == quant::QuantType::NF4);
      CHECK(lin->quantized_weight()->nested);
      CHECK(lin->weight.numel() == 0);
    }
  }
  CHECK(quantized == 2 * 7);  // q, k, v, o, gate, up, down per layer
  // JSON: written only when set, read back; shorthand and errors by key
  const auto j = models::to_json(c);
  CHECK(j.at("quantize").at("type") == "nf4");
  CHECK(!models::to_json(tiny_llama()).contains("quantize"));
  CHECK(models::config_from_json(j).quantize->type == "nf4");
  auto short_form = j;
  short_form["quantize"] = "int8";
  CHECK(models::config_from_json(short_form).quantize->type == "int8");
  auto bad = j;
  bad["quantize"] = {{"type", "nf5"}, {"double_quantize", true}};
  CHECK_THROWS_WITH(models::config_from_json(bad),
                    Catch::Contains("model.quantize.type") && Catch::Contains("nf5") &&
                        Catch::Contains("model.quantize.double_quantize"));
}

TEST_CASE("QLoRA model directory: the 4-bit base round-trips byte for byte (LoRA, DoRA, IA3), merge and unmerge restore it",
          "[quant]") {
  test::TempDir tmp("qlora");
  auto dense_cfg = tiny_llama();
  torch::manual_seed(3);
  const auto dense = models::make_task_model(dense_cfg, models::TaskKind::CausalLM);
  io::HfSaveOptions save;
  save.max_shard_bytes = 20'000;  // several shards
  io::save_hf_directory(*dense, dense_cfg, tmp / "hf", save);
  CHECK(fs::exists(tmp / "hf" / "model.safetensors.index.json"));

  for (const char* type : {"nf4", "fp4", "int8"}) {
    auto cfg = dense_cfg;
    cfg.quantize = models::QuantizeConfig{type, true};
    const auto m = models::make_task_model(cfg, models::TaskKind::CausalLM);
    io::HfLoadOptions strict;
    strict.strict = true;
    const auto report = io::load_hf_directory(*m, tmp / "hf", strict);
    CHECK(report.missing.empty());
    // Quantize-on-load equals quantizing the dense weights (the same bytes).
    const auto dense_linears = nn::linears_by_weight(*dense);
    for (const auto& [name, lin] : nn::linears_by_weight(*m)) {
      if (!lin->quantized_weight()) continue;
      const auto expect = quant::quantize(dense_linears.at(name)->weight.detach(), *quant::parse_quant_type(type), true);
      CHECK(torch::equal(lin->quantized_weight()->data, expect.data));
      CHECK(torch::equal(lin->quantized_weight()->absmax, expect.absmax));
    }
    // nf4: LoRA, fp4: DoRA, int8: IA3, each on its quantized base.
    peft::MethodConfig lora;
    if (std::string(type) == "int8") {
      lora.method = peft::Method::Ia3;
      lora.ia3 = peft::Ia3Options().targets({"**.k_proj", "**.v_proj"}).input_targets({"**.down"});
    } else {
      lora.method = peft::Method::Lora;
      lora.lora = peft::LoraOptions(4, 8.0).targets({"**.q_proj", "**.down"}).use_dora(std::string(type) == "fp4");
    }
    peft::apply(*m, lora);
    {
      torch::NoGradGuard ng;
      for (auto& p : m->named_parameters()) {
        if (p.key().find("lora_b") != std::string::npos) p.value().normal_(0.0, 0.1);
        if (p.key().find("ia3") != std::string::npos) p.value().uniform_(0.5, 1.5);
      }
    }
    quant::check_quantized_frozen(*m);
    // A bfloat16 checkpoint quantizes on load as bitsandbytes does it: from the bf16 values, in float32.
    {
      io::HfSaveOptions bf16;
      bf16.dtype = torch::kBFloat16;
      bf16.max_shard_bytes = 20'000;
      const auto dir16 = tmp / (std::string("hf16_") + type);
      io::save_hf_directory(*dense, dense_cfg, dir16, bf16);
      const auto m16 = models::make_task_model(cfg, models::TaskKind::CausalLM);
      io::load_hf_directory(*m16, dir16, strict);
      const auto w16 = dense_linears.at("layers.1.mlp.down.weight")->weight.detach().to(torch::kBFloat16);
      const auto expect = quant::quantize(w16, *quant::parse_quant_type(type), true);
      const auto& got = nn::linears_by_weight(*m16).at("layers.1.mlp.down.weight")->quantized_weight();
      REQUIRE(got);
      CHECK(torch::equal(got->data, expect.data));
      CHECK(torch::equal(got->absmax, expect.absmax));
      CHECK(got->dtype == torch::kBFloat16);
    }
    const auto ids = torch::randint(0, 50, {2, 9}, torch::kLong);
    const auto before = logits_of(*m, ids);

    io::ModelDirInfo info;
    info.config = cfg;
    info.task = models::TaskKind::CausalLM;
    info.peft = lora;
    const auto dir = tmp / (std::string("md_") + type);
    io::save_model_dir(*m, info, dir);
    const auto stored = io::load_safetensors(dir / "model.safetensors");
    CHECK(stored.at("layers.0.attn.q_proj.weight").scalar_type() ==
          (std::string(type) == "int8" ? torch::kChar : torch::kByte));
    const auto loaded = io::load_model_dir(dir);
    CHECK(torch::equal(logits_of(*loaded.model, ids), before));
    const auto a = nn::linears_by_weight(*m), b = nn::linears_by_weight(*loaded.model);
    for (const auto& [name, lin] : a) {
      if (!lin->quantized_weight()) continue;
      CHECK(torch::equal(b.at(name)->quantized_weight()->data, lin->quantized_weight()->data));
    }

    // Merge dequantizes (the merged weight is not 4-bit); unmerge brings back the same object.
    auto* q_proj = a.at(std::string(type) == "int8" ? "layers.0.attn.k_proj.weight" : "layers.0.attn.q_proj.weight");
    const auto q_before = q_proj->quantized_weight();
    peft::merge_adapters(*m);
    CHECK(!q_proj->quantized_weight());
    BIOLM_REQUIRE_CLOSE(logits_of(*m, ids), before, 1e-4);
    peft::unmerge_adapters(*m);
    CHECK(q_proj->quantized_weight() == q_before);
    CHECK(q_proj->weight.numel() == 0);
    CHECK(torch::equal(logits_of(*m, ids), before));

    // A full fine-tune of the quantized base is refused by key.
    auto full_model = models::make_task_model(cfg, models::TaskKind::CausalLM);
    peft::apply(*full_model, peft::MethodConfig{});
    CHECK_THROWS_WITH(quant::check_quantized_frozen(*full_model), Catch::Contains("model.quantize"));
  }
}

TEST_CASE("inspect --memory: weights and trainable counts equal a built model's, checkpointing lowers activations",
          "[quant][memory]") {
  for (const char* type : {"", "nf4", "int8"}) {
    auto cfg = tiny_llama();
    if (*type) cfg.quantize = models::QuantizeConfig{type, true};
    const auto m = models::make_task_model(cfg, models::TaskKind::CausalLM);
    peft::set_requires_grad(*m, false);
    peft::apply_lora(*m, peft::LoraOptions(4, 8.0).targets({"**.q_proj", "**.down"}));
    int64_t bytes = 0, trainable = 0;
    const auto linears = nn::linears_by_weight(*m);
    for (const auto& p : m->named_parameters()) {
      const auto lin = linears.find(p.key());
      if (lin != linears.end() && lin->second->quantized_weight()) {
        bytes += lin->second->quantized_weight()->nbytes();
      } else {
        bytes += p.value().numel() * 4;
      }
      if (p.value().requires_grad()) trainable += p.value().numel();
    }
    models::MemoryPlan plan;
    plan.batch = 2;
    plan.seq = 16;
    plan.lora_rank = 4;
    plan.lora_targets = {"q_proj", "down"};
    const auto e = models::estimate_memory(cfg, models::TaskKind::CausalLM, plan);
    INFO(type);
    CHECK(e.weights == bytes);
    CHECK(e.trainable_parameters == trainable);
    CHECK(e.trainable == 12 * trainable);
    plan.gradient_checkpointing = true;
    CHECK(models::estimate_memory(cfg, models::TaskKind::CausalLM, plan).activations < e.activations);
  }
  models::MemoryPlan bad;
  bad.lora_targets = {"qproj"};
  CHECK_THROWS_WITH(models::estimate_memory(tiny_llama(), models::TaskKind::CausalLM, bad),
                    Catch::Contains("memory.lora_targets") && Catch::Contains("qproj"));
  auto q = tiny_llama();
  q.quantize = models::QuantizeConfig{"nf4", true};
  bad = models::MemoryPlan{};
  bad.method = "full";
  CHECK_THROWS_WITH(models::estimate_memory(q, models::TaskKind::CausalLM, bad), Catch::Contains("memory.method"));
}

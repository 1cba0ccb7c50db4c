// peft/: name patterns, LoRA, IA3, prompt tuning, hybrid / full policies, adapter files, and a
// toy fine-tuning per method.
#include <catch2/catch.hpp>

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"
#include "biolm/peft/dora.h"
#include "biolm/peft/method.h"
#include "biolm/peft/pattern.h"
#include "biolm/train/optim.h"
#include "biolm/train/trainer.h"
#include "support/test_util.h"
#include "tiny_model.h"

using namespace biolm;
using biolm::test::TinyModel;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<TinyModel> tiny(uint64_t seed = 7, int64_t layers = 2) {
  torch::manual_seed(seed);
  return std::make_shared<TinyModel>(/*V=*/16, /*C=*/8, /*K=*/4, layers);
}

data::Batch sample_batch() { return test::make_batches(1, 3, 16, 3, 6, [](int64_t id) { return id % 4; }, 3)[0]; }

std::map<std::string, torch::Tensor> snapshot(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value().detach().clone();
  return out;
}

peft::MethodConfig lora_cfg(std::vector<std::string> targets = {"**.q_proj", "**.v_proj"}) {
  peft::MethodConfig c;
  c.method = peft::Method::Lora;
  c.lora = peft::LoraOptions(4, 8.0).targets(std::move(targets));
  return c;
}

}  // namespace

TEST_CASE("name patterns: glob components, ** across components, regex, no-match error", "[peft]") {
  peft::NamePattern p1("**.q_proj");
  CHECK(p1.matches("q_proj"));
  CHECK(p1.matches("layers.0.attn.q_proj"));
  CHECK_FALSE(p1.matches("layers.0.attn.q_proj2"));
  peft::NamePattern p2("layers.*.attn.q_proj");
  CHECK(p2.matches("layers.1.attn.q_proj"));
  CHECK_FALSE(p2.matches("layers.1.x.attn.q_proj"));  // * stays within one component
  peft::NamePattern p3("re:layers\\.[01]\\.mlp\\.(up|down)");
  CHECK(p3.matches("layers.0.mlp.down"));
  CHECK_FALSE(p3.matches("layers.2.mlp.down"));
  peft::NamePattern p4("layers.?.norm.*");
  CHECK(p4.matches("layers.3.norm.weight"));
  CHECK_FALSE(p4.matches("layers.13.norm.weight"));

  auto m = tiny();
  const auto found = peft::find_linears(*m, {"**.attn.*"}, "peft.lora.targets");
  std::vector<std::string> names;
  for (const auto& f : found) names.push_back(f.first);
  CHECK(names == std::vector<std::string>{"layers.0.attn.q_proj", "layers.0.attn.v_proj", "layers.1.attn.q_proj",
                                          "layers.1.attn.v_proj"});
  try {
    peft::find_linears(*m, {"**.q_proj", "**.k_proj"}, "peft.lora.targets");
    FAIL("a pattern matching nothing must throw");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "peft.lora.targets");
    CHECK(std::string(e.what()).find("'**.k_proj'") != std::string::npos);
  }
  CHECK_THROWS_AS(peft::NamePattern("re:(unclosed"), ConfigError);
}

TEST_CASE("LoRA: identity at init, live swap equals the formula, merge == unmerged, unmerge restores", "[peft][lora]") {
  auto base = tiny();
  auto model = tiny();
  const auto batch = sample_batch();
  const auto ref = base->logits(batch);
  const auto summary = peft::apply(*model, lora_cfg());
  CHECK(summary.adapted_modules.size() == 4);
  model->eval();
  BIOLM_REQUIRE_CLOSE(model->logits(batch), ref, 0.0);  // B = 0: exactly the base

  // A non-zero B changes the output exactly as W x + b + (alpha/r) B A x.
  auto& q = *model->layers[0]->as<test::TinyBlockImpl>()->attn->q_proj;
  auto lora = std::dynamic_pointer_cast<peft::LoraAdapterImpl>(q.adapter());
  REQUIRE(lora);
  CHECK(lora->scaling() == 2.0);  // 8 / 4
  {
    torch::NoGradGuard ng;
    lora->lora_b.copy_(torch::sin(torch::arange(lora->lora_b.numel(), torch::kFloat)).view_as(lora->lora_b));
  }
  const auto x = torch::randn({2, 3, 8});
  const auto expected = torch::matmul(x, q.weight.t()) + q.bias +
                        2.0 * torch::matmul(torch::matmul(x, lora->lora_a.t()), lora->lora_b.t());
  BIOLM_REQUIRE_CLOSE(q.forward(x), expected, 1e-5);
  const auto adapted = model->logits(batch);
  CHECK(test::max_abs_diff(adapted, ref).max_abs > 1e-3);  // the swap is live

  const auto w_before = q.weight.clone();
  peft::merge_adapters(*model);
  CHECK(q.merged());
  // float32 sums in a different order: 1e-5 on O(1) logits.
  BIOLM_REQUIRE_CLOSE(model->logits(batch), adapted, 1e-5);
  BIOLM_REQUIRE_CLOSE(q.weight, w_before + lora->delta_weight(), 1e-6);
  peft::unmerge_adapters(*model);
  BIOLM_REQUIRE_CLOSE(q.weight, w_before, 1e-6);
  BIOLM_REQUIRE_CLOSE(model->logits(batch), adapted, 1e-5);

  peft::LoraOptions rs(16, 8.0);
  CHECK(rs.rank_stabilized(true).scaling() == Approx(2.0));  // 8 / sqrt(16)
}

TEST_CASE("DoRA: m = ||W0||_c at init, the paper's W' = m (W0 + sBA)/||W0 + sBA||_c, merge == unmerged",
          "[peft][dora]") {
  auto base = tiny();
  auto model = tiny();
  const auto batch = sample_batch();
  const auto ref = base->logits(batch);
  auto cfg = lora_cfg();
  cfg.lora.use_dora(true);
  peft::apply(*model, cfg);
  model->eval();
  BIOLM_REQUIRE_CLOSE(model->logits(batch), ref, 1e-6);  // B = 0 and m = ||W0||: the base (m / n = 1 up to rounding)

  auto& q = *model->layers[0]->as<test::TinyBlockImpl>()->attn->q_proj;
  auto dora = std::dynamic_pointer_cast<peft::DoraAdapterImpl>(q.adapter());
  REQUIRE(dora);
  BIOLM_REQUIRE_CLOSE(dora->magnitude, q.weight.norm(2, {1}), 1e-6);
  {
    torch::NoGradGuard ng;
    dora->lora_b.copy_(torch::sin(torch::arange(dora->lora_b.numel(), torch::kFloat)).view_as(dora->lora_b));
    dora->magnitude.mul_(1.0 + 0.5 * torch::cos(torch::arange(dora->magnitude.numel(), torch::kFloat)));
  }
  // eq. (5) with the adapted weight materialised, against the adapter's unmaterialised forward
  const auto adapted_w = q.weight + 2.0 * torch::matmul(dora->lora_b, dora->lora_a);  // (out, in)
  const auto w_prime = dora->magnitude.unsqueeze(1) * adapted_w / adapted_w.norm(2, {1}, true);
  const auto x = torch::randn({2, 3, 8});
  BIOLM_REQUIRE_CLOSE(q.forward(x), torch::matmul(x, w_prime.t()) + q.bias, 1e-5);
  const auto adapted = model->logits(batch);
  CHECK(test::max_abs_diff(adapted, ref).max_abs > 1e-3);

  // Gradients: m and A, B get one, the norm is detached (§4.3): d/dm of sum(y) is (W' x)/m summed.
  model->train();
  const auto y = q.forward(x);
  y.sum().backward();
  REQUIRE(dora->magnitude.grad().defined());
  const auto expected_gm = torch::matmul(x, (adapted_w / adapted_w.norm(2, {1}, true)).t()).sum(torch::IntArrayRef{0, 1});
  BIOLM_REQUIRE_CLOSE(dora->magnitude.grad(), expected_gm, 1e-4);
  model->eval();

  const auto w_before = q.weight.clone();
  peft::merge_adapters(*model);
  BIOLM_REQUIRE_CLOSE(q.weight, w_prime, 1e-5);
  BIOLM_REQUIRE_CLOSE(model->logits(batch), adapted, 1e-5);
  peft::unmerge_adapters(*model);
  BIOLM_REQUIRE_CLOSE(q.weight, w_before, 1e-5);
  BIOLM_REQUIRE_CLOSE(model->logits(batch), adapted, 1e-5);
}

TEST_CASE("LoRA: only adapter tensors train, optimizer state is 2x the trainable count", "[peft][lora]") {
  auto model = tiny();
  const auto summary = peft::apply(*model, lora_cfg());
  // 4 adapted (8 -> 8) Linears, r = 4: A (4x8) + B (8x4) = 64 each.
  CHECK(summary.trainable_parameters == 4 * 64);
  for (const auto& n : summary.trainable_names) CHECK(n.find(".adapter.lora_") != std::string::npos);
  const auto before = snapshot(*model);
  train::TrainConfig cfg;
  cfg.lr = 1e-2;
  auto setup = train::build_optimizer(*model, cfg);
  model->train();
  {  // B = 0 means A gets no gradient on the first step; make B non-zero so every adapter tensor moves.
    torch::NoGradGuard ng;
    for (auto& p : model->named_parameters(true)) {
      if (p.key().find("lora_b") != std::string::npos) p.value().fill_(0.1);
    }
  }
  const auto after_init = snapshot(*model);
  auto out = model->run(sample_batch());
  (out.loss_sum / static_cast<double>(out.n_target_tokens)).backward();
  for (const auto& p : model->named_parameters(true)) {
    INFO(p.key());
    CHECK(p.value().grad().defined() == p.value().requires_grad());  // frozen: no gradient at all
  }
  setup.optimizer->step();
  CHECK(train::optimizer_state_numel(*setup.optimizer) == 2 * summary.trainable_parameters);
  CHECK(setup.optimizer->state().size() == summary.trainable_names.size());
  for (const auto& p : model->named_parameters(true)) {
    INFO(p.key());
    const bool changed = !torch::equal(p.value(), after_init.at(p.key()));
    CHECK(changed == p.value().requires_grad());
    if (!p.value().requires_grad()) CHECK(torch::equal(p.value(), before.at(p.key())));
  }
}

TEST_CASE("LoRA: a saved adapter reloads to identical outputs, mismatches are CheckpointErrors", "[peft][lora]") {
  test::TempDir dir("peft");
  auto a = tiny();
  peft::apply(*a, lora_cfg());
  {
    torch::NoGradGuard ng;
    for (auto& p : a->parameters()) {
      if (p.requires_grad()) p.copy_(torch::randn_like(p));
    }
  }
  peft::save_adapter(*a, dir / "adapter.safetensors");
  auto b = tiny();  // same base weights (same seed), fresh adapters
  peft::apply(*b, lora_cfg());
  a->eval();
  b->eval();
  const auto batch = sample_batch();
  CHECK(test::max_abs_diff(a->logits(batch), b->logits(batch)).max_abs > 1e-3);
  peft::load_adapter(*b, dir / "adapter.safetensors");
  BIOLM_REQUIRE_CLOSE(b->logits(batch), a->logits(batch), 0.0);

  auto c = tiny();
  peft::apply(*c, lora_cfg({"**.q_proj"}));  // fewer adapters: the file has tensors c lacks
  try {
    peft::load_adapter(*c, dir / "adapter.safetensors");
    FAIL("must refuse");
  } catch (const CheckpointError& e) {
    CHECK(e.tensor().find("v_proj.adapter") != std::string::npos);
  }
  CHECK_THROWS_AS(peft::load_adapter(*c, dir / "missing.safetensors"), CheckpointError);

  // The adapter is a plain safetensors file: our independent reader sees every trainable tensor
  // as F32 with its shape, and the metadata names the writer.
  const io::SafetensorsFile file(dir / "adapter.safetensors");
  const auto state = peft::adapter_state(*a);
  REQUIRE(file.tensors().size() == state.size());
  for (const auto& [name, t] : state) {
    INFO(name);
    CHECK(file.info(name).dtype == io::Dtype::F32);
    CHECK(file.info(name).shape == t.sizes().vec());
    BIOLM_REQUIRE_CLOSE(file.tensor(name), t, 0.0);
  }
  CHECK(file.metadata().at("writer") == "biolm");
  // A truncated adapter file is a CheckpointError naming it, never a partial load.
  fs::copy_file(dir / "adapter.safetensors", dir / "cut.safetensors");
  fs::resize_file(dir / "cut.safetensors", fs::file_size(dir / "cut.safetensors") - 7);
  try {
    peft::load_adapter(*b, dir / "cut.safetensors");
    FAIL("truncated adapter accepted");
  } catch (const CheckpointError& e) {
    CHECK(e.path() == (dir / "cut.safetensors").string());
  }
  // No temporary file is left next to the adapter.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 2);
}

TEST_CASE("tensor files keep dtype and values exactly (float, bf16, int64, uint8, bool)", "[peft]") {
  test::TempDir dir("tensor_file");
  io::TensorMap in;
  in["f32"] = torch::tensor({1.5f, -0.0f, 3.25e-8f, std::numeric_limits<float>::infinity()});
  in["bf16"] = torch::tensor({1.0f, -2.5f, 0.0078125f}).to(torch::kBFloat16);
  in["i64"] = torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{1} << 53, int64_t{7}});
  in["u8"] = torch::tensor({0, 255, 17}, torch::kUInt8);
  in["bool"] = torch::tensor({true, false, true});
  in["empty"] = torch::zeros({0, 3});
  in["m"] = torch::arange(6, torch::kFloat64).view({2, 3}).t();  // non-contiguous on the way in
  io::write_tensor_file(dir / "t.safetensors", in);
  const auto out = io::read_tensor_file(dir / "t.safetensors");
  REQUIRE(out.size() == in.size());
  for (const auto& [name, t] : in) {
    INFO(name);
    CHECK(out.at(name).scalar_type() == t.scalar_type());
    CHECK(out.at(name).sizes() == t.sizes());
    CHECK(torch::equal(out.at(name), t));
  }
  CHECK(out.at("i64")[0].item<int64_t>() == std::numeric_limits<int64_t>::min());
  CHECK_THROWS_AS(io::read_tensor_file(dir / "absent.safetensors"), CheckpointError);
  biolm::test::write_text(dir / "junk.safetensors", "not a tensor file");
  CHECK_THROWS_AS(io::read_tensor_file(dir / "junk.safetensors"), CheckpointError);
}

TEST_CASE("IA3: ones at init, output and input scaling by hand, merge == unmerged", "[peft][ia3]") {
  auto base = tiny();
  auto model = tiny();
  peft::MethodConfig cfg;
  cfg.method = peft::Method::Ia3;
  cfg.ia3.targets({"**.v_proj"}).input_targets({"**.mlp.down"});
  const auto s = peft::apply(*model, cfg);
  CHECK(s.trainable_parameters == 2 * 8 + 2 * 16);  // v_proj: out 8; down: in 16
  const auto batch = sample_batch();
  model->eval();
  BIOLM_REQUIRE_CLOSE(model->logits(batch), base->logits(batch), 0.0);

  auto& blk = *model->layers[0]->as<test::TinyBlockImpl>();
  auto v = std::dynamic_pointer_cast<peft::Ia3AdapterImpl>(blk.attn->v_proj->adapter());
  auto d = std::dynamic_pointer_cast<peft::Ia3AdapterImpl>(blk.mlp->down->adapter());
  REQUIRE(v);
  REQUIRE(d);
  CHECK_FALSE(v->scale_input());
  CHECK(d->scale_input());
  {
    torch::NoGradGuard ng;
    for (auto& p : model->parameters()) {
      if (p.requires_grad()) p.copy_(1.0 + 0.5 * torch::sin(torch::arange(p.numel(), torch::kFloat)));
    }
  }
  const auto x8 = torch::randn({5, 8});
  const auto& vw = blk.attn->v_proj->weight;
  BIOLM_REQUIRE_CLOSE(blk.attn->v_proj(x8), (torch::matmul(x8, vw.t()) + blk.attn->v_proj->bias) * v->ia3_scale, 1e-5);
  const auto x16 = torch::randn({5, 16});
  const auto& dw = blk.mlp->down->weight;
  BIOLM_REQUIRE_CLOSE(blk.mlp->down(x16), torch::matmul(x16 * d->ia3_scale, dw.t()) + blk.mlp->down->bias, 1e-5);

  const auto adapted = model->logits(batch);
  CHECK(test::max_abs_diff(adapted, base->logits(batch)).max_abs > 1e-3);
  peft::merge_adapters(*model);
  BIOLM_REQUIRE_CLOSE(model->logits(batch), adapted, 1e-5);
  peft::unmerge_adapters(*model);
  BIOLM_REQUIRE_CLOSE(model->logits(batch), adapted, 1e-5);
  BIOLM_REQUIRE_CLOSE(blk.attn->v_proj->weight, base->layers[0]->as<test::TinyBlockImpl>()->attn->v_proj->weight, 1e-6);
}

TEST_CASE("prompt tuning: prepended embeddings, extended masks and labels, only the prompt trains", "[peft][prompt]") {
  peft::SoftPrompt prompt(peft::PromptTuningOptions(3, 8));
  data::Batch b;
  b.tensors["input_ids"] = torch::tensor({{5, 6}, {7, 0}}, torch::kLong);
  b.tensors["attention_mask"] = torch::tensor({{1, 1}, {1, 0}}, torch::kLong);
  b.tensors["labels"] = torch::tensor({{1, 2}, {3, -100}}, torch::kLong);
  b.tensors["position_ids"] = torch::tensor({{0, 1}, {0, 1}}, torch::kLong);
  b.n_target_tokens = 3;
  const auto tok = torch::randn({2, 2, 8});
  const auto out = prompt->prepend(b, tok);
  CHECK_FALSE(out.has("input_ids"));
  const auto& e = out.at("inputs_embeds");
  REQUIRE(e.sizes() == torch::IntArrayRef({2, 5, 8}));
  BIOLM_REQUIRE_CLOSE(e.narrow(1, 0, 3)[1], prompt->embeddings, 0.0);
  BIOLM_REQUIRE_CLOSE(e.narrow(1, 3, 2), tok, 0.0);
  CHECK(torch::equal(out.at("attention_mask"), torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}}, torch::kLong)));
  CHECK(torch::equal(out.at("labels"), torch::tensor({{-100, -100, -100, 1, 2}, {-100, -100, -100, 3, -100}}, torch::kLong)));
  CHECK(torch::equal(out.at("position_ids"), torch::tensor({{0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}}, torch::kLong)));
  CHECK(out.n_target_tokens == 3);
  // Span targets move past the virtual tokens; ignored ones stay ignored.
  data::Batch span = b;
  span.tensors["start_positions"] = torch::tensor({1, -100}, torch::kLong);
  span.tensors["end_positions"] = torch::tensor({1, 0}, torch::kLong);
  const auto shifted = prompt->prepend(span, tok);
  CHECK(torch::equal(shifted.at("start_positions"), torch::tensor({4, -100}, torch::kLong)));
  CHECK(torch::equal(shifted.at("end_positions"), torch::tensor({4, 3}, torch::kLong)));
  data::Batch packed = b;
  packed.tensors["segment_ids"] = torch::ones({2, 2}, torch::kLong);
  CHECK_THROWS_AS(prompt->prepend(packed, tok), ConfigError);

  auto model = tiny();
  peft::MethodConfig cfg;
  cfg.method = peft::Method::PromptTuning;
  cfg.prompt = peft::PromptTuningOptions(4, 8);
  const auto s = peft::apply(*model, cfg);
  CHECK(s.trainable_names == std::vector<std::string>{"soft_prompt.embeddings"});
  CHECK(s.trainable_parameters == 32);
  auto r = model->run(sample_batch());
  CHECK(r.logits.size(1) == sample_batch().at("input_ids").size(1) + 4);
}

TEST_CASE("hybrid and full policies: exact trainable sets, top-N layers, discriminative lr", "[peft]") {
  auto model = tiny();
  peft::MethodConfig cfg = lora_cfg({"**.q_proj"});
  cfg.method = peft::Method::Hybrid;
  cfg.train_patterns = {"**.norm.*", "head.*"};
  cfg.train_top_layers = 1;
  const auto s = peft::apply(*model, cfg);
  std::set<std::string> names(s.trainable_names.begin(), s.trainable_names.end());
  for (const auto& p : model->named_parameters(true)) {
    const std::string& n = p.key();
    const bool expect = n.find("adapter.lora_") != std::string::npos || n.find(".norm.") != std::string::npos ||
                        n.rfind("head.", 0) == 0 || n.rfind("layers.1.", 0) == 0;
    INFO(n);
    CHECK(names.count(n) == (expect ? 1u : 0u));
  }
  CHECK_FALSE(names.count("embed.weight"));
  CHECK(names.count("layers.1.mlp.up.weight"));
  CHECK_FALSE(names.count("layers.0.mlp.up.weight"));

  auto full = tiny(7, 3);
  peft::MethodConfig f;
  f.method = peft::Method::Full;
  f.freeze_patterns = {"layers.0.**"};
  f.layer_lr_decay = 0.5;
  const auto fs = peft::apply(*full, f);
  for (const auto& p : full->named_parameters(true)) {
    INFO(p.key());
    CHECK(p.value().requires_grad() == (p.key().rfind("layers.0.", 0) != 0));
  }
  // L = 3: layer i -> 0.5^(3-i), embeddings -> 0.5^4, head -> 1 (omitted).
  CHECK(fs.lr_scales.at("layers.2.attn.q_proj.weight") == 0.5);
  CHECK(fs.lr_scales.at("layers.1.norm.bias") == 0.25);
  CHECK(fs.lr_scales.at("layers.0.mlp.down.weight") == 0.125);
  CHECK(fs.lr_scales.at("embed.weight") == 0.0625);
  CHECK_FALSE(fs.lr_scales.count("head.weight"));
  train::TrainConfig tc;
  tc.weight_decay = 0.1;
  auto setup = train::build_optimizer(*full, tc, fs.lr_scales);
  // frozen layer 0 has no group entry; groups split by (scale, decay).
  int64_t in_groups = 0;
  for (const auto& g : setup.group_names) in_groups += static_cast<int64_t>(g.size());
  CHECK(in_groups == static_cast<int64_t>(fs.trainable_names.size()));
  CHECK_FALSE(train::decays("layers.1.norm.weight", torch::ones({8})));
  CHECK_FALSE(train::decays("head.bias", torch::ones({4})));
  CHECK(train::decays("head.weight", torch::ones({4, 8})));
  CHECK_FALSE(train::decays("final_norm.weight", torch::ones({4, 8})));

  CHECK_THROWS_AS(peft::apply(*model, cfg), ConfigError);  // adapters already attached
  peft::MethodConfig bad = f;
  bad.train_top_layers = 9;
  CHECK_THROWS_AS(peft::apply(*tiny(), bad), ConfigError);
  auto j = peft::to_json(cfg);
  CHECK(peft::to_json(peft::method_config_from_json(j)) == j);
  j["lora"]["rnak"] = 3;
  CHECK_THROWS_AS(peft::method_config_from_json(j), ConfigError);
}

TEST_CASE("each method fine-tunes the tiny model on a toy token task", "[peft][slow]") {
  // Task: label = token id % 4 over ids 1..15. The frozen random base is at chance (~25%).
  auto label = [](int64_t id) { return id % 4; };
  const auto train_batches = test::make_batches(16, 8, 16, 3, 8, label, 11);
  const auto eval_batches = test::make_batches(4, 8, 16, 3, 8, label, 12);
  struct Case {
    std::string name;
    peft::MethodConfig cfg;
    double lr;
    int64_t steps;
    double want;
  };
  std::vector<Case> cases;
  {
    peft::MethodConfig c;
    cases.push_back({"full", c, 1e-2, 150, 0.95});
  }
  {
    auto c = lora_cfg({"**.q_proj", "**.v_proj", "**.mlp.up", "head"});
    cases.push_back({"lora", c, 2e-2, 150, 0.95});
  }
  {
    peft::MethodConfig c;
    c.method = peft::Method::Ia3;
    c.ia3.targets({"**.v_proj", "**.mlp.up"}).input_targets({"**.mlp.down", "head"});
    cases.push_back({"ia3", c, 5e-2, 300, 0.9});
  }
  {
    auto c = lora_cfg({"**.q_proj", "**.v_proj"});
    c.method = peft::Method::Hybrid;
    c.train_patterns = {"head.*", "**.norm.*"};
    cases.push_back({"hybrid", c, 2e-2, 300, 0.95});
  }
  for (auto& tc : cases) {
    SECTION(tc.name) {
      auto model = tiny(3);
      const double before = test::token_accuracy(*model, eval_batches);
      peft::apply(*model, tc.cfg);
      test::TempDir dir("ft");
      train::TrainConfig cfg;
      cfg.max_steps = tc.steps;
      cfg.lr = tc.lr;
      cfg.run_dir = dir.path().string();
      cfg.seed = 1;
      cfg.log_every = 1000;
      test::VectorSource src(train_batches);
      train::Trainer trainer(*model, cfg);
      trainer.fit(src);
      model->eval();
      const double after = test::token_accuracy(*model, eval_batches);
      INFO(tc.name << ": accuracy " << before << " -> " << after);
      CHECK(before < 0.5);
      CHECK(after >= tc.want);
    }
  }
  SECTION("prompt") {
    // Prompt tuning steers every token through attention: the task is one constant class (2),
    // which the frozen base predicts for about a quarter of the tokens.
    auto constant = [](int64_t) { return int64_t{2}; };
    const auto tb = test::make_batches(8, 8, 16, 3, 8, constant, 13);
    const auto eb = test::make_batches(4, 8, 16, 3, 8, constant, 14);
    auto model = tiny(3);
    const double before = test::token_accuracy(*model, eb);
    peft::MethodConfig c;
    c.method = peft::Method::PromptTuning;
    c.prompt = peft::PromptTuningOptions(4, 8).init_std(1.0);
    peft::apply(*model, c);
    test::TempDir dir("ftp");
    train::TrainConfig cfg;
    cfg.max_steps = 150;
    cfg.lr = 5e-2;
    cfg.run_dir = dir.path().string();
    cfg.seed = 1;
    test::VectorSource src(tb);
    train::Trainer trainer(*model, cfg);
    trainer.fit(src);
    model->eval();
    const double after = test::token_accuracy(*model, eb);
    INFO("prompt: accuracy " << before << " -> " << after);
    CHECK(before < 0.6);
    CHECK(after >= 0.9);
  }
}

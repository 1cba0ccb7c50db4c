// train/dp: the RDP accountant against Opacus goldens, per-example gradients against one backward
// pass per example, clipping, noise statistics, the σ = 0 / C = ∞ step against the ordinary
// step, Poisson sampling, seeded and resumed DP runs, and what DP-SGD refuses.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>

#include "../peft/tiny_model.h"
#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/peft/lora.h"
#include "biolm/train/accountant.h"
#include "biolm/train/dp.h"
#include "biolm/train/signals.h"
#include "biolm/train/trainer.h"
#include "support/test_util.h"

using namespace biolm;
namespace fs = std::filesystem;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// TinyModel with LoRA on q_proj/v_proj and the head trained; embeddings and norms frozen (DP
/// refuses them). `full_linears`: every Linear's weight and bias trained instead of LoRA.
std::shared_ptr<test::TinyModel> dp_model(bool full_linears = false, torch::Dtype dtype = torch::kFloat32) {
  torch::manual_seed(11);
  auto m = std::make_shared<test::TinyModel>(16, 8, 4, 2);
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  if (full_linears) {
    for (const auto& item : m->named_modules()) {
      if (auto* lin = dynamic_cast<nn::LinearImpl*>(item.value().get())) {
        lin->weight.set_requires_grad(true);
        lin->bias.set_requires_grad(true);
      }
    }
  } else {
    peft::apply_lora(*m, peft::LoraOptions(2, 4.0).targets({"**.q_proj", "**.v_proj"}));
    for (const auto& item : m->named_parameters()) {
      if (item.key().find("lora_") != std::string::npos || item.key().rfind("head.", 0) == 0) {
        item.value().set_requires_grad(true);
      }
    }
    torch::NoGradGuard no_grad;  // a non-zero B, so both A and B get gradients
    for (const auto& item : m->named_parameters()) {
      if (item.key().find("lora_b") != std::string::npos) item.value().normal_(0.0, 0.5);
    }
  }
  m->to(dtype);
  return m;
}

std::vector<torch::Tensor> trainable(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

/// Rows b of every tensor of `batch` (same padding, so the same computation per row).
data::Batch row(const data::Batch& batch, int64_t b) {
  data::Batch out;
  for (const auto& [k, v] : batch.tensors) out.tensors[k] = v.narrow(0, b, 1);
  out.n_examples = 1;
  out.n_target_tokens = out.tensors.at("labels").ne(data::kIgnoreIndex).sum().item<int64_t>();
  return out;
}

/// Token rows with exactly one target (the first token), so tokens == examples.
std::vector<data::Features> one_target_rows(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<data::Features> rows;
  for (int64_t i = 0; i < n; ++i) {
    data::Features f;
    const int64_t len = 2 + static_cast<int64_t>(rng() % 5);
    for (int64_t t = 0; t < len; ++t) {
      f.input_ids.push_back(1 + static_cast<int64_t>(rng() % 15));
      f.labels.push_back(t == 0 ? f.input_ids.back() % 4 : data::kIgnoreIndex);
    }
    rows.push_back(f);
  }
  return rows;
}

data::Collator plain_collator() {
  return [](std::vector<data::Features>&& rows, uint64_t) { return data::collate(rows); };
}

train::TrainConfig dp_cfg(const fs::path& dir, int64_t steps, double sigma, double C) {
  train::TrainConfig c;
  c.max_steps = steps;
  c.optimizer = train::OptimizerKind::Sgd;
  c.lr = 0.5;
  c.run_dir = dir.string();
  c.seed = 3;
  c.log_every = 1;
  train::DpConfig dp;
  dp.noise_multiplier = sigma;
  dp.max_grad_norm = C;
  c.dp = dp;
  return c;
}

std::map<std::string, torch::Tensor> snapshot(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace

TEST_CASE("rdp accountant equals Opacus 1.6 goldens", "[train][dp]") {
  // Goldens: /opt/biolm-deps/venv/bin/python, opacus 1.6:
  //   a = RDPAccountant(); a.history = [(sigma, q, steps)]; a.get_privacy_spent(delta=...)
  struct Case {
    double sigma, q;
    int64_t steps;
    double delta, eps, order;
  };
  for (const Case& c : {Case{1.1, 0.01, 1000, 1e-5, 1.7117700912203435, 9.6},
                        Case{1.0, 0.3, 6, 1e-5, 6.368216033255038, 3.4}}) {
    const auto r = train::rdp_epsilon(c.sigma, c.q, c.steps, c.delta);
    CHECK(r.epsilon == Approx(c.eps).epsilon(1e-9));
    CHECK(r.best_order == Approx(c.order));
  }
  // Two segments (RDP adds up): history [(2.0, 0.05, 100), (0.8, 0.01, 50)], delta 1e-4.
  train::RdpAccountant acc;
  acc.step(2.0, 0.05, 100);
  acc.step(0.8, 0.01, 49);
  acc.step(0.8, 0.01);  // merges into the last segment
  CHECK(acc.history().size() == 2);
  CHECK(acc.steps() == 150);
  CHECK(acc.epsilon(1e-4) == Approx(1.7596290960796925).epsilon(1e-9));
  // The docstring example of opacus/accountants/analysis/rdp.py: orders 2..32 -> (0.336, 23).
  std::vector<double> orders;
  for (int a = 2; a <= 32; ++a) orders.push_back(a);
  auto r1 = train::compute_rdp(1e-5, 1.0, 10, orders), r2 = train::compute_rdp(1e-4, 3.0, 4, orders);
  for (size_t k = 0; k < r1.size(); ++k) r1[k] += r2[k];
  const auto spent = train::rdp_to_epsilon(orders, r1, 1e-5);
  CHECK(spent.epsilon == Approx(0.33634406339259565).epsilon(1e-9));
  CHECK(spent.best_order == 23);
  // get_noise_multiplier(target_epsilon=3, target_delta=1e-5, sample_rate=0.01, steps=1000).
  CHECK(train::rdp_noise_multiplier(3.0, 1e-5, 0.01, 1000) == 0.865478515625);
  CHECK(train::rdp_noise_multiplier(8.0, 1e-5, 0.3, 6) == 0.8709716796875);
  // Edge cases as Opacus: no noise is infinite epsilon, no step spends nothing.
  CHECK(std::isinf(train::rdp_epsilon(0.0, 0.01, 10, 1e-5).epsilon));
  CHECK(train::rdp_epsilon(1.0, 0.01, 0, 1e-5).epsilon == 0.0);
  CHECK_THROWS_AS(train::rdp_noise_multiplier(1e-9, 1e-5, 0.01, 100000), ConfigError);  // epsilon >= log(1/delta)/62
}

TEST_CASE("per-example gradients equal one backward pass per example", "[train][dp]") {
  for (const bool full : {false, true}) {
    SECTION(full ? "every Linear weight and bias" : "LoRA adapters and the head") {
      // float64: the comparison is about the formula, not float32 summation order.
      auto m = dp_model(full, torch::kFloat64);
      auto params = trainable(*m);
      train::DpEngine engine(*m, params);
      const auto batch = test::make_batches(1, 5, 16, 2, 7, [](int64_t id) { return id % 4; }, 7)[0];
      engine.begin_micro_batch(5);
      m->run(batch).loss_sum.backward();
      const auto per_example = engine.per_example_grads();
      REQUIRE(per_example.size() == params.size());
      for (int64_t b = 0; b < 5; ++b) {
        for (auto& p : params) p.mutable_grad().reset();
        engine.begin_micro_batch(1);
        m->run(row(batch, b)).loss_sum.backward();
        for (const auto& item : m->named_parameters()) {
          if (!item.value().requires_grad()) continue;
          INFO(item.key() << " example " << b);
          BIOLM_REQUIRE_CLOSE(per_example.at(item.key())[b], item.value().grad(), 1e-10);
        }
      }
    }
  }
}

TEST_CASE("per-example gradients and the clipped step equal Opacus on a Linear + LoRA", "[train][dp]") {
  // Goldens: tests/reference/dp_reference.py (Opacus 1.6 GradSampleModule + DPOptimizer, float64),
  // output committed as tests/reference/dp_reference.out; the model and inputs are defined there.
  torch::nn::Module root;
  auto lin = root.register_module("proj", nn::Linear(nn::LinearOptions(4, 3)));
  peft::apply_lora(root, peft::LoraOptions(2, 4.0).targets({"proj"}));  // s = alpha / r = 2
  auto* lora = dynamic_cast<peft::LoraAdapterImpl*>(lin->adapter().get());
  REQUIRE(lora);
  root.to(torch::kFloat64);
  {
    torch::NoGradGuard ng;
    for (int o = 0; o < 3; ++o) {
      for (int i = 0; i < 4; ++i) lin->weight[o][i] = std::sin(0.3 * (4 * o + i) + 0.1);
      lin->bias[o] = 0.05 * o - 0.1;
      for (int r = 0; r < 2; ++r) lora->lora_b[o][r] = std::sin(0.9 * (2 * o + r) + 0.4);
    }
    for (int r = 0; r < 2; ++r)
      for (int i = 0; i < 4; ++i) lora->lora_a[r][i] = std::cos(0.7 * (4 * r + i));
  }
  for (auto* t : {&lin->weight, &lin->bias, &lora->lora_a, &lora->lora_b}) t->set_requires_grad(true);
  auto x = torch::empty({3, 2, 4}, torch::kFloat64);
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 2; ++t)
      for (int i = 0; i < 4; ++i) x[b][t][i] = std::sin(0.37 * (8 * b + 4 * t + i) + 0.2);
  const auto c = torch::tensor({1.0 / 3, 2.0 / 3, 1.0}, torch::kFloat64);
  std::vector<torch::Tensor> params{lin->weight, lin->bias, lora->lora_a, lora->lora_b};
  train::DpEngine engine(root, params);
  engine.begin_micro_batch(3);
  (lin->forward(x) * c).sum().backward();
  auto golden = [](std::vector<double> v) { return torch::tensor(v, torch::kFloat64); };
  const std::map<std::string, torch::Tensor> grad_sample = {
      {"proj.weight", golden({0.3975708443310457, 0.47566480578911485, 0.48937976722810494, 0.4368594729570413, 0.7951416886620915, 0.9513296115782297, 0.9787595344562099, 0.8737189459140826, 1.1927125329931372, 1.4269944173673446, 1.468139301684315, 1.310578418871124, -0.33859578954371566, -0.44491820936670534, -0.49102303675758485, -0.47067019961652135, -0.6771915790874313, -0.8898364187334107, -0.9820460735151697, -0.9413403992330427, -1.0157873686311472, -1.3347546281001161, -1.4730691102727547, -1.4120105988495641, 0.26848588560544406, 0.39954031126012146, 0.47651883011407153, 0.4890027607629691, 0.5369717712108881, 0.7990806225202429, 0.9530376602281431, 0.9780055215259382, 0.8054576568163323, 1.1986209337803644, 1.4295564903422147, 1.4670082822889075})},
      {"proj.bias", golden({0.6666666666666666, 1.3333333333333333, 2.0, 0.6666666666666666, 1.3333333333333333, 2.0, 0.6666666666666666, 1.3333333333333333, 2.0})},
      {"proj.adapter.lora_a", golden({-0.20991449238852497, -0.2511475317620802, -0.25838893089797, -0.2306586003940906, -1.5112767693351885, -1.8081335219361523, -1.8602678846808578, -1.6606237161451611, 0.1787760956328524, 0.23491355416358525, 0.2592565651675772, 0.24851041630366505, 1.287096270334241, 1.691257202729454, 1.866514406781436, 1.7891476420904624, -0.1417585801221928, -0.21095435649472857, -0.25159845034732603, -0.25818987424709977, -1.0205891291968858, -1.5187632579958301, -1.8113799046655648, -1.8588347788060857})},
      {"proj.adapter.lora_b", golden({1.2480220649081617, -1.9569673020803267, 2.4960441298163234, -3.9139346041606533, 3.744066194724485, -5.870901906240981, -1.0494595435733869, 1.7772453859484691, -2.0989190871467738, 3.5544907718969383, -3.14837863072016, 5.331736157845408, 0.8163851527217079, -1.539078090730797, 1.6327703054434157, -3.078156181461594, 2.449155458165124, -4.617234272192392})}};
  const auto mine = engine.per_example_grads();
  for (const auto& [name, g] : grad_sample) {
    INFO(name);
    BIOLM_REQUIRE_CLOSE(mine.at(name).reshape({-1}), g, 1e-12);
  }
  const auto norms = engine.clip_and_accumulate(/*max_grad_norm=*/1.5);
  BIOLM_REQUIRE_CLOSE(norms, golden({10.249294598126486, 9.387919375971077, 8.292502079408088}), 1e-12);
  engine.finish_step(/*noise_multiplier=*/0.0, 1.5, /*expected_batch_size=*/1.0);  // Opacus: loss_reduction "sum"
  const std::vector<torch::Tensor> clipped = {golden({0.05264974366759004, 0.07079668618545128, 0.07936162935038037, 0.07718534828496892, 0.10529948733518008, 0.14159337237090255, 0.15872325870076073, 0.15437069656993785, 0.15794923100277009, 0.21239005855635382, 0.23808488805114109, 0.2315560448549068}), golden({0.32467839509498486, 0.6493567901899697, 0.9740351852849547}), golden({-0.027798678836633922, -0.03738013150439715, -0.04190235873116431, -0.04075329827651938, -0.20013624150473927, -0.26911779046075035, -0.30167550896652556, -0.29340286255747017}), golden({0.16264036592981265, -0.2808353406507856, 0.3252807318596253, -0.5616706813015712, 0.4879210977894382, -0.8425060219523569})};
  for (size_t i = 0; i < params.size(); ++i) {
    INFO(engine.names()[i]);
    BIOLM_REQUIRE_CLOSE(params[i].grad().reshape({-1}), clipped[i], 1e-12);
  }
}

TEST_CASE("clipping: every example's clipped gradient has norm <= C, unclipped ones are kept", "[train][dp]") {
  auto m = dp_model();
  auto params = trainable(*m);
  train::DpEngine engine(*m, params);
  const auto batches = test::make_batches(8, 1, 16, 2, 7, [](int64_t id) { return id % 4; }, 9);
  const double C = 0.5;
  int clipped = 0, kept = 0;
  for (const auto& b : batches) {
    engine.begin_micro_batch(1);
    m->run(b).loss_sum.backward();
    const double raw = engine.clip_and_accumulate(C)[0].item<double>();
    engine.finish_step(/*noise_multiplier=*/0.0, C, /*expected_batch_size=*/1.0);  // grad = the clipped gradient
    double sq = 0;
    for (auto& p : params) sq += p.grad().pow(2).sum().item<double>();
    const double norm = std::sqrt(sq);
    INFO("pre-clip norm " << raw << ", clipped " << norm);
    CHECK(norm <= C * (1 + 1e-6));
    if (raw > C) {
      CHECK(norm == Approx(C * raw / (raw + 1e-6)).epsilon(1e-5));
      ++clipped;
    } else {
      CHECK(norm == Approx(raw).epsilon(1e-5));
      ++kept;
    }
  }
  CHECK(clipped > 0);  // C = 0.5 clips some and keeps others in this set
  CHECK(clipped + kept == 8);
}

TEST_CASE("noise: std of the added noise is sigma * C / expected batch size", "[train][dp]") {
  auto m = dp_model();
  auto params = trainable(*m);
  train::DpEngine engine(*m, params);
  torch::manual_seed(123);
  const double sigma = 1.3, C = 0.7, E = 16.0, expected = sigma * C / E;
  std::vector<torch::Tensor> draws;
  for (int k = 0; k < 100; ++k) {
    engine.finish_step(sigma, C, E);  // no example: the gradient is the noise alone
    for (auto& p : params) draws.push_back(p.grad().reshape({-1}).clone());
  }
  const auto all = torch::cat(draws).to(torch::kFloat64);
  const double n = static_cast<double>(all.numel());
  const double std = all.std().item<double>(), mean = all.mean().item<double>();
  INFO(n << " draws: std " << std << " (expected " << expected << "), mean " << mean);
  REQUIRE(n > 5000);
  // Sample std of n normals has relative sd 1/sqrt(2n) (< 1 % here): 5 % is > 5 such sds.
  CHECK(std::abs(std / expected - 1) < 0.05);
  CHECK(std::abs(mean) < 5 * expected / std::sqrt(n));
}

TEST_CASE("sigma = 0, C = inf: the DP step equals the ordinary step", "[train][dp]") {
  // q = 1: every logical batch is the whole set (N examples, one target each), so the expected
  // batch size, the real one and the target-token count all equal N.
  const auto rows = one_target_rows(12, 5);
  auto dataset = std::make_shared<data::VectorDataset>(rows);
  test::TempDir d1("dp0"), d2("plain");
  auto dp_m = dp_model(), plain_m = dp_model();
  {
    train::PoissonOptions po;
    po.sample_rate = 1.0;
    po.micro_batches = 2;  // and accumulation over two micro-batches
    train::PoissonLoader src(dataset, plain_collator(), po);
    auto c = dp_cfg(d1.path(), 3, 0.0, kInf);
    c.grad_accum = 2;
    train::Trainer(*dp_m, c).fit(src);
  }
  {
    data::LoaderOptions lo;
    lo.batch_size = 12;
    lo.shuffle = false;
    lo.prefetch = 0;
    data::Loader src(dataset, plain_collator(), lo);
    auto c = dp_cfg(d2.path(), 3, 0.0, kInf);
    c.dp.reset();
    train::Trainer(*plain_m, c).fit(src);
  }
  const auto a = snapshot(*dp_m), b = snapshot(*plain_m);
  bool moved = false;
  const auto init = snapshot(*dp_model());
  for (const auto& [k, v] : a) {
    INFO(k);
    BIOLM_REQUIRE_CLOSE(v, b.at(k), 1e-6);
    moved = moved || !torch::equal(v, init.at(k));
  }
  CHECK(moved);
}

TEST_CASE("Poisson sampling: deterministic, binomial sizes, micro-batches cover the logical batch", "[train][dp]") {
  auto dataset = std::make_shared<data::VectorDataset>(one_target_rows(400, 1));
  train::PoissonOptions po;
  po.sample_rate = 0.05;
  po.micro_batches = 3;
  po.seed = 9;
  train::PoissonLoader a(dataset, plain_collator(), po), b(dataset, plain_collator(), po);
  CHECK(a.steps_per_epoch() == 20);
  CHECK(a.logical_batch(0, 4) == b.logical_batch(0, 4));
  CHECK(a.logical_batch(0, 4) != a.logical_batch(0, 5));
  CHECK(a.logical_batch(0, 4) != a.logical_batch(1, 4));
  double total = 0;
  for (int64_t k = 0; k < 20; ++k) total += static_cast<double>(a.logical_batch(0, k).size());
  // Mean of 20 Binomial(400, 0.05) draws: 20 +- 0.97 (sd); 4 sds.
  CHECK(std::abs(total / 20 - 20.0) < 4.0);
  const auto first = a.logical_batch(0, 0);
  int64_t seen = 0;
  for (int m = 0; m < 3; ++m) seen += a.next()->n_examples;
  CHECK(seen == static_cast<int64_t>(first.size()));
  // Resume mid-epoch.
  const auto st = a.state();
  const auto x = a.next();
  b.restore(st);
  const auto y = b.next();
  REQUIRE(x->n_examples == y->n_examples);
  if (x->n_examples > 0) CHECK(torch::equal(x->at("input_ids"), y->at("input_ids")));
  auto other = po;
  other.sample_rate = 0.1;
  train::PoissonLoader c(dataset, plain_collator(), other);
  CHECK_THROWS_AS(c.restore(st), ConfigError);
}

TEST_CASE("a seeded DP run is reproducible and resumes exactly, epsilon is recorded", "[train][dp][checkpoint]") {
  auto dataset = std::make_shared<data::VectorDataset>(one_target_rows(40, 3));
  train::PoissonOptions po;
  po.sample_rate = 0.2;
  po.micro_batches = 2;
  po.seed = 4;
  auto run = [&](const fs::path& dir, int64_t stop_at, bool resume) {
    torch::manual_seed(resume ? 77 : 11);  // a resumed run starts from other weights: they must be overwritten
    auto m = dp_model();
    train::PoissonLoader src(dataset, plain_collator(), po);
    auto c = dp_cfg(dir, 8, 1.0, 1.0);
    c.grad_accum = 2;
    if (resume) c.resume = "auto";
    train::Trainer t(*m, c);
    if (stop_at > 0) {
      t.set_step_callback([stop_at](const train::StepInfo& info) {
        if (info.step == stop_at) train::request_stop();
      });
    }
    auto r = t.fit(src);
    return std::make_pair(m, r);
  };
  test::TempDir d1("dp-a"), d2("dp-b"), d3("dp-split");
  auto [m1, r1] = run(d1.path(), 0, false);
  auto [m2, r2] = run(d2.path(), 0, false);
  const auto w1 = snapshot(*m1), w2 = snapshot(*m2);
  for (const auto& [k, v] : w1) CHECK(torch::equal(v, w2.at(k)));
  // Noise moved the weights differently from a noiseless run (the noise is really added).
  REQUIRE(r1.privacy.is_object());
  CHECK(r1.privacy["steps"] == 8);
  CHECK(r1.privacy["epsilon"].get<double>() == Approx(train::rdp_epsilon(1.0, 0.2, 8, 1e-5).epsilon).epsilon(1e-12));
  CHECK(r1.privacy["noise_multiplier"] == 1.0);

  auto [ma, ra] = run(d3.path(), 3, false);
  CHECK(ra.status == train::Status::Interrupted);
  auto [mb, rb] = run(d3.path(), 0, true);
  CHECK(rb.step == 8);
  const auto wb = snapshot(*mb);
  for (const auto& [k, v] : w1) {
    INFO(k);
    CHECK(torch::equal(v, wb.at(k)));
  }
  CHECK(rb.privacy["steps"] == 8);  // the accountant resumed with the steps before the interruption
  CHECK(rb.privacy["epsilon"] == r1.privacy["epsilon"]);
  // metrics.jsonl carries epsilon on every log step.
  std::ifstream in(d1 / "metrics.jsonl");
  std::string line;
  int with_eps = 0;
  while (std::getline(in, line)) with_eps += nlohmann::json::parse(line).contains("epsilon");
  CHECK(with_eps == 8);
}

TEST_CASE("target_epsilon picks sigma by Opacus' search", "[train][dp]") {
  auto dataset = std::make_shared<data::VectorDataset>(one_target_rows(20, 2));
  train::PoissonOptions po;
  po.sample_rate = 0.3;
  train::PoissonLoader src(dataset, plain_collator(), po);
  test::TempDir d("dp-eps");
  auto c = dp_cfg(d.path(), 6, 0.0, 1.0);
  c.dp->noise_multiplier.reset();
  c.dp->target_epsilon = 8.0;
  auto m = dp_model();
  const auto r = train::Trainer(*m, c).fit(src);
  CHECK(r.privacy["noise_multiplier"] == 0.8709716796875);  // Opacus' get_noise_multiplier, see above
  CHECK(r.privacy["epsilon"].get<double>() <= 8.0);
  CHECK(r.privacy["epsilon"].get<double>() > 7.99);
}

TEST_CASE("DP-SGD refuses what it cannot make private, by name", "[train][dp]") {
  SECTION("config") {
    nlohmann::json j = {{"dp", {{"noise_multiplier", 1.0}, {"target_epsilon", 3.0}}}};
    CHECK_THROWS_WITH(train::train_config_from_json(j), Catch::Contains("exactly one of"));
    j = {{"dp", {{"noise_multiplier", 1.0}, {"sampling", "shuffle"}}}};
    CHECK_THROWS_WITH(train::train_config_from_json(j), Catch::Contains("train.dp.sampling"));
    j = {{"dp", {{"noise_multiplier", 1.0}, {"max_grad_norm", 0}}}};
    CHECK_THROWS_WITH(train::train_config_from_json(j), Catch::Contains("train.dp.max_grad_norm"));
    j = {{"dp", {{"noise_multiplier", 1.0}}}, {"clip_grad_norm", 1.0}};
    CHECK_THROWS_WITH(train::train_config_from_json(j), Catch::Contains("train.clip_grad_norm"));
    j = {{"dp", {{"noise_multiplier", 1.0}, {"delta", 2}}}};
    CHECK_THROWS_WITH(train::train_config_from_json(j), Catch::Contains("train.dp.delta"));
    j = {{"dp", {{"noise_multiplier", 1.1}, {"max_grad_norm", 0.5}, {"delta", 1e-6}}}};
    const auto c = train::train_config_from_json(j);
    REQUIRE(c.dp);
    CHECK(*c.dp->noise_multiplier == 1.1);
    CHECK(train::to_json(train::train_config_from_json(train::to_json(c))) == train::to_json(c));
    CHECK(!train::to_json(train::TrainConfig{}).contains("dp"));  // a non-private config.json is unchanged
  }
  SECTION("trainable embeddings and norms") {
    auto m = dp_model();
    m->embed->weight.set_requires_grad(true);
    CHECK_THROWS_WITH(train::DpEngine(*m, trainable(*m)), Catch::Contains("embed.weight"));
  }
  SECTION("a weight used outside its Linear (tied)") {
    auto m = dp_model();
    train::DpEngine engine(*m, trainable(*m));
    const auto b = test::make_batches(1, 3, 16, 2, 5, [](int64_t id) { return id % 4; }, 1)[0];
    engine.begin_micro_batch(3);
    auto out = m->run(b);
    (out.loss_sum + m->head->weight.pow(2).sum()).backward();  // a use the Linear's tap does not see
    CHECK_THROWS_WITH(engine.clip_and_accumulate(1.0), Catch::Contains("do not add up"));
  }
  SECTION("packed rows and a non-Poisson source") {
    auto rows = one_target_rows(8, 4);
    for (auto& r : rows) r.segment_ids.assign(r.input_ids.size(), 1);
    auto dataset = std::make_shared<data::VectorDataset>(rows);
    train::PoissonOptions po;
    po.sample_rate = 1.0;
    train::PoissonLoader src(dataset, plain_collator(), po);
    test::TempDir d("dp-refuse");
    auto m = dp_model();
    auto c = dp_cfg(d.path(), 1, 1.0, 1.0);
    CHECK_THROWS_WITH(train::Trainer(*m, c).fit(src), Catch::Contains("packed rows"));
    data::LoaderOptions lo;
    lo.prefetch = 0;
    data::Loader loader(dataset, plain_collator(), lo);
    CHECK_THROWS_WITH(train::Trainer(*m, c).fit(loader), Catch::Contains("Poisson"));
  }
}

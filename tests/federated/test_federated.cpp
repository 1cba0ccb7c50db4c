// Federated fine-tuning (biolm/federated/): client sampling, FedAvg and FedAdam against hand
// computations of their equations, FedProx's gradient against the hand-derived
// ∇(loss + μ/2‖w − w_g‖²), and the invariants of the rounds: deterministic, resumed = unbroken
// (bitwise), a failing site is dropped without stalling the round.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <fstream>
#include <set>

#include "biolm/core/config.h"
#include "biolm/core/error.h"
#include "biolm/federated/aggregate.h"
#include "biolm/federated/config.h"
#include "biolm/federated/server.h"
#include "biolm/federated/simulate.h"
#include "biolm/federated/site.h"
#include "biolm/io/tensor_file.h"
#include "biolm/train/accountant.h"
#include "support/test_util.h"

using namespace biolm;
using federated::TensorMap;
using nlohmann::json;

namespace {

// A tiny federation over the committed demo split (tests run from the build tree: absolute paths).
json tiny_config(const std::filesystem::path& out) {
  const auto root = test::source_dir();
  json j = {{"task", "ner"},
            {"seed", 7},
            {"output", out.string()},
            {"tokenizer", {{"train_on", {(root / "data/corpus/notes.txt").string()}}, {"vocab_size", 400}}},
            {"data",
             {{"dev", (root / "data/ner/dev.conll").string()},
              {"labels", {"problem", "test", "treatment"}},
              {"max_length", 24}}},
            {"model",
             {{"preset", "tiny-encoder"}, {"hidden_size", 32}, {"n_heads", 2}, {"n_kv_heads", 2}, {"ffn_size", 64},
              {"n_layers", 2}, {"hidden_dropout", 0.1}, {"attention_dropout", 0.0}}},
            {"peft", {{"method", "lora"}, {"lora", {{"rank", 4}, {"alpha", 8}}}}},
            {"train", {{"batch_size", 8}, {"lr", 5e-3}}},
            {"federation", {{"rounds", 3}, {"local_steps", 2}, {"fraction", 1.0}, {"min_clients", 1}}},
            {"eval", {{"bootstrap", 0}}}};
  for (const char* s : {"site_a", "site_b", "site_c"}) {
    j["sites"].push_back({{"name", s}, {"train", (root / "data/ner_sites" / (std::string(s) + ".conll")).string()}});
  }
  return j;
}

TensorMap read_global(const std::filesystem::path& run, int64_t round) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(round));
  return io::read_tensor_file(run / "checkpoints" / name / "global.safetensors");
}

void require_bitwise_equal(const TensorMap& a, const TensorMap& b) {
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) {
    INFO(name);
    REQUIRE(b.count(name));
    REQUIRE(torch::equal(t, b.at(name)));
  }
}

// A model with one parameter w (3): loss_sum = Σ w·x over the batch's rows, 2 target "tokens".
struct DotModel : train::TrainableModel {
  torch::Tensor w;
  DotModel() { w = register_parameter("w", torch::tensor({1.0f, 2.0f, 3.0f})); }
  train::StepOutput forward_batch(const data::Batch&) override {
    train::StepOutput out;
    out.loss_sum = (w * torch::tensor({1.0f, 1.0f, 1.0f})).sum();
    out.n_target_tokens = 2;
    return out;
  }
};

}  // namespace

TEST_CASE("sample_clients: Flower's sample size, distinct sorted sites, a pure function of (seed, round)", "[federated]") {
  // m = min(N, max(floor(fraction N), min_clients)).
  CHECK(federated::sample_clients(5, 0.5, 1, 3, 1).size() == 2);
  CHECK(federated::sample_clients(5, 0.5, 3, 3, 1).size() == 3);
  CHECK(federated::sample_clients(5, 1.0, 1, 3, 1) == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(federated::sample_clients(2, 0.1, 5, 3, 1).size() == 2);
  std::set<std::vector<int64_t>> seen;
  for (int64_t r = 1; r <= 20; ++r) {
    const auto s = federated::sample_clients(10, 0.3, 1, 42, r);
    REQUIRE(s.size() == 3);
    REQUIRE(std::is_sorted(s.begin(), s.end()));
    REQUIRE(std::set<int64_t>(s.begin(), s.end()).size() == 3);
    REQUIRE(s == federated::sample_clients(10, 0.3, 1, 42, r));
    seen.insert(s);
  }
  CHECK(seen.size() > 10);  // 120 possible triples, 20 rounds: a constant sample would give 1
}

TEST_CASE("fedavg: the example-weighted mean, by hand", "[federated]") {
  federated::Update a, b;
  a.n_examples = 1;
  b.n_examples = 3;
  a.tensors["x"] = torch::tensor({1.0f, 2.0f});
  b.tensors["x"] = torch::tensor({5.0f, 6.0f});
  a.tensors["y"] = torch::tensor({{4.0f}});
  b.tensors["y"] = torch::tensor({{0.0f}});
  const auto avg = federated::fedavg({&a, &b});
  // (1·1 + 3·5)/4 = 4, (1·2 + 3·6)/4 = 5, (1·4 + 3·0)/4 = 1
  CHECK(torch::equal(avg.at("x"), torch::tensor({4.0f, 5.0f})));
  CHECK(torch::equal(avg.at("y"), torch::tensor({{1.0f}})));
  CHECK(avg.at("x").scalar_type() == torch::kFloat32);
  CHECK(federated::payload_bytes(avg) == 3 * 4);

  federated::Update c = b;
  c.tensors.erase("y");
  c.tensors["z"] = torch::tensor({{0.0f}});
  CHECK_THROWS_AS(federated::fedavg({&a, &c}), CheckpointError);
  c.tensors = b.tensors;
  c.tensors["x"] = torch::zeros({3});
  CHECK_THROWS_WITH(federated::fedavg({&a, &c}), Catch::Contains("x") && Catch::Contains("shapes differ"));
}

TEST_CASE("FedAdam: two rounds of Reddi et al.'s Algorithm 2 with Flower's bias-corrected step, by hand", "[federated]") {
  const double lr = 0.1, b1 = 0.9, b2 = 0.99, tau = 1e-3;
  federated::FedAdam adam(lr, b1, b2, tau);
  TensorMap w = {{"p", torch::tensor({1.0f, -1.0f}, torch::kFloat64)}};
  // Round 1: average (2, -3) -> delta (1, -2).
  auto w1 = adam.step(w, {{"p", torch::tensor({2.0, -3.0}, torch::kFloat64)}}, 1);
  double m[2] = {0.1 * 1.0, 0.1 * -2.0}, v[2] = {0.01 * 1.0, 0.01 * 4.0};
  double eta = lr * std::sqrt(1 - b2 * b2) / (1 - b1 * b1);
  const double e1[2] = {1.0 + eta * m[0] / (std::sqrt(v[0]) + tau), -1.0 + eta * m[1] / (std::sqrt(v[1]) + tau)};
  CHECK(w1.at("p")[0].item<double>() == Approx(e1[0]).epsilon(1e-12));
  CHECK(w1.at("p")[1].item<double>() == Approx(e1[1]).epsilon(1e-12));
  // Round 2: average = w1 + (0.5, 0.5).
  auto w2 = adam.step(w1, {{"p", w1.at("p") + 0.5}}, 2);
  for (int i = 0; i < 2; ++i) {
    m[i] = b1 * m[i] + (1 - b1) * 0.5;
    v[i] = b2 * v[i] + (1 - b2) * 0.25;
  }
  eta = lr * std::sqrt(1 - std::pow(b2, 3)) / (1 - std::pow(b1, 3));
  for (int i = 0; i < 2; ++i) {
    CHECK(w2.at("p")[i].item<double>() == Approx(e1[i] + eta * m[i] / (std::sqrt(v[i]) + tau)).epsilon(1e-12));
  }
  // Its state round-trips (checkpoints).
  federated::FedAdam again(lr, b1, b2, tau);
  again.load_state(adam.state());
  auto w3a = adam.step(w2, {{"p", w2.at("p") * 2}}, 3);
  auto w3b = again.step(w2, {{"p", w2.at("p") * 2}}, 3);
  CHECK(torch::equal(w3a.at("p"), w3b.at("p")));
}

TEST_CASE("FedProx: the proximal term's gradient is mu (w - w_global), by hand", "[federated]") {
  auto inner = std::make_shared<DotModel>();
  const double mu = 0.5;
  federated::ProximalModel prox(inner, mu, {{"w", torch::tensor({0.0f, 1.0f, 1.0f})}});
  CHECK(prox.named_parameters().contains("model.w"));
  // mu/2 ||w - wg||² = 0.25 · (1 + 1 + 4) = 1.5
  CHECK(prox.proximal_term().item<double>() == Approx(1.5).epsilon(1e-7));
  const auto out = prox.run(data::Batch{});
  // loss_sum = w·1 + n_targets · 1.5 = 6 + 3 = 9
  CHECK(out.loss_sum.item<double>() == Approx(9.0).epsilon(1e-7));
  out.loss_sum.backward();
  // d/dw = x + n_targets · mu (w - wg) = 1 + 2 · 0.5 · (1, 1, 2) = (2, 2, 3); the trainer divides
  // by n_targets, so a step's gradient is x / n + mu (w - wg).
  CHECK(torch::equal(inner->w.grad(), torch::tensor({2.0f, 2.0f, 3.0f})));
  CHECK(prox.dp_refusal().has_value());
  CHECK_THROWS_AS(federated::ProximalModel(inner, mu, {{"v", torch::zeros({3})}}), CheckpointError);
  CHECK_THROWS_AS(federated::ProximalModel(inner, mu, {{"w", torch::zeros({2})}}), CheckpointError);
}

TEST_CASE("federation config: every key checked before work, naming its path", "[federated]") {
  test::TempDir dir("fedcfg");
  const auto base = tiny_config(dir.path());
  auto with = [&](const std::string& override_spec) {
    json j = base;
    core::apply_override(j, override_spec);
    return j;
  };
  CHECK_NOTHROW(federated::federate_spec_from_json(base));
  CHECK_THROWS_WITH(federated::federate_spec_from_json(with("federation.roundz=3")), Catch::Contains("federation.roundz"));
  CHECK_THROWS_WITH(federated::federate_spec_from_json(with("federation.mu=0.1")), Catch::Contains("federation.mu"));
  CHECK_THROWS_WITH(federated::federate_spec_from_json(with("federation.local_epochs=1")),
                    Catch::Contains("federation.local_steps"));
  CHECK_THROWS_WITH(federated::federate_spec_from_json(with("federation.fraction=0")), Catch::Contains("federation.fraction"));
  CHECK_THROWS_WITH(federated::federate_spec_from_json(with("federation.min_clients=4")),
                    Catch::Contains("federation.min_clients"));
  json dup = base;
  dup["sites"][1]["name"] = "site_a";
  CHECK_THROWS_WITH(federated::federate_spec_from_json(dup), Catch::Contains("sites[1].name") && Catch::Contains("duplicate"));
  json missing = base;
  missing["sites"][2]["train"] = "/nonexistent.conll";
  CHECK_THROWS_WITH(federated::federate_spec_from_json(missing), Catch::Contains("sites[2].train"));
  CHECK_THROWS_WITH(federated::federate_spec_from_json(with("peft.method=full")), Catch::Contains("federation.exchange"));
  CHECK_NOTHROW(federated::federate_spec_from_json(with("train.dp.noise_multiplier=1.0")));
  json prox_dp = with("train.dp.noise_multiplier=1.0");
  prox_dp["federation"]["algorithm"] = "fedprox";
  prox_dp["federation"]["mu"] = 0.1;
  CHECK_THROWS_WITH(federated::federate_spec_from_json(prox_dp), Catch::Contains("train.dp") && Catch::Contains("FedProx"));
}

TEST_CASE("federation with DP-SGD at the sites: each site's epsilon composes exactly the rounds it is sampled in",
          "[federated][slow]") {
  test::TempDir dir("feddp");
  auto cfg = [&](const std::string& name, int64_t rounds, const json& dp) {
    json j = tiny_config(dir / name);
    j["federation"]["rounds"] = rounds;
    j["federation"]["fraction"] = 0.67;  // 2 of the 3 sites per round: the sites' rounds differ
    j["train"]["dp"] = dp;
    return federated::federate_spec_from_json(j);
  };
  const json sigma = {{"noise_multiplier", 1.1}, {"max_grad_norm", 1.0}, {"delta", 1e-4}};
  const auto unbroken = federated::run_simulation(cfg("a", 4, sigma));
  REQUIRE(unbroken.contains("privacy"));
  const std::vector<std::string> names = {"site_a", "site_b", "site_c"};
  std::set<int64_t> rounds_seen;
  for (size_t k = 0; k < names.size(); ++k) {
    INFO(names[k]);
    // The rounds the server samples this site in (seed 7 of tiny_config), by sample_clients.
    int64_t rounds = 0;
    for (int64_t r = 1; r <= 4; ++r) {
      const auto chosen = federated::sample_clients(3, 0.67, 1, 7, r);
      rounds += std::count(chosen.begin(), chosen.end(), static_cast<int64_t>(k));
    }
    if (rounds == 0) {
      CHECK_FALSE(unbroken["privacy"].contains(names[k]));
      continue;
    }
    const auto& p = unbroken["privacy"].at(names[k]);
    CHECK(p["rounds"] == rounds);
    CHECK(p["steps"] == 2 * rounds);  // local_steps 2 per round
    CHECK(p["noise_multiplier"] == 1.1);
    const double q = p["sample_rate"].get<double>();
    CHECK(q > 0.0);
    CHECK(q <= 1.0);
    // ε of the site's whole history, composed by hand: 2 steps per round it trained in.
    train::RdpAccountant acc;
    for (int64_t i = 0; i < rounds; ++i) acc.step(1.1, q, 2);
    CHECK(p["epsilon"].get<double>() == Approx(acc.epsilon(1e-4)).epsilon(1e-12));
    rounds_seen.insert(rounds);
  }
  CHECK(rounds_seen.size() > 1);  // the sites trained in different numbers of rounds
  // Per round, metrics.jsonl names the sampled sites' spending so far; it never decreases.
  std::map<std::string, double> last;
  std::ifstream metrics(dir / "a" / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = json::parse(line);
    if (!j.contains("privacy")) continue;
    for (auto it = j["privacy"].begin(); it != j["privacy"].end(); ++it) {
      const double eps = it.value()["epsilon"].get<double>();
      CHECK(eps > last[it.key()]);
      last[it.key()] = eps;
    }
  }
  CHECK(last.size() == unbroken["privacy"].size());
  // Stopped after round 2 and resumed: the same global state and the same spending.
  federated::run_simulation(cfg("c", 2, sigma));
  const auto resumed = federated::run_simulation(cfg("c", 4, sigma));
  require_bitwise_equal(read_global(dir / "a", 4), read_global(dir / "c", 4));
  for (auto it = resumed["privacy"].begin(); it != resumed["privacy"].end(); ++it) {
    CHECK(it.value()["epsilon"] == unbroken["privacy"][it.key()]["epsilon"]);
  }
  // A target epsilon: sigma is planned over each site's own rounds, and no site overspends.
  const auto targeted = federated::run_simulation(cfg("t", 4, {{"target_epsilon", 4.0}, {"delta", 1e-4}}));
  for (auto it = targeted["privacy"].begin(); it != targeted["privacy"].end(); ++it) {
    INFO(it.key());
    CHECK(it.value()["epsilon"].get<double>() <= 4.0 + 1e-9);
    CHECK(it.value()["epsilon"].get<double>() > 3.9);
  }
}

TEST_CASE("federation: deterministic, resumed = unbroken (bitwise), FedProx and FedAdam runs", "[federated][slow]") {
  for (const std::string variant : {"fedavg", "fedprox+adam"}) {
    DYNAMIC_SECTION(variant) {
      test::TempDir dir("fedrun");
      auto cfg = [&](const std::string& name, int64_t rounds) {
        json j = tiny_config(dir / name);
        j["federation"]["rounds"] = rounds;
        if (variant != "fedavg") {
          j["federation"]["algorithm"] = "fedprox";
          j["federation"]["mu"] = 0.1;
          j["federation"]["server_optimizer"] = "adam";
          j["federation"]["server_lr"] = 0.01;
        }
        return federated::federate_spec_from_json(j);
      };
      const auto unbroken = federated::run_simulation(cfg("a", 3));
      CHECK(unbroken["rounds"] == 3);
      // The same run twice: the same global state.
      federated::run_simulation(cfg("b", 3));
      require_bitwise_equal(read_global(dir / "a", 3), read_global(dir / "b", 3));
      // Stopped after round 2, then resumed to 3.
      federated::run_simulation(cfg("c", 2));
      const auto resumed = federated::run_simulation(cfg("c", 3));
      require_bitwise_equal(read_global(dir / "a", 3), read_global(dir / "c", 3));
      CHECK(test::read_text(dir / "c" / "metrics.jsonl").find("\"resumed_from\":2") != std::string::npos);
      CHECK(resumed["tasks"]["ner"] == unbroken["tasks"]["ner"]);
      // Training moved the adapters away from the initial state.
      const auto g1 = read_global(dir / "a", 1), g3 = read_global(dir / "a", 3);
      double moved = 0;
      for (const auto& [name, t] : g1) moved += (t - g3.at(name)).abs().max().item<double>();
      CHECK(moved > 1e-4);
    }
  }
}

TEST_CASE("federation: one round equals FedAvg of the sites' own updates, a failing site is dropped, logged", "[federated][slow]") {
  test::TempDir dir("feddrop");
  json j = tiny_config(dir / "run");
  j["federation"]["rounds"] = 1;
  auto spec = federated::federate_spec_from_json(j);
  federated::prepare_shared(spec);
  std::vector<std::unique_ptr<federated::LocalTrainer>> sites;
  for (int64_t i = 0; i < 3; ++i) sites.push_back(std::make_unique<federated::LocalTrainer>(spec, i));
  const TensorMap initial = federated::LocalTrainer(spec, -1).exchanged();
  // What sites 0 and 2 compute on their own in round 1, averaged by their example counts.
  const auto u0 = sites[0]->train(1, initial);
  const auto u2 = sites[2]->train(1, initial);
  const auto expected = federated::fedavg({&u0, &u2});
  CHECK(u0.n_examples == 255);  // data/ner_sites/site_a.conll's sentences (tools/scripts/split_sites.py)
  CHECK(u2.n_examples == 114);

  auto inner = federated::in_process_runner(sites);
  const federated::RoundRunner failing = [&](int64_t round, const std::vector<int64_t>& chosen, const TensorMap& global) {
    auto out = inner(round, std::vector<int64_t>{0, 2}, global);
    federated::SiteOutcome lost;
    lost.failure = "connection reset (injected)";
    out.insert(out.begin() + 1, lost);
    REQUIRE(chosen == std::vector<int64_t>{0, 1, 2});
    return out;
  };
  const auto results = federated::run_simulation(spec, &failing);
  require_bitwise_equal(read_global(dir / "run", 1), expected);
  const auto lines = test::read_text(dir / "run" / "metrics.jsonl");
  const auto rec = json::parse(lines.substr(0, lines.find('\n')));
  CHECK(rec["clients"] == 2);
  CHECK(rec["failed"] == 1);
  CHECK(rec["dropped"][0]["site"] == "site_b");
  CHECK(rec["dropped"][0]["reason"] == "connection reset (injected)");
  CHECK(rec["bytes_down"] == 3 * federated::payload_bytes(initial));
  CHECK(rec["bytes_up"] == 2 * federated::payload_bytes(initial));
  CHECK(rec.contains("dev_f1"));
  CHECK(results["tasks"]["ner"].contains("f1"));
}

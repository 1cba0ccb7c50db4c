// Core: error messages, logging, device parsing, seeding and RNG state, the compat layer.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <Eigen/Dense>
#include <cmath>

#include "biolm/core/compat.h"
#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/core/seed.h"
#include "biolm/core/version.h"
#include "support/test_util.h"

using namespace biolm;

TEST_CASE("errors carry their context in one line", "[core]") {
  SECTION("data error with a line") {
    const DataError e("ncbi_train.conll", 1842, "tag", "expected B-/I-/O, found \"B_Disease\"");
    REQUIRE(std::string(e.what()) == "ncbi_train.conll:1842: field 'tag': expected B-/I-/O, found \"B_Disease\"");
    REQUIRE(e.line() == 1842);
    REQUIRE(e.field() == "tag");
  }
  SECTION("data error with a record index and no field") {
    const auto e = DataError::at_record("pqal.json", 3, "", "missing QUESTION");
    REQUIRE(std::string(e.what()) == "pqal.json: record 3: missing QUESTION");
    REQUIRE(e.record() == 3);
    REQUIRE(e.line() == 0);
  }
  SECTION("config, checkpoint and shape errors") {
    REQUIRE(std::string(ConfigError("train.lr", "must be > 0").what()) == "config 'train.lr': must be > 0");
    REQUIRE(std::string(CheckpointError("m.safetensors", "wte", "bad size").what()) ==
            "m.safetensors: tensor 'wte': bad size");
    REQUIRE(std::string(CheckpointError("ckpt", "", "checksum mismatch").what()) == "ckpt: checksum mismatch");
    REQUIRE(std::string(ShapeError("Attention", "expected 3-d input").what()) == "Attention: expected 3-d input");
  }
  SECTION("BIOLM_CHECK throws the named type and every type is a biolm::Error") {
    auto f = [](int n) { BIOLM_CHECK(n > 0, ConfigError, "model.n_layers", "must be > 0"); };
    REQUIRE_NOTHROW(f(1));
    REQUIRE_THROWS_AS(f(0), ConfigError);
    REQUIRE_THROWS_AS(f(0), Error);
  }
  SECTION("io error from errno names the OS reason") {
    errno = ENOENT;
    const auto e = IoError::from_errno("/nope", "cannot open");
    REQUIRE(std::string(e.what()).find("/nope: cannot open (") == 0);
  }
}

TEST_CASE("logging filters by level and rank and reaches a sink", "[core]") {
  std::vector<std::string> seen;
  log::set_sink([&](log::Level, const std::string& m) { seen.push_back(m); }, /*replace=*/true);
  const auto old = log::level();
  log::set_level(log::Level::Info);
  log::debug("hidden {}", 1);
  log::info("shown {}", 2);
  log::set_rank(1);
  log::info("rank 1 info is hidden");
  log::warn("rank 1 warning is shown");
  log::set_rank(0);
  log::set_sink(nullptr);
  log::set_level(old);
  REQUIRE(seen == std::vector<std::string>{"shown 2", "rank 1 warning is shown"});
  REQUIRE(log::parse_level("debug") == log::Level::Debug);
  REQUIRE_THROWS_AS(log::parse_level("loud"), ConfigError);
}

TEST_CASE("device strings", "[core]") {
  REQUIRE(core::parse_device("cpu").is_cpu());
  const auto a = core::parse_device("auto");
  REQUIRE((a.is_cpu() || a.is_cuda()));
  REQUIRE(a.is_cuda() == core::cuda_available());
  REQUIRE_THROWS_AS(core::parse_device("gpu"), ConfigError);
  REQUIRE_THROWS_AS(core::parse_device("cuda:x"), ConfigError);
  REQUIRE_THROWS_AS(core::parse_device("cuda:64"), ConfigError);
  if (!core::cuda_available()) {
    REQUIRE_THROWS_WITH(core::parse_device("cuda", "train.device"),
                        Catch::Contains("config 'train.device'") && Catch::Contains("no CUDA device"));
  }
}

TEST_CASE("seeding reproduces draws and RNG state restores the stream", "[core]") {
  core::seed_all(1234);
  const auto a = torch::randn({5});
  core::seed_all(1234);
  const auto b = torch::randn({5});
  REQUIRE(torch::equal(a, b));

  const auto state = core::capture_rng_state();
  const auto next1 = torch::rand({7});
  torch::rand({3});  // move the stream on
  core::restore_rng_state(state);
  const auto next2 = torch::rand({7});
  REQUIRE(torch::equal(next1, next2));
  REQUIRE_FALSE(torch::equal(next1, a.narrow(0, 0, 5).repeat({2}).narrow(0, 0, 7)));
}

TEST_CASE("compat SDPA equals the explicit softmax attention", "[core]") {
  core::seed_all(3);
  const int64_t B = 2, H = 3, T = 5, D = 4;
  const auto q = torch::randn({B, H, T, D}, torch::kDouble);
  const auto k = torch::randn({B, H, T, D}, torch::kDouble);
  const auto v = torch::randn({B, H, T, D}, torch::kDouble);
  auto explicit_attn = [&](const torch::Tensor& additive) {
    auto s = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(D));
    if (additive.defined()) s = s + additive;
    return torch::matmul(torch::softmax(s, -1), v);
  };
  SECTION("no mask") {
    BIOLM_REQUIRE_CLOSE(compat::scaled_dot_product_attention(q, k, v, c10::nullopt, 0.0, false),
                        explicit_attn({}), 1e-12);
  }
  SECTION("bool mask (true = attend) and its additive twin agree") {
    auto keep = torch::ones({B, 1, T, T}, torch::kBool);
    keep.index_put_({0, torch::indexing::Slice(), torch::indexing::Slice(), 4}, false);  // a pad key
    const auto additive = torch::zeros({B, 1, T, T}, torch::kDouble).masked_fill(keep.logical_not(), -INFINITY);
    const auto ref = explicit_attn(additive);
    BIOLM_REQUIRE_CLOSE(compat::scaled_dot_product_attention(q, k, v, keep, 0.0, false), ref, 1e-12);
    BIOLM_REQUIRE_CLOSE(compat::scaled_dot_product_attention(q, k, v, additive, 0.0, false), ref, 1e-12);
  }
  SECTION("is_causal") {
    const auto causal = torch::ones({T, T}, torch::kBool).tril();
    const auto additive = torch::zeros({T, T}, torch::kDouble).masked_fill(causal.logical_not(), -INFINITY);
    BIOLM_REQUIRE_CLOSE(compat::scaled_dot_product_attention(q, k, v, c10::nullopt, 0.0, true),
                        explicit_attn(additive), 1e-12);
  }
}

TEST_CASE("Eigen and LibTorch agree on a matrix product", "[core]") {
  Eigen::MatrixXd a(3, 4), b(4, 2);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) a(i, j) = std::sin(1.0 + i * 4 + j);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) b(i, j) = std::cos(0.5 * (i * 2 + j));
  const Eigen::MatrixXd c = a * b;
  // Eigen is column-major: map it as the transpose, or copy element by element.
  auto ta = torch::empty({3, 4}, torch::kDouble);
  auto tb = torch::empty({4, 2}, torch::kDouble);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) ta[i][j] = a(i, j);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) tb[i][j] = b(i, j);
  const auto tc = torch::matmul(ta, tb);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) REQUIRE(tc[i][j].item<double>() == Approx(c(i, j)).epsilon(1e-14));
}

TEST_CASE("version information names library, LibTorch and CUDA", "[core]") {
  const auto info = build_info();
  REQUIRE(info["biolm"] == version());
  REQUIRE(info["libtorch"].get<std::string>().rfind(std::to_string(TORCH_VERSION_MAJOR) + ".", 0) == 0);
  REQUIRE(info.contains("cuda"));
  const auto banner = version_banner();
  REQUIRE(banner.find("LibTorch " + torch_version()) != std::string::npos);
  REQUIRE(banner.find("CUDA ") != std::string::npos);
}

#include "biolm/core/config.h"

TEST_CASE("configs: YAML, overrides, typed reads, unknown keys", "[core][config]") {
  auto tree = core::parse_yaml(
      "model:\n  preset: tiny-encoder\n  dropout: 0.1\ntrain:\n  lr: 5.0e-5\n  steps: 100\n  name: \"007\"\n"
      "  tags: [a, b]\n  bf16: false\n");
  core::apply_overrides(tree, {"train.lr=3e-4", "train.steps=20", "data.train=/x/y.conll", "~model.dropout"});
  core::ConfigReader r(tree);
  auto& train = r.child("train");
  REQUIRE(train.get<double>("lr", 0.0) == Approx(3e-4));
  REQUIRE(train.get<int64_t>("steps", 0) == 20);
  REQUIRE(train.get<std::string>("name", "") == "007");  // quoted: stays a string
  REQUIRE(train.get<bool>("bf16", true) == false);
  REQUIRE(train.get<std::vector<std::string>>("tags", {}) == std::vector<std::string>{"a", "b"});
  REQUIRE(train.get<int64_t>("warmup", 7) == 7);
  REQUIRE(r.child("model").get<std::string>("preset", "") == "tiny-encoder");
  REQUIRE_FALSE(r.child("model").has("dropout"));
  REQUIRE(r.child("data").require<std::string>("train") == "/x/y.conll");
  REQUIRE_NOTHROW(r.finish());

  SECTION("unknown key names its path") {
    auto t2 = core::parse_yaml("train:\n  lrr: 1\n");
    core::ConfigReader r2(t2);
    r2.child("train").get<double>("lr", 1.0);
    REQUIRE_THROWS_WITH(r2.finish(), Catch::StartsWith("config 'train.lrr': unknown key"));
  }
  SECTION("wrong type and bad choice name their path, are collected, and throw together at finish()") {
    core::ConfigReader r3(core::parse_yaml("train:\n  steps: many\n  method: lorax\n"));
    REQUIRE(r3.child("train").get<int64_t>("steps", 1) == 1);  // recorded; the fallback comes back
    REQUIRE(r3.child("train").choice("method", {"full", "lora"}, "full") == "full");
    REQUIRE(r3.errors().size() == 2);
    REQUIRE(r3.errors()[0].key == "train.steps");
    REQUIRE_THAT(r3.errors()[0].message, Catch::StartsWith("expected an integer"));
    REQUIRE(r3.errors()[1].key == "train.method");
    REQUIRE_THAT(r3.errors()[1].message, Catch::Contains("full|lora"));
    REQUIRE_THROWS_WITH(r3.finish(), Catch::StartsWith("config: 2 errors\n  config 'train.steps': expected an integer") &&
                                         Catch::Contains("\n  config 'train.method': expected full|lora"));
  }
  SECTION("one problem keeps the one-line form; capture() folds a thrown ConfigError in") {
    core::ConfigReader r4(core::parse_yaml("train:\n  lr: 1\n"));
    r4.child("train").get<double>("lr", 0.0);
    r4.capture([] { throw ConfigError("peft.lora.rank", "must be > 0, got 0"); });
    REQUIRE_THROWS_WITH(r4.finish(), "config 'peft.lora.rank': must be > 0, got 0");
  }
  SECTION("a section that is not a mapping is recorded, not thrown at once") {
    core::ConfigReader r5(core::parse_yaml("train: 3\nmodel:\n  x: 1\n"));
    REQUIRE(r5.child("train").get<int64_t>("max_steps", 5) == 5);
    REQUIRE_THROWS_WITH(r5.finish(), Catch::Contains("'train': expected a mapping, found 3") &&
                                         Catch::Contains("'model': unknown key"));
  }
  SECTION("bad override and YAML syntax errors") {
    nlohmann::json t;
    REQUIRE_THROWS_AS(core::apply_override(t, "train.lr"), ConfigError);
    REQUIRE_THROWS_AS(core::parse_yaml("a: [1, 2\n", "bad.yaml"), ConfigError);
    REQUIRE_THROWS_WITH(core::parse_yaml("a: 1\na: 2\n", "dup.yaml"), Catch::Contains("duplicate key"));
  }
  SECTION("resolved config round-trips through YAML") {
    const auto back = core::parse_yaml(core::to_yaml(tree));
    REQUIRE(back == tree);
  }
}

// ---------------------------------------------------------------------------------------------
// Host allocator tuning: a tensor freed and allocated again must reuse resident memory.
#include <sys/resource.h>

#include <cstdlib>

#include "biolm/core/host_memory.h"

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Faults taken by `cycles` rounds of allocating, writing and freeing a 64 MiB tensor — above
// glibc's largest dynamic mmap threshold (32 MiB), so untuned every round maps fresh pages. Nothing
// else is allocated inside a round (values are read through the data pointer), so the heap
// pattern is the one a training step repeats: the same big blocks, freed and taken again.
long faults_of_reallocation(int cycles) {
  const int64_t n = int64_t{16} << 20;
  // Warm-up rounds: the first tuned rounds still grow the heap while LibTorch's own small lazy
  // allocations land between the big blocks (about six rounds here); then every block is reused.
  for (int i = 0; i < 12; ++i) torch::empty({n}).fill_(1.0f);
  const long before = minor_faults();
  double sum = 0;
  for (int i = 0; i < cycles; ++i) {
    torch::Tensor t = torch::empty({n});
    t.fill_(static_cast<float>(i));
    sum += t.data_ptr<float>()[12345];
  }
  const long faults = minor_faults() - before;
  REQUIRE(sum == static_cast<double>(cycles * (cycles - 1) / 2));
  return faults;
}

}  // namespace

TEST_CASE("tune_host_allocator keeps freed tensor memory resident for reuse", "[core]") {
#if !defined(__GLIBC__)
  SKIP("host allocator tuning applies to glibc only");
#else
  ::unsetenv("GLIBC_TUNABLES");
  SECTION("opt-outs leave malloc alone") {
    ::setenv("BIOLM_HOST_ALLOCATOR", "system", 1);
    const auto skipped = core::tune_host_allocator();
    ::unsetenv("BIOLM_HOST_ALLOCATOR");
    REQUIRE_FALSE(skipped.applied);
    REQUIRE_THAT(skipped.detail, Catch::Contains("BIOLM_HOST_ALLOCATOR=system"));
    ::setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576", 1);
    const auto user = core::tune_host_allocator();
    ::unsetenv("GLIBC_TUNABLES");
    REQUIRE_FALSE(user.applied);
    REQUIRE_THAT(user.detail, Catch::Contains("GLIBC_TUNABLES"));
  }
  SECTION("after tuning, reallocating 64 MiB ten times faults in less than one tensor") {
    constexpr int kCycles = 10;
    const long untuned = faults_of_reallocation(kCycles);  // for the record: depends on THP and glibc
    const auto tuned = core::tune_host_allocator();
    REQUIRE(tuned.applied);
    REQUIRE_THAT(tuned.detail, Catch::Contains("256 MiB (set)") && Catch::Contains("512 MiB (set)"));
    const long after = faults_of_reallocation(kCycles);
    INFO("minor faults: untuned " << untuned << ", tuned " << after << " (one 64 MiB tensor = 16384 pages)");
    // Untuned, each round maps 16384 fresh 4 KiB pages; tuned, the heap block is reused, so ten
    // rounds take fewer faults than one fresh tensor.
    REQUIRE(after < 16384);
  }
#endif
}

#include "biolm/models/config.h"
#include "biolm/peft/method.h"
#include "biolm/train/config.h"

// The readers of the model, peft and train sections record into one ConfigReader; a single
// finish() at the top reports every problem at once, each with its full key path.
TEST_CASE("configs: a typo, a wrong type and a bad value in three sections, one message", "[core][config]") {
  const auto tree = core::parse_yaml(
      "model:\n  preset: tiny-encoder\n  hidden_size: abc\n"
      "peft:\n  method: lora\n  lora:\n    rank: 0\n    targets: ['**.q_proj']\n"
      "train:\n  lr: 1.0e-4\n  max_stepz: 10\n");
  core::ConfigReader r(tree);
  const auto model = models::read_model_config(r.child("model"));
  (void)peft::read_method_config(r.child("peft"));
  const auto train = train::read_train_config(r.child("train"));
  REQUIRE(model.hidden_size == 32);  // the preset's value stays where the override was bad
  REQUIRE(train.lr == Approx(1e-4));
  REQUIRE(r.errors().size() == 2);   // the typo is found by finish(), which knows every key read
  try {
    r.finish();
    FAIL("finish() did not throw");
  } catch (const core::ConfigErrors& e) {
    std::vector<std::string> keys;
    for (const auto& i : e.issues()) keys.push_back(i.key);
    REQUIRE(keys == std::vector<std::string>{"model.hidden_size", "peft.lora.rank", "train.max_stepz"});
    const std::string what = e.what();
    REQUIRE_THAT(what, Catch::StartsWith("config: 3 errors\n"));
    REQUIRE_THAT(what, Catch::Contains("config 'model.hidden_size': expected an integer, found \"abc\""));
    REQUIRE_THAT(what, Catch::Contains("config 'peft.lora.rank': must be > 0, got 0"));
    REQUIRE_THAT(what, Catch::Contains("config 'train.max_stepz': unknown key"));
    REQUIRE(e.key() == "model.hidden_size");  // a ConfigError like any other: the first problem
  }
}

TEST_CASE("configs: each section's from_json reports all of its problems at once", "[core][config]") {
  const auto issues_of = [](const auto& fn) {
    try {
      fn();
    } catch (const core::ConfigErrors& e) {
      std::vector<std::string> keys;
      for (const auto& i : e.issues()) keys.push_back(i.key);
      return keys;
    }
    return std::vector<std::string>{};
  };
  SECTION("train: a bad range, a bad choice and a typo") {
    const auto keys = issues_of([] {
      train::train_config_from_json(nlohmann::json{{"lr", 0.1}, {"max_steps", 0}, {"schedule", "cosin"}, {"lrr", 1}});
    });
    REQUIRE(keys == std::vector<std::string>{"train.schedule", "train.lrr"});  // ranges wait for clean reads
    const auto ranges = issues_of([] {
      train::train_config_from_json(nlohmann::json{{"max_steps", 0}, {"lr", -1.0}, {"keep_last", 0}});
    });
    REQUIRE(ranges == std::vector<std::string>{"train.max_steps", "train.lr", "train.keep_last"});
  }
  SECTION("model: two wrong types, a bad enum, an unknown nested key") {
    const auto keys = issues_of([] {
      models::config_from_json(nlohmann::json{{"preset", "tiny-encoder"}, {"n_layers", 1.5}, {"norm", "batch"},
                                              {"moe", {{"top_k", "two"}, {"n_expert", 2}}}});
    });
    REQUIRE(keys == std::vector<std::string>{"model.n_layers", "model.norm", "model.moe.top_k", "model.moe.n_expert"});
  }
  SECTION("model: every inconsistency of validate() at once") {
    const auto keys = issues_of([] {
      models::config_from_json(nlohmann::json{{"preset", "tiny-encoder"}, {"n_heads", 5}, {"hidden_dropout", 1.5}});
    });
    REQUIRE(keys == std::vector<std::string>{"model.n_heads", "model.n_kv_heads", "model.hidden_dropout"});
  }
  SECTION("peft: a bad method and a wrong type") {
    const auto keys = issues_of([] {
      peft::method_config_from_json(nlohmann::json{{"method", "lorax"}, {"train_top_layers", "two"}});
    });
    REQUIRE(keys == std::vector<std::string>{"peft.method", "peft.train_top_layers"});
  }
}

// PyRandom (CPython's random.Random) and lm-eval's few-shot draw against CPython 3.11's own output:
// goldens from tests/reference/py_random_reference.py (output in py_random_reference.out).
#include <catch2/catch.hpp>

#include <vector>

#include "biolm/core/error.h"
#include "biolm/eval/harness.h"
#include "biolm/eval/py_random.h"

using biolm::eval::PyRandom;
using V = std::vector<int64_t>;

TEST_CASE("PyRandom reproduces random.Random(seed): getrandbits and both sample() branches", "[eval][harness]") {
  struct Golden {
    int64_t seed;
    uint32_t first;
    V s50_4, s20_3, s100_8, s60_8;
    uint64_t bits45;
  };
  const std::vector<Golden> goldens = {
      {1234, 4150886329U, {49, 28, 7, 0}, {2, 18, 1}, {85, 88, 10, 12, 98, 45, 30, 2}, {1, 50, 59, 22, 41, 39, 30, 54},
       5224671155317ULL},
      {0, 3626764237U, {24, 48, 26, 2}, {8, 16, 15}, {51, 38, 61, 45, 74, 27, 64, 17}, {18, 8, 48, 6, 39, 51, 16, 34},
       24811952133173ULL},
      {42, 2746317213U, {7, 1, 47, 17}, {7, 19, 4}, {94, 13, 86, 69, 11, 75, 54, 4}, {1, 5, 13, 14, 32, 38, 59, 35},
       25190837192233ULL},
      {int64_t{1} << 40, 445128065U, {22, 42, 4, 27}, {1, 12, 18}, {80, 71, 9, 91, 86, 50, 88, 70},
       {20, 24, 48, 46, 17, 2, 26, 31}, 1122558877791ULL},
  };
  for (const auto& g : goldens) {
    INFO("seed " << g.seed);
    PyRandom r(g.seed);
    CHECK(r.next_u32() == g.first);
    CHECK(r.sample(50, 4) == g.s50_4);    // n > 21: rejection on a set
    CHECK(r.sample(20, 3) == g.s20_3);    // n <= 21: pool list
    CHECK(r.sample(100, 8) == g.s100_8);  // k > 5: setsize 21 + 4^ceil(log4 24) = 85 < 100: set
    CHECK(r.sample(60, 8) == g.s60_8);    // 60 <= 85: pool list
    CHECK(r.getrandbits(45) == g.bits45);  // two 32-bit words, the second shifted
  }
  PyRandom r(1);
  CHECK_THROWS_AS(r.sample(3, 4), biolm::ConfigError);
}

TEST_CASE("draw_shots_lm_eval is lm-eval's ContextSampler: one generator, k + 1 drawn, eval doc dropped",
          "[eval][harness]") {
  const auto none = [](int64_t, int64_t) { return false; };
  const auto shots = biolm::eval::draw_shots_lm_eval(10, 5, 3, 1234, /*pool_is_eval_set=*/true, none);
  CHECK(shots == std::vector<V>{{7, 1, 9}, {9, 0, 8}, {5, 3, 0}, {0, 5, 7}, {7, 2, 1}});
  // A separate pool: plain sample(pool, k) in example order from the same generator.
  PyRandom r(1234);
  const auto plain = biolm::eval::draw_shots_lm_eval(50, 2, 4, 1234, false, none);
  CHECK(plain[0] == r.sample(50, 4));
  CHECK(plain[1] == r.sample(50, 4));
  // Zero shots draw nothing; a pool holding only the evaluated example and k copies of it: refused
  // when k + 1 exceed the pool, resampled from the rest when duplicates are dropped.
  CHECK(biolm::eval::draw_shots_lm_eval(3, 2, 0, 1, true, none) == std::vector<V>{{}, {}});
  CHECK_THROWS_AS(biolm::eval::draw_shots_lm_eval(3, 1, 3, 1, true, none), biolm::ConfigError);
  const auto dup = [](int64_t i, int64_t j) { return (i == 0 && j == 1) || (i == 1 && j == 0); };  // 0 == 1
  const auto d = biolm::eval::draw_shots_lm_eval(6, 1, 4, 7, true, dup);
  REQUIRE(d[0].size() == 4);
  for (int64_t j : d[0]) CHECK((j != 0 && j != 1));
}

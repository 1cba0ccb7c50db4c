// biolm/eval/py_random.h: CPython's random.Random, ported exactly for the parts lm-eval's few-shot
// sampler uses (random.Random(seed).sample(population, k)).
//
// lm-evaluation-harness (lm_eval/api/samplers.py, ContextSampler) draws the shots of every
// evaluated document from ONE random.Random(fewshot_seed) in document order, so reproducing its
// prompts needs Python's generator bit for bit:
//   - MT19937 (Matsumoto & Nishimura 1998) seeded by init_by_array with the 32-bit words of
//     |seed|, least significant first (CPython Modules/_randommodule.c, random_seed);
//   - getrandbits(k): for k <= 32 one 32-bit output shifted right by 32 - k; for k > 32 words
//     filled least significant first, the last one shifted (random_getrandbits);
//   - _randbelow(n) = _randbelow_with_getrandbits: k = n.bit_length(), draw getrandbits(k) until
//     it is < n (Lib/random.py);
//   - sample(population, k) (Lib/random.py, 3.11): setsize = 21, plus 4**ceil(log(3k, 4)) when
//     k > 5; if n <= setsize a pool list with swap-from-the-end, else rejection on a set of drawn
//     indices. Both branches consume the generator differently, so both are ported.
// Tested against CPython 3.11 in tests/parity/test_harness.py (prompts of lm-eval few-shot runs).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace biolm::eval {

class PyRandom {
 public:
  /// random.Random(seed) for an integer seed (Python uses |seed|).
  explicit PyRandom(int64_t seed);
  /// One 32-bit MT19937 output (genrand_uint32).
  uint32_t next_u32();
  /// random.getrandbits(k), 0 <= k <= 64.
  uint64_t getrandbits(int k);
  /// random._randbelow(n), n > 0: uniform in [0, n).
  uint64_t randbelow(uint64_t n);
  /// Indices of random.sample(range(n), k), in selection order.
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  void init_genrand(uint32_t s);
  void init_by_array(const std::vector<uint32_t>& key);
  std::array<uint32_t, 624> mt_{};
  int index_ = 625;
};

}  // namespace biolm::eval

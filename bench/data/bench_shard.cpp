// Tokenize-and-shard throughput: MB of text per second per core through tokenize_to_shards with
// 1..N workers, against a single-threaded encode loop over the same text, plus peak memory
// (VmHWM). Report only, never a test. The tokenizer is a self-contained piece tokenizer (words
// cut into 3-byte pieces, hashed ids) so the bench runs without model files; pass a real one
// through the same API to measure SentencePiece or WordPiece.
//
//   ./bench_data_shard [n_docs=200000] [max_workers=hardware]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "biolm/data/shards.h"
#include "biolm/data/tasks.h"

namespace {

class PieceTokenizer : public biolm::tokenize::Tokenizer {
 public:
  PieceTokenizer() {
    special_.pad = 0;
    special_.cls = 2;
    special_.sep = 3;
    special_.mask = 4;
  }
  biolm::tokenize::Encoding encode(std::string_view text, bool add_special) const override {
    biolm::tokenize::Encoding e;
    const auto push = [&](int64_t id, int64_t b, int64_t end, int64_t w) {
      e.ids.push_back(id);
      e.offsets.emplace_back(b, end);
      e.word_ids.push_back(w);
    };
    if (add_special) push(2, 0, 0, -1);
    int64_t w = 0;
    for (const auto& [b, end] : biolm::data::split_words(std::string(text))) {
      for (int64_t p = b; p < end; p += 3) {
        uint32_t h = 2166136261u;
        for (int64_t k = p; k < std::min(end, p + 3); ++k) h = (h ^ static_cast<unsigned char>(text[k])) * 16777619u;
        push(5 + h % 30000, p, std::min(end, p + 3), w);
      }
      ++w;
    }
    if (add_special) push(3, 0, 0, -1);
    return e;
  }
  biolm::tokenize::Encoding encode_words(const std::vector<std::string>& words, bool add_special) const override {
    std::string joined;
    for (const auto& x : words) joined += x + " ";
    return encode(joined, add_special);
  }
  std::string decode(const std::vector<int64_t>&, bool) const override { return ""; }
  int64_t vocab_size() const override { return 30005; }
  std::optional<int64_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::string id_to_token(int64_t id) const override { return std::to_string(id); }
  const biolm::tokenize::SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "bench-pieces"; }
  std::string fingerprint() const override { return "bench-pieces"; }

 private:
  biolm::tokenize::SpecialTokens special_;
};

long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n_docs = argc > 1 ? std::stoll(argv[1]) : 200000;
  const int64_t max_workers = argc > 2 ? std::stoll(argv[2]) : std::max(1u, std::thread::hardware_concurrency());
  // A generated abstract-like corpus: Zipf-ish words from a fixed vocabulary.
  std::mt19937_64 rng(1);
  std::vector<std::string> vocab;
  for (int i = 0; i < 5000; ++i) vocab.push_back("w" + std::to_string(i * 2654435761u % 1000003) + (i % 7 == 0 ? "ase" : "in"));
  std::vector<std::string> docs(static_cast<size_t>(n_docs));
  size_t bytes = 0;
  for (auto& d : docs) {
    const int n = 80 + static_cast<int>(rng() % 200);
    for (int w = 0; w < n; ++w) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      d += vocab[static_cast<size_t>(u * u * u * vocab.size())];
      d += (w % 17 == 16) ? ". " : " ";
    }
    bytes += d.size();
  }
  const double mb = static_cast<double>(bytes) / 1e6;
  PieceTokenizer tok;
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  int64_t tokens = 0;
  for (const auto& d : docs) tokens += static_cast<int64_t>(tok.encode(d, true).ids.size());
  const double base = std::chrono::duration<double>(clock::now() - t0).count();
  std::printf("corpus: %lld documents, %.1f MB, %lld tokens\n", static_cast<long long>(n_docs), mb, static_cast<long long>(tokens));
  std::printf("single-threaded encode loop: %.2f MB/s\n", mb / base);
  for (int64_t w = 1; w <= max_workers; w *= 2) {
    biolm::data::ShardingOptions o;
    o.n_workers = w;
    o.tokens_per_shard = int64_t{1} << 22;
    size_t i = 0;
    int64_t shards = 0;
    t0 = clock::now();
    biolm::data::tokenize_to_shards(
        [&](biolm::data::TextRecord& r) {
          if (i >= docs.size()) return false;
          r.text = docs[i++];
          return true;
        },
        tok, o, [&](biolm::data::TokenShard&&) { ++shards; });
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    std::printf("tokenize_to_shards, %lld worker(s): %.2f MB/s total, %.2f MB/s per core, %lld shards\n",
                static_cast<long long>(w), mb / s, mb / s / static_cast<double>(w), static_cast<long long>(shards));
  }
  std::printf("peak memory (VmHWM): %.1f MB\n", peak_rss_kb() / 1024.0);
  return 0;
}

// biolm-bench-data: tokenize-and-shard throughput. Report only, never a test.
//
// A generated abstract-like corpus (words built from syllables, Zipf-distributed, sentences,
// documents of 120-320 words) is tokenized by a real SentencePiece unigram model that
// tokenize::train_sentencepiece trains on (part of) that corpus. Cases, one JSON line each:
//   corpus              documents, MB, tokenizer training time
//   spm_encode_loop     plain sentencepiece::SentencePieceProcessor::Encode over every document,
//                       one thread: the reference
//   biolm_encode_loop   our SentencePieceTokenizer::encode (ids + byte offsets + word ids), one thread
//   tokenize_to_shards  data::tokenize_to_shards with N worker threads (documents -> TokenShards
//                       with word starts, in order), MB/s in total and per core, and the ratio of
//                       the per-core rate to spm_encode_loop
// Every case reports peak_rss_mb (VmHWM, reset before the case through /proc/self/clear_refs)
// and the resident size before it (the corpus itself is resident throughout).
//
//   biolm-bench-data [--docs 20000] [--threads 1,2] [--vocab 8000] [--work DIR]
#include <biolm/config.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "biolm/data/shards.h"
#include "biolm/tokenize/sentencepiece.h"

#if BIOLM_HAS_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double status_mb(const char* field) {
  std::ifstream f("/proc/self/status");
  const std::string key = std::string(field) + ":";
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return -1.0;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); returns the RSS before the case.
double reset_peak() {
  std::ofstream("/proc/self/clear_refs") << "5";
  return status_mb("VmRSS");
}

std::vector<std::string> make_corpus(int64_t n_docs, uint64_t seed) {
  static const char* syllables[] = {"a",   "ab",  "ac",  "ad",  "al",  "am",  "an",  "ar",   "as",  "at",  "ba",  "be",
                                    "bi",  "bro", "ca",  "car", "cel", "chol", "ci", "co",   "cy",  "da",  "de",  "di",
                                    "do",  "e",   "ec",  "en",  "er",  "es",  "ga",  "gen",  "glu", "he",  "hy",  "i",
                                    "ic",  "id",  "il",  "im",  "in",  "ip",  "is",  "it",   "ka",  "la",  "le",  "li",
                                    "lo",  "ly",  "ma",  "me",  "mi",  "mo",  "my",  "na",   "ne",  "ni",  "no",  "o",
                                    "ol",  "om",  "on",  "or",  "os",  "ox",  "pa",  "pe",   "phe", "pho", "pi",  "po",
                                    "pro", "ra",  "re",  "ri",  "ro",  "sa",  "se",  "si",   "so",  "ta",  "te",  "ther",
                                    "ti",  "to",  "tri", "u",   "ul",  "um",  "ur",  "us",   "va",  "ve",  "vi",  "zo"};
  static const char* endings[] = {"", "", "", "ase", "in", "itis", "oma", "ic", "al", "ine", "ol", "ide", "s", "ed"};
  const size_t n_syl = sizeof(syllables) / sizeof(*syllables), n_end = sizeof(endings) / sizeof(*endings);
  std::mt19937_64 rng(seed);
  std::vector<std::string> vocab;
  for (int i = 0; i < 20000; ++i) {
    std::string w;
    const int k = 1 + static_cast<int>(rng() % 4);
    for (int s = 0; s < k; ++s) w += syllables[rng() % n_syl];
    w += endings[rng() % n_end];
    if (rng() % 10 == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
    vocab.push_back(std::move(w));
  }
  std::vector<std::string> docs(static_cast<size_t>(n_docs));
  for (auto& d : docs) {
    const int n = 120 + static_cast<int>(rng() % 200);
    for (int w = 0; w < n; ++w) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      d += vocab[static_cast<size_t>(u * u * u * static_cast<double>(vocab.size()))];
      if (w % 19 == 7) d += " " + std::to_string(rng() % 1000);
      d += (w % 17 == 16) ? ". " : (w % 11 == 10 ? ", " : " ");
    }
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
#if !BIOLM_HAS_SENTENCEPIECE
  (void)argc;
  (void)argv;
  std::cerr << "biolm-bench-data needs a libbiolm built with SentencePiece\n";
  return 1;
#else
  CLI::App app{"tokenize-and-shard throughput (MB/s of text per core) against a plain SentencePiece encode loop"};
  int64_t n_docs = 20000, vocab = 8000, train_docs = 4000;
  std::string threads_list = "1,2", work = "/tmp/biolm-bench-data";
  app.add_option("--docs", n_docs, "generated documents")->capture_default_str();
  app.add_option("--train-docs", train_docs, "documents the tokenizer is trained on")->capture_default_str();
  app.add_option("--vocab", vocab, "SentencePiece vocabulary size")->capture_default_str();
  app.add_option("--threads", threads_list, "worker counts for tokenize_to_shards, comma separated")->capture_default_str();
  app.add_option("--work", work, "scratch directory for the tokenizer")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<int64_t> worker_counts;
  {
    std::stringstream ss(threads_list);
    for (std::string x; std::getline(ss, x, ',');) worker_counts.push_back(std::stoll(x));
  }
  const auto emit = [](json j) { std::cout << j.dump() << "\n" << std::flush; };

  const auto docs = make_corpus(n_docs, 1);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  const double mb = static_cast<double>(bytes) / 1e6;

  std::filesystem::create_directories(work);
  const auto train_file = std::filesystem::path(work) / "train.txt";
  {
    std::ofstream f(train_file);
    for (int64_t i = 0; i < std::min<int64_t>(train_docs, n_docs); ++i) f << docs[static_cast<size_t>(i)] << "\n";
  }
  biolm::tokenize::SentencePieceTrainOptions so;
  so.vocab_size = vocab;
  so.model_type = biolm::tokenize::SentencePieceModelType::Unigram;
  so.character_coverage = 1.0;
  auto t0 = Clock::now();
  const auto model_path = biolm::tokenize::train_sentencepiece({train_file}, so, std::filesystem::path(work) / "bench_sp");
  const double train_s = seconds_since(t0);
  const auto tok = biolm::tokenize::SentencePieceTokenizer::from_file(model_path);
  emit({{"case", "corpus"}, {"documents", n_docs}, {"mb", mb}, {"tokenizer", "sentencepiece-unigram"},
        {"vocab_size", tok->vocab_size()}, {"tokenizer_train_docs", std::min(train_docs, n_docs)},
        {"tokenizer_train_s", train_s}, {"hardware_threads", std::thread::hardware_concurrency()}});

  // Reference: plain SentencePiece, one thread.
  sentencepiece::SentencePieceProcessor spp;
  if (!spp.Load(model_path.string()).ok()) {
    std::cerr << "cannot load " << model_path << "\n";
    return 1;
  }
  double rss0 = reset_peak();
  int64_t spm_tokens = 0;
  std::vector<int> ids;
  t0 = Clock::now();
  for (const auto& d : docs) {
    ids.clear();
    if (!spp.Encode(d, &ids).ok()) return 1;
    spm_tokens += static_cast<int64_t>(ids.size());
  }
  const double spm_s = seconds_since(t0);
  const double spm_rate = mb / spm_s;
  emit({{"case", "spm_encode_loop"}, {"threads", 1}, {"seconds", spm_s}, {"mb_per_s", spm_rate}, {"tokens", spm_tokens},
        {"rss_before_mb", rss0}, {"peak_rss_mb", status_mb("VmHWM")}});

  // Our encode (ids + offsets + word ids), one thread.
  rss0 = reset_peak();
  int64_t our_tokens = 0;
  t0 = Clock::now();
  for (const auto& d : docs) our_tokens += static_cast<int64_t>(tok->encode(d, false).ids.size());
  const double our_s = seconds_since(t0);
  emit({{"case", "biolm_encode_loop"}, {"threads", 1}, {"seconds", our_s}, {"mb_per_s", mb / our_s},
        {"ratio_vs_spm_loop", (mb / our_s) / spm_rate}, {"tokens", our_tokens}, {"same_tokens_as_spm", our_tokens == spm_tokens},
        {"rss_before_mb", rss0}, {"peak_rss_mb", status_mb("VmHWM")}});

  for (const auto w : worker_counts) {
    biolm::data::ShardingOptions o;
    o.n_workers = w;
    o.tokens_per_shard = int64_t{1} << 22;
    o.add_special = false;
    o.word_starts = true;
    size_t i = 0;
    int64_t shards = 0;
    rss0 = reset_peak();
    t0 = Clock::now();
    const auto rep = biolm::data::tokenize_to_shards(
        [&](biolm::data::TextRecord& r) {
          if (i >= docs.size()) return false;
          r.text = docs[i];
          r.id = std::to_string(i++);
          return true;
        },
        *tok, o, [&](biolm::data::TokenShard&&) { ++shards; });
    const double s = seconds_since(t0);
    emit({{"case", "tokenize_to_shards"}, {"threads", w}, {"seconds", s}, {"mb_per_s", mb / s},
          {"mb_per_s_per_core", mb / s / static_cast<double>(w)}, {"ratio_vs_spm_loop", mb / s / static_cast<double>(w) / spm_rate},
          {"tokens", rep.n_tokens}, {"shards", shards}, {"rss_before_mb", rss0}, {"peak_rss_mb", status_mb("VmHWM")}});
  }
  return 0;
#endif
}

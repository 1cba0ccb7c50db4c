// `biolm data stats`: counts over task and corpus files, one JSON object on stdout.
// `biolm data prepare`: tokenizes corpus files in parallel into HDF5 token shards plus
// manifest.json (data::prepare_shards), the input of `biolm pretrain` with `shards: DIR`.
#include <iostream>

#include "biolm/config.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/data/shards.h"
#include "biolm/data/stats.h"
#include "biolm/tokenize/tokenizer.h"
#include "command.h"

namespace {

void setup(CLI::App& sub) {
  sub.require_subcommand(1);
  auto* stats = sub.add_subcommand("stats", "count documents/examples, sentences, tokens, entities, labels");
  static std::string format;
  static std::vector<std::string> paths;
  static bool skip_bad = false;
  std::string names;
  for (const auto& f : biolm::data::stats_formats()) names += (names.empty() ? "" : ", ") + f;
  stats->add_option("--format", format, "one of: " + names)->required();
  stats->add_option("paths", paths, "files (a directory for brat)")->required();
  stats->add_flag("--skip-bad", skip_bad, "skip malformed records (counted, listed in the output) instead of stopping");
  stats->callback([] {
    biolm::data::ReaderOptions opts;
    if (skip_bad) opts.on_error = biolm::data::OnError::Skip;
    std::cout << biolm::data::dataset_stats(format, paths, opts).dump(2) << "\n";
  });

  auto* prep = sub.add_subcommand("prepare", "tokenize a corpus into HDF5 token shards for `biolm pretrain`");
  static std::string tokenizer, prep_format, out_dir, text_field = "text";
  static std::vector<std::string> inputs;
  static int64_t threads = 0, shard_tokens = int64_t{1} << 24, min_tokens = 1;
  static bool word_starts = false, require_abstract = false;
  prep->add_option("--tokenizer", tokenizer, "tokenizer file or directory (vocab.txt, tokenizer.model, tokenizer.json)")->required();
  prep->add_option("--format", prep_format, "pubmed-xml | pmc-text | mimic-csv | text | text-blocks | jsonl")->required();
  prep->add_option("--out", out_dir, "output directory (shard_NNNNN.h5 + manifest.json)")->required();
  prep->add_option("--threads", threads, "tokenizer threads (0 = all cores)")->capture_default_str();
  prep->add_option("--shard-tokens", shard_tokens, "a shard closes before exceeding this many tokens")->capture_default_str();
  prep->add_option("--min-tokens", min_tokens, "shorter documents are left out (counted)")->capture_default_str();
  prep->add_option("--text-field", text_field, "JSONL: the field holding the text")->capture_default_str();
  prep->add_flag("--word-starts", word_starts, "store word starts (needed for whole-word masking)");
  prep->add_flag("--require-abstract", require_abstract, "PubMed: skip citations without an abstract");
  prep->add_option("inputs", inputs, "corpus files")->required()->check(CLI::ExistingFile);
  prep->callback([] {
#if BIOLM_HAS_HDF5
    using biolm::ConfigError;
    BIOLM_CHECK(threads >= 0, ConfigError, "--threads", "must be >= 0");
    BIOLM_CHECK(shard_tokens >= 1, ConfigError, "--shard-tokens", "must be >= 1");
    BIOLM_CHECK(min_tokens >= 1, ConfigError, "--min-tokens", "must be >= 1");
    const auto format = biolm::data::parse_corpus_format(prep_format);
    std::shared_ptr<const biolm::tokenize::Tokenizer> tok = biolm::tokenize::load_tokenizer(tokenizer);
    biolm::data::PrepareOptions o;
    o.out_dir = out_dir;
    o.sharding.n_workers = threads;
    o.sharding.tokens_per_shard = shard_tokens;
    o.sharding.min_tokens = min_tokens;
    o.sharding.word_starts = word_starts;
    o.corpus.jsonl.text_field = text_field;
    o.corpus.require_abstract = require_abstract;
    std::vector<std::pair<biolm::data::CorpusFormat, std::string>> in;
    for (const auto& p : inputs) in.emplace_back(format, p);
    const auto rep = biolm::data::prepare_shards(in, tok, o);
    const nlohmann::json out = {{"out", out_dir},
                                {"documents", rep.sharding.n_documents},
                                {"tokens", rep.sharding.n_tokens},
                                {"text_bytes", rep.sharding.n_text_bytes},
                                {"shards", rep.sharding.n_shards},
                                {"too_short", rep.sharding.n_too_short},
                                {"records_skipped", rep.read.skipped},
                                {"word_starts", word_starts},
                                {"tokenizer_kind", tok->kind()},
                                {"tokenizer_fingerprint", tok->fingerprint()}};
    std::cout << out.dump() << "\n";
#else
    std::cerr << "biolm: error: data prepare writes HDF5 shards, and this biolm was built without HDF5 "
                 "(install libhdf5-dev and reconfigure)\n";
    throw biolm::cli::ExitRequest{biolm::cli::kFailure};
#endif
  });
}

const bool registered = biolm::cli::register_command({"data", "inspect and prepare data sets", setup});

}  // namespace

// `biolm data stats`: counts over task and corpus files, one JSON object on stdout.
// (`biolm data prepare` needs a tokenizer loader; see docs/data.md: it calls
// biolm::data::prepare_shards with the loaded tokenizer.)
#include <iostream>

#include "biolm/data/stats.h"
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
}

const bool registered = biolm::cli::register_command({"data", "inspect and prepare data sets", setup});

}  // namespace

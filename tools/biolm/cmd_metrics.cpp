// biolm metrics TASK --gold FILE --pred FILE: reference-matching metrics from files, one JSON
// object on stdout; biolm metrics --cases FILE.jsonl: many cases in one call, one JSON line per
// case (formats and keys: docs/eval.md).
#include <iostream>
#include <memory>

#include "biolm/core/error.h"
#include "biolm/eval/metric_files.h"
#include "command.h"

namespace {

struct MetricsArgs {
  std::string task;
  std::string gold, pred, cases;
  std::string mode = "default";
  std::string scheme = "IOB2";
  std::string negative_label = "false";
  std::string zero_division = "0";
  bool rouge_stemmer = false;
  std::string squad_version = "1.1";
  std::string na_probs;
  double na_prob_thresh = 1.0;
  int64_t bootstrap = 0;
  uint64_t seed = 0;
};

void run_cases(const std::string& path) {
  const auto results = biolm::eval::metrics_for_cases(path);
  int64_t failed = 0;
  for (const auto& r : results) {
    std::cout << r.dump() << "\n";
    failed += r.contains("error") ? 1 : 0;
  }
  std::cout.flush();
  if (failed > 0) throw biolm::cli::ExitRequest{biolm::cli::kDataError};
}

void run(const MetricsArgs& a) {
  using namespace biolm::eval;
  if (!a.cases.empty()) {
    if (!a.task.empty() || !a.gold.empty() || !a.pred.empty()) {
      throw biolm::ConfigError("metrics.cases", "--cases takes no TASK, --gold or --pred (each case names its own)");
    }
    run_cases(a.cases);
    return;
  }
  if (a.task.empty() || a.gold.empty() || a.pred.empty()) {
    throw biolm::ConfigError("metrics", "give TASK --gold FILE --pred FILE, or --cases FILE.jsonl");
  }
  FileMetricOptions o;
  o.ner.mode = parse_ner_mode(a.mode);
  o.ner.scheme = parse_ner_scheme(a.scheme);
  o.zero_division = parse_zero_division(a.zero_division);
  o.ner.zero_division = o.zero_division;
  o.negative_label = a.negative_label;
  o.rouge_stemmer = a.rouge_stemmer;
  o.squad_version = parse_squad_version(a.squad_version);
  if (!a.na_probs.empty()) {
    if (o.squad_version != SquadVersion::V2_0) throw biolm::ConfigError("metrics.na_probs", "needs --squad-version 2.0");
    o.na_probs = a.na_probs;
  }
  o.na_prob_thresh = a.na_prob_thresh;
  if (a.bootstrap > 0) o.bootstrap = BootstrapOptions{a.bootstrap, a.seed, 0.95};
  std::cout << file_metrics(parse_metric_task(a.task), a.gold, a.pred, o).dump(2) << "\n";
}

const bool registered = biolm::cli::register_command(
    {"metrics", "compute metrics (ner|cls|corr|text|qa|re) from gold and prediction files, or a JSONL batch",
     [](CLI::App& sub) {
       auto a = std::make_shared<MetricsArgs>();
       sub.add_option("task", a->task, "ner | cls | corr | text | qa | re");
       sub.add_option("--gold", a->gold, "gold file");
       sub.add_option("--pred", a->pred, "prediction file");
       sub.add_option("--cases", a->cases,
                      "JSONL file of cases {\"task\",\"gold\",\"pred\",options...}: one JSON result line each "
                      "(docs/eval.md); exit 3 when any case is refused");
       sub.add_option("--mode", a->mode, "ner: default (conlleval-like) | strict")->capture_default_str();
       sub.add_option("--scheme", a->scheme, "ner strict mode: IOB2 | IOBES")->capture_default_str();
       sub.add_option("--negative-label", a->negative_label, "re: the no-relation label")
           ->capture_default_str();
       sub.add_option("--zero-division", a->zero_division, "value of 0/0 in P/R/F1: 0 | 1 | nan | warn (= 0)")
           ->capture_default_str();
       sub.add_flag("--rouge-stemmer", a->rouge_stemmer, "text: ROUGE-L with rouge-score's Porter stemmer");
       sub.add_option("--squad-version", a->squad_version, "qa: official SQuAD evaluation 1.1 | 2.0")
           ->capture_default_str();
       sub.add_option("--na-probs", a->na_probs, "qa v2.0: no-answer probabilities, one per line (adds best_*)");
       sub.add_option("--na-prob-thresh", a->na_prob_thresh, "qa v2.0: predict no answer when na_prob > this")
           ->capture_default_str();
       sub.add_option("--bootstrap", a->bootstrap, "resamples for 95% intervals (0 = none)")
           ->capture_default_str();
       sub.add_option("--seed", a->seed, "bootstrap seed")->capture_default_str();
       sub.callback([a] { run(*a); });
     }});

}  // namespace

// biolm metrics TASK --gold FILE --pred FILE: reference-matching metrics from files, one JSON
// object on stdout (formats and keys: docs/eval.md).
#include <iostream>
#include <memory>

#include "biolm/core/error.h"
#include "biolm/eval/metric_files.h"
#include "command.h"

namespace {

struct MetricsArgs {
  std::string task;
  std::string gold, pred;
  std::string mode = "default";
  std::string scheme = "IOB2";
  std::string negative_label = "false";
  std::string zero_division = "0";
  int64_t bootstrap = 0;
  uint64_t seed = 0;
};

biolm::eval::ZeroDivision parse_zero_division(const std::string& s) {
  if (s == "0") return biolm::eval::ZeroDivision::Zero;
  if (s == "1") return biolm::eval::ZeroDivision::One;
  if (s == "nan") return biolm::eval::ZeroDivision::NaN;
  throw biolm::ConfigError("metrics.zero_division", "expected 0|1|nan, found \"" + s + "\"");
}

void run(const MetricsArgs& a) {
  using namespace biolm::eval;
  FileMetricOptions o;
  o.ner.mode = parse_ner_mode(a.mode);
  o.ner.scheme = parse_ner_scheme(a.scheme);
  o.zero_division = parse_zero_division(a.zero_division);
  o.ner.zero_division = o.zero_division;
  o.negative_label = a.negative_label;
  if (a.bootstrap > 0) o.bootstrap = BootstrapOptions{a.bootstrap, a.seed, 0.95};
  std::cout << file_metrics(parse_metric_task(a.task), a.gold, a.pred, o).dump(2) << "\n";
}

const bool registered = biolm::cli::register_command(
    {"metrics", "compute metrics (ner|cls|corr|text|qa|re) from gold and prediction files",
     [](CLI::App& sub) {
       auto a = std::make_shared<MetricsArgs>();
       sub.add_option("task", a->task, "ner | cls | corr | text | qa | re")->required();
       sub.add_option("--gold", a->gold, "gold file")->required();
       sub.add_option("--pred", a->pred, "prediction file")->required();
       sub.add_option("--mode", a->mode, "ner: default (conlleval-like) | strict")->capture_default_str();
       sub.add_option("--scheme", a->scheme, "ner strict mode: IOB2 | IOBES")->capture_default_str();
       sub.add_option("--negative-label", a->negative_label, "re: the no-relation label")
           ->capture_default_str();
       sub.add_option("--zero-division", a->zero_division, "value of 0/0 in P/R/F1: 0 | 1 | nan")
           ->capture_default_str();
       sub.add_option("--bootstrap", a->bootstrap, "resamples for 95% intervals (0 = none)")
           ->capture_default_str();
       sub.add_option("--seed", a->seed, "bootstrap seed")->capture_default_str();
       sub.callback([a] { run(*a); });
     }});

}  // namespace

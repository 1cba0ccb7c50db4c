// biolm report --runs DIR... --out DIR: report.md (table with intervals), report.json and
// curves.svg from each run's results.json and metrics.jsonl (docs/eval.md).
#include <iostream>
#include <memory>

#include "biolm/eval/report.h"
#include "command.h"

namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out;
};

const bool registered = biolm::cli::register_command(
    {"report", "compare runs: markdown table with intervals, JSON, SVG curves", [](CLI::App& sub) {
       auto a = std::make_shared<ReportArgs>();
       sub.add_option("--runs", a->runs, "run directories (results.json and/or metrics.jsonl)")
           ->required()
           ->expected(1, -1);
       sub.add_option("--out", a->out, "output directory")->required();
       sub.callback([a] {
         std::vector<biolm::eval::RunResult> runs;
         for (const auto& dir : a->runs) runs.push_back(biolm::eval::load_run(dir));
         biolm::eval::write_report(runs, a->out);
         std::cout << biolm::eval::markdown_table(runs);
       });
     }});

}  // namespace

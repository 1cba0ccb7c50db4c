// biolm/eval/report.h: result reports: JSON with every number and its interval, a markdown
// table comparing runs, and an SVG plot of training / evaluation curves.
//
// Files read from a run directory:
//   results.json   {"name": "lora" (optional), "tasks": {TASK: METRICS}} where METRICS is an
//                  object whose numeric leaves are metrics (nested objects flatten to dotted
//                  names, "micro.f1"); a leaf may be a number, or {"value": x, "ci": [lo, hi]};
//                  a sibling "x_ci": [lo, hi] gives x's interval (the `biolm metrics` output
//                  can be pasted as METRICS). Keys "support", "n", "n_sentences", "bootstrap"
//                  and non-numeric leaves are not metrics. The single-task form
//                  {"name"?, "task": TASK, "metrics": METRICS, ...} (`biolm eval --out`) reads as
//                  {"tasks": {TASK: METRICS}}.
//   metrics.jsonl  one JSON object per line, with a numeric "step" and any other numeric
//                  keys (loss, lr, eval_*): each key becomes a curve over steps.
// Files written by write_report: report.json, report.md, curves.svg.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace biolm::eval {

struct MetricValue {
  double value = 0.0;
  std::optional<double> lower, upper;  ///< the interval, when known
};

/// task -> metric -> value, in insertion order of first appearance.
struct RunResult {
  std::string name;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, MetricValue>>>> tasks;
  /// key -> (step, value) points from metrics.jsonl
  std::map<std::string, std::vector<std::pair<double, double>>> curves;

  void set(const std::string& task, const std::string& metric, MetricValue value);
  const MetricValue* find(const std::string& task, const std::string& metric) const;
};

/// Flattens one task's metrics object (see the file comment). `source` names the file in errors.
std::vector<std::pair<std::string, MetricValue>> flatten_metrics(const nlohmann::json& metrics,
                                                                  const std::string& source);
/// Parses results.json content.
RunResult run_result_from_json(const nlohmann::json& j, const std::string& source);
nlohmann::json to_json(const RunResult& run);

/// metrics.jsonl -> curves. DataError "file:line" on a line that is not an object with "step".
std::map<std::string, std::vector<std::pair<double, double>>> read_metrics_jsonl(
    const std::filesystem::path& path);

/// A run directory: results.json and metrics.jsonl where present (at least one must be);
/// the name is results.json's "name" or the directory name. A path to a file reads that file
/// as results.json (named by its "name", else the file stem).
RunResult load_run(const std::filesystem::path& dir);

/// "0.812 [0.790, 0.835]" (or "0.812" without an interval), `digits` decimals.
std::string format_metric(const MetricValue& v, int digits = 3);
/// Rows = runs, columns = task/metric pairs in order of first appearance; "–" where missing.
std::string markdown_table(const std::vector<RunResult>& runs, int digits = 3);
/// One panel per curve key, one coloured line per run, shared legend. Self-contained SVG.
std::string curves_svg(const std::vector<RunResult>& runs);

/// Writes report.json, report.md (table + links) and curves.svg into out_dir (created).
void write_report(const std::vector<RunResult>& runs, const std::filesystem::path& out_dir);

}  // namespace biolm::eval

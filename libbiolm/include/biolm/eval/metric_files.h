// biolm/eval/metric_files.h: metrics computed from gold and prediction files (`biolm metrics`).
//
// File formats (UTF-8, '\n' or "\r\n" line ends; a final newline is optional):
//   ner   CoNLL: one token per line, whitespace-separated columns, the label last; a blank line
//         ends a sentence; "-DOCSTART-" lines are document separators and are skipped. Gold and
//         prediction must have the same sentences and token counts (and the same tokens where
//         both files carry a token column).
//   cls, re   one label per line (surrounding whitespace trimmed; an empty label is an error).
//   corr  one number per line.
//   text  one text per line (an empty line is an empty hypothesis / reference).
//   qa    one answer per line; a gold line may hold several answers separated by " ||| ".
// Gold and prediction must have the same number of lines (an error names both files).
// Malformed input throws DataError "file:line: field 'f': ...".
//
// Output: one JSON object (keys per task in docs/eval.md). With bootstrap options every
// metric x gains a sibling "x_ci": [lower, upper] (percentile interval, see bootstrap.h;
// resampling unit = line, or sentence for ner) and a "bootstrap" object records N, seed,
// confidence. NaN (an undefined correlation) is written as null.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "biolm/eval/bootstrap.h"
#include "biolm/eval/classification.h"
#include "biolm/eval/ner.h"

namespace biolm::eval {

enum class MetricTask { Ner, Cls, Corr, Text, Qa, Re };

/// "ner|cls|corr|text|qa|re"; ConfigError("metrics.task") otherwise.
MetricTask parse_metric_task(std::string_view name);
/// "default|strict"; "IOB2|IOBES" (case-insensitive); ConfigError otherwise.
NerMode parse_ner_mode(std::string_view name);
NerScheme parse_ner_scheme(std::string_view name);

struct FileMetricOptions {
  NerOptions ner;
  ZeroDivision zero_division = ZeroDivision::Zero;  ///< cls and re
  std::string negative_label = "false";             ///< re: the "no relation" label (ChemProt)
  std::optional<BootstrapOptions> bootstrap;        ///< adds "<metric>_ci" intervals
};

/// Computes the task's metrics from the two files.
nlohmann::json file_metrics(MetricTask task, const std::filesystem::path& gold,
                            const std::filesystem::path& pred, const FileMetricOptions& options = {});

/// Lines of a text file without their line ends. IoError when it cannot be read.
std::vector<std::string> read_lines(const std::filesystem::path& path);

/// A CoNLL file: per sentence its tokens (empty when a line has one column), labels and the
/// 1-based line of each token.
struct ConllFile {
  std::vector<std::vector<std::string>> tokens;
  std::vector<std::vector<std::string>> labels;
  std::vector<std::vector<int64_t>> lines;
  bool has_tokens = true;  ///< every line had >= 2 columns
};
ConllFile read_conll(const std::filesystem::path& path);

/// Adds "<key>_ci": [lo, hi] next to every numeric metric of `result` (keys "support", "n",
/// "n_sentences" are counts and get none), recomputing `compute` on resampled indices.
void add_bootstrap_intervals(nlohmann::json& result, int64_t n,
                             const std::function<nlohmann::json(const std::vector<int64_t>&)>& compute,
                             const BootstrapOptions& options);

}  // namespace biolm::eval

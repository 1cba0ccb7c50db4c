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
//   qa    one answer per line; a gold line may hold several answers separated by " ||| "; with
//         SQuAD v2.0 an empty gold line is a question without answer, and --na-probs names a
//         file of no-answer probabilities, one number per line.
// Gold and prediction must have the same number of lines (an error names both files).
// Malformed input throws DataError "file:line: field 'f': ...".
//
// Output: one JSON object (keys per task in docs/eval.md). With bootstrap options every
// metric x gains a sibling "x_ci": [lower, upper] (percentile interval, see bootstrap.h;
// resampling unit = line, or sentence for ner) and a "bootstrap" object records N, seed,
// confidence. NaN (an undefined correlation, a macro average over no entity type) is written
// as null.
//
// Batches (`biolm metrics --cases FILE.jsonl`, metrics_for_cases): one JSON object per line,
//   {"id"?: any, "task": "ner|cls|re|corr|text|qa", "gold": [...], "pred": [...], options...}
// with gold / pred as arrays: ner sentences of tags; cls / re labels; corr numbers; text
// references (a string, or an array of references) and hypothesis strings; qa answers (a
// string, or an array of answers; [] = no answer under v2.0) and prediction strings. Options
// (same meaning as the command-line flags): "mode", "scheme", "zero_division" ("0"|"1"|"nan"|
// "warn" or 0|1), "labels" (cls: the labels to score, sklearn labels=), "negative_label",
// "rouge_stemmer" (bool), "squad_version" ("1.1"|"2.0"), "na_probs" (array), "na_prob_thresh",
// "bootstrap", "seed". Unknown keys are errors. Each case gives one output object (the keys
// file_metrics gives, plus its "id"), or {"line", "id"?, "error"} when it is refused.
#pragma once

#include <filesystem>
#include <functional>
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
enum class SquadVersion { V1_1, V2_0 };

/// "ner|cls|corr|text|qa|re"; ConfigError("metrics.task") otherwise.
MetricTask parse_metric_task(std::string_view name);
/// "default|strict"; "IOB2|IOBES" (case-insensitive); ConfigError otherwise.
NerMode parse_ner_mode(std::string_view name);
NerScheme parse_ner_scheme(std::string_view name);
/// "0|1|nan|warn" ("warn" = 0, as sklearn and seqeval yield); ConfigError otherwise.
ZeroDivision parse_zero_division(std::string_view name);
/// "1.1|2.0"; ConfigError otherwise.
SquadVersion parse_squad_version(std::string_view name);

struct FileMetricOptions {
  NerOptions ner;
  ZeroDivision zero_division = ZeroDivision::Zero;  ///< cls and re
  std::string negative_label = "false";             ///< re: the "no relation" label (ChemProt)
  std::vector<std::string> labels;                  ///< cls: labels to score (empty = all seen)
  bool rouge_stemmer = false;                       ///< text: rouge-score use_stemmer
  SquadVersion squad_version = SquadVersion::V1_1;  ///< qa: official script v1.1 or v2.0
  std::optional<std::filesystem::path> na_probs;    ///< qa v2.0: no-answer probabilities
  double na_prob_thresh = 1.0;                      ///< qa v2.0: predicted no-answer above it
  std::optional<BootstrapOptions> bootstrap;        ///< adds "<metric>_ci" intervals
};

/// Computes the task's metrics from the two files.
nlohmann::json file_metrics(MetricTask task, const std::filesystem::path& gold,
                            const std::filesystem::path& pred, const FileMetricOptions& options = {});

/// One case of a batch (the format above); throws biolm::Error when it is malformed.
nlohmann::json case_metrics(const nlohmann::json& c);
/// Every case of a JSONL file (blank lines skipped), in order; a refused case yields
/// {"line", "id"?, "error"}. A line that is not JSON throws DataError.
std::vector<nlohmann::json> metrics_for_cases(const std::filesystem::path& path);

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

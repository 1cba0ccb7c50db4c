// biolm/tasks/finetune_tasks.h: the task glue of fine-tuning and evaluation, shared by
// `biolm finetune`, `biolm eval` and the examples: task files -> Features rows (featurize), a
// task model's outputs -> per-example predictions (predict), predictions -> metrics with
// bootstrap 95 % intervals (score).
//
// Task families, their head and metrics (docs/tasks.md):
//   ner       CoNLL/BIO            TokenClassification     entity micro F1 (seqeval-style spans)
//   re        ChemProt JSONL       SequenceClassification  accuracy
//   nli       MedNLI JSONL         SequenceClassification  accuracy
//   sts       STS TSV              Regression              Pearson r
//   qa-span   SQuAD JSON           SpanQA                  exact_match, f1 (SQuAD v1.1 script)
//   mcqa      MedQA/MedMCQA JSONL  MultipleChoice          accuracy
//   pubmedqa  PubMedQA JSON        SequenceClassification  accuracy, macro_f1 (yes/no/maybe)
//   instruct  Alpaca / ShareGPT    CausalLM                rouge_l, bleu1 (greedy generation), loss
// Long inputs: ner and qa-span split into overlapping windows (overlap = doc_stride tokens) and
// re-assemble per example; the other tasks truncate to max_length.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "biolm/data/examples.h"
#include "biolm/data/features.h"
#include "biolm/data/tags.h"
#include "biolm/models/config.h"
#include "biolm/models/task_model.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/train/instruction.h"

namespace biolm::tasks {

enum class Task { Ner, Re, Nli, Sts, QaSpan, Mcqa, Pubmedqa, Instruct };

/// "ner", "re", "nli", "sts", "qa-span", "mcqa", "pubmedqa", "instruct" (this order).
std::vector<std::string> task_names();
std::string to_string(Task task);
/// ConfigError(key) naming the valid tasks otherwise.
Task parse_task(const std::string& name, const std::string& key = "task");
/// The head a task trains: TokenClassification, SequenceClassification, Regression, SpanQA,
/// MultipleChoice or CausalLM.
models::TaskKind head_kind(Task task);
/// The metric the trainer keeps the best checkpoint by ("f1", "accuracy", "pearson", "rouge_l").
std::string primary_metric(Task task);

/// Everything featurize/predict/score need to know about a task besides the tokenizer.
struct TaskSpec {
  Task task = Task::Ner;
  data::LabelMap labels;    ///< ner: O/B-/I- tags; re/nli/pubmedqa: class names; unused otherwise
  int64_t max_length = 128;  ///< tokens per row, specials included
  int64_t doc_stride = -1;   ///< ner, qa-span: tokens shared by consecutive windows; < 0: max_length / 4
  /// File format: mcqa "medqa" (default) | "medmcqa"; instruct "alpaca" (default) | "sharegpt".
  std::string format;
  train::PromptFormat prompt_format = train::PromptFormat::Alpaca;  ///< instruct
  bool packing = false;             ///< instruct training rows: pack examples into max_length rows
  int64_t max_answer_tokens = 30;   ///< qa-span: longest predicted span in tokens
  int64_t max_new_tokens = 32;      ///< instruct: generation budget per held-out example
  int64_t batch_size = 32;          ///< predict()
};

/// Label names a task trains on, read from its training file where they vary: ner the entity
/// types (sorted), re the relation labels (sorted); nli entailment/neutral/contradiction;
/// pubmedqa yes/no/maybe; none for sts, qa-span, mcqa and instruct.
std::vector<std::string> label_names(const TaskSpec& spec, const std::string& train_path);
/// labels.size() for classification heads (ner counts its O/B-/I- tags), 1 for sts, 2 otherwise.
int64_t n_labels(const TaskSpec& spec);

/// A task file featurized. `rows` are model inputs (with their labels); the rest is what scoring
/// needs per example.
struct TaskData {
  std::vector<data::Features> rows;
  std::vector<data::NerSentence> sentences;      ///< ner
  std::vector<std::string> gold_labels;          ///< re, nli, pubmedqa
  std::vector<double> gold_scores;               ///< sts
  std::vector<int64_t> gold_choices;             ///< mcqa (0-based)
  std::vector<data::SpanQaExample> qa_examples;  ///< qa-span (context and gold answers)
  std::vector<std::vector<int64_t>> prompts;     ///< instruct: tokens up to the last response
  std::vector<std::string> references;           ///< instruct: the last response text
  std::vector<data::Features> loss_rows;         ///< instruct: one unpacked row per example
  int64_t n_examples() const;
};

/// Reads `path` with the task's reader and featurizes it. Unknown labels are a DataError naming
/// the file and record.
TaskData featurize(const TaskSpec& spec, const tokenize::Tokenizer& tok, const std::string& path);

/// Per-example (per-row for ner) outputs of a model.
struct Predictions {
  std::vector<std::vector<int64_t>> token_preds;  ///< ner: argmax per token, one list per row
  std::vector<int64_t> classes;                   ///< re, nli, pubmedqa, mcqa
  std::vector<double> scores;                     ///< sts
  std::vector<std::string> texts;                 ///< qa-span answers, instruct generations
  std::vector<double> loss_sum;                   ///< instruct: summed response-token loss
  std::vector<int64_t> loss_tokens;               ///< instruct: response tokens counted
};

/// Runs the model (eval mode, no grad, batches of spec.batch_size on the model's device) and
/// decodes its outputs per example. instruct needs a CausalLM model.
Predictions predict(models::TaskModelImpl& model, const TaskSpec& spec, const tokenize::Tokenizer& tok,
                    const TaskData& data);

/// metric name -> {"value": v, "ci": [lo, hi]} (percentile bootstrap over examples, n_bootstrap
/// resamples, deterministic in seed); with n_bootstrap == 0, metric name -> value.
nlohmann::json score(const TaskSpec& spec, const TaskData& data, const Predictions& predictions,
                     int64_t n_bootstrap, uint64_t seed);

/// featurize + predict + score.
nlohmann::json evaluate_file(models::TaskModelImpl& model, const tokenize::Tokenizer& tok, const TaskSpec& spec,
                             const std::string& path, int64_t n_bootstrap, uint64_t seed);

/// A metric entry of score(): the value of {"value", "ci"} or the plain number.
double metric_value(const nlohmann::json& entry);

// ---- pieces, public for tests and other tools -------------------------------------------------

/// The answer text of one span-QA example from its windows: the best start <= end (end - start
/// < max_answer_tokens) over context tokens of every window (Features::offsets not (-1,-1)),
/// scored start_logits[s] + end_logits[e]; the context bytes from the start token's begin to the
/// end token's end. Logit lists may be longer than their window (padding is ignored). Empty when
/// no window has a context token.
std::string best_span(const std::vector<const data::Features*>& windows,
                      const std::vector<std::vector<float>>& start_logits,
                      const std::vector<std::vector<float>>& end_logits, const std::string& context,
                      int64_t max_answer_tokens);

/// Packs instruction rows (input_ids + labels) in order into rows of at most max_length tokens
/// with segment_ids 1, 2, ... per example; the first label of every example is ignored.
std::vector<data::Features> pack_rows(const std::vector<data::Features>& rows, int64_t max_length);

/// Converts a data::InstructionExample into the prompt renderer's conversation (a leading
/// system turn becomes Conversation::system). DataError naming the example on other roles.
train::Conversation to_conversation(const data::InstructionExample& ex);

}  // namespace biolm::tasks

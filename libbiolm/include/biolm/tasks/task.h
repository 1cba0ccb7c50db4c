// biolm/tasks/task.h: the Task interface. A task family (ner, re, nli, sts, qa-span, mcqa,
// pubmedqa, instruct) turns its files into model rows (featurize), a model's outputs into
// per-example predictions (predict), predictions into metrics with bootstrap 95 % intervals
// (score) and into a predictions file in the family's own format (write_predictions). One path
// scores a fine-tuned model, whether `biolm finetune`, `biolm eval` or a user's program calls it.
//
// Families, their head, metrics and predictions file (docs/tasks.md):
//   ner       CoNLL/BIO            TokenClassification     f1 (seqeval default), f1_strict   CoNLL: token gold pred
//   re        ChemProt JSONL       SequenceClassification  accuracy, micro_f1, macro_f1      one label per line
//   nli       MedNLI JSONL         SequenceClassification  accuracy                          one label per line
//   sts       STS TSV              Regression              pearson                           one score per line
//   qa-span   SQuAD JSON           SpanQA                  f1, exact_match (SQuAD v1.1)      SQuAD {id: answer} JSON
//   mcqa      MedQA/MedMCQA JSONL  MultipleChoice          accuracy                          one choice letter per line
//   pubmedqa  PubMedQA JSON        SequenceClassification  accuracy, macro_f1                one label per line
//   instruct  Alpaca / ShareGPT    CausalLM                rouge_l, bleu1, loss              JSONL {reference, generation}
// Long inputs: ner and qa-span split into overlapping windows (overlap = doc_stride tokens) and
// re-assemble per example; the other tasks truncate to max_length.
//
// Where things go: a new task family is ONE file in src/tasks/ (a Task subclass and a factory)
// plus one line in src/tasks/registry.cpp; its data/prediction types stay in that file unless
// tests or users need them (then a header here).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/data/features.h"
#include "biolm/data/tags.h"
#include "biolm/models/config.h"
#include "biolm/train/instruction.h"

namespace biolm::models {
class TaskModelImpl;
}
namespace biolm::tokenize {
class Tokenizer;
}

namespace biolm::tasks {

/// Everything featurize/predict/score need besides the tokenizer and the labels.
struct TaskOptions {
  int64_t max_length = 128;  ///< tokens per row, specials included
  int64_t doc_stride = -1;   ///< ner, qa-span: tokens shared by consecutive windows; < 0: max_length / 4
  /// data.format: mcqa "medqa" (default) | "medmcqa"; instruct "alpaca" (default) | "sharegpt".
  std::string format;
  bool cop_zero_based = false;     ///< mcqa medmcqa: files numbering the correct option 0..3 (data.cop_zero_based)
  /// pubmedqa (data.pubmedqa_setting), the two settings of the PubMedQA paper (Jin et al. 2019):
  /// "reasoning-required" (the default and BLURB's: question + CONTEXTS, the abstract without its
  /// conclusion) or "reasoning-free" (question + LONG_ANSWER, the conclusion itself).
  std::string pubmedqa_setting = "reasoning-required";
  train::PromptFormat prompt_format = train::PromptFormat::Alpaca;  ///< instruct
  bool packing = false;            ///< instruct training rows: pack examples into max_length rows
  int64_t max_answer_tokens = 30;  ///< qa-span: longest predicted span in tokens
  int64_t max_new_tokens = 32;     ///< instruct: generation budget per held-out example
  /// re: eval.negative_label, the "no relation" class left out of micro- and macro-F1 (the
  /// ChemProt / DDI convention of BLURB); unset: every label counts.
  std::optional<std::string> negative_label;
  int64_t batch_size = 32;         ///< predict()
};

/// A featurized task file: model rows (with labels) and, in the family's subclass, what scoring
/// needs per example.
struct TaskData {
  virtual ~TaskData() = default;
  std::vector<data::Features> rows;
  /// Examples scored (sentences, questions, ...); rows.size() unless the family windows or packs.
  virtual int64_t n_examples() const { return static_cast<int64_t>(rows.size()); }
};

/// A model's per-example outputs; each family has its own subclass.
struct Predictions {
  virtual ~Predictions() = default;
};

/// Adapter defaults when the config does not choose (as PEFT's for BERT/LLaMA-style models):
/// LoRA on the query and value projections; IA3 scales keys, values and the FFN's input to its
/// down projection (Liu et al. 2022); the task head trains in full next to any adapter (PEFT's
/// modules_to_save): a frozen, freshly initialised classifier cannot learn the labels.
struct AdapterDefaults {
  std::vector<std::string> lora_targets = {"**.q_proj", "**.v_proj"};
  std::vector<std::string> ia3_targets = {"**.k_proj", "**.v_proj"};
  std::vector<std::string> ia3_input_targets = {"**.mlp.down"};
  bool train_head = true;
};

class Task {
 public:
  explicit Task(TaskOptions options) : options_(std::move(options)) {}
  virtual ~Task() = default;

  virtual std::string name() const = 0;
  /// The head the task trains.
  virtual models::TaskKind head_kind() const = 0;
  /// The metric the trainer keeps the best checkpoint by ("f1", "accuracy", "pearson", "rouge_l").
  virtual std::string primary_metric() const = 0;
  /// The other metrics score() always reports (families may add per-type ones).
  virtual std::vector<std::string> secondary_metrics() const { return {}; }
  /// data.format values the family reads (the first is the default); empty: none.
  virtual std::vector<std::string> formats() const { return {}; }
  /// A decoder (causal LM) is needed.
  virtual bool needs_decoder() const { return false; }
  /// Prompt tuning (a soft prompt) is supported.
  virtual bool supports_prompt_tuning() const { return true; }
  virtual AdapterDefaults adapter_defaults() const { return {}; }

  /// Labels (class names, or for ner the O/B-/I- tags) the head predicts.
  const data::LabelMap& labels() const { return labels_; }
  void set_labels(data::LabelMap labels) { labels_ = std::move(labels); }
  /// Output units of the head: labels().size() for classification, 1 for sts, 2 otherwise.
  virtual int64_t n_labels() const { return labels_.size(); }
  const TaskOptions& options() const { return options_; }

  /// Reads `path` with the family's reader and featurizes it with the current labels. Unknown
  /// labels are a DataError naming the file and record.
  virtual std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const = 0;
  /// The training file: reads it ONCE, takes the labels from it where they vary (ner entity
  /// types, re relation labels; sorted), then featurizes it.
  virtual std::unique_ptr<TaskData> featurize_train(const tokenize::Tokenizer& tok, const std::string& path) {
    return featurize(tok, path);
  }
  /// Runs the model (eval mode, no grad, batches of options().batch_size on the model's device).
  virtual std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                               const TaskData& data) const = 0;
  /// metric name -> {"value": v, "ci": [lo, hi]} (percentile bootstrap over examples, n_bootstrap
  /// resamples, deterministic in seed); with n_bootstrap == 0, metric name -> value.
  virtual nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_bootstrap,
                               uint64_t seed) const = 0;
  /// The file name write_predictions' format suggests ("predictions.conll", ".json", ".txt", ".jsonl").
  virtual std::string predictions_file() const { return "predictions.txt"; }
  /// The predictions in the family's file format (see the table above), for official scorers.
  virtual void write_predictions(const TaskData& data, const Predictions& predictions,
                                 const std::string& path) const = 0;

  /// featurize + predict + score.
  nlohmann::json evaluate_file(models::TaskModelImpl& model, const tokenize::Tokenizer& tok, const std::string& path,
                               int64_t n_bootstrap, uint64_t seed) const;

 protected:
  TaskOptions options_;
  data::LabelMap labels_;
};

/// Registered family names, in registry order ("ner", "re", "nli", "sts", "qa-span", "mcqa",
/// "pubmedqa", "instruct", ...).
std::vector<std::string> task_names();
/// A family by name; ConfigError(key) naming the valid names otherwise.
std::unique_ptr<Task> make_task(const std::string& name, const TaskOptions& options = {},
                                const std::string& key = "task");

/// A metric entry of score(): the value of {"value", "ci"} or the plain number.
double metric_value(const nlohmann::json& entry);

[[noreturn]] void throw_wrong_type(const std::string& task);
/// The family's data/prediction subclass, or an Error naming the task when it is another's.
template <typename T, typename Base>
const T& as(const Base& base, const std::string& task) {
  const auto* p = dynamic_cast<const T*>(&base);
  if (p == nullptr) throw_wrong_type(task);
  return *p;
}

}  // namespace biolm::tasks

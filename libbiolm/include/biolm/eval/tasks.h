// biolm/eval/tasks.h: evaluation datasets for the harness, and fine-tuned encoder heads on the
// same datasets, so zero-/few-shot decoders and fine-tuned encoders are scored alike.
//
// Datasets (readers in data/tasks.h report bad records as file:line):
//   PubMedQA (ori_pqal.json)      -> McqaExample via pubmedqa_example: the CONTEXTS joined with
//                                    " " as the abstract, choices yes / no / maybe, LONG_ANSWER as
//                                    the chain-of-thought rationale.
//   MedQA-USMLE / MedMCQA JSONL   -> McqaExample: options in file order (A, B, ...), the MedMCQA
//                                    explanation as rationale. A record without a gold answer
//                                    (MedMCQA's unlabelled test split) is a DataError naming it.
//   free-text QA / generation     -> QaExample: JSONL records {"prompt" | "question",
//                                    "answer" (string) | "answers" (strings), "context"?}, or an
//                                    Alpaca file (JSON array or JSONL with "instruction") whose
//                                    user turn is the question and whose output is the answer.
// Encoder heads: a sequence_classification model whose labels are the choices (yes/no/maybe)
// reads [CLS] question [SEP] context [SEP] (data::pair_features); a multiple_choice model scores
// [CLS] question [SEP] option [SEP] per option (data::choice_features). Both report accuracy
// and macro F1 with bootstrap intervals, as evaluate_mcqa_loglik does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "biolm/data/examples.h"
#include "biolm/eval/bootstrap.h"
#include "biolm/eval/harness.h"
#include "biolm/models/task_model.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::eval {

/// PubMedQA records -> yes/no/maybe examples, CONTEXTS joined by `context_separator` (lm-eval's
/// pubmedqa task joins them by "\n"). DataError (record origin, field final_decision) for another
/// label.
std::vector<McqaExample> pubmedqa_examples(const std::vector<data::PubmedQaExample>& records,
                                           const std::string& context_separator = " ");
/// MedQA / MedMCQA records -> examples. DataError (record origin, field answer) for a record
/// without an answer or with fewer than two options.
std::vector<McqaExample> mcqa_examples(const std::vector<data::ChoiceExample>& records);

/// Reads a free-text QA file (see the file comment). DataError naming file:line and field on a
/// record without a question, without an answer, or with a non-string answer.
std::vector<QaExample> read_qa_examples(const std::string& path);
/// Alpaca / ShareGPT-style records -> QA: the first user turn (with any system turn before it)
/// is the question, the first assistant turn after it the answer.
std::vector<QaExample> qa_examples(const std::vector<data::InstructionExample>& records);

struct HeadEvalOptions {
  int64_t max_length = 512;  ///< tokens per (question, text) pair, truncated longest-first
  int64_t batch_size = 16;
  BootstrapOptions bootstrap;
};

struct HeadEvalResult {
  std::vector<std::vector<double>> scores;  ///< per example: the head's logit for each choice
  std::vector<int64_t> pred;                ///< argmax choice (first on ties)
  Interval acc, macro_f1;
};

/// A sequence-classification model over (question, context) pairs. `labels` are the model's
/// class names by id; every choice of every example must be one of them (ConfigError
/// "labels" otherwise), and the prediction is the best-scoring choice.
HeadEvalResult evaluate_pair_classifier(models::SequenceClassificationModelImpl& model,
                                        const tokenize::Tokenizer& tokenizer,
                                        const std::vector<std::string>& labels,
                                        const std::vector<McqaExample>& examples,
                                        const HeadEvalOptions& options = {});

/// A multiple-choice model: one score per option of each example.
HeadEvalResult evaluate_choice_model(models::MultipleChoiceModelImpl& model, const tokenize::Tokenizer& tokenizer,
                                     const std::vector<McqaExample>& examples,
                                     const HeadEvalOptions& options = {});

/// Accuracy and macro F1 (over choice indices) of pred vs each example's answer with
/// bootstrap intervals; pred -1 (unparsed) counts as wrong.
std::pair<Interval, Interval> choice_accuracy(const std::vector<McqaExample>& examples,
                                              const std::vector<int64_t>& pred, const BootstrapOptions& options);

}  // namespace biolm::eval

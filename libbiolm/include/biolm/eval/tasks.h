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
// Fine-tuned encoder heads on the same files are scored by their task family (tasks/task.h:
// pubmedqa, mcqa), one path for finetune, eval and a user's program; recipes/evaluate.h picks it.
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

}  // namespace biolm::eval

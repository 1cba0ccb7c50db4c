// biolm/tasks/qa_span.h: extractive question answering (SQuAD / emrQA; src/tasks/qa_span.cpp).
// A context longer than one window is split with doc_stride overlap; the answer is the best
// span over all windows, scored with the SQuAD v1.1 script's exact match and F1.
#pragma once

#include <string>
#include <vector>

#include "biolm/data/examples.h"
#include "biolm/tasks/task.h"

namespace biolm::tasks {

struct SpanQaData : TaskData {
  std::vector<data::SpanQaExample> examples;  ///< context and gold answers
  int64_t n_examples() const override { return static_cast<int64_t>(examples.size()); }
};

/// qa-span answers and instruct generations: one text per example.
struct TextPredictions : Predictions {
  std::vector<std::string> texts;
};

/// The answer text of one span-QA example from its windows: the best start <= end (end - start
/// < max_answer_tokens) over context tokens of every window (Features::offsets not (-1,-1)),
/// scored start_logits[s] + end_logits[e]; the context bytes from the start token's begin to the
/// end token's end. Logit lists may be longer than their window (padding is ignored). Empty when
/// no window has a context token.
std::string best_span(const std::vector<const data::Features*>& windows,
                      const std::vector<std::vector<float>>& start_logits,
                      const std::vector<std::vector<float>>& end_logits, const std::string& context,
                      int64_t max_answer_tokens);

}  // namespace biolm::tasks

// biolm/tasks/ner.h: the ner family's data and predictions (src/tasks/ner.cpp). Sentences are
// split into overlapping windows of max_length tokens; predictions go back to words, ids back to
// O/B-/I- tags, and are scored at the entity level as seqeval (default and strict IOB2 modes).
#pragma once

#include <vector>

#include "biolm/data/examples.h"
#include "biolm/tasks/task.h"

namespace biolm::tasks {

struct NerData : TaskData {
  std::vector<data::NerSentence> sentences;
  int64_t n_examples() const override { return static_cast<int64_t>(sentences.size()); }
};

struct TokenPredictions : Predictions {
  std::vector<std::vector<int64_t>> token_preds;  ///< argmax tag id per token, one list per row
};

/// Per sentence, the predicted tag of every word ("O" where no window covered the word).
std::vector<std::vector<std::string>> ner_word_tags(const Task& task, const NerData& data,
                                                    const TokenPredictions& predictions);

}  // namespace biolm::tasks

// biolm/tasks/instruct.h: instruction tuning of a decoder (Alpaca / ShareGPT;
// src/tasks/instruct.cpp): teacher-forced response loss and greedy generations scored with
// ROUGE-L and BLEU-1 against the last response.
#pragma once

#include <string>
#include <vector>

#include "biolm/data/examples.h"
#include "biolm/tasks/qa_span.h"
#include "biolm/train/instruction.h"

namespace biolm::tasks {

struct InstructData : TaskData {
  std::vector<std::vector<int64_t>> prompts;  ///< tokens up to the last response
  std::vector<std::string> references;        ///< the last response text
  std::vector<data::Features> loss_rows;      ///< one unpacked row per example
  int64_t n_examples() const override { return static_cast<int64_t>(references.size()); }
};

struct GenerationPredictions : TextPredictions {
  std::vector<double> loss_sum;       ///< summed response-token loss per example
  std::vector<int64_t> loss_tokens;   ///< response tokens counted per example
};

/// Converts a data::InstructionExample into the prompt renderer's conversation (a leading
/// system turn becomes Conversation::system). DataError naming the example on other roles.
train::Conversation to_conversation(const data::InstructionExample& ex);

}  // namespace biolm::tasks

// biolm/tasks/classification.h: data and predictions of the one-answer-per-example families:
// re, nli, pubmedqa (a class name), mcqa (a choice index), sts (a score). Their files:
// src/tasks/re.cpp, nli.cpp, pubmedqa.cpp, mcqa.cpp, sts.cpp.
#pragma once

#include <string>
#include <vector>

#include "biolm/tasks/task.h"

namespace biolm::tasks {

/// re, nli, pubmedqa: the gold class name per example.
struct LabelData : TaskData {
  std::vector<std::string> gold_labels;
};

/// mcqa: the gold choice (0-based) per example.
struct ChoiceData : TaskData {
  std::vector<int64_t> gold_choices;
};

/// sts: the gold similarity per example.
struct ScoreData : TaskData {
  std::vector<double> gold_scores;
};

/// re, nli, pubmedqa, mcqa: the argmax class (choice) per example.
struct ClassPredictions : Predictions {
  std::vector<int64_t> classes;
};

/// sts: the regression output per example.
struct ScorePredictions : Predictions {
  std::vector<double> scores;
};

}  // namespace biolm::tasks

// biolm/recipes/evaluate.h: evaluation as a library call, what `biolm eval` runs (docs/eval.md).
//
// One call scores a model directory on a data file, whichever kind of model it holds:
//   - a fine-tuned head (a `biolm finetune` model/ directory, or a Hugging Face directory with a
//     task head): scored through its task family (tasks/task.h) — the same featurizer,
//     prediction and metrics as finetune's test split, so `evaluate` reproduces finetune's test
//     numbers, and the predictions file is the family's own (CoNLL columns, SQuAD JSON, one label
//     or choice letter per line). The harness names map onto families: pubmedqa -> pubmedqa,
//     medqa / medmcqa -> mcqa with data.format medqa / medmcqa.
//   - a causal-LM decoder on pubmedqa | medqa | medmcqa | qa-gen: the zero-/few-shot harness
//     (eval/harness.h; log-likelihood or generation, shots, chain of thought), as lm-evaluation-
//     harness scores it (parity::harness). A decoder fine-tuned on instruct is scored by its task.
//
//   biolm::recipes::EvaluateConfig c;
//   c.model = "runs/ner/model"; c.task = "ner"; c.data = "test.conll"; c.predictions = "pred.conll";
//   const auto r = biolm::recipes::evaluate(c);   // r.result["metrics"]["f1"]["value"]
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace biolm::recipes {

struct EvaluateConfig {
  std::string model;  ///< a biolm model directory (model.json) or a Hugging Face directory (config.json)
  std::string task;   ///< a task family (tasks::task_names()) or a harness task: pubmedqa | medqa | medmcqa | qa-gen
  std::string data;   ///< the evaluation file
  std::string device = "cpu";
  uint64_t seed = 1234;        ///< bootstrap, shot draw and sampling
  int64_t bootstrap = 1000;    ///< resamples for the 95 % intervals (0: point values only)
  int64_t batch_size = 0;      ///< rows per forward pass; 0: finetune's (model directory) or 8
  int64_t max_length = 0;      ///< heads: tokens per row; 0: what finetune used, else the model's max_positions
  int64_t max_new_tokens = 0;  ///< generation length (instruct, generate mode); 0: finetune's, else 32
  std::string format;          ///< data.format of the family (mcqa medqa|medmcqa, ner conll|brat|pubtator, ...)
  bool cop_zero_based = false; ///< MedMCQA files numbering cop 0..3
  // Decoders (the harness) only:
  std::string mode;                  ///< loglik | generate (default loglik; generate for qa-gen and cot)
  int64_t shots = 0;                 ///< examples shown before each question
  std::string shots_from;            ///< file the shots are drawn from (default: the evaluation file, minus the example)
  std::string shot_sampler = "biolm";///< biolm | lm-eval
  std::string prompt_style = "biolm";///< pubmedqa: biolm | lm-eval
  std::string bos = "tokenizer";     ///< loglik: tokenizer | always | never
  std::string choice_format;         ///< letters | texts (default texts for pubmedqa, letters otherwise)
  bool cot = false;                  ///< chain of thought (generate)
  int64_t limit = 0;                 ///< the first N examples (0: all)
  double temperature = 0.0;          ///< 0: greedy
  // Output:
  std::string name;         ///< row name in reports (default: model directory + setting)
  std::string out;          ///< write the result JSON here (read by `biolm report`)
  std::string predictions;  ///< write the predictions here (the family's format; JSONL per example for the harness)
};

struct EvaluateResult {
  nlohmann::json result;  ///< name, model, model_kind, source, task, mode, seed, bootstrap, n, metrics, ...
};

/// Checks the whole config first (every problem in one ConfigError naming the keys), then loads
/// the model and scores it. Files are written atomically.
EvaluateResult evaluate(const EvaluateConfig& config);

}  // namespace biolm::recipes

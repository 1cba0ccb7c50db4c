// biolm/recipes/pretrain.h: pretraining as a library call, what `biolm pretrain` runs: masked-LM
// (BERT / Megatron-BERT, as GatorTron) or causal-LM pretraining, from scratch or continued from
// a model.init directory.
//   corpus files (read, tokenized in parallel into in-memory shards) or a shard directory from
//   `biolm data prepare` -> tokenizer (given, the init directory's, or trained on the corpus:
//   WordPiece or SentencePiece) -> packed sequences of seq_len tokens -> held-out validation
//   sequences -> loader with MLM masking / CLM targets -> trainer (resumable) -> validation loss
//   before and after -> <output>/model/ (io::save_model_dir) and results.json.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "biolm/data/corpus.h"
#include "biolm/data/collate.h"
#include "biolm/train/trainer.h"

namespace biolm::recipes {

/// tokenizer.train: a vocabulary trained on the corpus.
struct TokenizerTrainConfig {
  std::string kind = "wordpiece";  ///< wordpiece | sentencepiece-unigram | sentencepiece-bpe
  int64_t vocab_size = 8000;
  bool lowercase = true;
};

/// The pretrain YAML tree, read and checked (docs/cli.md "biolm pretrain").
struct PretrainConfig {
  bool mlm = true;  ///< objective: mlm | clm
  uint64_t seed = 13;
  std::string output = "runs/pretrain";
  std::string device = "cpu";
  int64_t seq_len = 128;
  int64_t threads = 0;                          ///< tokenizing workers, 0 = all cores
  std::optional<std::string> shards;            ///< a `biolm data prepare` directory
  std::optional<data::CorpusFormat> corpus_format;
  std::vector<std::string> corpus_paths;
  data::CorpusOptions corpus_options;
  std::optional<std::string> tokenizer_path;
  std::optional<TokenizerTrainConfig> tokenizer_train;
  data::MlmOptions mlm_options;                 ///< mask_prob, whole_word (ids filled from the tokenizer)
  double val_fraction = 0.05;
  int64_t val_max_sequences = 256;
  int64_t batch_size = 16;
  nlohmann::json model = nlohmann::json::object();  ///< model section (init, preset, shape keys)
  nlohmann::json train = nlohmann::json::object();  ///< train section without batch_size
  nlohmann::json tree;                              ///< the whole config, written as config.yaml
};

/// Reads and checks the whole tree before any work (ConfigError naming the key path).
PretrainConfig pretrain_config_from_json(const nlohmann::json& tree);

struct PretrainHooks {
  std::function<void(const train::ProgressEvent&)> progress;
  std::function<void(int64_t step, const train::Metrics& validation)> eval;
  std::function<void(const train::StepInfo&)> step;
};

struct PretrainResult {
  nlohmann::json results;  ///< what results.json holds
  train::Status status = train::Status::Completed;
  std::string model_dir;
};

PretrainResult pretrain(const PretrainConfig& config, const PretrainHooks& hooks = {});

}  // namespace biolm::recipes

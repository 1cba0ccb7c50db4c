// examples/sts_finetune.cpp: clinical / biomedical sentence similarity (BIOSSES, n2c2-2019 STS
// style: two sentences, a score in [0, 5]) as regression on the pooled [CLS] vector of the pair,
// through the library's fine-tuning recipe (biolm/recipes/finetune.h). Metrics: Pearson (the
// usual headline) and Spearman correlation with the gold scores.
//
//   tokenizer (WordPiece trained on a corpus) -> the sts task's reader and featurizer ([CLS] a
//   [SEP] b [SEP], token_type_ids 0 / 1, the score as the target) -> Loader -> regression model
//   (one output, MSE) -> Trainer -> Pearson / Spearman -> <output>/model/
//
// Run from the repository root:  ./build/bin/example_sts_finetune [key=value ...]
// Prints one JSON line: {"example":"sts_finetune","pearson":...,"spearman":...,"steps":...,"model_dir":...}
#include "biolm/recipes/finetune.h"
#include "example_args.h"

using namespace biolm;

nlohmann::json run(const example::Args& args) {
  // examples/configs/sts_demo.yaml as a tree: the common sections from the arguments, then a
  // tiny encoder with a one-output regression head (the task picks the head) trained in full.
  auto tree = example::finetune_tree(args, "sts");
  tree["model"] = {{"preset", "tiny-encoder"}, {"hidden_size", 64}, {"ffn_size", 128},
                   {"hidden_dropout", 0.0}, {"attention_dropout", 0.0}};
  tree["peft"] = {{"method", "full"}};
  const auto result = recipes::finetune(recipes::finetune_config_from_json(tree));
  const auto& m = result.results["tasks"]["sts"];
  return {{"example", "sts_finetune"}, {"steps", result.results["steps"]}, {"pearson", m["pearson"]},
          {"spearman", m["spearman"]}, {"model_dir", result.model_dir}};
}

int main(int argc, char** argv) {
  return example::run_main(argc, argv, "sts_finetune",
                           {{"train", "data/sts/train.tsv"}, {"test", "data/sts/test.tsv"},
                            {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_sts"},
                            {"vocab_size", "1200"}, {"max_length", "64"}, {"steps", "300"},
                            {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                           "Sentence-similarity regression on a tiny encoder; prints Pearson and Spearman.", run);
}

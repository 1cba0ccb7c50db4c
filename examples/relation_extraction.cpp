// examples/relation_extraction.cpp: ChemProt-style relation classification with a tiny encoder,
// full fine-tuning, through the library's fine-tuning recipe (biolm/recipes/finetune.h). Each
// sentence marks its two arguments (`<< e1 >>`, `[[ e2 ]]`); the encoder reads the marked
// sentence and the pooled [CLS] vector is classified into a relation type or the negative class.
// Metric: micro-F1 over the positive relation types only (the ChemProt / DDI convention of
// BLURB, eval.negative_label), and accuracy.
//
//   tokenizer (WordPiece trained on a corpus) -> the re task's reader and featurizer ([CLS]
//   marked sentence [SEP]; the markers are ordinary punctuation to WordPiece) -> Loader ->
//   sequence-classification model -> Trainer -> micro-F1 without the negative class -> <output>/model/
//
// Run from the repository root:  ./build/bin/example_relation_extraction [key=value ...]
// Prints one JSON line: {"example":"relation_extraction","micro_f1":...,"accuracy":...,"steps":...,"model_dir":...}
#include "biolm/recipes/finetune.h"
#include "example_args.h"

using namespace biolm;

nlohmann::json run(const example::Args& args) {
  // examples/configs/re_demo.yaml as a tree: the common sections from the arguments, then the
  // model (the tiny-encoder preset widened a little) and full fine-tuning.
  auto tree = example::finetune_tree(args, "re");
  tree["model"] = {{"preset", "tiny-encoder"}, {"hidden_size", 64}, {"ffn_size", 128},
                   {"hidden_dropout", 0.0}, {"attention_dropout", 0.0}};
  tree["peft"] = {{"method", "full"}};
  // Predicting the negative class earns nothing; missing a gold negative costs nothing.
  tree["eval"]["negative_label"] = args.str("negative_label");
  const auto result = recipes::finetune(recipes::finetune_config_from_json(tree));
  const auto& m = result.results["tasks"]["re"];
  return {{"example", "relation_extraction"}, {"steps", result.results["steps"]}, {"micro_f1", m["micro_f1"]},
          {"accuracy", m["accuracy"]}, {"negative_label", args.str("negative_label")},
          {"model_dir", result.model_dir}};
}

int main(int argc, char** argv) {
  return example::run_main(argc, argv, "relation_extraction",
                           {{"train", "data/re/train.jsonl"}, {"test", "data/re/test.jsonl"},
                            {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_re"},
                            {"negative_label", "NONE"}, {"vocab_size", "1200"}, {"max_length", "64"},
                            {"steps", "300"}, {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                           "Relation classification with entity markers; prints micro-F1 without the\n"
                           "negative class.",
                           run);
}

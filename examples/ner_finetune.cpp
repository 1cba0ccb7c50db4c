// examples/ner_finetune.cpp: named-entity recognition (CoNLL, BIO tags) with a tiny encoder,
// full fine-tuning, entity-level F1 as seqeval computes it, through the library's fine-tuning
// recipe (biolm/recipes/finetune.h, docs/recipes.md):
//
//   tokenizer (WordPiece trained on a corpus) -> the ner task's reader and featurizer (word
//   pieces, labels on each word's first piece, long sentences in windows) -> Loader -> token-
//   classification model -> Trainer -> word-level tags -> entity F1 -> <output>/model/
//
// Run from the repository root:  ./build/bin/example_ner_finetune [key=value ...]  (--help lists them)
// Prints one JSON line: {"example":"ner_finetune","f1":...,"f1_strict":...,"steps":...,"model_dir":...}
#include "biolm/recipes/finetune.h"
#include "example_args.h"

using namespace biolm;

nlohmann::json run(const example::Args& args) {
  // The tree a YAML config gives `biolm finetune` (examples/configs/ner_demo.yaml): the common
  // sections from the arguments (example_args.h), then the model and the method.
  auto tree = example::finetune_tree(args, "ner");
  // The tiny-encoder preset (BERT layout, post-LN) widened a little; full fine-tuning (see
  // pubmedqa_lora_decoder.cpp for LoRA).
  tree["model"] = {{"preset", "tiny-encoder"}, {"hidden_size", 64}, {"ffn_size", 128},
                   {"hidden_dropout", 0.0}, {"attention_dropout", 0.0}};
  tree["peft"] = {{"method", "full"}};
  const auto result = recipes::finetune(recipes::finetune_config_from_json(tree));
  const auto& m = result.results["tasks"]["ner"];
  return {{"example", "ner_finetune"}, {"steps", result.results["steps"]}, {"f1", m["f1"]},
          {"f1_strict", m["f1_strict"]}, {"model_dir", result.model_dir}};
}

int main(int argc, char** argv) {
  return example::run_main(argc, argv, "ner_finetune",
                           {{"train", "data/ner/train.conll"}, {"test", "data/ner/test.conll"},
                            {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_ner"},
                            {"vocab_size", "1200"}, {"max_length", "48"}, {"steps", "300"},
                            {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                           "NER fine-tuning of a tiny encoder on CoNLL/BIO data; prints entity F1 as JSON.", run);
}

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
#include <iostream>
#include <nlohmann/json.hpp>

#include "biolm/core/host_memory.h"
#include "biolm/recipes/finetune.h"
#include "example_args.h"

using namespace biolm;

int run(const example::Args& args) {
  // The same tree a YAML config gives `biolm finetune` (examples/configs/ner_demo.yaml).
  const nlohmann::json tree = {
      {"task", "ner"},
      {"seed", args.integer("seed")},
      {"output", args.str("output")},
      {"tokenizer", {{"train_on", {args.str("corpus")}}, {"vocab_size", args.integer("vocab_size")}}},
      {"data", {{"train", args.str("train")}, {"dev", args.str("test")}, {"max_length", args.integer("max_length")}}},
      // The tiny-encoder preset (BERT layout, post-LN) widened a little; full fine-tuning (see
      // pubmedqa_lora_decoder.cpp for LoRA).
      {"model", {{"preset", "tiny-encoder"}, {"hidden_size", 64}, {"ffn_size", 128},
                 {"hidden_dropout", 0.0}, {"attention_dropout", 0.0}}},
      {"peft", {{"method", "full"}}},
      {"train", {{"max_steps", args.integer("steps")}, {"batch_size", args.integer("batch_size")},
                 {"lr", args.real("lr")}, {"schedule", "linear"}, {"warmup_steps", args.integer("steps") / 10},
                 {"eval_every", args.integer("steps")}, {"log_every", 50}}},
      {"eval", {{"bootstrap", 0}}}};
  const auto result = recipes::finetune(recipes::finetune_config_from_json(tree));
  const auto& m = result.results["tasks"]["ner"];
  std::cout << nlohmann::json{{"example", "ner_finetune"}, {"steps", result.results["steps"]},
                              {"f1", m["f1"]}, {"f1_strict", m["f1_strict"]}, {"model_dir", result.model_dir}}
                   .dump()
            << "\n";
  return 0;
}

int main(int argc, char** argv) {
  biolm::core::tune_host_allocator();  // reuse freed tensor memory instead of faulting it in again
  try {
    const example::Args args(argc, argv,
                             {{"train", "data/ner/train.conll"}, {"test", "data/ner/test.conll"},
                              {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_ner"},
                              {"vocab_size", "1200"}, {"max_length", "48"}, {"steps", "300"},
                              {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                             "NER fine-tuning of a tiny encoder on CoNLL/BIO data; prints entity F1 as JSON.");
    return args.help() ? 0 : run(args);
  } catch (const std::exception& e) {
    std::cerr << "example_ner_finetune: error: " << e.what() << "\n";
    return 1;
  }
}

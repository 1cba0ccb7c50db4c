// examples/pubmedqa_lora_decoder.cpp: PubMedQA (question + abstract -> yes / no / maybe) with a
// tiny LLaMA-style decoder used as a sequence classifier, adapted with LoRA, through the
// library's fine-tuning recipe (biolm/recipes/finetune.h, docs/recipes.md).
//
// A decoder reads left to right, so the only position that has seen the whole input is the
// last real token: the classifier reads that hidden state ("last-token pooling", as Hugging
// Face's LlamaForSequenceClassification does; the recipe picks it for any decoder body). LoRA
// (Hu et al. 2021) adds rank-r updates B·A to the query and value projections (their §4.2 /
// Table 5 choice); everything else is frozen except the new classification head, which has to
// learn from scratch (PEFT's modules_to_save: the recipe trains a task head in full next to an
// adapter unless peft.train_patterns says otherwise).
//
//   tokenizer (WordPiece; [CLS] / [SEP] serve as BOS / EOS) -> the pubmedqa task's reader and
//   featurizer (question, contexts joined; truncated longest-first) -> Loader -> tiny-decoder +
//   sequence-classification head -> LoRA on q/v + head -> Trainer -> accuracy / macro-F1 ->
//   <output>/model/ (adapters kept unmerged, with their config)
//
// Run from the repository root:  ./build/bin/example_pubmedqa_lora_decoder [key=value ...]
// Prints one JSON line: {"example":"pubmedqa_lora_decoder","accuracy":...,"macro_f1":...,...}
#include "biolm/recipes/finetune.h"
#include "example_args.h"

using namespace biolm;

nlohmann::json run(const example::Args& args) {
  // examples/configs/pubmedqa_lora_decoder_demo.yaml as a tree: the common sections from the
  // arguments, then the decoder (LLaMA layout: pre-RMSNorm, rotary positions, SwiGLU,
  // grouped-query attention) and LoRA rank r, alpha 2r (scaling 2).
  auto tree = example::finetune_tree(args, "pubmedqa");
  tree["model"] = {{"preset", "tiny-decoder"}, {"hidden_size", 64}, {"ffn_size", 128}};
  const int64_t rank = args.integer("rank");
  tree["peft"] = {{"method", "lora"},
                  {"lora", {{"rank", rank}, {"alpha", 2 * rank}, {"targets", {"**.q_proj", "**.v_proj"}}}}};
  const auto result = recipes::finetune(recipes::finetune_config_from_json(tree));
  const auto& m = result.results["tasks"]["pubmedqa"];
  return {{"example", "pubmedqa_lora_decoder"}, {"steps", result.results["steps"]}, {"accuracy", m["accuracy"]},
          {"macro_f1", m["macro_f1"]}, {"trainable_parameters", result.results["trainable_parameters"]},
          {"model_dir", result.model_dir}};
}

int main(int argc, char** argv) {
  // Adapters tolerate (and need) a larger learning rate than full fine-tuning.
  return example::run_main(argc, argv, "pubmedqa_lora_decoder",
                           {{"train", "data/pubmedqa/train.json"}, {"test", "data/pubmedqa/test.json"},
                            {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_pubmedqa"},
                            {"vocab_size", "800"}, {"max_length", "128"}, {"rank", "8"}, {"steps", "300"},
                            {"batch_size", "16"}, {"lr", "5e-3"}, {"seed", "13"}},
                           "PubMedQA yes/no/maybe with LoRA on a tiny decoder; prints accuracy as JSON.", run);
}

// examples/instruction_tuning.cpp: instruction fine-tuning (supervised fine-tuning, SFT) of a
// tiny decoder on Alpaca-format data, then greedy generation on held-out instructions scored
// with ROUGE-L, through the library's fine-tuning recipe and its instruct task
// (biolm/recipes/finetune.h, libbiolm/src/tasks/instruct.cpp).
//
// Three things make SFT differ from plain language modelling:
//   - a prompt format: the Alpaca template (Taori et al. 2023) wraps each instruction
//     (data.prompt_format; chatml and llama2 work too);
//   - loss on the response only: prompt tokens carry label -100, so the model is not trained to
//     produce instructions, only to answer them;
//   - packing (data.packing): short examples are laid back to back in rows of max_length tokens
//     (data::pack_rows); segment_ids keep the attention inside each example and positions
//     restart, so packing changes no example's loss.
//
//   tokenizer (WordPiece on the notes and the training file; [CLS] / [SEP] serve as BOS / EOS) ->
//   read_alpaca -> rendered, tokenized, packed rows -> Loader -> causal-LM decoder -> full
//   fine-tuning -> Trainer -> greedy generation on the test file -> ROUGE-L, BLEU-1, response
//   loss -> <output>/predictions.jsonl and <output>/model/
//
// Run from the repository root:  ./build/bin/example_instruction_tuning [key=value ...]
// Prints one JSON line: {"example":"instruction_tuning","rouge_l":...,"samples":[...],...}
#include <fstream>

#include "biolm/recipes/finetune.h"
#include "example_args.h"

using namespace biolm;

nlohmann::json run(const example::Args& args) {
  // examples/configs/instruct_demo.yaml as a tree: the common sections from the arguments; the
  // vocabulary also learns the training file; rows of pack_length tokens.
  auto tree = example::finetune_tree(args, "instruct");
  tree["tokenizer"]["train_on"].push_back(args.str("train"));
  tree["data"].update({{"format", "alpaca"}, {"prompt_format", "alpaca"}, {"packing", true},
                       {"max_length", args.integer("pack_length")}});
  // The LLaMA layout with its LM head, trained in full (LoRA: see pubmedqa_lora_decoder.cpp);
  // the loss is averaged over the response tokens of the whole step.
  tree["model"] = {{"preset", "tiny-decoder"}, {"hidden_size", 64}, {"ffn_size", 128}};
  tree["peft"] = {{"method", "full"}};
  tree["train"]["schedule"] = "cosine";
  tree["eval"]["max_new_tokens"] = args.integer("max_new_tokens");
  const auto result = recipes::finetune(recipes::finetune_config_from_json(tree));
  const auto& m = result.results["tasks"]["instruct"];
  // A few generations next to their references, from the predictions file the recipe wrote.
  nlohmann::json samples = nlohmann::json::array();
  std::ifstream predictions(result.results["predictions"].get<std::string>());
  for (std::string line; samples.size() < 3 && std::getline(predictions, line);)
    samples.push_back(nlohmann::json::parse(line));
  return {{"example", "instruction_tuning"}, {"steps", result.results["steps"]}, {"rouge_l", m["rouge_l"]},
          {"bleu1", m["bleu1"]}, {"response_loss", m["loss"]}, {"samples", samples}, {"model_dir", result.model_dir}};
}

int main(int argc, char** argv) {
  return example::run_main(argc, argv, "instruction_tuning",
                           {{"train", "data/instruct/train.jsonl"}, {"test", "data/instruct/test.jsonl"},
                            {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_instruct"},
                            {"vocab_size", "1000"}, {"pack_length", "256"}, {"steps", "400"},
                            {"batch_size", "8"}, {"lr", "3e-3"}, {"max_new_tokens", "24"}, {"seed", "13"}},
                           "Alpaca-format instruction tuning of a tiny decoder; prints held-out ROUGE-L.", run);
}

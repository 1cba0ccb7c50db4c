// examples/mlm_pretraining.cpp: pretraining a tiny Megatron-BERT-style encoder (pre-LN, as
// GatorTron) with masked language modelling on a clinical-notes corpus, from raw text to a
// model directory that fine-tuning can start from (model.init), through the library's
// pretraining recipe (biolm/recipes/pretrain.h, docs/recipes.md "Pretraining"):
//
//   WordPiece vocabulary trained on the corpus -> documents (one per line) tokenized into
//   in-memory shards -> packed sequences of seq_len tokens -> val_percent % of them held out ->
//   Loader with MLM masking (15 % of tokens; of those 80 % [MASK], 10 % random, 10 % unchanged:
//   Devlin et al. 2019 §3.1) -> MaskedLM model -> Trainer -> validation loss before / after (the
//   same masked tokens both times) -> <output>/model/ and <output>/results.json
//
// Run from the repository root:  ./build/bin/example_mlm_pretraining [key=value ...]
// Prints one JSON line: {"example":"mlm_pretraining","val_loss_before":...,"val_loss_after":...,
// "improved":true,...}
#include "biolm/recipes/pretrain.h"
#include "example_args.h"

using namespace biolm;

nlohmann::json run(const example::Args& args) {
  // The tree of examples/configs/pretrain_mlm_demo.yaml, with this program's arguments.
  const int64_t steps = args.integer("steps"), seq_len = args.integer("seq_len");
  const nlohmann::json tree = {
      {"objective", "mlm"},
      {"seed", args.integer("seed")},
      {"output", args.str("output")},
      {"corpus", {{"format", "text"}, {"paths", {args.str("corpus")}}}},
      {"tokenizer", {{"train", {{"kind", "wordpiece"}, {"vocab_size", args.integer("vocab_size")}}}}},
      {"seq_len", seq_len},
      {"mlm", {{"probability", 0.15}}},
      {"validation", {{"fraction", args.real("val_percent") / 100.0}}},
      // The GatorTron layout (LayerNorm before each sublayer, no embedding LayerNorm, a final
      // LayerNorm; MLM head tied to the token embeddings) at tiny-encoder shapes.
      {"model", {{"preset", "megatron-bert-345m"}, {"hidden_size", 64}, {"n_layers", 2}, {"n_heads", 4},
                 {"n_kv_heads", 4}, {"ffn_size", 128}, {"max_positions", seq_len},
                 {"hidden_dropout", 0.0}, {"attention_dropout", 0.0}}},
      // Warm-up then cosine decay, gradient clipping, weight decay (the BERT recipe).
      {"train", {{"max_steps", steps}, {"batch_size", args.integer("batch_size")}, {"lr", args.real("lr")},
                 {"schedule", "cosine"}, {"warmup_steps", steps / 10}, {"weight_decay", 0.01},
                 {"clip_grad_norm", 1.0}, {"log_every", 50}}}};
  const auto result = recipes::pretrain(recipes::pretrain_config_from_json(tree));
  const auto& r = result.results;
  return {{"example", "mlm_pretraining"}, {"steps", r["steps"]}, {"train_sequences", r["train_sequences"]},
          {"val_sequences", r["val_sequences"]}, {"val_loss_before", r["val_loss_initial"]},
          {"val_loss_after", r["val_loss_final"]}, {"val_perplexity_after", r["val_ppl_final"]},
          {"improved", r["val_loss_decreased"]}, {"model_dir", result.model_dir}};
}

int main(int argc, char** argv) {
  return example::run_main(argc, argv, "mlm_pretraining",
                           {{"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_mlm"},
                            {"val_percent", "10"}, {"vocab_size", "1200"}, {"seq_len", "128"},
                            {"steps", "200"}, {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                           "MLM pretraining of a tiny pre-LN encoder; prints validation loss before and after.", run);
}

// examples/mlm_pretraining.cpp: pretraining a tiny Megatron-BERT-style encoder (pre-LN, as
// GatorTron) with masked language modelling on a clinical-notes corpus, from raw text to a
// model directory that fine-tuning can start from (io::load_weights).
//
//   WordPiece vocabulary trained on the corpus -> documents (one per line) -> token shards
//   (tokenize_to_shards) -> fixed-length packed sequences (PackedDataset) -> Loader with MLM
//   masking (15 % of tokens; of those 80 % [MASK], 10 % random, 10 % unchanged: Devlin et al.
//   2019 §3.1) -> MaskedLM model -> Trainer -> validation loss before / after -> save_model_dir
//
// Run from the repository root:  ./build/bin/example_mlm_pretraining [key=value ...]
// Prints one JSON line: {"example":"mlm_pretraining","val_loss_before":...,"val_loss_after":...,
// "improved":true,...}
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "biolm/core/host_memory.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/corpus.h"
#include "biolm/data/loader.h"
#include "biolm/data/shards.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/trainer.h"
#include "example_args.h"

using namespace biolm;

// Documents -> in-memory token shards -> sequences of exactly seq_len tokens (the last one of
// each shard shorter). Documents are concatenated; segment_ids tell them apart, so attention
// stays within a document.
std::shared_ptr<data::PackedDataset> pack(const std::vector<data::TextRecord>& docs, const tokenize::Tokenizer& tok,
                                          int64_t seq_len) {
  size_t next_doc = 0;
  std::vector<std::shared_ptr<const data::TokenShard>> shards;
  data::ShardingOptions so;
  so.n_workers = 1;  // the output is the same for any number of workers
  data::tokenize_to_shards(
      [&](data::TextRecord& r) {
        if (next_doc == docs.size()) return false;
        r = docs[next_doc++];
        return true;
      },
      tok, so, [&](data::TokenShard&& s) { shards.push_back(std::make_shared<data::TokenShard>(std::move(s))); });
  data::PackOptions po;
  po.seq_len = seq_len;
  return data::PackedDataset::from_shards(shards, po);
}

// Mean masked-token cross entropy over a fixed set of masked batches (same masks every call).
double mean_loss(models::TaskModelImpl& model, const std::vector<data::Batch>& batches) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double sum = 0.0;
  int64_t n = 0;
  for (const auto& b : batches) {
    const auto out = model.run(b);
    sum += out.loss_sum.item<double>();
    n += out.n_target_tokens;
  }
  model.train(was_training);
  return sum / static_cast<double>(n);
}

int run(const example::Args& args) {
  const auto seed = static_cast<uint64_t>(args.integer("seed"));
  core::seed_all(seed);
  const std::string out = args.str("output");
  std::filesystem::create_directories(out);
  const int64_t seq_len = args.integer("seq_len");

  // 1. Tokenizer: a WordPiece vocabulary learned from the pretraining corpus itself.
  tokenize::WordPieceTrainOptions wo;
  wo.vocab_size = args.integer("vocab_size");
  tokenize::train_wordpiece({args.str("corpus")}, wo, out + "/vocab.txt");
  const auto tok = tokenize::load_tokenizer(out + "/vocab.txt");
  const auto& sp = tok->special();

  // 2. Reader: one note per line; the last val_percent % of the notes are held out.
  std::vector<data::TextRecord> docs;
  data::read_plain_text(args.str("corpus"), [&](data::TextRecord&& r) { docs.push_back(std::move(r)); });
  const auto n_val = static_cast<size_t>(static_cast<double>(docs.size()) * args.real("val_percent") / 100.0);
  const std::vector<data::TextRecord> val_docs(docs.end() - static_cast<long>(n_val), docs.end());
  docs.resize(docs.size() - n_val);

  // 3. Features: [CLS] note [SEP] per document, packed into seq_len-token sequences.
  const auto train_set = pack(docs, *tok, seq_len), val_set = pack(val_docs, *tok, seq_len);

  // 4. Loader: masking happens in the collator, with a seed unique to each batch, so every
  //    epoch sees new masks and a resumed run sees the masks an unbroken one would.
  data::MlmOptions mlm;
  mlm.mask_prob = 0.15;
  mlm.mask_token = 0.8;
  mlm.random_token = 0.1;
  mlm.mask_id = *sp.mask;
  mlm.vocab_size = tok->vocab_size();
  mlm.never_mask = {*sp.pad, *sp.cls, *sp.sep, *sp.mask, *sp.unk};
  data::CollateOptions co;
  co.pad_id = *sp.pad;
  data::LoaderOptions lo;
  lo.batch_size = args.integer("batch_size");
  lo.seed = seed;
  auto mask_and_collate = [&](std::vector<data::Features>&& rows, uint64_t batch_seed) {
    return data::collate_mlm(rows, co, mlm, batch_seed);
  };
  data::Loader loader(train_set, mask_and_collate, lo);
  // Validation: masked once with fixed seeds, so "before" and "after" score the same positions.
  std::vector<data::Batch> val_batches;
  for (int64_t i = 0; i < val_set->size(); i += 32) {
    std::vector<data::Features> rows;
    for (int64_t j = i; j < std::min(val_set->size(), i + 32); ++j) rows.push_back(val_set->get(j));
    val_batches.push_back(data::collate_mlm(rows, co, mlm, data::mix_seed(seed, static_cast<uint64_t>(i))));
  }

  // 5. Model: tiny-encoder shapes in the Megatron-BERT layout GatorTron uses: LayerNorm before
  //    each sublayer (pre-LN), no embedding LayerNorm, a final LayerNorm; MLM head tied to the
  //    token embeddings.
  auto config = models::preset("tiny-encoder");
  config.vocab_size = tok->vocab_size();
  config.pad_token_id = *sp.pad;
  config.hidden_size = 64;
  config.ffn_size = 128;
  config.max_positions = seq_len;
  config.norm_placement = models::NormPlacement::Pre;
  config.embedding_norm = false;
  config.final_norm = true;
  config.hidden_dropout = config.attention_dropout = 0.0;
  auto model = models::make_task_model(config, models::TaskKind::MaskedLM);

  // 6. Adaptation method: none (pretraining trains everything).
  const auto summary = peft::apply(*model, peft::MethodConfig{});
  const double val_before = mean_loss(*model, val_batches);

  // 7. Trainer: warm-up then cosine decay, gradient clipping, weight decay (BERT recipe).
  train::TrainConfig tc;
  tc.max_steps = args.integer("steps");
  tc.lr = args.real("lr");
  tc.schedule = train::ScheduleKind::Cosine;
  tc.warmup_steps = tc.max_steps / 10;
  tc.weight_decay = 0.01;
  tc.clip_grad_norm = 1.0;
  tc.log_every = 50;
  tc.run_dir = out;
  tc.seed = seed;
  train::Trainer trainer(*model, tc);
  trainer.set_lr_scales(summary.lr_scales);
  const auto result = trainer.fit(loader);

  // 8. Evaluation: the same masked validation tokens after training.
  const double val_after = mean_loss(*model, val_batches);

  // 9. Save: a masked-LM model directory; a fine-tune starts from it with
  //    io::load_weights(*task_model, out + "/model", /*strict=*/false).
  io::ModelDirInfo info;
  info.config = config;
  info.task = models::TaskKind::MaskedLM;
  info.n_labels = 0;
  info.info = {{"example", "mlm_pretraining"}, {"steps", result.step}, {"val_loss", val_after}};
  io::ModelDirSaveOptions save;
  save.tokenizer = tok.get();
  io::save_model_dir(*model, info, out + "/model", save);

  std::cout << nlohmann::json{{"example", "mlm_pretraining"},   {"steps", result.step},
                              {"train_sequences", train_set->size()}, {"val_sequences", val_set->size()},
                              {"val_loss_before", val_before},  {"val_loss_after", val_after},
                              {"val_perplexity_after", std::exp(val_after)},
                              {"improved", val_after < val_before}, {"model_dir", out + "/model"}}
                   .dump()
            << "\n";
  return 0;
}

int main(int argc, char** argv) {
  biolm::core::tune_host_allocator();  // reuse freed tensor memory instead of faulting it in again
  try {
    const example::Args args(argc, argv,
                             {{"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_mlm"},
                              {"val_percent", "10"}, {"vocab_size", "1200"}, {"seq_len", "128"},
                              {"steps", "200"}, {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                             "MLM pretraining of a tiny pre-LN encoder; prints validation loss before and after.");
    return args.help() ? 0 : run(args);
  } catch (const std::exception& e) {
    std::cerr << "example_mlm_pretraining: error: " << e.what() << "\n";
    return 1;
  }
}

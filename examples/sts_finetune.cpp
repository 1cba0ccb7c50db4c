// examples/sts_finetune.cpp: clinical / biomedical sentence similarity (BIOSSES, n2c2-2019 STS
// style: two sentences, a score in [0, 5]) as regression on the pooled [CLS] vector of the pair.
// Metrics: Pearson (the usual headline) and Spearman correlation with the gold scores.
//
//   tokenizer (WordPiece) -> read_sts -> pair_features([CLS] a [SEP] b [SEP], score) -> Loader ->
//   regression model (MSE) -> full fine-tuning -> Trainer -> eval::pearson / eval::spearman ->
//   io::save_model_dir
//
// Run from the repository root:  ./build/bin/example_sts_finetune [key=value ...]
// Prints one JSON line: {"example":"sts_finetune","pearson":...,"spearman":...,...}
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "biolm/core/host_memory.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/correlation.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/trainer.h"
#include "example_args.h"

using namespace biolm;

int run(const example::Args& args) {
  const auto seed = static_cast<uint64_t>(args.integer("seed"));
  core::seed_all(seed);
  const std::string out = args.str("output");
  std::filesystem::create_directories(out);

  // 1. Tokenizer.
  tokenize::WordPieceTrainOptions wo;
  wo.vocab_size = args.integer("vocab_size");
  tokenize::train_wordpiece({args.str("corpus")}, wo, out + "/vocab.txt");
  const auto tok = tokenize::load_tokenizer(out + "/vocab.txt");
  const int64_t pad_id = tok->special().pad.value_or(0);

  // 2. Reader: TSV sentence1, sentence2, score (a header row names the columns when present).
  const auto train_pairs = data::read_sts(args.str("train"));
  const auto test_pairs = data::read_sts(args.str("test"));

  // 3. Features: the pair in one sequence (token_type_ids 0 / 1), the score as the target.
  //    Scores are divided by max_score (5) so the target lies in [0, 1] (correlations do not
  //    care about the scale; the loss is better behaved).
  const double scale = args.real("max_score");
  auto featurize = [&](const std::vector<data::PairExample>& pairs) {
    std::vector<data::Features> rows;
    for (const auto& p : pairs) {
      auto f = data::pair_features(p.text_a, p.text_b, *tok, args.integer("max_length"));
      f.has_score = true;
      f.score = p.score / scale;
      rows.push_back(std::move(f));
    }
    return rows;
  };
  const auto train_rows = featurize(train_pairs), test_rows = featurize(test_pairs);

  // 4. Loader.
  data::LoaderOptions lo;
  lo.batch_size = args.integer("batch_size");
  lo.seed = seed;
  auto collate = [pad_id](std::vector<data::Features>&& rows, uint64_t) {
    data::CollateOptions co;
    co.pad_id = pad_id;
    return data::collate(rows, co);
  };
  data::Loader loader(std::make_shared<data::VectorDataset>(train_rows), collate, lo);

  // 5. Model: tiny encoder with a one-output regression head (TaskKind::Regression, MSE loss).
  auto config = models::preset("tiny-encoder");
  config.vocab_size = tok->vocab_size();
  config.pad_token_id = pad_id;
  config.hidden_size = 64;
  config.ffn_size = 128;
  config.max_positions = args.integer("max_length");
  config.hidden_dropout = config.attention_dropout = 0.0;
  auto model = models::make_task_model(config, models::TaskKind::Regression, 1);

  // 6. Adaptation method: full fine-tuning.
  const auto summary = peft::apply(*model, peft::MethodConfig{});

  // 7. Trainer.
  train::TrainConfig tc;
  tc.max_steps = args.integer("steps");
  tc.lr = args.real("lr");
  tc.schedule = train::ScheduleKind::Linear;
  tc.warmup_steps = tc.max_steps / 10;
  tc.log_every = 50;
  tc.run_dir = out;
  tc.seed = seed;
  train::Trainer trainer(*model, tc);
  trainer.set_lr_scales(summary.lr_scales);
  const auto result = trainer.fit(loader);

  // 8. Evaluation: one predicted score per pair (logits (B)), back on the 0-5 scale.
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<double> predicted, gold;
  for (size_t i = 0; i < test_rows.size(); i += 64) {
    std::vector<data::Features> rows(test_rows.begin() + static_cast<long>(i),
                                     test_rows.begin() + static_cast<long>(std::min(test_rows.size(), i + 64)));
    const auto scores = model->run(collate(std::move(rows), 0)).logits.reshape({-1}).to(torch::kDouble);
    for (int64_t r = 0; r < scores.size(0); ++r) predicted.push_back(scale * scores[r].item<double>());
  }
  for (const auto& p : test_pairs) gold.push_back(p.score);
  const double pearson = eval::pearson(predicted, gold), spearman = eval::spearman(predicted, gold);

  // 9. Save.
  io::ModelDirInfo info;
  info.config = config;
  info.task = models::TaskKind::Regression;
  info.n_labels = 1;
  info.info = {{"example", "sts_finetune"}, {"steps", result.step}, {"score_scale", scale},
               {"test_pearson", pearson}, {"test_spearman", spearman}};
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  io::save_model_dir(*model, info, out + "/model", so);

  std::cout << nlohmann::json{{"example", "sts_finetune"}, {"steps", result.step}, {"pearson", pearson},
                              {"spearman", spearman}, {"test_pairs", gold.size()}, {"model_dir", out + "/model"}}
                   .dump()
            << "\n";
  return 0;
}

int main(int argc, char** argv) {
  biolm::core::tune_host_allocator();  // reuse freed tensor memory instead of faulting it in again
  try {
    const example::Args args(argc, argv,
                             {{"train", "data/sts/train.tsv"}, {"test", "data/sts/test.tsv"},
                              {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_sts"},
                              {"max_score", "5"}, {"vocab_size", "1200"}, {"max_length", "64"},
                              {"steps", "300"}, {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                             "Sentence-similarity regression on a tiny encoder; prints Pearson and Spearman.");
    return args.help() ? 0 : run(args);
  } catch (const std::exception& e) {
    std::cerr << "example_sts_finetune: error: " << e.what() << "\n";
    return 1;
  }
}

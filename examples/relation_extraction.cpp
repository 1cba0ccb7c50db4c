// examples/relation_extraction.cpp: ChemProt-style relation classification. Each sentence marks
// its two arguments (`<< e1 >>`, `[[ e2 ]]`); the encoder reads the marked sentence and the
// pooled [CLS] vector is classified into a relation type or the negative class. Metric: micro-F1
// over the positive relation types only (the ChemProt / DDI convention of BLURB).
//
//   tokenizer (WordPiece) -> read_chemprot -> pair_features(marked text) -> Loader ->
//   sequence-classification model -> full fine-tuning -> Trainer -> eval::relation_micro_f1 ->
//   io::save_model_dir
//
// Run from the repository root:  ./build/bin/example_relation_extraction [key=value ...]
// Prints one JSON line: {"example":"relation_extraction","micro_f1":...,"accuracy":...,...}
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "biolm/core/host_memory.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/classification.h"
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

  // 1. Tokenizer. The markers are ordinary punctuation to WordPiece ("<", "<", "[", "["), which
  //    is enough for the model to find the arguments.
  tokenize::WordPieceTrainOptions wo;
  wo.vocab_size = args.integer("vocab_size");
  tokenize::train_wordpiece({args.str("corpus")}, wo, out + "/vocab.txt");
  const auto tok = tokenize::load_tokenizer(out + "/vocab.txt");
  const int64_t pad_id = tok->special().pad.value_or(0);

  // 2. Reader: {"text": "... << e1 >> ... [[ e2 ]] ...", "label": "..."} per line.
  const auto train_examples = data::read_chemprot(args.str("train"));
  const auto test_examples = data::read_chemprot(args.str("test"));
  std::set<std::string> names;
  for (const auto& ex : train_examples) names.insert(ex.label);
  const auto labels = data::LabelMap::from_names({names.begin(), names.end()});
  const std::string negative = args.str("negative_label");
  BIOLM_CHECK(names.count(negative) != 0, ConfigError, "negative_label",
              "\"" + negative + "\" is not a label of " + args.str("train"));

  // 3. Features: [CLS] marked sentence [SEP], truncated to max_length, with the class id.
  auto featurize = [&](const std::vector<data::RelationExample>& examples) {
    std::vector<data::Features> rows;
    for (const auto& ex : examples) {
      auto f = data::pair_features(ex.marked_text, "", *tok, args.integer("max_length"));
      f.label = labels.id(ex.label);
      rows.push_back(std::move(f));
    }
    return rows;
  };
  const auto train_rows = featurize(train_examples), test_rows = featurize(test_examples);

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

  // 5. Model: tiny BERT-layout encoder; the classifier reads the pooled [CLS] vector.
  auto config = models::preset("tiny-encoder");
  config.vocab_size = tok->vocab_size();
  config.pad_token_id = pad_id;
  config.hidden_size = 64;
  config.ffn_size = 128;
  config.max_positions = args.integer("max_length");
  config.hidden_dropout = config.attention_dropout = 0.0;
  auto model = models::make_task_model(config, models::TaskKind::SequenceClassification, labels.size());

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

  // 8. Evaluation: argmax class per sentence; micro-F1 without the negative class (predicting
  //    it earns nothing, missing a gold negative costs nothing).
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<std::string> gold, pred;
  for (size_t i = 0; i < test_rows.size(); i += 64) {
    std::vector<data::Features> rows(test_rows.begin() + static_cast<long>(i),
                                     test_rows.begin() + static_cast<long>(std::min(test_rows.size(), i + 64)));
    const auto classes = model->run(collate(std::move(rows), 0)).logits.argmax(-1);  // (B)
    for (int64_t r = 0; r < classes.size(0); ++r) pred.push_back(labels.name(classes[r].item<int64_t>()));
  }
  for (const auto& ex : test_examples) gold.push_back(ex.label);
  const auto prf = eval::relation_micro_f1(gold, pred, negative);
  const double accuracy = eval::accuracy(gold, pred);

  // 9. Save.
  io::ModelDirInfo info;
  info.config = config;
  info.task = models::TaskKind::SequenceClassification;
  info.n_labels = labels.size();
  info.labels = labels.names();
  info.info = {{"example", "relation_extraction"}, {"steps", result.step}, {"test_micro_f1", prf.f1}};
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  io::save_model_dir(*model, info, out + "/model", so);

  std::cout << nlohmann::json{{"example", "relation_extraction"}, {"steps", result.step},
                              {"micro_f1", prf.f1}, {"precision", prf.precision}, {"recall", prf.recall},
                              {"accuracy", accuracy}, {"negative_label", negative},
                              {"test_examples", gold.size()}, {"model_dir", out + "/model"}}
                   .dump()
            << "\n";
  return 0;
}

int main(int argc, char** argv) {
  biolm::core::tune_host_allocator();  // reuse freed tensor memory instead of faulting it in again
  try {
    const example::Args args(argc, argv,
                             {{"train", "data/re/train.jsonl"}, {"test", "data/re/test.jsonl"},
                              {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_re"},
                              {"negative_label", "NONE"}, {"vocab_size", "1200"}, {"max_length", "64"},
                              {"steps", "300"}, {"batch_size", "16"}, {"lr", "2e-3"}, {"seed", "13"}},
                             "Relation classification with entity markers; prints micro-F1 without the\n"
                             "negative class.");
    return args.help() ? 0 : run(args);
  } catch (const std::exception& e) {
    std::cerr << "example_relation_extraction: error: " << e.what() << "\n";
    return 1;
  }
}

// examples/ner_finetune.cpp: named-entity recognition (CoNLL, BIO tags) with a tiny encoder,
// full fine-tuning, entity-level F1 as seqeval computes it.
//
//   tokenizer (WordPiece trained on a corpus) -> read_conll -> ner_features (word pieces, labels
//   on the first piece of each word) -> Loader -> token-classification model -> Trainer ->
//   word-level tags -> eval::ner_report -> io::save_model_dir
//
// Run from the repository root:  ./build/bin/example_ner_finetune [key=value ...]  (--help lists them)
// Prints one JSON line: {"example":"ner_finetune","f1":...,"precision":...,"recall":...,...}
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
#include "biolm/eval/ner.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/trainer.h"
#include "example_args.h"

using namespace biolm;

int run(const example::Args& args) {
  core::seed_all(static_cast<uint64_t>(args.integer("seed")));
  const std::string out = args.str("output");
  const int64_t max_length = args.integer("max_length");
  std::filesystem::create_directories(out);

  // 1. Tokenizer: a WordPiece vocabulary learned from in-domain text (as GatorTron and
  //    PubMedBERT learned theirs). With a pretrained model, load its vocab.txt instead.
  tokenize::WordPieceTrainOptions wo;
  wo.vocab_size = args.integer("vocab_size");
  tokenize::train_wordpiece({args.str("corpus")}, wo, out + "/vocab.txt");
  const auto tok = tokenize::load_tokenizer(out + "/vocab.txt");
  const int64_t pad_id = tok->special().pad.value_or(0);

  // 2. Reader: sentences of words with IOB2 tags (IOB1/IOBES files are converted on reading).
  const auto train_sentences = data::read_conll(args.str("train"));
  const auto test_sentences = data::read_conll(args.str("test"));
  std::set<std::string> types;  // entity types of the training set: "problem", "test", ...
  for (const auto& s : train_sentences)
    for (const auto& t : s.tags)
      if (t != "O") types.insert(t.substr(2));
  const auto labels = data::LabelMap::from_types({types.begin(), types.end()});  // O, B-x, I-x, ...

  // 3. Features: one row per window of max_length word pieces; labels sit on each word's first
  //    piece, the other pieces and the specials get -100 (ignored by the loss).
  data::NerFeatureOptions fo;
  fo.max_length = max_length;
  fo.overlap = max_length / 4;
  auto featurize = [&](const std::vector<data::NerSentence>& sentences) {
    std::vector<data::Features> rows;
    for (size_t i = 0; i < sentences.size(); ++i)
      for (auto& f : data::ner_features(sentences[i], static_cast<int64_t>(i), *tok, labels, fo))
        rows.push_back(std::move(f));
    return rows;
  };
  const auto train_rows = featurize(train_sentences), test_rows = featurize(test_sentences);

  // 4. Loader: shuffled batches, padded to the longest row of each batch.
  data::LoaderOptions lo;
  lo.batch_size = args.integer("batch_size");
  lo.seed = static_cast<uint64_t>(args.integer("seed"));
  auto collate = [pad_id](std::vector<data::Features>&& rows, uint64_t) {
    data::CollateOptions co;
    co.pad_id = pad_id;
    return data::collate(rows, co);
  };
  data::Loader loader(std::make_shared<data::VectorDataset>(train_rows), collate, lo);

  // 5. Model: the tiny-encoder preset (BERT layout, post-LN) widened a little, vocabulary from
  //    the tokenizer, a per-token classifier on top.
  auto config = models::preset("tiny-encoder");
  config.vocab_size = tok->vocab_size();
  config.pad_token_id = pad_id;
  config.hidden_size = 64;
  config.ffn_size = 128;
  config.max_positions = max_length;
  config.hidden_dropout = config.attention_dropout = 0.0;
  auto model = models::make_task_model(config, models::TaskKind::TokenClassification, labels.size());

  // 6. Adaptation method: full fine-tuning (every parameter trains). See
  //    pubmedqa_lora_decoder.cpp for LoRA.
  peft::MethodConfig method;  // method = Full
  const auto summary = peft::apply(*model, method);

  // 7. Trainer: AdamW, linear decay after a short warm-up; run files go to <output>/.
  train::TrainConfig tc;
  tc.max_steps = args.integer("steps");
  tc.lr = args.real("lr");
  tc.schedule = train::ScheduleKind::Linear;
  tc.warmup_steps = tc.max_steps / 10;
  tc.log_every = 50;
  tc.run_dir = out;
  tc.seed = lo.seed;
  train::Trainer trainer(*model, tc);
  trainer.set_lr_scales(summary.lr_scales);
  const auto result = trainer.fit(loader);

  // 8. Evaluation: argmax per token -> one tag per word (first piece; windows merged) ->
  //    entity-level micro P/R/F1 (seqeval default mode).
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<std::vector<data::Features>> windows(test_sentences.size());
  std::vector<std::vector<std::vector<int64_t>>> token_preds(test_sentences.size());
  for (size_t i = 0; i < test_rows.size(); i += 64) {
    std::vector<data::Features> rows(test_rows.begin() + static_cast<long>(i),
                                     test_rows.begin() + static_cast<long>(std::min(test_rows.size(), i + 64)));
    const auto argmax = model->run(collate(std::vector<data::Features>(rows), 0)).logits.argmax(-1);  // (B,T)
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto row = argmax[static_cast<int64_t>(r)].contiguous();
      const auto e = static_cast<size_t>(rows[r].example_index);
      windows[e].push_back(rows[r]);
      token_preds[e].emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    }
  }
  std::vector<std::vector<std::string>> gold, pred;
  for (size_t e = 0; e < test_sentences.size(); ++e) {
    const auto& s = test_sentences[e];
    std::vector<std::string> tags;
    for (auto id : data::ner_word_predictions(windows[e], token_preds[e], static_cast<int64_t>(s.words.size())))
      tags.push_back(id < 0 ? "O" : labels.name(id));  // a word cut off by truncation counts as O
    gold.push_back(s.tags);
    pred.push_back(std::move(tags));
  }
  const auto report = eval::ner_report(gold, pred);

  // 9. Save: model.json + model.safetensors + tokenizer/, loadable with io::load_model_dir.
  io::ModelDirInfo info;
  info.config = config;
  info.task = models::TaskKind::TokenClassification;
  info.n_labels = labels.size();
  info.labels = labels.names();
  info.info = {{"example", "ner_finetune"}, {"steps", result.step}, {"test_f1", report.micro.f1}};
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  io::save_model_dir(*model, info, out + "/model", so);

  std::cout << nlohmann::json{{"example", "ner_finetune"},   {"steps", result.step},
                              {"f1", report.micro.f1},       {"precision", report.micro.precision},
                              {"recall", report.micro.recall}, {"test_sentences", test_sentences.size()},
                              {"model_dir", out + "/model"}}
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

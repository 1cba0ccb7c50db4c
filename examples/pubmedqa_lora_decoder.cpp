// examples/pubmedqa_lora_decoder.cpp: PubMedQA (question + abstract -> yes / no / maybe) with a
// tiny LLaMA-style decoder used as a sequence classifier, adapted with LoRA.
//
// A decoder reads left to right, so the only position that has seen the whole input is the
// last real token: the classifier reads that hidden state ("last-token pooling", as Hugging
// Face's LlamaForSequenceClassification does). LoRA (Hu et al. 2021) adds rank-8 updates
// B·A to the query and value projections (their §4.2 / Table 5 choice); everything else is
// frozen except the new classification head, which has to learn from scratch (PEFT's
// modules_to_save; here the "hybrid" method with train_patterns = classifier.**).
//
//   tokenizer (SentencePiece) -> read_pubmedqa -> pair_features(question, contexts) -> Loader ->
//   decoder + sequence-classification head -> peft::apply (LoRA on q/v + head) -> Trainer ->
//   accuracy / macro-F1 -> merge LoRA -> io::save_model_dir
//
// Run from the repository root:  ./build/bin/example_pubmedqa_lora_decoder [key=value ...]
// Prints one JSON line: {"example":"pubmedqa_lora_decoder","accuracy":...,"macro_f1":...,...}
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "biolm/core/host_memory.h"
#include "biolm/config.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/classification.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/sentencepiece.h"
#include "biolm/train/trainer.h"
#include "example_args.h"

#if BIOLM_HAS_SENTENCEPIECE  // the SentencePiece trainer is an optional part of libbiolm
using namespace biolm;

int run(const example::Args& args) {
  const auto seed = static_cast<uint64_t>(args.integer("seed"));
  core::seed_all(seed);
  const std::string out = args.str("output");
  std::filesystem::create_directories(out);

  // 1. Tokenizer: a SentencePiece unigram model (the LLaMA family's kind). Its default pieces
  //    are <unk> = 0, <s> = 1, </s> = 2 and no pad; padded positions are masked out, so <unk>
  //    serves as the pad id (as many LLaMA setups do).
  tokenize::SentencePieceTrainOptions so;
  so.vocab_size = args.integer("vocab_size");
  so.hard_vocab_limit = false;  // a small corpus may not support the full size
  const auto model_file = tokenize::train_sentencepiece({args.str("corpus")}, so, out + "/spm");
  const auto tok = tokenize::load_tokenizer(model_file);
  const int64_t pad_id = tok->special().pad.value_or(0);

  // 2. Reader: PubMedQA's ori_pqal.json layout (PMID -> QUESTION, CONTEXTS, final_decision).
  const auto train_examples = data::read_pubmedqa(args.str("train"));
  const auto test_examples = data::read_pubmedqa(args.str("test"));
  const auto labels = data::LabelMap::from_names({"yes", "no", "maybe"});

  // 3. Features: "<s> question </s> context sentences </s>", truncated to max_length
  //    (longest-first: the abstract loses tokens before the question does).
  auto featurize = [&](const std::vector<data::PubmedQaExample>& examples) {
    std::vector<data::Features> rows;
    for (const auto& ex : examples) {
      std::string context;
      for (const auto& c : ex.contexts) context += (context.empty() ? "" : " ") + c;
      auto f = data::pair_features(ex.question, context, *tok, args.integer("max_length"));
      f.label = labels.id(ex.label);
      rows.push_back(std::move(f));
    }
    return rows;
  };
  const auto train_rows = featurize(train_examples), test_rows = featurize(test_examples);

  // 4. Loader (right padding; last-token pooling finds the last real token from the mask).
  data::LoaderOptions lo;
  lo.batch_size = args.integer("batch_size");
  lo.seed = seed;
  auto collate = [pad_id](std::vector<data::Features>&& rows, uint64_t) {
    data::CollateOptions co;
    co.pad_id = pad_id;
    return data::collate(rows, co);
  };
  data::Loader loader(std::make_shared<data::VectorDataset>(train_rows), collate, lo);

  // 5. Model: the tiny-decoder preset (LLaMA layout: pre-RMSNorm, rotary positions, SwiGLU,
  //    grouped-query attention) with a 3-way head. A real run would load pretrained weights
  //    here: io::load_weights(*model, "<pretrained model dir>", /*strict=*/false).
  auto config = models::preset("tiny-decoder");
  config.vocab_size = tok->vocab_size();
  config.pad_token_id = pad_id;
  config.bos_token_id = tok->special().bos;
  config.eos_token_id = tok->special().eos;
  config.hidden_size = 64;
  config.ffn_size = 128;
  config.max_positions = args.integer("max_length");
  auto model = models::make_task_model(config, models::TaskKind::SequenceClassification, labels.size());

  // 6. Adaptation method: LoRA rank 8 (alpha 16, scaling 2) on every q_proj and v_proj; the
  //    head trains in full. peft::apply freezes the rest and reports what trains.
  peft::MethodConfig method;
  method.method = peft::Method::Hybrid;
  method.lora = peft::LoraOptions(args.integer("rank"), 2.0 * static_cast<double>(args.integer("rank")))
                    .targets({"**.q_proj", "**.v_proj"});
  method.train_patterns = {"classifier.**"};
  const auto summary = peft::apply(*model, method);
  std::cerr << "peft: " << summary.to_string() << "\n";

  // 7. Trainer: adapters tolerate (and need) a larger learning rate than full fine-tuning.
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

  // 8. Evaluation: accuracy and macro-F1 over the three answers (PubMedQA reports both).
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
  eval::ClassificationOptions co;
  co.labels = labels.names();
  const auto report = eval::classification_report(gold, pred, co);

  // 9. Save: merge B·A into q/v so the directory holds a plain model that loads without peft.
  //    (To keep the adapter separate instead: info.peft = method, no merge.)
  io::ModelDirInfo info;
  info.config = config;
  info.task = models::TaskKind::SequenceClassification;
  info.n_labels = labels.size();
  info.labels = labels.names();
  info.info = {{"example", "pubmedqa_lora_decoder"}, {"steps", result.step}, {"test_accuracy", report.accuracy}};
  io::ModelDirSaveOptions save;
  save.tokenizer = tok.get();
  save.merge_adapters = true;
  io::save_model_dir(*model, info, out + "/model", save);

  std::cout << nlohmann::json{{"example", "pubmedqa_lora_decoder"}, {"steps", result.step},
                              {"accuracy", report.accuracy}, {"macro_f1", report.prf.macro.f1},
                              {"trainable_parameters", summary.trainable_parameters},
                              {"total_parameters", summary.total_parameters}, {"test_examples", gold.size()},
                              {"model_dir", out + "/model"}}
                   .dump()
            << "\n";
  return 0;
}

#endif

int main(int argc, char** argv) {
  biolm::core::tune_host_allocator();  // reuse freed tensor memory instead of faulting it in again
#if !BIOLM_HAS_SENTENCEPIECE
  (void)argc;
  (void)argv;
  std::cerr << "example_pubmedqa_lora_decoder: needs libbiolm built with SentencePiece"
               " (-DBIOLM_WITH_SENTENCEPIECE=ON)\n";
  return 1;
#else
  try {
    const example::Args args(argc, argv,
                             {{"train", "data/pubmedqa/train.json"}, {"test", "data/pubmedqa/test.json"},
                              {"corpus", "data/corpus/notes.txt"}, {"output", "runs/example_pubmedqa"},
                              {"vocab_size", "800"}, {"max_length", "128"}, {"rank", "8"}, {"steps", "300"},
                              {"batch_size", "16"}, {"lr", "5e-3"}, {"seed", "13"}},
                             "PubMedQA yes/no/maybe with LoRA on a tiny decoder; prints accuracy as JSON.");
    return args.help() ? 0 : run(args);
  } catch (const std::exception& e) {
    std::cerr << "example_pubmedqa_lora_decoder: error: " << e.what() << "\n";
    return 1;
  }
#endif
}

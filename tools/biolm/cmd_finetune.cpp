// biolm finetune --config FILE [key.path=value ...]: the whole recipe for encoder tasks.
//   tokenizer (load, or train a WordPiece vocabulary on a corpus) -> task reader -> features ->
//   loader -> model (preset/config + task head) -> peft method -> trainer (eval on dev every N
//   steps, best checkpoint) -> test metrics with bootstrap 95 % intervals -> results.json.
// Tasks: ner (CoNLL/BIO), re (ChemProt-style markers), nli (MedNLI JSONL), sts (TSV scores).
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "biolm/core/config.h"
#include "biolm/core/device.h"
#include "biolm/core/log.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/data/tags.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/bootstrap.h"
#include "biolm/eval/classification.h"
#include "biolm/eval/correlation.h"
#include "biolm/eval/ner.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/progress.h"
#include "biolm/train/trainer.h"
#include "command.h"

namespace biolm::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TaskData {
  std::vector<data::Features> rows;
  std::vector<data::NerSentence> sentences;  // ner: gold words/tags per example
  std::vector<std::string> gold_labels;       // re/nli
  std::vector<double> gold_scores;            // sts
};

struct Setup {
  std::string task;
  data::LabelMap labels;
  std::shared_ptr<tokenize::Tokenizer> tok;
  int64_t max_length = 128;
};

TaskData featurize(const Setup& s, const std::string& path) {
  TaskData d;
  if (s.task == "ner") {
    d.sentences = data::read_conll(path);
    data::NerFeatureOptions o;
    o.max_length = s.max_length;
    o.overlap = s.max_length / 4;
    for (size_t i = 0; i < d.sentences.size(); ++i) {
      for (auto& f : data::ner_features(d.sentences[i], static_cast<int64_t>(i), *s.tok, s.labels, o)) d.rows.push_back(std::move(f));
    }
  } else if (s.task == "re") {
    for (const auto& ex : data::read_chemprot(path)) {
      auto f = data::pair_features(ex.marked_text, "", *s.tok, s.max_length);
      f.label = s.labels.id(ex.label);
      f.example_index = static_cast<int64_t>(d.rows.size());
      d.gold_labels.push_back(ex.label);
      d.rows.push_back(std::move(f));
    }
  } else {
    const auto pairs = s.task == "nli" ? data::read_mednli(path) : data::read_sts(path);
    for (const auto& ex : pairs) {
      auto f = data::pair_features(ex.text_a, ex.text_b, *s.tok, s.max_length);
      if (s.task == "nli") {
        f.label = s.labels.id(ex.label);
        d.gold_labels.push_back(ex.label);
      } else {
        f.has_score = true;
        f.score = ex.score;
        d.gold_scores.push_back(ex.score);
      }
      f.example_index = static_cast<int64_t>(d.rows.size());
      d.rows.push_back(std::move(f));
    }
  }
  return d;
}

std::vector<std::string> label_names(const std::string& task, const std::string& train_path) {
  std::set<std::string> seen;
  if (task == "ner") {
    for (const auto& s : data::read_conll(train_path))
      for (const auto& t : s.tags)
        if (t.size() > 2) seen.insert(t.substr(2));
  } else if (task == "re") {
    for (const auto& ex : data::read_chemprot(train_path)) seen.insert(ex.label);
  } else if (task == "nli") {
    return {"entailment", "neutral", "contradiction"};
  }
  return {seen.begin(), seen.end()};
}

/// Predictions of the model on `d`: per-row argmax token ids (ner), class ids (re/nli), scores (sts).
struct Predictions {
  std::vector<std::vector<int64_t>> token_preds;
  std::vector<int64_t> classes;
  std::vector<double> scores;
};

Predictions predict(models::TaskModelImpl& model, const TaskData& d, const Setup& s, int64_t pad_id, torch::Device device) {
  torch::NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  Predictions p;
  const size_t bs = 32;
  for (size_t i = 0; i < d.rows.size(); i += bs) {
    std::vector<data::Features> rows(d.rows.begin() + static_cast<long>(i),
                                     d.rows.begin() + static_cast<long>(std::min(d.rows.size(), i + bs)));
    data::CollateOptions co;
    co.pad_id = pad_id;
    auto out = model.forward_task(data::collate(rows, co).to(device));
    const auto logits = out.logits.to(torch::kCPU);
    if (s.task == "ner") {
      const auto am = logits.argmax(-1);
      for (size_t r = 0; r < rows.size(); ++r) {
        const auto row = am[static_cast<int64_t>(r)];
        p.token_preds.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      }
    } else if (s.task == "sts") {
      const auto v = logits.reshape({-1}).to(torch::kDouble);
      for (int64_t r = 0; r < v.numel(); ++r) p.scores.push_back(v[r].item<double>());
    } else {
      const auto am = logits.argmax(-1);
      for (int64_t r = 0; r < am.numel(); ++r) p.classes.push_back(am[r].item<int64_t>());
    }
  }
  model.train(was_training);
  return p;
}

/// Metric name -> per-example statistic for the bootstrap, plus the point values.
json score(const Predictions& p, const TaskData& d, const Setup& s, int64_t n_boot, uint64_t seed) {
  json out;
  eval::BootstrapOptions bo;
  bo.n_resamples = n_boot;
  bo.seed = seed;
  auto put = [&](const std::string& name, int64_t n, const eval::Statistic& stat) {
    if (n_boot > 0) {
      const auto iv = eval::bootstrap_interval(n, stat, bo);
      out[name] = {{"value", iv.point}, {"ci", {iv.lower, iv.upper}}};
    } else {
      std::vector<int64_t> all(static_cast<size_t>(n));
      std::iota(all.begin(), all.end(), 0);
      out[name] = stat(all);
    }
  };
  if (s.task == "ner") {
    // Windows back to words, ids back to tags (sentence level).
    std::vector<std::vector<data::Features>> windows(d.sentences.size());
    std::vector<std::vector<std::vector<int64_t>>> preds(d.sentences.size());
    for (size_t r = 0; r < d.rows.size(); ++r) {
      const auto e = static_cast<size_t>(d.rows[r].example_index);
      windows[e].push_back(d.rows[r]);
      preds[e].push_back(p.token_preds[r]);
    }
    std::vector<std::vector<std::string>> gold, pred;
    for (size_t e = 0; e < d.sentences.size(); ++e) {
      const auto words = data::ner_word_predictions(windows[e], preds[e], static_cast<int64_t>(d.sentences[e].words.size()));
      std::vector<std::string> tags;
      for (auto w : words) tags.push_back(w < 0 ? "O" : s.labels.name(w));
      gold.push_back(d.sentences[e].tags);
      pred.push_back(tags);
    }
    auto f1_of = [&](const std::vector<int64_t>& idx) {
      std::vector<std::vector<std::string>> g, q;
      for (auto i : idx) {
        g.push_back(gold[static_cast<size_t>(i)]);
        q.push_back(pred[static_cast<size_t>(i)]);
      }
      return eval::ner_report(g, q).micro.f1;
    };
    put("f1", static_cast<int64_t>(gold.size()), f1_of);
  } else if (s.task == "sts") {
    put("pearson", static_cast<int64_t>(p.scores.size()), [&](const std::vector<int64_t>& idx) {
      std::vector<double> x, y;
      for (auto i : idx) {
        x.push_back(p.scores[static_cast<size_t>(i)]);
        y.push_back(d.gold_scores[static_cast<size_t>(i)]);
      }
      return eval::pearson(x, y);
    });
  } else {
    std::vector<std::string> pred;
    for (auto c : p.classes) pred.push_back(s.labels.name(c));
    put("accuracy", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
      double ok = 0;
      for (auto i : idx) ok += pred[static_cast<size_t>(i)] == d.gold_labels[static_cast<size_t>(i)];
      return idx.empty() ? 0.0 : ok / static_cast<double>(idx.size());
    });
  }
  return out;
}

double point(const json& m) { return m.is_object() ? m.at("value").get<double>() : m.get<double>(); }

int run_finetune(const std::string& config_path, const std::vector<std::string>& overrides, bool print_config) {
  json tree = core::load_config_file(config_path);
  core::apply_overrides(tree, overrides);
  if (print_config) {
    std::cout << core::to_yaml(tree);
    return kOk;
  }
  core::ConfigReader r(tree);
  Setup s;
  s.task = r.choice("task", {"ner", "re", "nli", "sts"}, "ner");
  const auto seed = static_cast<uint64_t>(r.get<int64_t>("seed", 13));
  const fs::path out_dir = r.get<std::string>("output", "runs/finetune");
  const std::string device_name = r.get<std::string>("device", "cpu");
  auto& dr = r.child("data");
  const std::string train_path = dr.require<std::string>("train");
  const std::string dev_path = dr.require<std::string>("dev");
  const std::string test_path = dr.get<std::string>("test", dev_path);
  s.max_length = dr.get<int64_t>("max_length", 128);
  auto& tr = r.child("tokenizer");
  const auto tok_path = tr.optional<std::string>("path");
  const auto tok_train = tr.get<std::vector<std::string>>("train_on", {});
  const int64_t tok_vocab = tr.get<int64_t>("vocab_size", 2000);
  auto& er = r.child("eval");
  const int64_t n_boot = er.get<int64_t>("bootstrap", 1000);
  const json model_json = r.raw("model") ? *r.raw("model") : json::object();
  const json peft_json = r.raw("peft") ? *r.raw("peft") : json::object();
  json train_json = r.raw("train") ? *r.raw("train") : json::object();
  const int64_t batch_size = train_json.value("batch_size", 16);
  train_json.erase("batch_size");
  r.finish();

  core::seed_all(seed);
  fs::create_directories(out_dir);
  std::ofstream(out_dir / "config.yaml") << core::to_yaml(tree);

  // Tokenizer: given, or a WordPiece vocabulary trained on the listed corpora (GatorTron trained
  // its own clinical vocabulary the same way).
  if (tok_path) {
    s.tok = tokenize::load_tokenizer(*tok_path);
  } else {
    BIOLM_CHECK(!tok_train.empty(), ConfigError, "tokenizer", "give tokenizer.path or tokenizer.train_on");
    tokenize::WordPieceTrainOptions wo;
    wo.vocab_size = tok_vocab;
    std::vector<fs::path> files(tok_train.begin(), tok_train.end());
    tokenize::train_wordpiece(files, wo, out_dir / "vocab.txt");
    s.tok = tokenize::load_tokenizer(out_dir / "vocab.txt");
  }
  const auto names = label_names(s.task, train_path);
  s.labels = s.task == "ner" ? data::LabelMap::from_types(names) : data::LabelMap::from_names(names);
  const int64_t pad_id = s.tok->special().pad.value_or(0);

  const TaskData train_d = featurize(s, train_path), dev_d = featurize(s, dev_path), test_d = featurize(s, test_path);
  log::info("{}: {} train / {} dev / {} test rows, {} labels", s.task, train_d.rows.size(), dev_d.rows.size(),
            test_d.rows.size(), s.labels.size());

  // Model: preset or explicit config, vocabulary from the tokenizer.
  json mj = model_json;
  if (!mj.contains("preset")) mj["preset"] = "tiny-encoder";
  mj["vocab_size"] = s.tok->vocab_size();
  mj["pad_token_id"] = pad_id;
  if (!mj.contains("max_positions")) mj["max_positions"] = std::max<int64_t>(512, s.max_length);
  const auto mcfg = models::config_from_json(mj, "model");
  const auto kind = s.task == "ner" ? models::TaskKind::TokenClassification
                    : s.task == "sts" ? models::TaskKind::Regression
                                      : models::TaskKind::SequenceClassification;
  auto model = models::make_task_model(mcfg, kind, s.task == "sts" ? 1 : s.labels.size());
  const auto device = core::parse_device(device_name);
  model->to(device);

  const auto method = peft::method_config_from_json(peft_json, "peft");
  const auto summary = peft::apply(*model, method);
  log::info("peft: {}", summary.to_string());

  auto tcfg = train::train_config_from_json(train_json, "train");
  tcfg.run_dir = out_dir.string();
  tcfg.device = device.str();
  tcfg.seed = seed;
  if (!tcfg.best_metric) tcfg.best_metric = s.task == "ner" ? "f1" : s.task == "sts" ? "pearson" : "accuracy";

  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.seed = seed;
  data::Loader loader(std::make_shared<data::VectorDataset>(train_d.rows),
                      [pad_id](std::vector<data::Features>&& rows, uint64_t) {
                        data::CollateOptions co;
                        co.pad_id = pad_id;
                        return data::collate(rows, co);
                      },
                      lo);
  train::Trainer trainer(*model, tcfg);
  trainer.set_lr_scales(summary.lr_scales);
  trainer.set_run_info({{"task", s.task}, {"model", models::to_json(mcfg)}, {"peft", peft::to_json(method)}});
  trainer.set_eval([&](train::TrainableModel&, int64_t) {
    const auto m = score(predict(*model, dev_d, s, pad_id, device), dev_d, s, 0, seed);
    train::Metrics out;
    for (auto it = m.begin(); it != m.end(); ++it) out[it.key()] = point(it.value());
    return out;
  });
  const bool tty = isatty(STDERR_FILENO);
  trainer.set_progress([tty](const train::ProgressEvent& e) {
    std::cerr << (tty ? "\r" : "") << train::format_progress(e, tty) << (tty ? "" : "\n") << std::flush;
  });
  const auto result = trainer.fit(loader);
  if (tty) std::cerr << "\n";

  json results;
  results["name"] = out_dir.filename().string();
  results["task"] = s.task;
  results["method"] = peft::to_string(method.method);
  results["trainable_parameters"] = summary.trainable_parameters;
  results["steps"] = result.step;
  results["tasks"][s.task] = score(predict(*model, test_d, s, pad_id, device), test_d, s, n_boot, seed);
  std::ofstream(out_dir / "results.json") << results.dump(2) << "\n";
  std::cout << results.dump() << "\n";
  return result.status == train::Status::Interrupted ? kInterrupted : kOk;
}

const bool registered = register_command({"finetune", "fine-tune an encoder on ner | re | nli | sts (full, lora, ia3, prompt, hybrid)",
  [](CLI::App& sub) {
    auto config = std::make_shared<std::string>();
    auto overrides = std::make_shared<std::vector<std::string>>();
    auto print = std::make_shared<bool>(false);
    sub.add_option("--config", *config, "YAML config (see examples/configs/)")->required()->check(CLI::ExistingFile);
    sub.add_option("overrides", *overrides, "key.path=value overrides, ~key.path removes");
    sub.add_flag("--print-config", *print, "print the resolved configuration and exit");
    sub.callback([=] {
      const int rc = run_finetune(*config, *overrides, *print);
      if (rc != kOk) throw ExitRequest{rc};
    });
  }});

}  // namespace
}  // namespace biolm::cli

// biolm finetune --config FILE [key.path=value ...]: the whole fine-tuning recipe.
//   tokenizer (load, take from model.init, or train a WordPiece vocabulary on a corpus) -> task
//   reader -> features -> loader -> model (preset/config or a biolm model directory + task head)
//   -> peft method -> trainer (eval on dev every N steps, best checkpoint) -> test metrics with
//   bootstrap 95 % intervals -> results.json and <output>/model/ (io::save_model_dir).
// With train.dp (DP-SGD, docs/privacy.md) the loader samples Poisson batches and results.json
// and the model directory's info carry "privacy" (epsilon spent, delta, noise, q, steps).
// Tasks (biolm/tasks/finetune_tasks.h, docs/cli.md): ner, re, nli, sts, qa-span, mcqa, pubmedqa,
// instruct. The task glue lives in the library; this file reads the config and wires it up.
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
#include "biolm/io/init_source.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tasks/finetune_tasks.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/distributed.h"
#include "biolm/train/dp.h"
#include "biolm/train/progress.h"
#include "biolm/train/trainer.h"
#include "command.h"

namespace biolm::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int run_finetune(const std::string& config_path, const std::vector<std::string>& overrides, bool print_config) {
  json tree = core::load_config_file(config_path);
  core::apply_overrides(tree, overrides);
  if (print_config) {
    std::cout << core::to_yaml(tree);
    return kOk;
  }
  core::ConfigReader r(tree);
  tasks::TaskSpec spec;
  spec.task = tasks::parse_task(r.choice("task", tasks::task_names(), "ner"));
  const std::string task_name = tasks::to_string(spec.task);
  const auto seed = static_cast<uint64_t>(r.get<int64_t>("seed", 13));
  const fs::path out_dir = r.get<std::string>("output", "runs/finetune");
  const std::string device_name = r.get<std::string>("device", "cpu");
  auto& dr = r.child("data");
  const std::string train_path = dr.require<std::string>("train");
  const std::string dev_path = dr.require<std::string>("dev");
  const std::string test_path = dr.get<std::string>("test", dev_path);
  spec.max_length = dr.get<int64_t>("max_length", 128);
  spec.doc_stride = dr.get<int64_t>("doc_stride", -1);
  spec.format = dr.get<std::string>("format", "");
  const std::string prompt_format_name = dr.get<std::string>("prompt_format", "alpaca");
  spec.prompt_format = train::parse_prompt_format(prompt_format_name);
  spec.packing = dr.get<bool>("packing", false);
  auto& tr = r.child("tokenizer");
  const auto tok_path = tr.optional<std::string>("path");
  const auto tok_train = tr.get<std::vector<std::string>>("train_on", {});
  const int64_t tok_vocab = tr.get<int64_t>("vocab_size", 2000);
  auto& er = r.child("eval");
  const int64_t n_boot = er.get<int64_t>("bootstrap", 1000);
  spec.max_new_tokens = er.get<int64_t>("max_new_tokens", 32);
  spec.max_answer_tokens = er.get<int64_t>("max_answer_tokens", 30);
  spec.batch_size = er.get<int64_t>("batch_size", 32);
  json model_json = r.raw("model") ? *r.raw("model") : json::object();
  const json peft_json = r.raw("peft") ? *r.raw("peft") : json::object();
  json train_json = r.raw("train") ? *r.raw("train") : json::object();
  const int64_t batch_size = train_json.value("batch_size", 16);
  train_json.erase("batch_size");
  r.finish();
  // The train and peft sections are checked here too, before any vocabulary is trained or model
  // built (their model-dependent parts — default targets, the prompt's width — come later).
  (void)train::train_config_from_json(train_json, "train");
  // Default adapter targets, as PEFT's for BERT/LLaMA-style models: LoRA on the query and value
  // projections; IA3 scales keys, values and the FFN's input to its down projection (Liu et al. 2022).
  json pj = peft_json;
  const std::string method_name = pj.value("method", std::string("full"));
  if ((method_name == "lora" || method_name == "hybrid") && !(pj.contains("lora") && pj["lora"].contains("targets"))) {
    pj["lora"]["targets"] = std::vector<std::string>{"**.q_proj", "**.v_proj"};
    log::info("peft: LoRA on **.q_proj, **.v_proj (peft.lora.targets to choose)");
  }
  if (method_name == "ia3" && !(pj.contains("ia3") && (pj["ia3"].contains("targets") || pj["ia3"].contains("input_targets")))) {
    pj["ia3"]["targets"] = std::vector<std::string>{"**.k_proj", "**.v_proj"};
    pj["ia3"]["input_targets"] = std::vector<std::string>{"**.mlp.down"};
    log::info("peft: IA3 on **.k_proj, **.v_proj and the input of **.mlp.down (peft.ia3.targets / input_targets to choose)");
  }
  {
    // Checked now, before any work; a soft prompt's width (the model's) is only known later.
    json check = pj;
    if (method_name == "prompt" && !(check.contains("prompt") && check["prompt"].contains("hidden")))
      check["prompt"]["hidden"] = 1;
    (void)peft::method_config_from_json(check, "peft");
  }
  core::check_range(spec.max_length > 1, "data.max_length", "> 1", std::to_string(spec.max_length));
  core::check_range(spec.doc_stride < spec.max_length, "data.doc_stride", "< data.max_length",
                    std::to_string(spec.doc_stride));
  core::check_range(spec.max_answer_tokens > 0, "eval.max_answer_tokens", "> 0",
                    std::to_string(spec.max_answer_tokens));
  core::check_range(spec.max_new_tokens > 0, "eval.max_new_tokens", "> 0", std::to_string(spec.max_new_tokens));
  core::check_range(spec.batch_size > 0, "eval.batch_size", "> 0", std::to_string(spec.batch_size));
  if (!spec.format.empty() && spec.task != tasks::Task::Mcqa && spec.task != tasks::Task::Instruct)
    throw ConfigError("data.format", "only mcqa (medqa|medmcqa) and instruct (alpaca|sharegpt) read a format");
  if (spec.packing && spec.task != tasks::Task::Instruct)
    throw ConfigError("data.packing", "only the instruct task packs examples");

  // Architecture: a biolm model directory (model.init) or a preset/explicit config.
  const auto init = io::take_init_source(model_json, /*need_tokenizer=*/!tok_path);
  if (init) {
    if (!tok_train.empty())
      throw ConfigError("tokenizer.train_on", "a model.init directory brings its vocabulary; give tokenizer.path or nothing");
  }
  const bool decoder_default = spec.task == tasks::Task::Instruct;
  json mj = model_json;
  if (init) {
    json cj = models::to_json(init->config);
    for (const auto& [key, value] : model_json.items()) cj[key] = value;
    mj = cj;
  } else if (!mj.contains("preset")) {
    mj["preset"] = decoder_default ? "tiny-decoder" : "tiny-encoder";
  }
  const bool is_decoder = models::config_from_json(mj, "model").is_decoder();
  if (spec.task == tasks::Task::Instruct && !is_decoder)
    throw ConfigError("model", "instruct trains a causal LM: use a decoder (model.preset: tiny-decoder, or family: decoder)");
  if (spec.task == tasks::Task::QaSpan || spec.task == tasks::Task::Mcqa || spec.task == tasks::Task::Instruct) {
    // qa-span: training and prediction shift the span targets past the soft prompt, but `biolm
    // eval` does not yet reproduce finetune's test metrics for such a model, so it stays refused.
    if (peft_json.value("method", std::string("full")) == "prompt")
      throw ConfigError("peft.method", task_name + " cannot use prompt tuning (span QA, (B,K,T) choices and "
                                                   "generation are not supported with a soft prompt); use lora, ia3, "
                                                   "hybrid or full");
  }

  core::seed_all(seed);
  fs::create_directories(out_dir);
  std::ofstream(out_dir / "config.yaml") << core::to_yaml(tree);

  // Tokenizer: given, the model directory's, or a WordPiece vocabulary trained on the listed
  // corpora (GatorTron trained its own clinical vocabulary the same way). Decoders use [CLS] /
  // [SEP] of a trained vocabulary as BOS / EOS.
  std::shared_ptr<tokenize::Tokenizer> tok;
  if (tok_path) {
    tok = tokenize::load_tokenizer(*tok_path);
  } else if (init) {
    tok = tokenize::load_tokenizer(init->tokenizer_path);
  } else {
    BIOLM_CHECK(!tok_train.empty(), ConfigError, "tokenizer", "give tokenizer.path or tokenizer.train_on");
    tokenize::WordPieceTrainOptions wo;
    wo.vocab_size = tok_vocab;
    std::vector<fs::path> files(tok_train.begin(), tok_train.end());
    // Under data parallelism every rank trains the same vocabulary; each writes its own file so
    // no rank reads another's half-written one.
    const int rank = train::DistEnv::from_env().rank;
    const fs::path vocab = out_dir / (rank == 0 ? std::string("vocab.txt") : "vocab.rank" + std::to_string(rank) + ".txt");
    tokenize::train_wordpiece(files, wo, vocab);
    tokenize::WordPieceOptions po;
    if (is_decoder) {
      po.specials.bos = "[CLS]";
      po.specials.eos = "[SEP]";
    }
    tok = tokenize::WordPieceTokenizer::from_vocab_file(vocab, po);
  }
  const auto names = tasks::label_names(spec, train_path);
  spec.labels = spec.task == tasks::Task::Ner ? data::LabelMap::from_types(names) : data::LabelMap::from_names(names);
  const int64_t pad_id = tok->special().pad.value_or(0);

  const auto train_d = tasks::featurize(spec, *tok, train_path), dev_d = tasks::featurize(spec, *tok, dev_path),
             test_d = tasks::featurize(spec, *tok, test_path);
  log::info("{}: {} train rows / {} dev / {} test examples, {} labels", task_name, train_d.rows.size(),
            dev_d.n_examples(), test_d.n_examples(), spec.labels.size());

  // Model: vocabulary and special ids from the tokenizer (a model.init directory keeps its own
  // and must match the tokenizer).
  if (init) {
    if (tok->vocab_size() != init->config.vocab_size)
      throw ConfigError("tokenizer.path", "the tokenizer has " + std::to_string(tok->vocab_size()) +
                                              " tokens but model.init's vocab_size is " +
                                              std::to_string(init->config.vocab_size));
  } else {
    mj["vocab_size"] = tok->vocab_size();
    mj["pad_token_id"] = pad_id;
    if (is_decoder) {
      mj["bos_token_id"] = tok->special().bos ? json(*tok->special().bos) : json(nullptr);
      mj["eos_token_id"] = tok->special().eos ? json(*tok->special().eos) : json(nullptr);
    }
    if (!mj.contains("max_positions")) mj["max_positions"] = std::max<int64_t>(512, spec.max_length);
  }
  const auto mcfg = models::config_from_json(mj, "model");
  const auto kind = tasks::head_kind(spec.task);
  auto model = models::make_task_model(mcfg, kind, tasks::n_labels(spec));
  if (init) {
    const auto report = io::load_init_weights(*model, *init);
    log::info("model.init {} ({}): {}", init->dir.string(), init->format(), report.summary);
  }
  const auto device = core::parse_device(device_name);
  model->to(device);

  // A soft prompt's width is the model's: filled in unless given.
  if (method_name == "prompt" && !(pj.contains("prompt") && pj["prompt"].contains("hidden")))
    pj["prompt"]["hidden"] = mcfg.hidden_size;
  // Every adapter method trains the task's head in full unless told otherwise (PEFT's
  // modules_to_save): a frozen, freshly initialised classifier cannot learn the labels.
  if (method_name != "full" && !pj.contains("train_patterns")) {
    const auto head = models::task_head_patterns(*model);
    if (!head.empty()) {
      pj["train_patterns"] = head;
      std::string list;
      for (const auto& h : head) list += (list.empty() ? "" : ", ") + h;
      log::info("peft: the task head trains in full next to the {} adapter ({}); set peft.train_patterns: [] to freeze it",
                method_name, list);
    }
  }
  const auto method = peft::method_config_from_json(pj, "peft");
  const auto summary = peft::apply(*model, method);
  log::info("peft: {}", summary.to_string());

  auto tcfg = train::train_config_from_json(train_json, "train");
  tcfg.run_dir = out_dir.string();
  tcfg.device = device.str();
  tcfg.seed = seed;
  if (!tcfg.best_metric) tcfg.best_metric = tasks::primary_metric(spec.task);
  // torchrun / biolm launch: WORLD_SIZE > 1 joins a process group; train.batch_size stays the
  // global batch, each rank takes its slice (data/loader.h), so the run does not depend on it.
  const auto group = train::ProcessGroup::join_from_env(
      device, std::chrono::milliseconds(static_cast<int64_t>(tcfg.dist_timeout_s * 1000)));

  const auto train_set = std::make_shared<data::VectorDataset>(train_d.rows);
  const data::Collator collator = [pad_id](std::vector<data::Features>&& rows, uint64_t) {
    data::CollateOptions co;
    co.pad_id = pad_id;
    return data::collate(rows, co);
  };
  std::unique_ptr<data::BatchSource> loader;
  if (tcfg.dp) {
    // DP-SGD samples each example with probability q per step (train/dp.h): the expected logical
    // batch is train.batch_size x train.grad_accum examples, cut into grad_accum micro-batches.
    if (spec.packing) throw ConfigError("data.packing", "packed rows cannot train with DP-SGD (train.dp)");
    train::PoissonOptions po;
    po.sample_rate = std::min(1.0, static_cast<double>(batch_size * tcfg.grad_accum) /
                                       static_cast<double>(std::max<int64_t>(1, train_set->size())));
    po.micro_batches = tcfg.grad_accum;
    po.seed = seed;
    log::info("DP-SGD: Poisson sampling, q = {:.6g} (train.batch_size {} x grad_accum {} of {} rows)", po.sample_rate,
              batch_size, tcfg.grad_accum, train_set->size());
    loader = std::make_unique<train::PoissonLoader>(train_set, collator, po);
  } else {
    data::LoaderOptions lo;
    lo.batch_size = batch_size;
    lo.seed = seed;
    if (group) {
      lo.rank = group->rank();
      lo.world_size = group->world_size();
    }
    loader = std::make_unique<data::Loader>(train_set, collator, lo);
  }
  train::Trainer trainer(*model, tcfg);
  trainer.set_process_group(group);
  trainer.set_lr_scales(summary.lr_scales);
  json run_info = {{"task", task_name}, {"model", models::to_json(mcfg)}, {"peft", peft::to_json(method)}};
  if (init) run_info["init"] = init->dir.string();
  trainer.set_run_info(run_info);
  trainer.set_eval([&](train::TrainableModel&, int64_t) {
    const auto m = tasks::score(spec, dev_d, tasks::predict(*model, spec, *tok, dev_d), 0, seed);
    train::Metrics out;
    for (auto it = m.begin(); it != m.end(); ++it) out[it.key()] = tasks::metric_value(it.value());
    return out;
  });
  const bool tty = isatty(STDERR_FILENO);
  trainer.set_progress([tty](const train::ProgressEvent& e) {
    std::cerr << (tty ? "\r" : "") << train::format_progress(e, tty) << (tty ? "" : "\n") << std::flush;
  });
  const auto result = trainer.fit(*loader);
  if (tty) std::cerr << "\n";
  if (group && group->rank() != 0) return result.status == train::Status::Interrupted ? kInterrupted : kOk;

  json results;
  results["name"] = out_dir.filename().string();
  results["task"] = task_name;
  results["method"] = peft::to_string(method.method);
  results["trainable_parameters"] = summary.trainable_parameters;
  results["steps"] = result.step;
  results["tasks"][task_name] = tasks::score(spec, test_d, tasks::predict(*model, spec, *tok, test_d), n_boot, seed);
  if (!result.privacy.is_null()) results["privacy"] = result.privacy;  // DP-SGD: epsilon spent, delta, sigma, q

  // The fine-tuned model as a biolm model directory (adapters kept unmerged, with their config).
  io::ModelDirInfo mi;
  mi.config = mcfg;
  mi.task = kind;
  mi.n_labels = model->n_labels();
  mi.labels = spec.labels.names();
  if (method.method != peft::Method::Full) mi.peft = method;
  mi.info = {{"task", task_name}, {"steps", result.step}, {"metrics", results["tasks"][task_name]},
             {"max_length", spec.max_length}, {"doc_stride", spec.doc_stride}, {"format", spec.format},
             {"eval_batch_size", spec.batch_size}};
  if (spec.task == tasks::Task::Instruct) mi.info["prompt_format"] = prompt_format_name;
  if (init) mi.info["init"] = init->dir.string();
  if (!result.privacy.is_null()) mi.info["privacy"] = result.privacy;
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  io::save_model_dir(*model, mi, out_dir / "model", so);
  results["model_dir"] = (out_dir / "model").string();

  std::ofstream(out_dir / "results.json") << results.dump(2) << "\n";
  std::cout << results.dump() << "\n";
  return result.status == train::Status::Interrupted ? kInterrupted : kOk;
}

const bool registered = register_config_command("finetune", "fine-tune on ner | re | nli | sts | qa-span | mcqa | pubmedqa | instruct (full, lora, ia3, prompt, hybrid)",
                                                  "YAML config (see examples/configs/)", run_finetune,
                                                  R"(Config sections (every key: docs/cli.md "biolm finetune"):
  task, seed, device, output       ner | re | nli | sts | qa-span | mcqa | pubmedqa | instruct
  data.*        train, dev, test, max_length, doc_stride, format, prompt_format, packing
  tokenizer.*   path | train_on + vocab_size (none with model.init: the directory's own)
  model.*       init (biolm or Hugging Face directory) | preset + shape keys, dropout, gradient_checkpointing
  peft.*        method (full | lora | ia3 | prompt | hybrid), lora.{rank,alpha,targets}, train_patterns
  train.*       max_steps, batch_size, lr, schedule, warmup_steps, clip_grad_norm, eval_every, resume (auto)
  eval.*        bootstrap, batch_size, max_new_tokens, max_answer_tokens
Overrides: key.path=value (YAML value), ~key.path removes. The whole config is checked before work.
Example: biolm finetune --config examples/configs/ner_minilm.yaml model.init=DIR train.max_steps=100)");

}  // namespace
}  // namespace biolm::cli

// The fine-tuning recipe (see biolm/recipes/finetune.h), moved out of tools/biolm/cmd_finetune.cpp.
#include "biolm/recipes/finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "biolm/core/config.h"
#include "biolm/core/device.h"
#include "biolm/core/log.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/loader.h"
#include "biolm/io/init_source.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/quant/linear.h"
#include "biolm/peft/method.h"
#include "biolm/tokenize/wordpiece.h"
#include "biolm/train/distributed.h"
#include "biolm/train/dp.h"

namespace biolm::recipes {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// The task's default adapter targets filled into the peft section where the config names none.
json with_default_targets(json pj, const tasks::AdapterDefaults& d, bool announce) {
  const std::string method = pj.value("method", std::string("full"));
  const auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if ((method == "lora" || method == "hybrid") && !(pj.contains("lora") && pj["lora"].contains("targets"))) {
    pj["lora"]["targets"] = d.lora_targets;
    if (announce) log::info("peft: LoRA on {} (peft.lora.targets to choose)", join(d.lora_targets));
  }
  if (method == "ia3" && !(pj.contains("ia3") && (pj["ia3"].contains("targets") || pj["ia3"].contains("input_targets")))) {
    pj["ia3"]["targets"] = d.ia3_targets;
    pj["ia3"]["input_targets"] = d.ia3_input_targets;
    if (announce)
      log::info("peft: IA3 on {} and the input of {} (peft.ia3.targets / input_targets to choose)",
                join(d.ia3_targets), join(d.ia3_input_targets));
  }
  return pj;
}

std::string method_name(const json& pj) { return pj.value("method", std::string("full")); }

/// The model section resolved: a model.init directory's config with the given keys on top (`init`
/// receives the directory), or the given keys with a preset (tiny-decoder where the task needs a
/// causal LM, tiny-encoder otherwise) when none is named.
json resolve_model_json(const FinetuneConfig& c, bool decoder_default, std::optional<io::InitSource>& init) {
  json model_json = c.model;
  init = io::take_init_source(model_json, /*need_tokenizer=*/!c.tokenizer_path);
  if (init) {
    json cj = models::to_json(init->config);
    for (const auto& [key, value] : model_json.items()) cj[key] = value;
    return cj;
  }
  if (!model_json.contains("preset")) model_json["preset"] = decoder_default ? "tiny-decoder" : "tiny-encoder";
  return model_json;
}

/// Tokenizer: given, the model directory's, or a WordPiece vocabulary trained on the listed
/// corpora (GatorTron trained its own clinical vocabulary the same way). Decoders use [CLS] /
/// [SEP] of a trained vocabulary as BOS / EOS.
std::shared_ptr<tokenize::Tokenizer> make_tokenizer(const FinetuneConfig& c, const std::optional<io::InitSource>& init,
                                                    bool is_decoder, const fs::path& out_dir) {
  if (c.tokenizer_path) return tokenize::load_tokenizer(*c.tokenizer_path);
  if (init) return tokenize::load_tokenizer(init->tokenizer_path);
  BIOLM_CHECK(!c.tokenizer_train_on.empty(), ConfigError, "tokenizer", "give tokenizer.path or tokenizer.train_on");
  tokenize::WordPieceTrainOptions wo;
  wo.vocab_size = c.vocab_size;
  std::vector<fs::path> files(c.tokenizer_train_on.begin(), c.tokenizer_train_on.end());
  // Under data parallelism every rank trains the same vocabulary; each writes its own file so no
  // rank reads another's half-written one.
  const int rank = train::DistEnv::from_env().rank;
  const fs::path vocab = out_dir / (rank == 0 ? std::string("vocab.txt") : "vocab.rank" + std::to_string(rank) + ".txt");
  tokenize::train_wordpiece(files, wo, vocab);
  tokenize::WordPieceOptions po;
  if (is_decoder) {
    po.specials.bos = "[CLS]";
    po.specials.eos = "[SEP]";
  }
  return tokenize::WordPieceTokenizer::from_vocab_file(vocab, po);
}

}  // namespace

std::unique_ptr<data::BatchSource> make_train_loader(std::vector<data::Features> rows, const TrainLoaderOptions& o) {
  const auto train_set = std::make_shared<data::VectorDataset>(std::move(rows));
  const int64_t pad_id = o.pad_id;
  const data::Collator collator = [pad_id](std::vector<data::Features>&& batch_rows, uint64_t) {
    data::CollateOptions co;
    co.pad_id = pad_id;
    return data::collate(batch_rows, co);
  };
  if (o.dp) {
    train::PoissonOptions po;
    po.sample_rate = std::min(1.0, static_cast<double>(o.batch_size * o.grad_accum) /
                                       static_cast<double>(std::max<int64_t>(1, train_set->size())));
    po.micro_batches = o.grad_accum;
    po.seed = o.seed;
    log::info("DP-SGD: Poisson sampling, q = {:.6g} (batch_size {} x grad_accum {} of {} rows)", po.sample_rate,
              o.batch_size, o.grad_accum, train_set->size());
    return std::make_unique<train::PoissonLoader>(train_set, collator, po);
  }
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;  // the global batch: each rank of a data-parallel run takes its slice
  lo.seed = o.seed;
  lo.rank = o.rank;
  lo.world_size = o.world_size;
  if (o.prefetch >= 0) lo.prefetch = o.prefetch;
  return std::make_unique<data::Loader>(train_set, collator, lo);
}

FinetuneConfig finetune_config_from_json(const json& tree) {
  FinetuneConfig c;
  c.tree = tree;
  core::ConfigReader r(tree);
  auto& o = c.task_options;
  c.task = r.choice("task", tasks::task_names(), "ner");
  c.seed = static_cast<uint64_t>(r.get<int64_t>("seed", 13));
  c.output = r.get<std::string>("output", "runs/finetune");
  c.device = r.get<std::string>("device", "cpu");
  auto& dr = r.child("data");
  c.train_path = dr.require<std::string>("train");
  c.dev_path = dr.require<std::string>("dev");
  c.test_path = dr.get<std::string>("test", c.dev_path);
  o.max_length = dr.get<int64_t>("max_length", 128);
  o.doc_stride = dr.get<int64_t>("doc_stride", -1);
  o.format = dr.get<std::string>("format", "");
  c.prompt_format = dr.get<std::string>("prompt_format", "alpaca");
  o.prompt_format = train::parse_prompt_format(c.prompt_format);
  o.packing = dr.get<bool>("packing", false);
  o.cop_zero_based = dr.get<bool>("cop_zero_based", false);
  const auto pubmedqa_setting = dr.optional<std::string>("pubmedqa_setting");
  if (pubmedqa_setting) o.pubmedqa_setting = *pubmedqa_setting;
  auto& tr = r.child("tokenizer");
  c.tokenizer_path = tr.optional<std::string>("path");
  c.tokenizer_train_on = tr.get<std::vector<std::string>>("train_on", {});
  c.vocab_size = tr.get<int64_t>("vocab_size", 2000);
  auto& er = r.child("eval");
  c.n_bootstrap = er.get<int64_t>("bootstrap", 1000);
  o.max_new_tokens = er.get<int64_t>("max_new_tokens", 32);
  o.max_answer_tokens = er.get<int64_t>("max_answer_tokens", 30);
  o.batch_size = er.get<int64_t>("batch_size", 32);
  o.negative_label = er.optional<std::string>("negative_label");
  if (r.raw("model")) c.model = *r.raw("model");
  if (r.raw("peft")) c.peft = *r.raw("peft");
  if (r.raw("train")) c.train = *r.raw("train");
  c.batch_size = c.train.value("batch_size", 16);
  c.train.erase("batch_size");
  // Every section is checked here, before any vocabulary is trained or model built, and every
  // problem is reported in one ConfigError by r.finish() (the model-dependent parts of peft —
  // default targets, the prompt's width — are filled with the task's defaults / a placeholder).
  r.capture([&] { (void)train::train_config_from_json(c.train, "train"); });
  std::shared_ptr<tasks::Task> task;
  r.capture([&] { task = tasks::make_task(c.task, o); });
  if (task) {
    r.capture([&] {
      json check = with_default_targets(c.peft, task->adapter_defaults(), /*announce=*/false);
      if (method_name(check) == "prompt" && !(check.contains("prompt") && check["prompt"].contains("hidden")))
        check["prompt"]["hidden"] = 1;
      (void)peft::method_config_from_json(check, "peft");
    });
  }
  r.check(o.max_length > 1, "data.max_length", "must be > 1, got " + std::to_string(o.max_length));
  r.check(o.doc_stride < o.max_length, "data.doc_stride",
          "must be < data.max_length, got " + std::to_string(o.doc_stride));
  r.check(o.max_answer_tokens > 0, "eval.max_answer_tokens", "must be > 0, got " + std::to_string(o.max_answer_tokens));
  r.check(o.max_new_tokens > 0, "eval.max_new_tokens", "must be > 0, got " + std::to_string(o.max_new_tokens));
  r.check(o.batch_size > 0, "eval.batch_size", "must be > 0, got " + std::to_string(o.batch_size));
  if (task && !o.format.empty()) {
    const auto formats = task->formats();
    std::string valid;
    for (const auto& f : formats) valid += (valid.empty() ? "" : " | ") + f;
    if (formats.empty())
      r.check(false, "data.format", c.task + " reads one format; only ner (conll|brat|pubtator), qa-span (squad|bioasq), "
                                            "mcqa (medqa|medmcqa) and instruct (alpaca|sharegpt) take data.format");
    else
      r.check(std::find(formats.begin(), formats.end(), o.format) != formats.end(), "data.format",
              c.task + " reads " + valid + ", got \"" + o.format + "\"");
  }
  if (task) r.check(!o.packing || task->needs_decoder(), "data.packing", "only the instruct task packs examples");
  r.check(!o.negative_label || c.task == "re", "eval.negative_label", "only the re task has a negative class");
  r.check(!pubmedqa_setting || c.task == "pubmedqa", "data.pubmedqa_setting", "only the pubmedqa task has settings");
  // The model section: a model.init directory's config merged with the keys given, or a preset.
  r.capture([&] {
    std::optional<io::InitSource> init;
    const json mj = resolve_model_json(c, task && task->needs_decoder(), init);
    r.check(!init || c.tokenizer_train_on.empty(), "tokenizer.train_on",
            "a model.init directory brings its vocabulary; give tokenizer.path or nothing");
    const auto mc = models::config_from_json(mj, "model");
    // A quantized base is frozen: refused here, before any work, for the methods that train it.
    if (mc.quantize) {
      const std::string m = method_name(c.peft);
      r.check(m != "full", "model.quantize", "a quantized base is frozen and cannot train with peft.method full; "
                                              "use lora (QLoRA), ia3 or prompt");
      r.check(!c.peft.contains("train_top_layers") || c.peft["train_top_layers"] == 0, "peft.train_top_layers",
              "cannot train layers in full on a quantized base (model.quantize)");
    }
  });
  r.finish();
  return c;
}

FinetuneResult finetune(const FinetuneConfig& c, const FinetuneHooks& hooks) {
  const auto task = tasks::make_task(c.task, c.task_options);
  const fs::path out_dir = c.output;
  json pj = with_default_targets(c.peft, task->adapter_defaults(), /*announce=*/true);
  const std::string method_str = method_name(pj);

  // Architecture: a biolm model directory (model.init) or a preset/explicit config.
  std::optional<io::InitSource> init;
  json mj = resolve_model_json(c, task->needs_decoder(), init);
  if (init && !c.tokenizer_train_on.empty())
    throw ConfigError("tokenizer.train_on", "a model.init directory brings its vocabulary; give tokenizer.path or nothing");
  const bool is_decoder = models::config_from_json(mj, "model").is_decoder();
  if (task->needs_decoder() && !is_decoder)
    throw ConfigError("model", "instruct trains a causal LM: use a decoder (model.preset: tiny-decoder, or family: decoder)");
  // Every built-in task takes a soft prompt (mcqa per option row, instruct in generation too);
  // a task of the user's own may say it does not.
  if (method_name(c.peft) == "prompt") {
    if (!task->supports_prompt_tuning())
      throw ConfigError("peft.method", c.task + " does not support prompt tuning; use lora, ia3, hybrid or full");
    if (c.task_options.packing)
      throw ConfigError("data.packing", "prompt tuning puts its soft prompt in front of each example, and a packed "
                                        "row holds several: turn packing off, or use lora, ia3, hybrid or full");
  }

  core::seed_all(c.seed);
  fs::create_directories(out_dir);
  std::ofstream(out_dir / "config.yaml") << core::to_yaml(c.tree);

  const auto tok = make_tokenizer(c, init, is_decoder, out_dir);
  const int64_t pad_id = tok->special().pad.value_or(0);
  auto train_d = task->featurize_train(*tok, c.train_path);
  const auto dev_d = task->featurize(*tok, c.dev_path), test_d = task->featurize(*tok, c.test_path);
  log::info("{}: {} train rows / {} dev / {} test examples, {} labels", c.task, train_d->rows.size(),
            dev_d->n_examples(), test_d->n_examples(), task->labels().size());

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
    if (!mj.contains("max_positions")) mj["max_positions"] = std::max<int64_t>(512, c.task_options.max_length);
  }
  const auto mcfg = models::config_from_json(mj, "model");
  const auto kind = task->head_kind();
  auto model = models::make_task_model(mcfg, kind, task->n_labels());
  if (init) {
    const auto report = io::load_init_weights(*model, *init);
    log::info("model.init {} ({}): {}", init->dir.string(), init->format(), report.summary);
  }
  const auto device = core::parse_device(c.device);
  // The 4-bit tensors are not module buffers (Module::to does not move them) and the dequantization
  // kernels are tested on the CPU only: refuse rather than fail inside the first forward.
  BIOLM_CHECK(!mcfg.quantize || !device.is_cuda(), ConfigError, "model.quantize",
              "quantized bases run on the CPU in this release (device " + device.str() + ")");
  model->to(device);

  // A soft prompt's width is the model's: filled in unless given.
  if (method_str == "prompt" && !(pj.contains("prompt") && pj["prompt"].contains("hidden")))
    pj["prompt"]["hidden"] = mcfg.hidden_size;
  // The task's head policy: the head trains in full next to any adapter unless the config says.
  if (method_str != "full" && task->adapter_defaults().train_head && !pj.contains("train_patterns")) {
    const auto head = models::task_head_patterns(*model);
    if (!head.empty()) {
      pj["train_patterns"] = head;
      std::string list;
      for (const auto& h : head) list += (list.empty() ? "" : ", ") + h;
      log::info("peft: the task head trains in full next to the {} adapter ({}); set peft.train_patterns: [] to freeze it",
                method_str, list);
    }
  }
  const auto method = peft::method_config_from_json(pj, "peft");
  const auto summary = peft::apply(*model, method);
  log::info("peft: {}", summary.to_string());
  if (mcfg.quantize) quant::check_quantized_frozen(*model);

  auto tcfg = train::train_config_from_json(c.train, "train");
  tcfg.run_dir = out_dir.string();
  tcfg.device = device.str();
  tcfg.seed = c.seed;
  // The task's metric picks the best dev evaluation; train.eval_every: 0 (no dev evaluations, the
  // test scores the final weights) has nothing to pick from.
  if (!tcfg.best_metric && tcfg.eval_every > 0) tcfg.best_metric = task->primary_metric();

  // torchrun / biolm launch: WORLD_SIZE > 1 joins a process group; train.batch_size stays the
  // global batch, each rank takes its slice (data/loader.h), so the run does not depend on it.
  const auto group = train::ProcessGroup::join_from_env(
      device, std::chrono::milliseconds(static_cast<int64_t>(tcfg.dist_timeout_s * 1000)));
  if (tcfg.dp && c.task_options.packing)
    throw ConfigError("data.packing", "packed rows cannot train with DP-SGD (train.dp)");
  TrainLoaderOptions lo;
  lo.pad_id = pad_id;
  lo.batch_size = c.batch_size;
  lo.seed = c.seed;
  lo.dp = tcfg.dp.has_value();
  lo.grad_accum = tcfg.grad_accum;
  if (group) {
    lo.rank = group->rank();
    lo.world_size = group->world_size();
  }
  const auto loader = make_train_loader(std::move(train_d->rows), lo);
  train::Trainer trainer(*model, tcfg);
  trainer.set_process_group(group);
  trainer.set_lr_scales(summary.lr_scales);
  // "head", "n_labels", "labels": what `biolm convert checkpoint` needs to rebuild the model.
  json run_info = {{"task", c.task},          {"model", models::to_json(mcfg)},      {"peft", peft::to_json(method)},
                   {"head", models::to_string(kind)}, {"n_labels", model->n_labels()}, {"labels", task->labels().names()}};
  if (init) run_info["init"] = init->dir.string();
  trainer.set_run_info(run_info);
  trainer.set_eval([&](train::TrainableModel&, int64_t step) {
    const auto m = task->score(*dev_d, *task->predict(*model, *tok, *dev_d), 0, c.seed);
    train::Metrics out;
    for (auto it = m.begin(); it != m.end(); ++it) out[it.key()] = tasks::metric_value(it.value());
    if (hooks.eval) hooks.eval(step, out);
    return out;
  });
  if (hooks.progress) trainer.set_progress(hooks.progress);
  if (hooks.step) trainer.set_step_callback(hooks.step);
  const auto fit = trainer.fit(*loader);

  FinetuneResult res;
  res.status = fit.status;
  if (group && group->rank() != 0) return res;  // rank 0 evaluates, writes results and the model
  json& results = res.results;
  results["name"] = out_dir.filename().string();
  results["task"] = c.task;
  results["method"] = peft::to_string(method.method);
  results["trainable_parameters"] = summary.trainable_parameters;
  results["steps"] = fit.step;
  const auto test_p = task->predict(*model, *tok, *test_d);
  results["tasks"][c.task] = task->score(*test_d, *test_p, c.n_bootstrap, c.seed);
  task->write_predictions(*test_d, *test_p, (out_dir / task->predictions_file()).string());
  results["predictions"] = (out_dir / task->predictions_file()).string();
  if (!fit.privacy.is_null()) results["privacy"] = fit.privacy;  // DP-SGD: epsilon spent, delta, sigma, q

  // The fine-tuned model as a biolm model directory (adapters kept unmerged, with their config).
  io::ModelDirInfo mi;
  mi.config = mcfg;
  mi.task = kind;
  mi.n_labels = model->n_labels();
  mi.labels = task->labels().names();
  if (method.method != peft::Method::Full) mi.peft = method;
  const auto& o = c.task_options;
  mi.info = {{"task", c.task}, {"steps", fit.step}, {"metrics", results["tasks"][c.task]},
             {"max_length", o.max_length}, {"doc_stride", o.doc_stride}, {"format", o.format},
             {"eval_batch_size", o.batch_size}, {"max_answer_tokens", o.max_answer_tokens},
             {"max_new_tokens", o.max_new_tokens}};
  if (task->needs_decoder()) mi.info["prompt_format"] = c.prompt_format;
  if (o.negative_label) mi.info["negative_label"] = *o.negative_label;
  if (c.task == "pubmedqa") mi.info["pubmedqa_setting"] = o.pubmedqa_setting;
  if (init) mi.info["init"] = init->dir.string();
  if (!fit.privacy.is_null()) mi.info["privacy"] = fit.privacy;
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  res.model_dir = (out_dir / "model").string();
  io::save_model_dir(*model, mi, res.model_dir, so);
  results["model_dir"] = res.model_dir;
  std::ofstream(out_dir / "results.json") << results.dump(2) << "\n";
  return res;
}

}  // namespace biolm::recipes

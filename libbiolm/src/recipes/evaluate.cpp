// The evaluation recipe (see biolm/recipes/evaluate.h), moved out of tools/biolm/cmd_eval.cpp.
#include "biolm/recipes/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

#include "biolm/core/config.h"
#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/harness.h"
#include "biolm/eval/model_scorer.h"
#include "biolm/eval/tasks.h"
#include "biolm/io/files.h"
#include "biolm/io/hf_config.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/model_dir.h"
#include "biolm/tasks/task.h"
#include "biolm/tokenize/tokenizer.h"
#include "biolm/train/instruction.h"

namespace biolm::recipes {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using models::TaskKind;

struct Loaded {
  std::shared_ptr<models::TaskModelImpl> model;
  std::shared_ptr<tokenize::Tokenizer> tokenizer;
  std::vector<std::string> labels;
  json info = json::object();  // what finetune recorded about its features (biolm directories)
  std::string source;          // "biolm" | "huggingface"
};

Loaded load_any_model(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw ConfigError("model", dir.string() + ": no such directory");
  Loaded l;
  if (io::is_model_dir(dir)) {
    auto m = io::load_model_dir(dir);
    if (!m.tokenizer) throw ConfigError("model", dir.string() + ": the model directory has no tokenizer/");
    l.model = m.model;
    l.tokenizer = m.tokenizer;
    l.labels = m.info.labels;
    l.info = m.info.info;
    l.source = "biolm";
    return l;
  }
  if (!fs::exists(dir / "config.json")) {
    throw ConfigError("model", dir.string() +
                                   ": neither a biolm model directory (model.json) nor a Hugging Face "
                                   "directory (config.json)");
  }
  const auto hf = io::load_hf_config(dir);
  const TaskKind kind = hf.config.is_decoder() ? TaskKind::CausalLM : hf.task.value_or(TaskKind::Base);
  l.labels = hf.labels;
  l.model = models::make_task_model(hf.config, kind, std::max<int64_t>(1, static_cast<int64_t>(hf.labels.size())));
  const auto report = io::load_hf_directory(*l.model, dir);
  if (!report.missing.empty()) {
    throw CheckpointError(dir.string(), report.missing.front(),
                          "the checkpoint lacks parameters the model needs: " + report.to_string());
  }
  l.tokenizer = tokenize::load_tokenizer(dir);
  l.source = "huggingface";
  return l;
}

bool is_harness_task(const std::string& t) { return t == "pubmedqa" || t == "medqa" || t == "medmcqa" || t == "qa-gen"; }

/// The task family a head is scored by, and its data.format: the harness's medqa / medmcqa are
/// the mcqa family's two formats.
std::pair<std::string, std::string> family_of(const EvaluateConfig& c) {
  if (c.task == "medqa" || c.task == "medmcqa") return {"mcqa", c.task};
  return {c.task, c.format};
}

json metric(const eval::Interval& v) { return {{"value", v.point}, {"ci", {v.lower, v.upper}}}; }

/// `text` into `path` (parent folders created), atomically: the result and predictions files.
void write_output(const std::string& path, const std::string& text) {
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  io::write_file_atomic(p, text);
}

json base_result(const EvaluateConfig& c, const Loaded& l, const std::string& how, const std::string& mode, int64_t n,
                 json metrics) {
  const std::string dir_name = fs::absolute(fs::path(c.model)).lexically_normal().filename().string();
  return {{"name", c.name.empty() ? dir_name + " " + how : c.name},
          {"model", c.model},
          {"model_kind", models::to_string(l.model->task())},
          {"source", l.source},
          {"task", c.task},
          {"mode", mode},
          {"seed", c.seed},
          {"bootstrap", c.bootstrap},
          {"n", n},
          {"metrics", std::move(metrics)}};
}

/// A fine-tuned head (or an instruct decoder) through its task family: finetune's own path.
json evaluate_head(const EvaluateConfig& c, Loaded& l) {
  const auto [family, format] = family_of(c);
  tasks::TaskOptions spec;
  spec.max_length = c.max_length > 0 ? c.max_length
                                     : l.info.value("max_length", l.model->config().max_positions);
  spec.doc_stride = l.info.value("doc_stride", int64_t{-1});
  spec.format = !format.empty() ? format : l.info.value("format", std::string());
  spec.cop_zero_based = c.cop_zero_based;
  if (l.info.contains("negative_label")) spec.negative_label = l.info.at("negative_label").get<std::string>();
  // A pubmedqa head reads its input as it was fine-tuned (question + contexts or + long answer).
  spec.pubmedqa_setting = l.info.value("pubmedqa_setting", spec.pubmedqa_setting);
  if (l.info.contains("prompt_format"))
    spec.prompt_format = train::parse_prompt_format(l.info.at("prompt_format").get<std::string>());
  // finetune's decoding settings, so a span or a generation is decoded as finetune decoded it.
  spec.max_answer_tokens = l.info.value("max_answer_tokens", spec.max_answer_tokens);
  spec.max_new_tokens = c.max_new_tokens > 0 ? c.max_new_tokens : l.info.value("max_new_tokens", int64_t{32});
  // finetune's batch size, so the numbers reproduce its test metrics to the last digit.
  spec.batch_size = c.batch_size > 0 ? c.batch_size : l.info.value("eval_batch_size", int64_t{8});
  const auto task = tasks::make_task(family, spec, "task");
  const TaskKind have = l.model->task(), want = task->head_kind();
  if (have != want && is_harness_task(c.task)) {
    const std::string use = c.task == "pubmedqa" ? "a causal_lm decoder, or a sequence_classification model with "
                                                   "labels yes/no/maybe"
                            : c.task == "qa-gen" ? "a causal_lm decoder"
                                                 : "a causal_lm decoder, or a multiple_choice model";
    throw ConfigError("model", fmt::format("a {} model cannot be evaluated on {}: use {}", models::to_string(have),
                                           c.task, use));
  }
  if (have != want) {
    throw ConfigError("model", fmt::format("{} holds a {} model; task {} needs a {} model", c.model,
                                           models::to_string(have), c.task, models::to_string(want)));
  }
  if (want == TaskKind::SequenceClassification && family == "pubmedqa") {
    for (const char* label : {"yes", "no", "maybe"}) {
      if (std::find(l.labels.begin(), l.labels.end(), label) == l.labels.end()) {
        throw ConfigError("model", fmt::format("a sequence_classification model evaluated on pubmedqa needs the "
                                               "labels yes, no, maybe; this one has [{}]",
                                               fmt::join(l.labels, ", ")));
      }
    }
  }
  if (!l.labels.empty()) task->set_labels(data::LabelMap::from_names(l.labels));
  const auto data = task->featurize(*l.tokenizer, c.data);
  const auto preds = task->predict(*l.model, *l.tokenizer, *data);
  json metrics = task->score(*data, *preds, c.bootstrap, c.seed);
  // The family's own format (CoNLL columns, SQuAD JSON, one label per line, ...).
  if (!c.predictions.empty()) task->write_predictions(*data, *preds, c.predictions);
  return base_result(c, l, "fine-tuned", "head", data->n_examples(), std::move(metrics));
}

std::vector<eval::McqaExample> read_choice_examples(const EvaluateConfig& c, const std::string& path) {
  // lm-eval's own pubmedqa task: "Abstract: " + "\n".join(CONTEXTS) (preprocess_pubmedqa.py).
  if (c.task == "pubmedqa") return eval::pubmedqa_examples(data::read_pubmedqa(path), c.prompt_style == "lm-eval" ? "\n" : " ");
  if (c.task == "medqa") return eval::mcqa_examples(data::read_medqa(path));
  data::MedmcqaOptions o;
  o.cop_zero_based = c.cop_zero_based;
  return eval::mcqa_examples(data::read_medmcqa(path, o));
}

/// A causal-LM decoder through the zero-/few-shot harness.
json evaluate_decoder(const EvaluateConfig& c, const Loaded& l) {
  const std::string mode = !c.mode.empty() ? c.mode : (c.task == "qa-gen" || c.cot) ? "generate" : "loglik";
  eval::BootstrapOptions boot;
  boot.n_resamples = c.bootstrap;
  boot.seed = c.seed;
  eval::PromptOptions prompt;
  prompt.k_shot = c.shots;
  prompt.seed = c.seed;
  prompt.chain_of_thought = c.cot;
  prompt.format = c.task == "pubmedqa" ? eval::ChoiceFormat::Texts : eval::ChoiceFormat::Letters;
  if (c.choice_format == "letters") prompt.format = eval::ChoiceFormat::Letters;
  if (c.choice_format == "texts") prompt.format = eval::ChoiceFormat::Texts;
  prompt.pool_is_eval_set = c.shots > 0 && c.shots_from.empty();
  prompt.sampler = c.shot_sampler == "lm-eval" ? eval::ShotSampler::LmEval : eval::ShotSampler::Biolm;
  if (c.prompt_style == "lm-eval") prompt.context_label = "Abstract";
  const int64_t batch_size = c.batch_size > 0 ? c.batch_size : 8;

  json metrics = json::object(), extra = json::object();
  std::vector<json> preds;
  int64_t n = 0;
  auto limited = [&](auto all) {
    if (c.limit > 0 && static_cast<int64_t>(all.size()) > c.limit) all.resize(static_cast<size_t>(c.limit));
    return all;
  };
  eval::GenerateFnOptions gen;
  gen.generation.max_new_tokens = c.max_new_tokens > 0 ? c.max_new_tokens : 32;
  gen.generation.temperature = c.temperature;
  if (c.temperature > 0) gen.generation.seed = c.seed;
  gen.stop_strings = {"\n\n", "\nQuestion:"};
  auto lm = std::dynamic_pointer_cast<models::CausalLMModelImpl>(l.model);

  if (c.task != "qa-gen") {
    const auto all = read_choice_examples(c, c.data);
    const auto examples = limited(all);
    const auto pool = c.shots_from.empty() ? all : read_choice_examples(c, c.shots_from);
    n = static_cast<int64_t>(examples.size());
    if (mode == "loglik") {
      eval::ModelScorer scorer(lm);
      auto lo = eval::loglik_options_for(*lm, batch_size);
      lo.bos = c.bos == "always" ? eval::BosPolicy::Always
               : c.bos == "never" ? eval::BosPolicy::Never
                                  : eval::BosPolicy::Tokenizer;
      const auto r = eval::evaluate_mcqa_loglik(scorer, *l.tokenizer, examples, pool, prompt, lo, boot);
      metrics["accuracy"] = metric(r.acc);
      metrics["accuracy_norm"] = metric(r.acc_norm);
      metrics["macro_f1"] = metric(r.macro_f1);
      for (size_t i = 0; i < examples.size(); ++i) {
        const auto& s = r.scores[i];
        preds.push_back({{"index", i}, {"gold", examples[i].answer}, {"pred", s.pred}, {"pred_norm", s.pred_norm},
                         {"loglik", s.loglik}, {"loglik_norm", s.loglik_norm}, {"prompt", r.prompts[i]}});
      }
    } else {
      if (c.cot && gen.generation.max_new_tokens < 64)
        log::warn("eval: cot with max_new_tokens {} leaves little room for reasoning", gen.generation.max_new_tokens);
      const auto r = eval::evaluate_mcqa_generate(eval::make_generate_fn(lm, l.tokenizer, gen), examples, pool, prompt,
                                                  boot);
      metrics["accuracy"] = metric(r.acc);
      extra["n_unparsed"] = r.n_unparsed;
      for (size_t i = 0; i < examples.size(); ++i) {
        preds.push_back({{"index", i}, {"gold", examples[i].answer}, {"pred", r.pred[i]},
                         {"generation", r.generations[i]}});
      }
    }
  } else {
    const auto all = eval::read_qa_examples(c.data);
    const auto examples = limited(all);
    const auto pool = c.shots_from.empty() ? all : eval::read_qa_examples(c.shots_from);
    n = static_cast<int64_t>(examples.size());
    const auto r = eval::evaluate_qa_generate(eval::make_generate_fn(lm, l.tokenizer, gen), examples, pool, prompt, boot);
    metrics["exact_match"] = metric(r.exact_match);
    metrics["f1"] = metric(r.f1);
    metrics["bleu1"] = metric(r.bleu1);
    metrics["bleu4"] = metric(r.bleu4);
    metrics["rouge_l"] = metric(r.rouge_l);
    for (size_t i = 0; i < examples.size(); ++i) {
      preds.push_back({{"index", i}, {"gold", examples[i].answers}, {"answer", r.answers[i]},
                       {"generation", r.generations[i]}});
    }
  }
  const std::string how = fmt::format("{}-shot {}{}", c.shots, mode, c.cot ? " cot" : "");
  json result = base_result(c, l, how, mode, n, std::move(metrics));
  result["shots"] = c.shots;
  result["shot_sampler"] = c.shot_sampler;
  result["cot"] = c.cot;
  result.update(extra);
  if (!c.predictions.empty()) {
    std::string lines;
    for (const auto& row : preds) lines += row.dump() + "\n";
    write_output(c.predictions, lines);
  }
  return result;
}

/// Every problem of the config that needs no model, in one ConfigErrors.
void check_config(const EvaluateConfig& c) {
  std::vector<core::ConfigIssue> bad;
  auto check = [&](bool ok, const std::string& key, const std::string& msg) {
    if (!ok) bad.push_back({key, msg});
  };
  const auto names = tasks::task_names();
  const bool family = std::find(names.begin(), names.end(), c.task) != names.end();
  check(family || is_harness_task(c.task), "task",
        fmt::format("expected one of {}, medqa, medmcqa, qa-gen; got \"{}\"", fmt::join(names, ", "), c.task));
  check(!c.model.empty(), "model", "give the model directory");
  check(!c.data.empty(), "data", "give the evaluation file");
  check(c.mode.empty() || c.mode == "loglik" || c.mode == "generate", "mode",
        "expected loglik | generate, got \"" + c.mode + "\"");
  check(!(c.task == "qa-gen" && c.mode == "loglik"), "mode", "qa-gen is scored on generations: use generate");
  check(!(c.cot && c.mode == "loglik"), "cot", "chain of thought needs mode generate");
  check(c.shots >= 0, "shots", "must be >= 0");
  check(c.limit >= 0, "limit", "must be >= 0");
  check(c.bootstrap >= 0, "bootstrap", "must be >= 0");
  check(c.batch_size >= 0, "batch_size", "must be >= 0 (0: the default)");
  check(c.max_length >= 0, "max_length", "must be >= 0 (0: the default)");
  check(c.max_new_tokens >= 0, "max_new_tokens", "must be >= 0 (0: finetune's, else 32)");
  check(c.shot_sampler == "biolm" || c.shot_sampler == "lm-eval", "shot_sampler",
        "expected biolm | lm-eval, got \"" + c.shot_sampler + "\"");
  check(c.prompt_style == "biolm" || c.prompt_style == "lm-eval", "prompt_style",
        "expected biolm | lm-eval, got \"" + c.prompt_style + "\"");
  check(c.prompt_style != "lm-eval" || c.task == "pubmedqa", "prompt_style",
        "lm-eval applies to pubmedqa (lm-eval's own task prompt); medqa and medmcqa have no lm-eval task with these "
        "files' prompt");
  check(c.bos == "tokenizer" || c.bos == "always" || c.bos == "never", "bos",
        "expected tokenizer | always | never, got \"" + c.bos + "\"");
  check(c.choice_format.empty() || c.choice_format == "letters" || c.choice_format == "texts", "choice_format",
        "expected letters | texts, got \"" + c.choice_format + "\"");
  check(c.data.empty() || fs::is_regular_file(c.data), "data", c.data + ": no such file");
  check(c.shots_from.empty() || fs::is_regular_file(c.shots_from), "shots_from", c.shots_from + ": no such file");
  if (bad.size() == 1) throw ConfigError(bad[0].key, bad[0].message);
  if (!bad.empty()) throw core::ConfigErrors(std::move(bad));
}

}  // namespace

EvaluateResult evaluate(const EvaluateConfig& c) {
  check_config(c);
  Loaded l = load_any_model(c.model);
  const bool decoder = l.model->task() == TaskKind::CausalLM;
  // A decoder on a harness task is the harness's; everything else is scored by its task family
  // (a decoder fine-tuned on instruct included).
  const bool harness = decoder && is_harness_task(c.task);
  if (!harness) {
    const bool decoder_only = c.shots > 0 || c.cot || !c.mode.empty() || !c.shots_from.empty();
    if (decoder_only) {
      throw ConfigError(c.shots > 0 ? "shots" : c.cot ? "cot" : !c.mode.empty() ? "mode" : "shots_from",
                        fmt::format("a fine-tuned {} model on {} is scored through its own head: shots, shots_from, "
                                    "cot and mode apply to causal_lm decoders on pubmedqa | medqa | medmcqa | qa-gen",
                                    models::to_string(l.model->task()), c.task));
    }
    if (c.task == "qa-gen")
      throw ConfigError("model", "a " + models::to_string(l.model->task()) +
                                     " model cannot be evaluated on qa-gen: use a causal_lm decoder");
  }
  l.model->to(core::parse_device(c.device, "device"));
  EvaluateResult r;
  r.result = harness ? evaluate_decoder(c, l) : evaluate_head(c, l);
  if (!c.out.empty()) write_output(c.out, r.result.dump(2) + "\n");
  return r;
}

}  // namespace biolm::recipes

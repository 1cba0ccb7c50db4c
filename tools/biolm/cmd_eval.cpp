// biolm eval --model DIR --task pubmedqa|medqa|medmcqa|qa-gen --data FILE [options]:
// zero-/few-shot evaluation of a decoder (log-likelihood multiple choice or generation), or a
// fine-tuned encoder head on the same dataset, with bootstrap 95 % intervals (docs/eval.md).
//   DIR: a biolm model directory (model.json; causal_lm, sequence_classification with labels
//        yes/no/maybe, or multiple_choice) or a Hugging Face directory (config.json + weights
//        + tokenizer files).
// Prints one JSON object on stdout; --out writes the same object to a file `biolm report`
// reads beside fine-tuning runs; --predictions writes one JSON line per example.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/model_scorer.h"
#include "biolm/eval/tasks.h"
#include "biolm/io/hf_config.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/model_dir.h"
#include "biolm/tasks/task.h"
#include "biolm/train/instruction.h"
#include "command.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace biolm;
using models::TaskKind;

struct EvalArgs {
  std::string model, task, data, mode, shots_from, out, predictions, name, format;
  std::string shot_sampler = "biolm";
  std::string bos = "tokenizer";
  std::string prompt_style = "biolm";
  std::string device = "cpu";
  int64_t shots = 0;
  uint64_t seed = 1234;
  bool cot = false;
  bool cop_zero_based = false;
  int64_t limit = 0;
  int64_t bootstrap = 1000;
  int64_t batch_size = 8;
  int64_t max_new_tokens = 32;
  int64_t max_length = 0;
  double temperature = 0.0;
};

struct Loaded {
  std::shared_ptr<models::TaskModelImpl> model;
  std::shared_ptr<tokenize::Tokenizer> tokenizer;
  std::vector<std::string> labels;
  std::string source;  // "biolm" | "huggingface"
};

Loaded load_any_model(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw ConfigError("--model", dir.string() + ": no such directory");
  Loaded l;
  if (io::is_model_dir(dir)) {
    auto m = io::load_model_dir(dir);
    if (!m.tokenizer) throw ConfigError("--model", dir.string() + ": the model directory has no tokenizer/");
    l.model = m.model;
    l.tokenizer = m.tokenizer;
    l.labels = m.info.labels;
    l.source = "biolm";
    return l;
  }
  if (!fs::exists(dir / "config.json")) {
    throw ConfigError("--model", dir.string() +
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

bool is_choice_task(const std::string& task) { return task == "pubmedqa" || task == "medqa" || task == "medmcqa"; }

std::vector<eval::McqaExample> read_choice_examples(const std::string& task, const std::string& path,
                                                    bool cop_zero_based, const std::string& prompt_style) {
  // lm-eval's own pubmedqa task: "Abstract: " + "\n".join(CONTEXTS) (preprocess_pubmedqa.py).
  if (task == "pubmedqa") return eval::pubmedqa_examples(data::read_pubmedqa(path), prompt_style == "lm-eval" ? "\n" : " ");
  if (task == "medqa") return eval::mcqa_examples(data::read_medqa(path));
  data::MedmcqaOptions o;
  o.cop_zero_based = cop_zero_based;
  return eval::mcqa_examples(data::read_medmcqa(path, o));
}

json metric(const eval::Interval& v) { return {{"value", v.point}, {"ci", {v.lower, v.upper}}}; }

// Refuses a model kind that cannot answer the task, saying what would.
void check_kind(TaskKind kind, const std::string& task, const std::vector<std::string>& labels) {
  if (kind == TaskKind::CausalLM) return;
  if (kind == TaskKind::SequenceClassification && task == "pubmedqa") {
    for (const char* want : {"yes", "no", "maybe"}) {
      if (std::find(labels.begin(), labels.end(), want) == labels.end()) {
        throw ConfigError("--model", fmt::format("a sequence_classification model evaluated on pubmedqa needs the "
                                                 "labels yes, no, maybe; this one has [{}]",
                                                 fmt::join(labels, ", ")));
      }
    }
    return;
  }
  if (kind == TaskKind::MultipleChoice && (task == "medqa" || task == "medmcqa")) return;
  const std::string use = task == "pubmedqa" ? "a causal_lm decoder, or a sequence_classification model with labels "
                                               "yes/no/maybe"
                          : task == "qa-gen" ? "a causal_lm decoder"
                                             : "a causal_lm decoder, or a multiple_choice model";
  throw ConfigError("--model", fmt::format("a {} model cannot be evaluated on {}: use {}", models::to_string(kind),
                                           task, use));
}


// The fine-tuning tasks (the registry's: ner, re, nli, sts, qa-span, instruct, ...): a model
// directory written by `biolm finetune` scored on a file of its task through its own head, with
// the same featurizer, decoding and metrics as finetune's test split (tasks::Task). pubmedqa and
// mcqa names are the harness's here (pubmedqa / medqa / medmcqa below).
bool is_finetune_task(const std::string& task) {
  if (is_choice_task(task) || task == "qa-gen" || task == "mcqa") return false;
  const auto names = tasks::task_names();
  return std::find(names.begin(), names.end(), task) != names.end();
}

int run_task_eval(const EvalArgs& a) {
  if (a.shots > 0 || a.cot || !a.mode.empty() || !a.shots_from.empty()) {
    throw ConfigError("--task", a.task + " is scored through the fine-tuned model's own head: --shots, --shots-from, "
                                         "--cot and --mode do not apply");
  }
  if (!io::is_model_dir(a.model)) {
    throw ConfigError("--model", "task " + a.task + " needs a biolm model directory written by `biolm finetune` "
                                 "(its output's model/ folder); " + a.model + " is not one");
  }
  auto m = io::load_model_dir(a.model);
  tasks::TaskOptions spec;
  const json& info = m.info.info;  // what finetune recorded about its features
  spec.max_length = a.max_length > 0 ? a.max_length : info.value("max_length", int64_t{128});
  spec.doc_stride = info.value("doc_stride", int64_t{-1});
  spec.format = info.value("format", std::string());
  if (info.contains("prompt_format")) spec.prompt_format = train::parse_prompt_format(info.at("prompt_format").get<std::string>());
  if (info.contains("negative_label")) spec.negative_label = info.at("negative_label").get<std::string>();
  spec.max_new_tokens = a.max_new_tokens;
  // finetune's batch size, so the numbers reproduce its test metrics to the last digit.
  spec.batch_size = info.value("eval_batch_size", spec.batch_size);
  const auto task = tasks::make_task(a.task, spec, "--task");
  const TaskKind want = task->head_kind();
  if (m.info.task != want) {
    throw ConfigError("--model", fmt::format("{} holds a {} model; task {} needs a {} model", a.model,
                                             models::to_string(m.info.task), a.task, models::to_string(want)));
  }
  if (!m.tokenizer) throw ConfigError("--model", a.model + " has no tokenizer/ directory");
  task->set_labels(data::LabelMap::from_names(m.info.labels));
  m.model->to(core::parse_device(a.device, "--device"));

  const auto data = task->featurize(*m.tokenizer, a.data);
  const auto preds = task->predict(*m.model, *m.tokenizer, *data);
  const json metrics = task->score(*data, *preds, a.bootstrap, a.seed);
  // The task's own format (CoNLL columns, SQuAD JSON, one label per line, ...).
  if (!a.predictions.empty()) task->write_predictions(*data, *preds, a.predictions);
  const std::string dir_name = fs::absolute(fs::path(a.model)).lexically_normal().filename().string();
  json result = {{"name", a.name.empty() ? dir_name + " fine-tuned" : a.name},
                 {"model", a.model},
                 {"model_kind", models::to_string(m.info.task)},
                 {"source", "biolm"},
                 {"task", a.task},
                 {"mode", "head"},
                 {"seed", a.seed},
                 {"bootstrap", a.bootstrap},
                 {"n", data->n_examples()},
                 {"metrics", metrics}};
  if (!a.out.empty()) {
    const fs::path out(a.out);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    std::ofstream f(out);
    if (!f) throw IoError::from_errno(a.out, "cannot open for writing");
    f << result.dump(2) << "\n";
  }
  std::cout << result.dump() << "\n";
  return cli::kOk;
}

int run_eval(const EvalArgs& a) {
  if (is_finetune_task(a.task)) return run_task_eval(a);
  if (a.task != "pubmedqa" && a.task != "medqa" && a.task != "medmcqa" && a.task != "qa-gen") {
    throw ConfigError("--task", "expected pubmedqa|medqa|medmcqa|qa-gen|ner|re|nli|sts|qa-span|instruct, got \"" + a.task + "\"");
  }
  const std::string mode = !a.mode.empty() ? a.mode : (a.task == "qa-gen" || a.cot) ? "generate" : "loglik";
  if (mode != "loglik" && mode != "generate") throw ConfigError("--mode", "expected loglik|generate, got \"" + mode + "\"");
  if (a.task == "qa-gen" && mode != "generate") throw ConfigError("--mode", "qa-gen is scored on generations: use --mode generate");
  if (a.cot && mode != "generate") throw ConfigError("--cot", "chain of thought needs --mode generate");
  if (a.shots < 0) throw ConfigError("--shots", "must be >= 0");
  if (a.limit < 0) throw ConfigError("--limit", "must be >= 0");
  if (a.bootstrap < 0) throw ConfigError("--bootstrap", "must be >= 0");

  const Loaded l = load_any_model(a.model);
  const TaskKind kind = l.model->task();
  check_kind(kind, a.task, l.labels);
  const bool head = kind != TaskKind::CausalLM;
  if (head && (a.shots > 0 || a.cot || a.mode == "generate")) {
    throw ConfigError("--model", fmt::format("a fine-tuned {} head is scored directly: --shots, --cot and --mode "
                                             "generate apply to causal_lm decoders", models::to_string(kind)));
  }
  const auto device = core::parse_device(a.device, "--device");
  l.model->to(device);

  eval::BootstrapOptions boot;
  boot.n_resamples = a.bootstrap;
  boot.seed = a.seed;
  eval::PromptOptions prompt;
  prompt.k_shot = a.shots;
  prompt.seed = a.seed;
  prompt.chain_of_thought = a.cot;
  prompt.format = a.task == "pubmedqa" ? eval::ChoiceFormat::Texts : eval::ChoiceFormat::Letters;
  if (a.format == "letters") prompt.format = eval::ChoiceFormat::Letters;
  if (a.format == "texts") prompt.format = eval::ChoiceFormat::Texts;
  prompt.pool_is_eval_set = a.shots > 0 && a.shots_from.empty();
  prompt.sampler = a.shot_sampler == "lm-eval" ? eval::ShotSampler::LmEval : eval::ShotSampler::Biolm;
  if (a.prompt_style == "lm-eval" && a.task != "pubmedqa") {
    throw ConfigError("--prompt-style", "lm-eval applies to pubmedqa (lm-eval's own task prompt); medqa and medmcqa "
                                        "have no lm-eval task with these files' prompt");
  }
  if (a.prompt_style == "lm-eval") prompt.context_label = "Abstract";

  json metrics = json::object();
  json extra = json::object();
  std::vector<json> preds;
  int64_t n = 0;
  auto limited = [&](auto all) {
    if (a.limit > 0 && static_cast<int64_t>(all.size()) > a.limit) all.resize(static_cast<size_t>(a.limit));
    return all;
  };
  eval::GenerateFnOptions gen;
  gen.generation.max_new_tokens = a.max_new_tokens;
  gen.generation.temperature = a.temperature;
  if (a.temperature > 0) gen.generation.seed = a.seed;
  gen.stop_strings = {"\n\n", "\nQuestion:"};

  if (is_choice_task(a.task)) {
    const auto all = read_choice_examples(a.task, a.data, a.cop_zero_based, a.prompt_style);
    const auto examples = limited(all);
    const auto pool =
        a.shots_from.empty() ? all : read_choice_examples(a.task, a.shots_from, a.cop_zero_based, a.prompt_style);
    n = static_cast<int64_t>(examples.size());
    if (head) {
      eval::HeadEvalOptions ho;
      ho.max_length = l.model->config().max_positions;
      ho.batch_size = a.batch_size;
      ho.bootstrap = boot;
      const auto r = kind == TaskKind::SequenceClassification
                         ? eval::evaluate_pair_classifier(dynamic_cast<models::SequenceClassificationModelImpl&>(*l.model),
                                                          *l.tokenizer, l.labels, examples, ho)
                         : eval::evaluate_choice_model(dynamic_cast<models::MultipleChoiceModelImpl&>(*l.model),
                                                       *l.tokenizer, examples, ho);
      metrics["accuracy"] = metric(r.acc);
      metrics["macro_f1"] = metric(r.macro_f1);
      for (size_t i = 0; i < examples.size(); ++i) {
        preds.push_back({{"index", i}, {"gold", examples[i].answer}, {"pred", r.pred[i]}, {"scores", r.scores[i]}});
      }
    } else {
      auto lm = std::dynamic_pointer_cast<models::CausalLMModelImpl>(l.model);
      if (mode == "loglik") {
        eval::ModelScorer scorer(lm);
        auto lo = eval::loglik_options_for(*lm, a.batch_size);
        lo.bos = a.bos == "always" ? eval::BosPolicy::Always
                 : a.bos == "never" ? eval::BosPolicy::Never
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
        if (a.cot && a.max_new_tokens < 64) log::warn("eval: --cot with --max-new-tokens {} leaves little room for reasoning", a.max_new_tokens);
        const auto r = eval::evaluate_mcqa_generate(eval::make_generate_fn(lm, l.tokenizer, gen), examples, pool,
                                                    prompt, boot);
        metrics["accuracy"] = metric(r.acc);
        extra["n_unparsed"] = r.n_unparsed;
        for (size_t i = 0; i < examples.size(); ++i) {
          preds.push_back({{"index", i}, {"gold", examples[i].answer}, {"pred", r.pred[i]},
                           {"generation", r.generations[i]}});
        }
      }
    }
  } else {
    const auto all = eval::read_qa_examples(a.data);
    const auto examples = limited(all);
    const auto pool = a.shots_from.empty() ? all : eval::read_qa_examples(a.shots_from);
    n = static_cast<int64_t>(examples.size());
    auto lm = std::dynamic_pointer_cast<models::CausalLMModelImpl>(l.model);
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

  const std::string dir_name = fs::absolute(fs::path(a.model)).lexically_normal().filename().string();
  const std::string how = head ? "fine-tuned" : fmt::format("{}-shot {}{}", a.shots, mode, a.cot ? " cot" : "");
  json result = {{"name", a.name.empty() ? dir_name + " " + how : a.name},
                 {"model", a.model},
                 {"model_kind", models::to_string(kind)},
                 {"source", l.source},
                 {"task", a.task},
                 {"mode", head ? "head" : mode},
                 {"shots", a.shots},
                 {"shot_sampler", a.shot_sampler},
                 {"cot", a.cot},
                 {"seed", a.seed},
                 {"bootstrap", a.bootstrap},
                 {"n", n},
                 {"metrics", metrics}};
  result.update(extra);
  if (!a.out.empty()) {
    const fs::path out(a.out);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    std::ofstream f(out);
    if (!f) throw IoError::from_errno(a.out, "cannot open for writing");
    f << result.dump(2) << "\n";
  }
  if (!a.predictions.empty()) {
    const fs::path p(a.predictions);
    if (p.has_parent_path()) fs::create_directories(p.parent_path());
    std::ofstream f(p);
    if (!f) throw IoError::from_errno(a.predictions, "cannot open for writing");
    for (const auto& row : preds) f << row.dump() << "\n";
  }
  std::cout << result.dump() << "\n";
  return cli::kOk;
}

const bool registered = cli::register_command(
    {"eval", "zero-/few-shot evaluation of a decoder, or a fine-tuned head, on pubmedqa | medqa | medmcqa | qa-gen "
             "(or a finetune model on ner | re | nli | sts | qa-span | instruct)",
     [](CLI::App& sub) {
       auto a = std::make_shared<EvalArgs>();
       sub.add_option("--model", a->model, "biolm model directory or Hugging Face directory")->required();
       sub.add_option("--task", a->task, "pubmedqa | medqa | medmcqa | qa-gen (harness); ner | re | nli | sts | qa-span | "
                                         "instruct (a biolm finetune model directory, scored through its head)")
           ->required();
       sub.add_option("--max-length", a->max_length, "fine-tuning tasks: tokens per row (default: what finetune used)");
       sub.add_option("--data", a->data, "evaluation file")->required()->check(CLI::ExistingFile);
       sub.add_option("--mode", a->mode, "loglik | generate (default loglik; generate for qa-gen and --cot)");
       sub.add_option("--shots", a->shots, "examples shown before each question")->capture_default_str();
       sub.add_option("--shots-from", a->shots_from, "file the shots are drawn from (default: the evaluation file, "
                                                     "leaving the evaluated example out)")
           ->check(CLI::ExistingFile);
       sub.add_option("--seed", a->seed, "seed of the shot draw, sampling and bootstrap")->capture_default_str();
       sub.add_option("--shot-sampler", a->shot_sampler,
                      "biolm (a draw per example from seed and index) | lm-eval (lm-evaluation-harness's "
                      "draw: one Python random.Random(seed) in example order)")
           ->check(CLI::IsMember({"biolm", "lm-eval"}))
           ->capture_default_str();
       sub.add_option("--prompt-style", a->prompt_style,
                      "pubmedqa: biolm (\"Context: \" + contexts joined by spaces) | lm-eval (lm-eval's pubmedqa "
                      "task: \"Abstract: \" + contexts joined by newlines)")
           ->check(CLI::IsMember({"biolm", "lm-eval"}))
           ->capture_default_str();
       sub.add_option("--bos", a->bos, "loglik: tokenizer (BOS when the tokenizer adds one, as lm-eval) | always | "
                                       "never")
           ->check(CLI::IsMember({"tokenizer", "always", "never"}))
           ->capture_default_str();
       sub.add_flag("--cot", a->cot, "chain of thought: 'Let's think step by step.', answer parsed from the text");
       sub.add_option("--format", a->format, "letters | texts: how choices are answered (default texts for "
                                             "pubmedqa, letters otherwise)")
           ->check(CLI::IsMember({"letters", "texts"}));
       sub.add_option("--limit", a->limit, "evaluate the first N examples (0 = all)")->capture_default_str();
       sub.add_option("--bootstrap", a->bootstrap, "bootstrap resamples for the 95 % intervals")->capture_default_str();
       sub.add_option("--batch-size", a->batch_size, "requests per forward pass")->capture_default_str();
       sub.add_option("--max-new-tokens", a->max_new_tokens, "generation length")->capture_default_str();
       sub.add_option("--temperature", a->temperature, "0 = greedy; > 0 samples with --seed")->capture_default_str();
       sub.add_flag("--cop-zero-based", a->cop_zero_based, "MedMCQA files numbering cop 0..3");
       sub.add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
       sub.add_option("--name", a->name, "row name in reports (default: model directory + setting)");
       sub.add_option("--out", a->out, "write the result JSON here (readable by biolm report)");
       sub.add_option("--predictions", a->predictions, "write the predictions here: one JSON line per example (harness tasks) or the fine-tuning task's own format (CoNLL columns for ner, SQuAD JSON for qa-span, one label or score per line, JSONL for instruct)");
       sub.callback([a] {
         const int code = run_eval(*a);
         if (code != cli::kOk) throw cli::ExitRequest{code};
       });
     }});

}  // namespace

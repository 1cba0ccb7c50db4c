// biolm eval --model DIR --task TASK --data FILE [options]: scores a model directory on a file
// through the library's evaluation recipe (biolm/recipes/evaluate.h, docs/eval.md): a fine-tuned
// head through its task family (finetune's own featurizer and metrics), a causal-LM decoder on
// pubmedqa | medqa | medmcqa | qa-gen through the zero-/few-shot harness.
//   DIR: a biolm model directory (model.json) or a Hugging Face directory (config.json + weights
//        + tokenizer files).
// Prints one JSON object on stdout; --out writes the same object to a file `biolm report` reads
// beside fine-tuning runs; --predictions writes the predictions (the family's own format for a
// head, one JSON line per example for the harness).
#include <algorithm>
#include <iostream>

#include "biolm/core/config.h"
#include "biolm/core/error.h"
#include "biolm/recipes/evaluate.h"
#include "command.h"

namespace {

using namespace biolm;

// The recipe names its config fields (shots_from); the command line names its flags (--shots-from).
std::string flag(const std::string& key) {
  std::string f = "--" + key;
  std::replace(f.begin(), f.end(), '_', '-');
  return key == "choice_format" ? "--format" : key == "format" ? "--data-format" : f;
}

int run_eval(const recipes::EvaluateConfig& c) {
  try {
    std::cout << recipes::evaluate(c).result.dump() << "\n";
  } catch (const core::ConfigErrors& e) {
    std::vector<core::ConfigIssue> issues;
    for (const auto& i : e.issues()) issues.push_back({flag(i.key), i.message});
    throw core::ConfigErrors(std::move(issues));
  } catch (const ConfigError& e) {
    if (e.key().find('.') != std::string::npos || e.key().empty()) throw;  // a model/data key, not a flag
    throw ConfigError(flag(e.key()), e.message());
  }
  return cli::kOk;
}

const bool registered = cli::register_command(
    {"eval", "zero-/few-shot evaluation of a decoder, or a fine-tuned head, on pubmedqa | medqa | medmcqa | qa-gen "
             "(or a finetune model on its task: ner | re | nli | sts | qa-span | mcqa | hoc | instruct)",
     [](CLI::App& sub) {
       auto a = std::make_shared<recipes::EvaluateConfig>();
       sub.add_option("--model", a->model, "biolm model directory or Hugging Face directory")->required();
       sub.add_option("--task", a->task, "pubmedqa | medqa | medmcqa | qa-gen: a decoder through the harness, or a "
                                         "fine-tuned head; ner | re | nli | sts | qa-span | mcqa | pubmedqa | hoc | "
                                         "instruct: a finetune model directory, scored through its head")
           ->required();
       sub.add_option("--max-length", a->max_length, "fine-tuning tasks: tokens per row (default: what finetune used)");
       sub.add_option("--data", a->data, "evaluation file")->required()->check(CLI::ExistingFile);
       sub.add_option("--data-format", a->format, "the task family's data.format (ner conll | brat | pubtator, qa-span "
                                                  "squad | bioasq, mcqa medqa | medmcqa, ...)");
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
       sub.add_option("--format", a->choice_format, "letters | texts: how choices are answered (default texts for "
                                             "pubmedqa, letters otherwise)")
           ->check(CLI::IsMember({"letters", "texts"}));
       sub.add_option("--limit", a->limit, "evaluate the first N examples (0 = all)")->capture_default_str();
       sub.add_option("--bootstrap", a->bootstrap, "bootstrap resamples for the 95 % intervals")->capture_default_str();
       sub.add_option("--batch-size", a->batch_size, "rows per forward pass (0: finetune's, else 8)")->capture_default_str();
       sub.add_option("--max-new-tokens", a->max_new_tokens, "generation length (0: finetune's for its model, else 32)")->capture_default_str();
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

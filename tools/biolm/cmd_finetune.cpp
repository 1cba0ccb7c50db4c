// biolm finetune --config FILE [key.path=value ...]: the fine-tuning recipe
// (biolm/recipes/finetune.h) on a YAML config: parse, call, print results.json.
// Tasks (biolm/tasks/task.h, docs/cli.md): ner, re, nli, sts, qa-span, mcqa, pubmedqa, instruct.
// With train.dp (DP-SGD, docs/privacy.md) results.json and the model directory's info carry
// "privacy" (epsilon spent, delta, noise, q, steps).
#include <unistd.h>

#include <iostream>

#include "biolm/core/config.h"
#include "biolm/recipes/finetune.h"
#include "biolm/train/progress.h"
#include "command.h"

namespace biolm::cli {
namespace {

int run_finetune(const std::string& config_path, const std::vector<std::string>& overrides, bool print_config) {
  nlohmann::json tree = core::load_config_file(config_path);
  core::apply_overrides(tree, overrides);
  if (print_config) {
    std::cout << core::to_yaml(tree);
    return kOk;
  }
  const auto cfg = recipes::finetune_config_from_json(tree);
  const bool tty = isatty(STDERR_FILENO);
  recipes::FinetuneHooks hooks;
  hooks.progress = [tty](const train::ProgressEvent& e) {
    std::cerr << (tty ? "\r" : "") << train::format_progress(e, tty) << (tty ? "" : "\n") << std::flush;
  };
  const auto result = recipes::finetune(cfg, hooks);
  if (tty) std::cerr << "\n";
  if (!result.results.is_null()) std::cout << result.results.dump() << "\n";  // rank 0 of a data-parallel run
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
The same recipe from C++: biolm::recipes::finetune (docs/recipes.md).
Example: biolm finetune --config examples/configs/ner_minilm.yaml model.init=DIR train.max_steps=100)");

}  // namespace
}  // namespace biolm::cli

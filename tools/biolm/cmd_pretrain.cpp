// biolm pretrain --config FILE [key.path=value ...]: the pretraining recipe
// (biolm/recipes/pretrain.h) on a YAML config: parse, call, print results.json. Masked-LM
// (BERT / Megatron-BERT, as GatorTron) or causal-LM, from scratch or continued (model.init).
#include <unistd.h>

#include <iostream>

#include "biolm/core/config.h"
#include "biolm/recipes/pretrain.h"
#include "biolm/train/progress.h"
#include "command.h"

namespace biolm::cli {
namespace {

int run_pretrain(const std::string& config_path, const std::vector<std::string>& overrides, bool print_config) {
  nlohmann::json tree = core::load_config_file(config_path);
  core::apply_overrides(tree, overrides);
  if (print_config) {
    std::cout << core::to_yaml(tree);
    return kOk;
  }
  const auto cfg = recipes::pretrain_config_from_json(tree);
  const bool tty = isatty(STDERR_FILENO);
  recipes::PretrainHooks hooks;
  hooks.progress = [tty](const train::ProgressEvent& e) {
    std::cerr << (tty ? "\r" : "") << train::format_progress(e, tty) << (tty ? "" : "\n") << std::flush;
  };
  const auto result = recipes::pretrain(cfg, hooks);
  if (tty) std::cerr << "\n";
  if (!result.results.is_null()) std::cout << result.results.dump() << "\n";  // rank 0 of a data-parallel run
  return result.status == train::Status::Interrupted ? kInterrupted : kOk;
}

const bool registered = register_config_command(
    "pretrain", "pretrain an encoder (masked LM) or a decoder (causal LM), from scratch or continued (model.init)",
    "YAML config (see examples/configs/pretrain_*.yaml)", run_pretrain,
    R"(Config sections (every key: docs/cli.md "biolm pretrain"):
  objective, seed, device, output, threads, seq_len     mlm | clm
  corpus.*      format (text | text-blocks | jsonl | pubmed-xml | pmc-text | mimic-csv), paths   | shards: DIR
  tokenizer.*   path | train.{kind, vocab_size, lowercase}   (none with model.init: the directory's own)
  mlm.*         probability, whole_word          validation.*  fraction, max_sequences
  model.*       init (biolm or Hugging Face directory: continued pretraining) | preset + shape keys
  train.*       max_steps, batch_size, lr, schedule, warmup_steps, clip_grad_norm, eval_every, resume (auto)
Overrides: key.path=value (YAML value), ~key.path removes.)");

}  // namespace
}  // namespace biolm::cli

// examples/example_args.h: the few lines the example programs share: command-line handling,
// main(), and the config sections the fine-tuning examples fill alike from their arguments.
//
// Every example takes `key=value` arguments over a table of defaults, so a run reads like
//   ./build/bin/example_ner_finetune steps=100 lr=1e-3 output=runs/ner
// An unknown key or a value of the wrong type is a biolm::ConfigError naming the key; `--help`
// prints the table. This header is example plumbing, not part of libbiolm.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>

#include "biolm/core/error.h"
#include "biolm/core/host_memory.h"

namespace example {

class Args {
 public:
  /// `defaults`: key -> default value (as text); `purpose`: one line for --help.
  Args(int argc, char** argv, std::map<std::string, std::string> defaults, const std::string& purpose)
      : values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::cout << purpose << "\nusage: " << argv[0] << " [key=value ...]\n";
        for (const auto& [k, v] : values_) std::cout << "  " << k << "=" << v << "\n";
        help_ = true;
        return;
      }
      const auto eq = a.find('=');
      if (eq == std::string::npos) throw biolm::ConfigError(a, "expected key=value (see --help)");
      const std::string key = a.substr(0, eq);
      if (values_.count(key) == 0) throw biolm::ConfigError(key, "unknown argument (see --help)");
      values_[key] = a.substr(eq + 1);
    }
  }
  bool help() const { return help_; }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  const std::string& str(const std::string& key) const { return values_.at(key); }
  int64_t integer(const std::string& key) const {
    try {
      size_t used = 0;
      const auto v = std::stoll(str(key), &used);
      if (used == str(key).size()) return v;
    } catch (const std::exception&) {
    }
    throw biolm::ConfigError(key, "expected an integer, found \"" + str(key) + "\"");
  }
  double real(const std::string& key) const {
    try {
      size_t used = 0;
      const auto v = std::stod(str(key), &used);
      if (used == str(key).size()) return v;
    } catch (const std::exception&) {
    }
    throw biolm::ConfigError(key, "expected a number, found \"" + str(key) + "\"");
  }

 private:
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

/// The sections of a `biolm finetune` tree (docs/cli.md) that the fine-tuning examples fill
/// alike: seed, output, a WordPiece vocabulary trained on `corpus`, the train and test files (the
/// test file doubles as dev, scored once, at the last step), max_length where the table has it,
/// and a train section with 10 % warm-up. Each example adds its model and adaptation method.
inline nlohmann::json finetune_tree(const Args& a, const std::string& task) {
  const int64_t steps = a.integer("steps");
  nlohmann::json tree = {
      {"task", task},
      {"seed", a.integer("seed")},
      {"output", a.str("output")},
      {"tokenizer", {{"train_on", {a.str("corpus")}}, {"vocab_size", a.integer("vocab_size")}}},
      {"data", {{"train", a.str("train")}, {"dev", a.str("test")}}},
      {"train", {{"max_steps", steps}, {"batch_size", a.integer("batch_size")}, {"lr", a.real("lr")},
                 {"schedule", "linear"}, {"warmup_steps", steps / 10}, {"eval_every", steps}, {"log_every", 50}}},
      {"eval", {{"bootstrap", 0}}}};
  if (a.has("max_length")) tree["data"]["max_length"] = a.integer("max_length");
  return tree;
}

/// An example's main(): reuse freed tensor memory instead of faulting it in again
/// (docs/core.md, "Host memory"), read the key=value arguments over `defaults` (--help lists
/// them), run, print the JSON line `run` returns on stdout; an error is one line on stderr and
/// exit code 1.
inline int run_main(int argc, char** argv, const std::string& name, std::map<std::string, std::string> defaults,
                    const std::string& purpose, const std::function<nlohmann::json(const Args&)>& run) {
  biolm::core::tune_host_allocator();
  try {
    const Args args(argc, argv, std::move(defaults), purpose);
    if (!args.help()) std::cout << run(args).dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "example_" << name << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace example

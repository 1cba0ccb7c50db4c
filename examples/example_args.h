// examples/example_args.h: the few lines of command-line handling the example programs share.
//
// Every example takes `key=value` arguments over a table of defaults, so a run reads like
//   ./build/bin/example_ner_finetune steps=100 lr=1e-3 output=runs/ner
// An unknown key or a value of the wrong type is a biolm::ConfigError naming the key; `--help`
// prints the table. This header is example plumbing, not part of libbiolm.
#pragma once

#include <cstdint>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>

#include "biolm/core/error.h"

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

}  // namespace example

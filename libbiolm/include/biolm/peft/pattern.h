// biolm/peft/pattern.h: choosing modules and parameters by their full dotted names.
//
// Pattern syntax (one syntax for LoRA targets, IA3 targets, hybrid "train these" lists, freezing):
//   glob   `*` matches within one name component (no '.'), `?` one character of a component,
//          `**` any run of components; a leading `**.` also matches nothing, so "**.q_proj"
//          matches "q_proj" and "layers.0.attn.q_proj". The whole name must match.
//   regex  "re:<ECMAScript regex>", matched against the whole name.
// A pattern that matches nothing is a ConfigError naming the pattern (a typo never silently
// adapts or trains nothing).
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "biolm/nn/linear.h"

namespace biolm::peft {

class NamePattern {
 public:
  /// Throws ConfigError(key, ...) for a malformed regex or an empty pattern.
  explicit NamePattern(std::string pattern, const std::string& key = "peft.pattern");
  bool matches(const std::string& name) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::regex re_;
};

/// True when any of `patterns` matches `name`.
bool matches_any(const std::vector<NamePattern>& patterns, const std::string& name);
std::vector<NamePattern> compile_patterns(const std::vector<std::string>& patterns, const std::string& key);

/// Every biolm::nn::Linear under `root` (full dotted name, module) matched by one of `patterns`,
/// in registration order. Linears inside adapters are never returned. Throws ConfigError(key) for
/// a pattern that matches no Linear, listing a few Linear names that exist.
std::vector<std::pair<std::string, std::shared_ptr<nn::LinearImpl>>> find_linears(
    torch::nn::Module& root, const std::vector<std::string>& patterns, const std::string& key);

/// Names of the parameters of `root` matched by `patterns` (ConfigError(key) for a pattern matching
/// no parameter).
std::vector<std::string> find_parameters(torch::nn::Module& root, const std::vector<std::string>& patterns,
                                         const std::string& key);

}  // namespace biolm::peft

#include "biolm/peft/pattern.h"

#include <set>

#include "biolm/core/error.h"

namespace biolm::peft {
namespace {

// Glob -> ECMAScript regex (see pattern.h for the syntax).
std::string glob_to_regex(const std::string& g) {
  std::string re;
  for (size_t i = 0; i < g.size(); ++i) {
    const char c = g[i];
    if (c == '*' && i + 1 < g.size() && g[i + 1] == '*') {
      if (i + 2 < g.size() && g[i + 2] == '.') {
        re += "(?:.*\\.)?";  // "**." also matches zero components
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c == '*') {
      re += "[^.]*";
    } else if (c == '?') {
      re += "[^.]";
    } else if (std::string("\\^$.|+()[]{}").find(c) != std::string::npos) {
      re += '\\';
      re += c;
    } else {
      re += c;
    }
  }
  return re;
}

std::string some_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 6; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 6) out += ", ...";
  return out.empty() ? "(none)" : out;
}

}  // namespace

NamePattern::NamePattern(std::string pattern, const std::string& key) : text_(std::move(pattern)) {
  BIOLM_CHECK(!text_.empty(), ConfigError, key, "empty name pattern");
  const bool is_regex = text_.rfind("re:", 0) == 0;
  const std::string source = is_regex ? text_.substr(3) : glob_to_regex(text_);
  try {
    re_ = std::regex(source, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw ConfigError(key, "pattern '" + text_ + "' is not a valid regex: " + e.what());
  }
}

bool NamePattern::matches(const std::string& name) const { return std::regex_match(name, re_); }

bool matches_any(const std::vector<NamePattern>& patterns, const std::string& name) {
  for (const auto& p : patterns) {
    if (p.matches(name)) return true;
  }
  return false;
}

std::vector<NamePattern> compile_patterns(const std::vector<std::string>& patterns, const std::string& key) {
  std::vector<NamePattern> out;
  out.reserve(patterns.size());
  for (const auto& p : patterns) out.emplace_back(p, key);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<nn::LinearImpl>>> find_linears(
    torch::nn::Module& root, const std::vector<std::string>& patterns, const std::string& key) {
  const auto compiled = compile_patterns(patterns, key);
  std::vector<std::pair<std::string, std::shared_ptr<nn::LinearImpl>>> linears;
  std::vector<std::string> names;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    auto lin = std::dynamic_pointer_cast<nn::LinearImpl>(item.value());
    if (!lin) continue;
    const std::string& name = item.key();
    if (name.find("adapter.") == 0 || name.find(".adapter.") != std::string::npos) continue;
    linears.emplace_back(name, lin);
    names.push_back(name);
  }
  std::vector<bool> used(compiled.size(), false);
  std::vector<std::pair<std::string, std::shared_ptr<nn::LinearImpl>>> out;
  for (const auto& nl : linears) {
    bool hit = false;
    for (size_t i = 0; i < compiled.size(); ++i) {
      if (compiled[i].matches(nl.first)) {
        used[i] = true;
        hit = true;
      }
    }
    if (hit) out.push_back(nl);
  }
  for (size_t i = 0; i < compiled.size(); ++i) {
    BIOLM_CHECK(used[i], ConfigError, key,
                "pattern '" + compiled[i].text() + "' matches no biolm::nn::Linear (Linears: " + some_names(names) + ")");
  }
  return out;
}

std::vector<std::string> find_parameters(torch::nn::Module& root, const std::vector<std::string>& patterns,
                                         const std::string& key) {
  const auto compiled = compile_patterns(patterns, key);
  std::vector<bool> used(compiled.size(), false);
  std::vector<std::string> out, all;
  for (const auto& item : root.named_parameters(/*recurse=*/true)) {
    all.push_back(item.key());
    bool hit = false;
    for (size_t i = 0; i < compiled.size(); ++i) {
      if (compiled[i].matches(item.key())) {
        used[i] = true;
        hit = true;
      }
    }
    if (hit) out.push_back(item.key());
  }
  for (size_t i = 0; i < compiled.size(); ++i) {
    BIOLM_CHECK(used[i], ConfigError, key,
                "pattern '" + compiled[i].text() + "' matches no parameter (parameters: " + some_names(all) + ")");
  }
  return out;
}

}  // namespace biolm::peft

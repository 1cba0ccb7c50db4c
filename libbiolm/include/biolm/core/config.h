// biolm/core/config.h: YAML/JSON configs with `key.path=value` overrides, read through typed
// readers that collect unknown keys, wrong types and bad ranges, each with its key path, and report
// them all in one ConfigError.
//
//   auto tree = core::load_config_file("ner.yaml");        // YAML or JSON -> json tree
//   core::apply_overrides(tree, {"train.lr=3e-4", "~train.max_steps"});
//   core::ConfigReader r(tree);
//   double lr = r.child("train").get<double>("lr", 5e-5);   // "train.lr" in errors
//   r.finish();            // every unknown key, wrong type, bad value -> ONE ConfigError
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "biolm/core/error.h"

namespace biolm::core {

/// Reads a YAML (.yaml/.yml) or JSON (.json) file into a json tree. Errors name the file and line.
nlohmann::json load_config_file(const std::string& path);
/// Parses YAML text (also accepts JSON, which is YAML). `origin` names the source in errors.
nlohmann::json parse_yaml(const std::string& text, const std::string& origin = "<yaml>");
/// Writes a json tree as block-style YAML (for the resolved config of a run).
std::string to_yaml(const nlohmann::json& tree);

/// Applies one override: "a.b.c=value" sets (value parsed as a YAML scalar/flow value: 3e-4 is a
/// number, true a bool, [1,2] a list, "x" a string); "~a.b" removes the key.
void apply_override(nlohmann::json& tree, const std::string& override_spec);
void apply_overrides(nlohmann::json& tree, const std::vector<std::string>& specs);

/// One configuration problem: the full key path ("train.lr") and what is wrong there.
struct ConfigIssue {
  std::string key;
  std::string message;
};

/// Several configuration problems found together. key()/message() are the first one's; what()
/// lists every one, one per line ("config: 3 errors" then "  config 'train.lr': ...").
class ConfigErrors : public ConfigError {
 public:
  explicit ConfigErrors(std::vector<ConfigIssue> issues);
  const std::vector<ConfigIssue>& issues() const { return issues_; }
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::vector<ConfigIssue> issues_;
  std::string text_;
};

/// Typed, path-aware reader over a json object. It collects problems instead of throwing at the
/// first: a wrong type, a missing required key, a bad choice or a failed check() is recorded with
/// its full key path and the read returns the fallback; finish() adds every key nobody read
/// (typos such as `train.lrr`) and throws ONE ConfigError listing all of them. Children share
/// their parent's list, so one finish() at the top reports every section at once:
///
///   core::ConfigReader r(tree);
///   auto train = train::read_train_config(r.child("train"));   // records, never throws
///   auto peft = peft::read_method_config(r.child("peft"));
///   r.finish();   // "config: 3 errors" + one line per problem, or nothing
class ConfigReader {
 public:
  explicit ConfigReader(const nlohmann::json& tree, std::string path = "");

  bool has(const std::string& key) const;
  /// The key is present, possibly with the value null ("sliding_window: null" clears a preset's).
  bool present(const std::string& key) const;
  template <typename T>
  T get(const std::string& key, const T& fallback);
  /// Missing: recorded as "required but missing"; returns T{}.
  template <typename T>
  T require(const std::string& key);
  template <typename T>
  std::optional<T> optional(const std::string& key);
  /// One of `choices` (for enums parsed once, here).
  std::string choice(const std::string& key, const std::vector<std::string>& choices, const std::string& fallback);
  /// An enum from its spelling: `table` holds {value, name} pairs (e.g. {{Kind::A, "a"}, ...}).
  template <typename E, typename Table, typename = std::enable_if_t<std::is_enum_v<E>>>
  E choice(const std::string& key, const Table& table, E fallback);
  /// A sub-object ({} when absent). Its unknown keys are checked by this reader's finish().
  ConfigReader& child(const std::string& key);
  /// Marks a key as known without reading it (e.g. read elsewhere as a whole json value).
  const nlohmann::json* raw(const std::string& key);

  /// Records `message` at key_path(key) when !ok (range and consistency checks).
  void check(bool ok, const std::string& key, const std::string& message);
  /// Records `message` at key_path(key).
  void error(const std::string& key, const std::string& message);
  /// Runs `fn`; a ConfigError it throws (ConfigErrors included) is recorded, with the key it
  /// names, instead of propagating. For checks written as throwing functions.
  template <typename Fn>
  void capture(Fn&& fn);
  /// Problems recorded so far (shared with the parent and every child).
  const std::vector<ConfigIssue>& errors() const { return *errors_; }

  /// Records every key nobody read, in this object and in every child read so far, then throws
  /// (throw_if_errors). Call it once, on the top reader.
  void finish();
  /// Throws ConfigError (one problem) or ConfigErrors (several) when any was recorded.
  void throw_if_errors() const;
  /// "train.lr" for key "lr" in child "train".
  std::string key_path(const std::string& key) const;

 private:
  ConfigReader(const nlohmann::json& tree, std::string path, std::shared_ptr<std::vector<ConfigIssue>> errors);
  void record_unknown_keys();
  template <typename T>
  std::optional<T> convert(const nlohmann::json& v, const std::string& key);
  nlohmann::json tree_;
  std::string path_;
  std::set<std::string> used_;
  std::vector<std::pair<std::string, std::unique_ptr<ConfigReader>>> children_;
  std::shared_ptr<std::vector<ConfigIssue>> errors_;
};

/// A whole section read on its own: `read` (a read_X(ConfigReader&), e.g.
/// train::read_train_config) runs on a reader over `tree` named `key`, then finish() throws every
/// unknown key, wrong type and bad value of the section at once. The X_from_json functions.
template <typename Read>
auto read_section(const nlohmann::json& tree, const std::string& key, Read&& read) {
  ConfigReader r(tree, key);
  auto value = read(r);
  r.finish();
  return value;
}

/// Range check helper: throws ConfigError(path, "must be <what>, got <v>") when !ok.
void check_range(bool ok, const std::string& key_path, const std::string& what, const std::string& got);

// ---- template definitions ----------------------------------------------------------------

template <typename T>
std::optional<T> ConfigReader::convert(const nlohmann::json& v, const std::string& key) {
  const auto wrong = [&](const char* expected) {
    error(key, std::string("expected ") + expected + ", found " + v.dump());
    return std::optional<T>();
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return wrong("true/false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return wrong("an integer");
    if (std::is_unsigned_v<T> && v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0)
      return wrong("a non-negative integer");
    return v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return wrong("a number");
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return wrong("a string");
    return v.get<std::string>();
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception& e) {
      error(key, std::string("wrong type: ") + e.what());
      return std::nullopt;
    }
  }
}

template <typename T>
T ConfigReader::get(const std::string& key, const T& fallback) {
  used_.insert(key);
  if (!has(key)) return fallback;
  auto v = convert<T>(tree_.at(key), key);
  return v ? std::move(*v) : fallback;
}

template <typename T>
T ConfigReader::require(const std::string& key) {
  used_.insert(key);
  if (!has(key)) {
    error(key, "required but missing");
    return T{};
  }
  auto v = convert<T>(tree_.at(key), key);
  return v ? std::move(*v) : T{};
}

template <typename T>
std::optional<T> ConfigReader::optional(const std::string& key) {
  used_.insert(key);
  if (!has(key)) return std::nullopt;
  return convert<T>(tree_.at(key), key);
}

template <typename E, typename Table, typename>
E ConfigReader::choice(const std::string& key, const Table& table, E fallback) {
  used_.insert(key);
  if (!has(key)) return fallback;
  const auto name = convert<std::string>(tree_.at(key), key);
  if (!name) return fallback;
  std::string list;
  for (const auto& [value, spelling] : table) {
    if (*name == spelling) return value;
    list += (list.empty() ? "" : "|") + std::string(spelling);
  }
  error(key, "expected " + list + ", found \"" + *name + "\"");
  return fallback;
}

template <typename Fn>
void ConfigReader::capture(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigErrors& e) {
    for (const auto& issue : e.issues()) errors_->push_back(issue);
  } catch (const ConfigError& e) {
    errors_->push_back({e.key(), e.message()});
  }
}

}  // namespace biolm::core

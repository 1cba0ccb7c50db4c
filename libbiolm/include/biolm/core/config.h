// biolm/core/config.h: YAML/JSON configs with `key.path=value` overrides, read through typed
// readers that refuse unknown keys, wrong types and bad ranges with a ConfigError naming the path.
//
//   auto tree = core::load_config_file("ner.yaml");        // YAML or JSON -> json tree
//   core::apply_overrides(tree, {"train.lr=3e-4", "~train.max_steps"});
//   core::ConfigReader r(tree);
//   double lr = r.child("train").get<double>("lr", 5e-5);   // "train.lr" in errors
//   r.finish();                                              // unknown keys -> ConfigError
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <set>
#include <string>
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

/// Typed, path-aware reader over a json object. Every key read is marked; finish() throws for
/// keys nobody read (typos such as `train.lrr`), listing the known ones.
class ConfigReader {
 public:
  explicit ConfigReader(const nlohmann::json& tree, std::string path = "");

  bool has(const std::string& key) const;
  template <typename T>
  T get(const std::string& key, const T& fallback);
  template <typename T>
  T require(const std::string& key);
  template <typename T>
  std::optional<T> optional(const std::string& key);
  /// One of `choices` (for enums parsed once, here).
  std::string choice(const std::string& key, const std::vector<std::string>& choices, const std::string& fallback);
  /// A sub-object ({} when absent). Its unknown keys are checked by this reader's finish().
  ConfigReader& child(const std::string& key);
  /// Marks a key as known without reading it (e.g. read elsewhere as a whole json value).
  const nlohmann::json* raw(const std::string& key);
  /// Throws ConfigError for the first unknown key in this object or any child read so far.
  void finish() const;
  /// "train.lr" for key "lr" in child "train".
  std::string key_path(const std::string& key) const;

 private:
  template <typename T>
  T convert(const nlohmann::json& v, const std::string& key) const;
  nlohmann::json tree_;
  std::string path_;
  std::set<std::string> used_;
  std::vector<std::pair<std::string, std::unique_ptr<ConfigReader>>> children_;
};

/// Range check helper: throws ConfigError(path, "must be <what>, got <v>") when !ok.
void check_range(bool ok, const std::string& key_path, const std::string& what, const std::string& got);

// ---- template definitions ----------------------------------------------------------------

template <typename T>
T ConfigReader::convert(const nlohmann::json& v, const std::string& key) const {
  try {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) throw ConfigError(key_path(key), "expected true/false, found " + v.dump());
      return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) throw ConfigError(key_path(key), "expected an integer, found " + v.dump());
      return v.get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) throw ConfigError(key_path(key), "expected a number, found " + v.dump());
      return v.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) throw ConfigError(key_path(key), "expected a string, found " + v.dump());
      return v.get<std::string>();
    } else {
      return v.get<T>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(key_path(key), std::string("wrong type: ") + e.what());
  }
}

template <typename T>
T ConfigReader::get(const std::string& key, const T& fallback) {
  used_.insert(key);
  if (!tree_.is_object() || !tree_.contains(key) || tree_.at(key).is_null()) return fallback;
  return convert<T>(tree_.at(key), key);
}

template <typename T>
T ConfigReader::require(const std::string& key) {
  used_.insert(key);
  if (!tree_.is_object() || !tree_.contains(key) || tree_.at(key).is_null()) {
    throw ConfigError(key_path(key), "required but missing");
  }
  return convert<T>(tree_.at(key), key);
}

template <typename T>
std::optional<T> ConfigReader::optional(const std::string& key) {
  used_.insert(key);
  if (!tree_.is_object() || !tree_.contains(key) || tree_.at(key).is_null()) return std::nullopt;
  return convert<T>(tree_.at(key), key);
}

}  // namespace biolm::core

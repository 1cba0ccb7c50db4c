#include "biolm/core/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

namespace biolm::core {
namespace {

nlohmann::json scalar_to_json(const YAML::Node& n) {
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted in the source: always a string
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  // Integer?
  {
    size_t pos = 0;
    try {
      const long long v = std::stoll(s, &pos, 10);
      if (pos == s.size()) return v;
    } catch (const std::exception&) {
    }
  }
  // Float? (YAML 1.2 core: 3e-4, 0.1, .5, -inf)
  {
    size_t pos = 0;
    try {
      const double v = std::stod(s, &pos);
      if (pos == s.size()) return v;
    } catch (const std::exception&) {
    }
  }
  return s;
}

nlohmann::json node_to_json(const YAML::Node& n, const std::string& origin) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar_to_json(n);
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(node_to_json(e, origin));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) {
        const std::string key = kv.first.as<std::string>();
        if (o.contains(key)) {
          throw ConfigError(key, origin + ":" + std::to_string(kv.first.Mark().line + 1) + ": duplicate key");
        }
        o[key] = node_to_json(kv.second, origin);
      }
      return o;
    }
  }
  return nullptr;
}

void emit(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      emit(out, it.value());
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& e : j) emit(out, e);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string s = j.get<std::string>();
    // Keep strings that would read back as another type quoted.
    const auto back = scalar_to_json(YAML::Node(s));
    if (!back.is_string()) {
      out << YAML::DoubleQuoted << s;
    } else {
      out << s;
    }
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

}  // namespace

nlohmann::json parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return node_to_json(YAML::Load(text), origin);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin, "line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

nlohmann::json load_config_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError::from_errno(path, "cannot open config");
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json tree = parse_yaml(ss.str(), path);
  if (tree.is_null()) tree = nlohmann::json::object();
  if (!tree.is_object()) throw ConfigError(path, "top level must be a mapping of keys");
  return tree;
}

std::string to_yaml(const nlohmann::json& tree) {
  YAML::Emitter out;
  emit(out, tree);
  return std::string(out.c_str()) + "\n";
}

void apply_override(nlohmann::json& tree, const std::string& spec) {
  if (!tree.is_object()) tree = nlohmann::json::object();
  const bool remove = !spec.empty() && spec[0] == '~';
  std::string key = remove ? spec.substr(1) : spec;
  std::string value;
  if (!remove) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError(spec, "an override is key.path=value or ~key.path");
    }
    key = spec.substr(0, eq);
    value = spec.substr(eq + 1);
  }
  std::vector<std::string> parts;
  std::stringstream ks(key);
  for (std::string p; std::getline(ks, p, '.');) {
    if (p.empty()) throw ConfigError(key, "empty component in override key");
    parts.push_back(p);
  }
  nlohmann::json* node = &tree;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    nlohmann::json& next = (*node)[parts[i]];
    if (next.is_null()) next = nlohmann::json::object();
    if (!next.is_object()) throw ConfigError(key, "'" + parts[i] + "' is not a section");
    node = &next;
  }
  if (remove) {
    node->erase(parts.back());
  } else {
    (*node)[parts.back()] = value.empty() ? nlohmann::json("") : parse_yaml(value, "override " + key);
  }
}

void apply_overrides(nlohmann::json& tree, const std::vector<std::string>& specs) {
  for (const auto& s : specs) apply_override(tree, s);
}

ConfigErrors::ConfigErrors(std::vector<ConfigIssue> issues)
    : ConfigError(issues.empty() ? std::string() : issues.front().key,
                  issues.empty() ? std::string() : issues.front().message),
      issues_(std::move(issues)) {
  text_ = "config: " + std::to_string(issues_.size()) + " errors";
  for (const auto& i : issues_) text_ += "\n  config '" + i.key + "': " + i.message;
}

ConfigReader::ConfigReader(const nlohmann::json& tree, std::string path)
    : ConfigReader(tree, std::move(path), std::make_shared<std::vector<ConfigIssue>>()) {}

ConfigReader::ConfigReader(const nlohmann::json& tree, std::string path,
                           std::shared_ptr<std::vector<ConfigIssue>> errors)
    : tree_(tree), path_(std::move(path)), errors_(std::move(errors)) {
  if (!tree_.is_null() && !tree_.is_object()) {
    errors_->push_back({path_.empty() ? "<root>" : path_, "expected a mapping, found " + tree_.dump()});
    tree_ = nlohmann::json::object();
  }
}

bool ConfigReader::has(const std::string& key) const {
  return tree_.is_object() && tree_.contains(key) && !tree_.at(key).is_null();
}

bool ConfigReader::present(const std::string& key) const { return tree_.is_object() && tree_.contains(key); }

std::string ConfigReader::key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

void ConfigReader::error(const std::string& key, const std::string& message) {
  errors_->push_back({key_path(key), message});
}

void ConfigReader::check(bool ok, const std::string& key, const std::string& message) {
  if (!ok) error(key, message);
}

std::string ConfigReader::choice(const std::string& key, const std::vector<std::string>& choices,
                                 const std::string& fallback) {
  const std::string v = get<std::string>(key, fallback);
  for (const auto& c : choices)
    if (c == v) return v;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : "|") + c;
  error(key, "expected " + list + ", found \"" + v + "\"");
  return fallback;
}

ConfigReader& ConfigReader::child(const std::string& key) {
  used_.insert(key);
  for (auto& c : children_)
    if (c.first == key) return *c.second;
  // A non-mapping value is recorded by the child's constructor (and read as empty).
  const nlohmann::json sub = has(key) ? tree_.at(key) : nlohmann::json::object();
  children_.emplace_back(key, std::unique_ptr<ConfigReader>(new ConfigReader(sub, key_path(key), errors_)));
  return *children_.back().second;
}

const nlohmann::json* ConfigReader::raw(const std::string& key) {
  used_.insert(key);
  return has(key) ? &tree_.at(key) : nullptr;
}

void ConfigReader::record_unknown_keys() {
  for (auto it = tree_.begin(); it != tree_.end(); ++it) {
    if (!used_.count(it.key())) {
      std::string known;
      for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
      error(it.key(), "unknown key (known here: " + known + ")");
    }
  }
  for (const auto& c : children_) c.second->record_unknown_keys();
}

void ConfigReader::finish() {
  record_unknown_keys();
  throw_if_errors();
}

void ConfigReader::throw_if_errors() const {
  if (errors_->empty()) return;
  if (errors_->size() == 1) throw ConfigError(errors_->front().key, errors_->front().message);
  throw ConfigErrors(*errors_);
}

void check_range(bool ok, const std::string& key_path, const std::string& what, const std::string& got) {
  if (!ok) throw ConfigError(key_path, "must be " + what + ", got " + got);
}

}  // namespace biolm::core

#include "tokenize/common.h"

#include <fmt/format.h>

#include "biolm/core/error.h"
#include "biolm/io/files.h"

namespace biolm::tokenize::detail {
namespace {

struct NameField {
  const char* key;
  std::optional<std::string> SpecialTokenNames::*field;
};
constexpr NameField kNameFields[] = {
    {"pad_token", &SpecialTokenNames::pad}, {"unk_token", &SpecialTokenNames::unk},
    {"bos_token", &SpecialTokenNames::bos}, {"eos_token", &SpecialTokenNames::eos},
    {"cls_token", &SpecialTokenNames::cls}, {"sep_token", &SpecialTokenNames::sep},
    {"mask_token", &SpecialTokenNames::mask},
};

// A token is either "text" or {"content": "text", ...} (AddedToken); null means absent.
void read_names(const nlohmann::json& j, const std::filesystem::path& path, SpecialTokenNames& out) {
  if (!j.is_object()) throw DataError(path.string(), 0, "", "expected a JSON object");
  for (const auto& f : kNameFields) {
    if (!j.contains(f.key) || j[f.key].is_null()) continue;
    const auto& v = j[f.key];
    if (v.is_string()) {
      out.*(f.field) = v.get<std::string>();
    } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      out.*(f.field) = v["content"].get<std::string>();
    } else {
      throw DataError(path.string(), 0, f.key, "expected a string or an object with a \"content\" string");
    }
  }
}

}  // namespace

std::optional<bool> HfTokenizerConfig::get_bool(const std::string& key) const {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  if (!config[key].is_boolean())
    throw ConfigError(config_path.string() + ":" + key, fmt::format("expected true/false, found {}", config[key].dump()));
  return config[key].get<bool>();
}

HfTokenizerConfig read_hf_config(const std::filesystem::path& dir) {
  HfTokenizerConfig out;
  const auto cfg = dir / "tokenizer_config.json";
  if (std::filesystem::exists(cfg)) {
    out.config = io::read_json_file(cfg);
    out.config_path = cfg;
    read_names(out.config, cfg, out.names);
  }
  const auto map = dir / "special_tokens_map.json";
  if (std::filesystem::exists(map)) read_names(io::read_json_file(map), map, out.names);
  return out;
}

void override_names(SpecialTokenNames& base, const SpecialTokenNames& over) {
  for (const auto& f : kNameFields)
    if (over.*(f.field)) base.*(f.field) = over.*(f.field);
}

SpecialTokens resolve_special(const SpecialTokenNames& names,
                              const std::function<std::optional<int64_t>(std::string_view)>& lookup,
                              const std::string& source) {
  SpecialTokens s;
  std::optional<int64_t> SpecialTokens::*ids[] = {&SpecialTokens::pad, &SpecialTokens::unk, &SpecialTokens::bos,
                                                  &SpecialTokens::eos, &SpecialTokens::cls, &SpecialTokens::sep,
                                                  &SpecialTokens::mask};
  for (size_t i = 0; i < std::size(kNameFields); ++i) {
    const auto& name = names.*(kNameFields[i].field);
    if (!name) continue;
    auto id = lookup(*name);
    if (!id)
      throw ConfigError(source + ":" + kNameFields[i].key,
                        fmt::format("special token \"{}\" is not in the vocabulary", *name));
    s.*(ids[i]) = *id;
  }
  return s;
}

void write_hf_config(const std::filesystem::path& dir, const SpecialTokenNames& names, nlohmann::json config) {
  nlohmann::json map = nlohmann::json::object();
  for (const auto& f : kNameFields) {
    if (!(names.*(f.field))) continue;
    map[f.key] = *(names.*(f.field));
    config[f.key] = *(names.*(f.field));
  }
  io::write_file_atomic(dir / "special_tokens_map.json", map.dump(2) + "\n");
  io::write_file_atomic(dir / "tokenizer_config.json", config.dump(2) + "\n");
}

bool is_skippable_special(const SpecialTokens& s, int64_t id) {
  for (const auto& v : {s.pad, s.cls, s.sep, s.bos, s.eos, s.mask})
    if (v && *v == id) return true;
  return false;
}

void split_on_added(std::string_view text, const std::vector<AddedToken>& tokens,
                    const std::function<void(std::string_view, size_t)>& plain,
                    const std::function<void(const AddedToken&, size_t, size_t)>& added) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    const AddedToken* hit = nullptr;
    for (const auto& a : tokens) {
      const size_t at = text.find(a.content, pos);
      if (at != std::string_view::npos && (at < best || (at == best && a.content.size() > best_len))) {
        best = at;
        best_len = a.content.size();
        hit = &a;
      }
    }
    size_t stop = hit ? best : text.size();
    if (hit && hit->lstrip)
      while (stop > pos && is_space(text[stop - 1])) --stop;
    plain(text.substr(pos, stop - pos), pos);
    if (!hit) return;
    pos = best + best_len;
    if (hit->rstrip)
      while (pos < text.size() && is_space(text[pos])) ++pos;
    added(*hit, stop, pos);
  }
}

std::string hex64(uint64_t h) { return fmt::format("{:016x}", h); }

void add_specials(Encoding& enc, const std::vector<int64_t>& prefix, const std::vector<int64_t>& suffix) {
  if (prefix.empty() && suffix.empty()) return;
  Encoding out;
  for (auto id : prefix) {
    out.ids.push_back(id);
    out.offsets.emplace_back(0, 0);
    out.word_ids.push_back(-1);
  }
  out.ids.insert(out.ids.end(), enc.ids.begin(), enc.ids.end());
  out.offsets.insert(out.offsets.end(), enc.offsets.begin(), enc.offsets.end());
  out.word_ids.insert(out.word_ids.end(), enc.word_ids.begin(), enc.word_ids.end());
  for (auto id : suffix) {
    out.ids.push_back(id);
    out.offsets.emplace_back(0, 0);
    out.word_ids.push_back(-1);
  }
  enc = std::move(out);
}

Encoding encode_words_joined(const std::vector<std::string>& words,
                             const std::function<Encoding(const std::string&, int64_t, size_t)>& encode_word,
                             const std::vector<int64_t>& prefix, const std::vector<int64_t>& suffix) {
  Encoding out;
  int64_t offset = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    Encoding e = encode_word(words[i], offset, i);
    for (size_t k = 0; k < e.ids.size(); ++k) {
      out.ids.push_back(e.ids[k]);
      out.offsets.push_back(e.offsets[k]);
      out.word_ids.push_back(static_cast<int64_t>(i));
    }
    offset += static_cast<int64_t>(words[i].size()) + 1;
  }
  add_specials(out, prefix, suffix);
  return out;
}

}  // namespace biolm::tokenize::detail

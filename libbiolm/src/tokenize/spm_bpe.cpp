// SentencePiece-style BPE from tokenizer.json. See biolm/tokenize/spm_bpe.h.
#include "biolm/tokenize/spm_bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <queue>

#include "biolm/core/error.h"
#include "biolm/io/files.h"
#include "tokenize/common.h"
#include "tokenize/unicode.h"

namespace biolm::tokenize {
namespace {

constexpr const char* kMeta = "\xE2\x96\x81";  // U+2581 "▁"
constexpr char32_t kMetaCp = 0x2581;

uint64_t key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

std::string where(const std::string& source, const std::string& field) { return source + ":" + field; }

bool is_legacy_normalizer(const nlohmann::json& n) {
  // Sequence[Prepend("▁"), Replace(" ", "▁")], as LLaMA-2's tokenizer.json has it.
  if (!n.is_object() || n.value("type", "") != "Sequence") return false;
  const auto& seq = n.value("normalizers", nlohmann::json::array());
  return seq.size() == 2 && seq[0].value("type", "") == "Prepend" && seq[0].value("prepend", "") == kMeta &&
         seq[1].value("type", "") == "Replace" && seq[1].value("content", "") == kMeta &&
         seq[1].value("pattern", nlohmann::json::object()).value("String", "") == " ";
}

// One normalized character: its code point and the input bytes it stands for.
struct NChar {
  char32_t cp;
  int64_t begin, end;
};

}  // namespace

bool SpmBpeTokenizer::accepts(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("model") || j["model"].value("type", "") != "BPE") return false;
  const auto pre = j.value("pre_tokenizer", nlohmann::json());
  const bool metaspace = pre.is_object() && pre.value("type", "") == "Metaspace";
  return metaspace || is_legacy_normalizer(j.value("normalizer", nlohmann::json())) || j["model"].value("byte_fallback", false);
}

std::unique_ptr<SpmBpeTokenizer> SpmBpeTokenizer::from_json(const nlohmann::json& j, const std::string& source) {
  auto need = [&](bool ok, const std::string& field, const std::string& msg) {
    if (!ok) throw ConfigError(where(source, field), msg);
  };
  need(accepts(j), "model", "not a SentencePiece-style BPE tokenizer.json");
  std::unique_ptr<SpmBpeTokenizer> t(new SpmBpeTokenizer());
  t->json_ = j;
  t->source_ = source;
  const auto& m = j["model"];
  need(m.contains("vocab") && m["vocab"].is_object(), "model.vocab", "expected an object token -> id");
  need(m.value("continuing_subword_prefix", nlohmann::json()).is_null() ||
           m["continuing_subword_prefix"].get<std::string>().empty(),
       "model.continuing_subword_prefix", "is not supported");
  need(m.value("end_of_word_suffix", nlohmann::json()).is_null() || m["end_of_word_suffix"].get<std::string>().empty(),
       "model.end_of_word_suffix", "is not supported");
  need(m.value("dropout", nlohmann::json()).is_null(), "model.dropout", "BPE dropout is not supported");
  need(!m.value("ignore_merges", false), "model.ignore_merges", "is not supported here");
  int64_t max_id = -1;
  for (const auto& [tok, id] : m["vocab"].items()) {
    need(id.is_number_integer() && id.get<int64_t>() >= 0, "model.vocab", fmt::format("bad id for \"{}\"", tok));
    t->vocab_.emplace(tok, id.get<int64_t>());
    max_id = std::max(max_id, id.get<int64_t>());
  }
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    need(a.contains("id") && a["id"].is_number_integer() && a.contains("content") && a["content"].is_string(),
         "added_tokens", fmt::format("entry {} needs an integer id and a string content", a.dump()));
    t->added_.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false),
                         a.value("lstrip", false), a.value("rstrip", false)});
    max_id = std::max(max_id, a["id"].get<int64_t>());
  }
  t->id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [tok, id] : t->vocab_) t->id_to_token_[static_cast<size_t>(id)] = tok;
  for (const auto& a : t->added_) t->id_to_token_[static_cast<size_t>(a.id)] = a.content;
  int64_t rank = 0;
  for (const auto& mm : m.value("merges", nlohmann::json::array())) {
    std::string a, b;
    if (mm.is_string()) {
      const auto s = mm.get<std::string>();
      const auto sp = s.find(' ');
      need(sp != std::string::npos, "model.merges", fmt::format("merge \"{}\" is not two symbols", s));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      need(mm.is_array() && mm.size() == 2, "model.merges", fmt::format("merge {} is not a pair", mm.dump()));
      a = mm[0].get<std::string>();
      b = mm[1].get<std::string>();
    }
    auto ia = t->vocab_.find(a), ib = t->vocab_.find(b), iab = t->vocab_.find(a + b);
    need(ia != t->vocab_.end() && ib != t->vocab_.end() && iab != t->vocab_.end(), "model.merges",
         fmt::format("merge {} \"{} {}\" has a part or a result outside the vocabulary", rank, a, b));
    t->merges_.emplace(key(ia->second, ib->second), std::make_pair(rank, iab->second));
    ++rank;
  }
  t->byte_fallback_ = m.value("byte_fallback", false);
  t->fuse_unk_ = m.value("fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = t->vocab_.find(m["unk_token"].get<std::string>());
    need(it != t->vocab_.end(), "model.unk_token", "is not in the vocabulary");
    t->unk_ = it->second;
  }
  t->byte_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    auto it = t->vocab_.find(fmt::format("<0x{:02X}>", b));
    if (it != t->vocab_.end()) t->byte_ids_[static_cast<size_t>(b)] = it->second;
  }
  // Pre-tokenizer / normalizer: how "▁" enters.
  const auto pre = j.value("pre_tokenizer", nlohmann::json());
  const auto norm = j.value("normalizer", nlohmann::json());
  if (pre.is_object() && pre.value("type", "") == "Metaspace") {
    need(norm.is_null(), "normalizer", fmt::format("{} is not supported with Metaspace", norm.dump()));
    need(pre.value("replacement", kMeta) == std::string(kMeta), "pre_tokenizer.replacement", "only \"▁\" is supported");
    const std::string scheme = pre.value("prepend_scheme", "always");
    if (scheme == "first") t->prepend_ = Prepend::First;
    else if (scheme == "always") t->prepend_ = Prepend::Always;
    else if (scheme == "never") t->prepend_ = Prepend::Never;
    else throw ConfigError(where(source, "pre_tokenizer.prepend_scheme"), fmt::format("\"{}\" is not supported", scheme));
    t->split_ = pre.value("split", true);
  } else {
    need(is_legacy_normalizer(norm), "normalizer", "expected Metaspace or Sequence[Prepend(\"▁\"), Replace(\" \", \"▁\")]");
    need(pre.is_null(), "pre_tokenizer", fmt::format("{} is not supported with this normalizer", pre.dump()));
    t->prepend_ = Prepend::Unconditional;
    t->split_ = false;
  }
  // Decoder steps.
  const auto dec = j.value("decoder", nlohmann::json());
  if (dec.is_object()) {
    if (dec.value("type", "") == "Sequence") {
      for (const auto& d : dec.value("decoders", nlohmann::json::array())) t->decoders_.push_back(d);
    } else {
      t->decoders_.push_back(dec);
    }
  }
  for (const auto& d : t->decoders_) {
    const std::string type = d.value("type", "");
    need(type == "Replace" || type == "ByteFallback" || type == "Fuse" || type == "Strip" || type == "Metaspace",
         "decoder", fmt::format("decoder {} is not supported", d.dump()));
    if (type == "Replace")
      need(d.value("pattern", nlohmann::json::object()).contains("String"), "decoder", "Replace needs a String pattern");
  }
  // Post-processor: the tokens TemplateProcessing puts around the text.
  const auto pp = j.value("post_processor", nlohmann::json());
  std::vector<std::string> prefix, suffix;
  if (pp.is_object()) {
    need(pp.value("type", "") == "TemplateProcessing", "post_processor", fmt::format("{} is not supported", pp.value("type", "")));
    bool seen = false;
    for (const auto& item : pp.value("single", nlohmann::json::array())) {
      if (item.contains("Sequence")) seen = true;
      else if (item.contains("SpecialToken")) (seen ? suffix : prefix).push_back(item["SpecialToken"].value("id", ""));
    }
  }
  for (const auto& [list, ids] : {std::pair{&prefix, &t->prefix_ids_}, std::pair{&suffix, &t->suffix_ids_}})
    for (const auto& name : *list) {
      auto id = t->token_to_id(name);
      need(id.has_value(), "post_processor", fmt::format("token \"{}\" is not in the vocabulary", name));
      ids->push_back(*id);
    }
  SpecialTokenNames names;
  if (t->unk_) names.unk = t->id_to_token_[static_cast<size_t>(*t->unk_)];
  if (t->token_to_id("<s>")) names.bos = "<s>";
  if (t->token_to_id("</s>")) names.eos = "</s>";
  t->set_specials(names);
  return t;
}

void SpmBpeTokenizer::set_specials(const SpecialTokenNames& names) {
  names_ = names;
  special_ = detail::resolve_special(names, [this](std::string_view s) { return token_to_id(s); }, source_);
}

std::optional<int64_t> SpmBpeTokenizer::token_to_id(std::string_view token) const {
  for (const auto& a : added_)
    if (a.content == token) return a.id;
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string SpmBpeTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ConfigError("token_id", fmt::format("id {} outside the vocabulary [0, {})", id, vocab_size()));
  return id_to_token_[static_cast<size_t>(id)];
}

const AddedToken* SpmBpeTokenizer::added_by_id(int64_t id) const {
  for (const auto& a : added_)
    if (a.id == id) return &a;
  return nullptr;
}

// Metaspace (or Prepend + Replace) then BPE over characters (tokenizers' Word::merge_all: the
// lowest-ranked pair first, the leftmost on a tie), byte fallback for characters outside the
// vocabulary (each <0xXX> token spans the whole character), else the unk token (consecutive ones
// fused when fuse_unk).
void SpmBpeTokenizer::encode_segment(std::string_view text, int64_t base, bool starts_input, Encoding& out) const {
  if (text.empty()) return;
  std::vector<NChar> chars;
  for (const auto& c : unicode::decode(text, base)) chars.push_back({c.cp == ' ' ? kMetaCp : c.cp, c.begin, c.end});
  bool prepend = false;
  switch (prepend_) {
    case Prepend::First: prepend = starts_input && chars.front().cp != kMetaCp; break;
    case Prepend::Always: prepend = chars.front().cp != kMetaCp; break;
    case Prepend::Never: break;
    case Prepend::Unconditional: prepend = true; break;
  }
  if (prepend) chars.insert(chars.begin(), NChar{kMetaCp, chars.front().begin, chars.front().end});
  // Words: the whole segment, or (split) a new word before every "▁" (MergedWithNext).
  std::vector<std::pair<size_t, size_t>> words;
  size_t start = 0;
  for (size_t i = 1; split_ && i < chars.size(); ++i)
    if (chars[i].cp == kMetaCp) {
      words.emplace_back(start, i);
      start = i;
    }
  words.emplace_back(start, chars.size());
  struct Sym {
    int64_t id;
    size_t c0, c1;  // normalized characters [c0, c1)
    int64_t prev, next;
    bool alive;
  };
  for (const auto& [w0, w1] : words) {
    const int64_t word = out.word_ids.empty() ? 0 : out.word_ids.back() + 1;
    std::vector<Sym> sym;
    for (size_t k = w0; k < w1; ++k) {
      std::string s;
      unicode::append_utf8(s, chars[k].cp);
      auto it = vocab_.find(s);
      if (it != vocab_.end()) {
        sym.push_back({it->second, k, k + 1, 0, 0, true});
        continue;
      }
      if (byte_fallback_ && std::all_of(s.begin(), s.end(), [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; })) {
        for (char b : s) sym.push_back({byte_ids_[static_cast<unsigned char>(b)], k, k + 1, 0, 0, true});
        continue;
      }
      if (!unk_) throw ConfigError(source_, fmt::format("character U+{:04X} is not in the vocabulary and there is no unk_token",
                                                        static_cast<uint32_t>(chars[k].cp)));
      if (fuse_unk_ && !sym.empty() && sym.back().id == *unk_) sym.back().c1 = k + 1;
      else sym.push_back({*unk_, k, k + 1, 0, 0, true});
    }
    const int64_t n = static_cast<int64_t>(sym.size());
    for (int64_t i = 0; i < n; ++i) {
      sym[static_cast<size_t>(i)].prev = i - 1;
      sym[static_cast<size_t>(i)].next = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
      int64_t rank, pos, new_id;
    };
    auto worse = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> queue(worse);
    auto push = [&](int64_t pos) {
      const auto& s = sym[static_cast<size_t>(pos)];
      if (s.next < 0) return;
      auto it = merges_.find(key(s.id, sym[static_cast<size_t>(s.next)].id));
      if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
    };
    for (int64_t i = 0; i + 1 < n; ++i) push(i);
    while (!queue.empty()) {
      const Cand top = queue.top();
      queue.pop();
      auto& s = sym[static_cast<size_t>(top.pos)];
      if (!s.alive || s.next < 0) continue;
      auto& r = sym[static_cast<size_t>(s.next)];
      auto it = merges_.find(key(s.id, r.id));
      if (it == merges_.end() || it->second.second != top.new_id) continue;
      s.id = top.new_id;
      s.c1 = r.c1;
      r.alive = false;
      s.next = r.next;
      if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = top.pos;
      if (s.prev >= 0) push(s.prev);
      push(top.pos);
    }
    for (const auto& s : sym) {
      if (!s.alive) continue;
      out.ids.push_back(s.id);
      out.offsets.emplace_back(chars[s.c0].begin, chars[s.c1 - 1].end);
      out.word_ids.push_back(word);
    }
  }
}

Encoding SpmBpeTokenizer::encode(std::string_view text, bool add_special) const {
  Encoding out;
  detail::split_on_added(
      text, added_,
      [&](std::string_view seg, size_t at) { encode_segment(seg, static_cast<int64_t>(at), at == 0, out); },
      [&](const AddedToken& a, size_t b, size_t e) {
        out.ids.push_back(a.id);
        out.offsets.emplace_back(static_cast<int64_t>(b), static_cast<int64_t>(e));
        out.word_ids.push_back(out.word_ids.empty() ? 0 : out.word_ids.back() + 1);
      });
  if (add_special) detail::add_specials(out, prefix_ids_, suffix_ids_);
  return out;
}

Encoding SpmBpeTokenizer::encode_words(const std::vector<std::string>& words, bool add_special) const {
  return detail::encode_words_joined(
      words,
      [this](const std::string& w, int64_t offset, size_t index) {
        Encoding e;
        if (index == 0) encode_segment(w, offset, true, e);
        else encode_segment(" " + w, offset - 1, false, e);
        return e;
      },
      add_special ? prefix_ids_ : std::vector<int64_t>{}, add_special ? suffix_ids_ : std::vector<int64_t>{});
}

// tokenizers' decoders, in the order tokenizer.json lists them.
std::string SpmBpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<std::string> toks;
  for (int64_t id : ids) {
    const AddedToken* a = added_by_id(id);
    if (skip_special && ((a && a->special) || detail::is_skippable_special(special_, id))) continue;
    toks.push_back(id_to_token(id));
  }
  for (const auto& d : decoders_) {
    const std::string type = d.value("type", "");
    if (type == "Replace") {
      const std::string from = d["pattern"]["String"].get<std::string>(), to = d.value("content", "");
      for (auto& t : toks) {
        std::string r;
        for (size_t i = 0; i < t.size();) {
          if (!from.empty() && t.compare(i, from.size(), from) == 0) {
            r += to;
            i += from.size();
          } else {
            r += t[i++];
          }
        }
        t = std::move(r);
      }
    } else if (type == "ByteFallback") {
      std::vector<std::string> next;
      std::string bytes;
      size_t n_bytes = 0;
      auto flush = [&] {
        if (n_bytes == 0) return;
        if (to_valid_utf8(bytes) == bytes) {
          next.push_back(bytes);
        } else {
          for (size_t i = 0; i < n_bytes; ++i) next.push_back("\xEF\xBF\xBD");
        }
        bytes.clear();
        n_bytes = 0;
      };
      for (const auto& t : toks) {
        unsigned int b = 0;
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::sscanf(t.c_str() + 3, "%2X", &b) == 1) {
          bytes.push_back(static_cast<char>(b));
          ++n_bytes;
        } else {
          flush();
          next.push_back(t);
        }
      }
      flush();
      toks = std::move(next);
    } else if (type == "Fuse") {
      std::string all;
      for (const auto& t : toks) all += t;
      toks = {all};
    } else if (type == "Strip") {
      const std::string c = d.value("content", " ");
      const int64_t start = d.value("start", 0), stop = d.value("stop", 0);
      for (auto& t : toks) {
        for (int64_t i = 0; i < start && t.compare(0, c.size(), c) == 0; ++i) t.erase(0, c.size());
        for (int64_t i = 0; i < stop && t.size() >= c.size() && t.compare(t.size() - c.size(), c.size(), c) == 0; ++i)
          t.erase(t.size() - c.size());
      }
    } else if (type == "Metaspace") {
      const bool strip_first = d.value("prepend_scheme", "always") != "never";
      for (size_t i = 0; i < toks.size(); ++i) {
        std::string r;
        for (size_t k = 0; k < toks[i].size();) {
          if (toks[i].compare(k, 3, kMeta) == 0) {
            r += ' ';
            k += 3;
          } else {
            r += toks[i][k++];
          }
        }
        if (i == 0 && strip_first && !r.empty() && r[0] == ' ') r.erase(0, 1);
        toks[i] = std::move(r);
      }
    }
  }
  std::string out;
  for (const auto& t : toks) out += t;
  return out;
}

std::string SpmBpeTokenizer::fingerprint() const {
  return detail::hex64(unicode::fnv1a(json_.dump(), unicode::fnv1a("spm_bpe|")));
}

void SpmBpeTokenizer::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  io::write_file_atomic(dir / "tokenizer.json", json_.dump(2) + "\n");
  detail::write_hf_config(dir, names_, {{"tokenizer_class", "LlamaTokenizer"}});
}

}  // namespace biolm::tokenize

// Byte-level BPE (GPT-2 / LLaMA-3) from tokenizer.json. See biolm/tokenize/bpe.h.
#include "biolm/tokenize/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>

#include "biolm/core/error.h"
#include "biolm/io/files.h"
#include "tokenize/common.h"
#include "tokenize/unicode.h"

namespace biolm::tokenize {
namespace {

using unicode::Char;

// The two pre-tokenizer patterns we implement, exactly as tokenizer.json spells them.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2 encoder.py bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order.
struct ByteMap {
  std::array<char32_t, 256> to_cp{};
  std::array<std::string, 256> to_utf8;
  ByteMap() {
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      to_cp[b] = printable[b] ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      unicode::append_utf8(to_utf8[b], to_cp[b]);
    }
  }
  int to_byte(char32_t cp) const {
    if (cp < 256 && to_cp[cp] == cp) return static_cast<int>(cp);
    if (cp >= 256 && cp < 256 + 68) {
      for (int b = 0; b < 256; ++b)
        if (to_cp[b] == cp) return b;
    }
    return -1;
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

bool is_s(char32_t c) { return unicode::is_white_space(c); }
bool is_l(char32_t c) { return unicode::is_letter(c); }
bool is_n(char32_t c) { return unicode::is_number(c); }
bool is_other(char32_t c) { return !is_s(c) && !is_l(c) && !is_n(c); }
bool is_crlf(char32_t c) { return c == '\r' || c == '\n'; }

// 's 't 're 've 'm 'll 'd at i: the match length, 0 when none.
size_t contraction(const std::vector<Char>& c, size_t i, bool ignore_case) {
  if (c[i].cp != '\'' || i + 1 >= c.size()) return 0;
  auto low = [&](size_t k) -> char32_t {
    if (k >= c.size()) return 0;
    const char32_t x = c[k].cp;
    return ignore_case && x >= 'A' && x <= 'Z' ? x + 32 : x;
  };
  const char32_t a = low(i + 1), b = low(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

template <typename Pred>
size_t run(const std::vector<Char>& c, size_t i, Pred p) {
  while (i < c.size() && p(c[i].cp)) ++i;
  return i;
}

// \s+(?!\S) then \s+ at a whitespace position: the end of the match.
size_t whitespace_tail(const std::vector<Char>& c, size_t i) {
  const size_t j = run(c, i, is_s);
  if (j == c.size() || j - i < 2) return j;  // to the end, or a single space before a word
  return j - 1;                               // leave the last space to the next word
}

// One match of the GPT-2 pattern starting at i: returns its end.
size_t gpt2_match(const std::vector<Char>& c, size_t i) {
  if (size_t k = contraction(c, i, false)) return i + k;
  const size_t n = c.size();
  const bool sp = c[i].cp == ' ' && i + 1 < n;
  for (auto pred : {is_l, is_n, is_other}) {
    if (sp && pred(c[i + 1].cp)) return run(c, i + 1, pred);
    if (pred(c[i].cp)) return run(c, i, pred);
  }
  return whitespace_tail(c, i);
}

size_t llama3_match(const std::vector<Char>& c, size_t i) {
  if (size_t k = contraction(c, i, true)) return i + k;
  const size_t n = c.size();
  const char32_t x = c[i].cp;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!is_crlf(x) && !is_l(x) && !is_n(x) && i + 1 < n && is_l(c[i + 1].cp)) return run(c, i + 1, is_l);
  if (is_l(x)) return run(c, i, is_l);
  // \p{N}{1,3}
  if (is_n(x)) {
    size_t j = i;
    while (j < n && j - i < 3 && is_n(c[j].cp)) ++j;
    return j;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t j = i;
  if (x == ' ' && i + 1 < n && is_other(c[i + 1].cp)) ++j;
  if (is_other(c[j].cp)) return run(c, run(c, j, is_other), is_crlf);
  // \s*[\r\n]+ : through the last CR/LF of the whitespace run
  const size_t e = run(c, i, is_s);
  for (size_t p = e; p > i; --p)
    if (is_crlf(c[p - 1].cp)) return p;
  return whitespace_tail(c, i);
}

const char* pattern_of(PreTokenizer p) { return p == PreTokenizer::Gpt2 ? kGpt2Pattern : kLlama3Pattern; }

std::string json_path(const std::string& source, const std::string& field) { return source + ":" + field; }

// The post-processor: the tokens TemplateProcessing adds around a text, and whether a ByteLevel
// step trims offsets (tokenizers' process_offsets; no ByteLevel step: nothing is trimmed).
void parse_post_processor(const nlohmann::json& pp, BpeOptions& opt, bool& seen_byte_level, const std::string& source) {
  if (pp.is_null()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence") {
    for (const auto& p : pp.value("processors", nlohmann::json::array())) parse_post_processor(p, opt, seen_byte_level, source);
    return;
  }
  if (type == "ByteLevel") {
    seen_byte_level = true;
    opt.trim_offsets = pp.value("trim_offsets", true);
    opt.trim_keeps_prefix_space = pp.value("add_prefix_space", true);
    return;
  }
  auto& prefix = opt.prefix_tokens;
  auto& suffix = opt.suffix_tokens;
  if (type != "TemplateProcessing")
    throw ConfigError(json_path(source, "post_processor.type"), fmt::format("\"{}\" is not supported", type));
  bool seen_seq = false;
  for (const auto& item : pp.value("single", nlohmann::json::array())) {
    if (item.contains("Sequence")) {
      seen_seq = true;
    } else if (item.contains("SpecialToken")) {
      (seen_seq ? suffix : prefix).push_back(item["SpecialToken"].value("id", ""));
    }
  }
}

}  // namespace

std::string bytes_to_unicode(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) out += byte_map().to_utf8[b];
  return out;
}

BpeTokenizer::BpeTokenizer(std::unordered_map<std::string, int64_t> vocab,
                           std::vector<std::pair<std::string, std::string>> merges, std::vector<AddedToken> added,
                           BpeOptions options, std::string source)
    : vocab_(std::move(vocab)), merges_(std::move(merges)), added_(std::move(added)), options_(std::move(options)),
      source_(std::move(source)) {
  for (int b = 0; b < 256; ++b)
    if (!vocab_.count(byte_map().to_utf8[b]))
      throw ConfigError(json_path(source_, "model.vocab"),
                        fmt::format("byte 0x{:02X} (\"{}\") is missing: not a byte-level vocabulary", b,
                                    byte_map().to_utf8[b]));
  int64_t max_id = -1;
  for (const auto& [t, id] : vocab_) {
    if (id < 0) throw ConfigError(json_path(source_, "model.vocab"), fmt::format("negative id {} for \"{}\"", id, t));
    max_id = std::max(max_id, id);
  }
  for (const auto& a : added_) max_id = std::max(max_id, a.id);
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  std::vector<bool> used(id_to_token_.size(), false);
  for (const auto& [t, id] : vocab_) {
    if (used[static_cast<size_t>(id)])
      throw ConfigError(json_path(source_, "model.vocab"), fmt::format("id {} is used twice", id));
    used[static_cast<size_t>(id)] = true;
    id_to_token_[static_cast<size_t>(id)] = t;
  }
  for (const auto& a : added_) {
    if (a.content.empty()) throw ConfigError(json_path(source_, "added_tokens"), "empty added token");
    auto it = vocab_.find(a.content);
    if (it != vocab_.end() && it->second != a.id)
      throw ConfigError(json_path(source_, "added_tokens"),
                        fmt::format("\"{}\" has id {} but the vocabulary says {}", a.content, a.id, it->second));
    if (it == vocab_.end()) {
      if (used[static_cast<size_t>(a.id)])
        throw ConfigError(json_path(source_, "added_tokens"), fmt::format("id {} of \"{}\" is taken", a.id, a.content));
      used[static_cast<size_t>(a.id)] = true;
      id_to_token_[static_cast<size_t>(a.id)] = a.content;
    }
  }
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i]) throw ConfigError(json_path(source_, "model.vocab"), fmt::format("no token has id {}", i));
  for (size_t r = 0; r < merges_.size(); ++r) {
    const auto& [a, b] = merges_[r];
    if (!vocab_.count(a + b))
      throw ConfigError(json_path(source_, "model.merges"),
                        fmt::format("merge {} \"{} {}\" makes \"{}\", which is not in the vocabulary", r, a, b, a + b));
    ranks_.emplace(a + " " + b, static_cast<int64_t>(r));
  }
  set_specials(options_.specials);
  set_affixes(options_.prefix_tokens, options_.suffix_tokens);
}

void BpeTokenizer::set_specials(const SpecialTokenNames& names) {
  options_.specials = names;
  special_ = detail::resolve_special(names, [this](std::string_view t) { return token_to_id(t); }, source_);
}

void BpeTokenizer::set_affixes(std::vector<std::string> prefix, std::vector<std::string> suffix) {
  auto resolve = [&](const std::vector<std::string>& toks) {
    std::vector<int64_t> ids;
    for (const auto& t : toks) {
      auto id = token_to_id(t);
      if (!id) throw ConfigError(json_path(source_, "post_processor"), fmt::format("token \"{}\" is not in the vocabulary", t));
      ids.push_back(*id);
    }
    return ids;
  };
  prefix_ids_ = resolve(prefix);
  suffix_ids_ = resolve(suffix);
  options_.prefix_tokens = std::move(prefix);
  options_.suffix_tokens = std::move(suffix);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  return from_json(io::read_json_file(path), path.string());
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_json(const nlohmann::json& j, const std::string& source) {
  auto need = [&](bool ok, const std::string& field, const std::string& msg) {
    if (!ok) throw ConfigError(json_path(source, field), msg);
  };
  need(j.is_object() && j.contains("model") && j["model"].is_object(), "model", "missing model object");
  const auto& m = j["model"];
  need(m.value("type", "") == "BPE", "model.type", fmt::format("expected \"BPE\", found {}", m.value("type", "null")));
  need(!m.value("byte_fallback", false), "model.byte_fallback",
       "byte_fallback BPE is SentencePiece-style; load tokenizer.model instead");
  need(m.contains("vocab") && m["vocab"].is_object(), "model.vocab", "expected an object token -> id");
  need(m.contains("merges") && m["merges"].is_array(), "model.merges", "expected an array");
  need(!j.contains("normalizer") || j["normalizer"].is_null(), "normalizer",
       fmt::format("normalizer {} is not supported with byte-level BPE", j.value("normalizer", nlohmann::json()).dump()));

  std::unordered_map<std::string, int64_t> vocab;
  for (const auto& [t, id] : m["vocab"].items()) {
    need(id.is_number_integer(), "model.vocab", fmt::format("id of \"{}\" is not an integer", t));
    vocab.emplace(t, id.get<int64_t>());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (const auto& mm : m["merges"]) {
    if (mm.is_string()) {  // "a b" (tokenizers < 0.20)
      const auto s = mm.get<std::string>();
      const auto sp = s.find(' ');
      need(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
           "model.merges", fmt::format("merge \"{}\" is not two symbols separated by one space", s));
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {  // ["a", "b"]
      need(mm.is_array() && mm.size() == 2 && mm[0].is_string() && mm[1].is_string(), "model.merges",
           fmt::format("merge {} is not a pair of strings", mm.dump()));
      merges.emplace_back(mm[0].get<std::string>(), mm[1].get<std::string>());
    }
  }

  BpeOptions opt;
  opt.ignore_merges = m.value("ignore_merges", false);
  const auto& pre = j.value("pre_tokenizer", nlohmann::json());
  auto read_byte_level = [&](const nlohmann::json& bl) { opt.add_prefix_space = bl.value("add_prefix_space", false); };
  if (pre.is_object() && pre.value("type", "") == "ByteLevel") {
    need(pre.value("use_regex", true), "pre_tokenizer.use_regex", "ByteLevel without its regex is not supported");
    read_byte_level(pre);
    opt.pre_tokenizer = PreTokenizer::Gpt2;
  } else if (pre.is_object() && pre.value("type", "") == "Sequence") {
    const auto& seq = pre.value("pretokenizers", nlohmann::json::array());
    need(seq.size() == 2 && seq[0].value("type", "") == "Split" && seq[1].value("type", "") == "ByteLevel",
         "pre_tokenizer.pretokenizers", "expected [Split, ByteLevel]");
    const std::string pattern = seq[0].value("pattern", nlohmann::json::object()).value("Regex", "");
    if (pattern == kGpt2Pattern) opt.pre_tokenizer = PreTokenizer::Gpt2;
    else if (pattern == kLlama3Pattern) opt.pre_tokenizer = PreTokenizer::Llama3;
    else
      throw ConfigError(json_path(source, "pre_tokenizer.pretokenizers[0].pattern"),
                        fmt::format("pattern {} is neither the GPT-2 nor the LLaMA-3 one", nlohmann::json(pattern).dump()));
    need(seq[0].value("behavior", "") == "Isolated" && !seq[0].value("invert", false),
         "pre_tokenizer.pretokenizers[0].behavior", "only Isolated, non-inverted splits are supported");
    need(!seq[1].value("use_regex", false), "pre_tokenizer.pretokenizers[1].use_regex",
         "ByteLevel after a Split must not apply its own regex");
    read_byte_level(seq[1]);
  } else {
    throw ConfigError(json_path(source, "pre_tokenizer"),
                      fmt::format("expected ByteLevel or Sequence[Split, ByteLevel], found {}", pre.dump()));
  }
  bool byte_level_post = false;
  if (j.contains("post_processor")) parse_post_processor(j["post_processor"], opt, byte_level_post, source);
  if (!byte_level_post) opt.trim_offsets = false;

  std::vector<AddedToken> added;
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    need(a.contains("id") && a["id"].is_number_integer() && a.contains("content") && a["content"].is_string(),
         "added_tokens", fmt::format("entry {} needs an integer id and a string content", a.dump()));
    added.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false),
                     a.value("lstrip", false), a.value("rstrip", false)});
  }
  // Conventional special tokens when the files around do not name them.
  auto has = [&](const std::string& t) {
    if (vocab.count(t)) return true;
    return std::any_of(added.begin(), added.end(), [&](const AddedToken& a) { return a.content == t; });
  };
  if (has("<|endoftext|>")) opt.specials.bos = opt.specials.eos = opt.specials.unk = "<|endoftext|>";
  if (has("<|begin_of_text|>")) opt.specials.bos = "<|begin_of_text|>";
  if (has("<|end_of_text|>")) opt.specials.eos = "<|end_of_text|>";
  return std::make_unique<BpeTokenizer>(std::move(vocab), std::move(merges), std::move(added), std::move(opt), source);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_vocab_merges(const std::filesystem::path& vocab_json,
                                                              const std::filesystem::path& merges_txt,
                                                              bool add_prefix_space, std::vector<AddedToken> added) {
  const auto text = io::read_file(merges_txt);
  nlohmann::json merges = nlohmann::json::array();
  size_t start = 0;
  int64_t line = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string l = text.substr(start, nl - start);
    start = nl + 1;
    ++line;
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l.empty() || (line == 1 && l.rfind("#version", 0) == 0)) continue;
    const auto sp = l.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == l.size() || l.find(' ', sp + 1) != std::string::npos)
      throw DataError(merges_txt.string(), line, "merge", fmt::format("expected two symbols separated by one space, found \"{}\"", l));
    merges.push_back(l);
  }
  const nlohmann::json vocab = io::read_json_file(vocab_json);
  nlohmann::json added_json = nlohmann::json::array();
  for (const auto& a : added) {
    if (!vocab.is_object() || !vocab.contains(a.content)) continue;
    added_json.push_back({{"id", vocab[a.content]}, {"content", a.content}, {"special", a.special},
                          {"lstrip", a.lstrip}, {"rstrip", a.rstrip}});
  }
  // transformers' GPT2Tokenizer: ByteLevel pre-tokenizer, a post-processor that adds nothing
  // and trims no offsets.
  const nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
      {"added_tokens", added_json},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}}},
      {"post_processor", nullptr}};
  return from_json(j, vocab_json.string());
}

std::optional<int64_t> BpeTokenizer::token_to_id(std::string_view token) const {
  for (const auto& a : added_)
    if (a.content == token) return a.id;
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ConfigError("token_id", fmt::format("id {} outside the vocabulary [0, {})", id, vocab_size()));
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<Span> BpeTokenizer::pre_tokenize(std::string_view text) const {
  const auto chars = unicode::decode(text);
  std::vector<Span> out;
  size_t i = 0;
  while (i < chars.size()) {
    const size_t e = options_.pre_tokenizer == PreTokenizer::Gpt2 ? gpt2_match(chars, i) : llama3_match(chars, i);
    const int64_t b = chars[i].begin, en = chars[e - 1].end;
    out.push_back({std::string(text.substr(static_cast<size_t>(b), static_cast<size_t>(en - b))), b, en});
    i = e;
  }
  return out;
}

std::vector<std::string> BpeTokenizer::bpe(const std::string& byte_chars) const {
  std::vector<std::string> sym;
  for (const auto& c : unicode::decode(byte_chars)) {
    std::string s;
    unicode::append_utf8(s, c.cp);
    sym.push_back(std::move(s));
  }
  std::string key;
  while (sym.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      key = sym[i] + " " + sym[i + 1];
      auto it = ranks_.find(key);
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    const std::string a = sym[at], b = sym[at + 1];
    std::vector<std::string> next;
    for (size_t i = 0; i < sym.size(); ++i) {
      if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
        next.push_back(a + b);
        ++i;
      } else {
        next.push_back(sym[i]);
      }
    }
    sym = std::move(next);
  }
  return sym;
}

void BpeTokenizer::encode_plain(std::string_view text, int64_t base, bool /*first_piece*/, Encoding& out) const {
  if (text.empty()) return;
  // ByteLevel add_prefix_space: a space before a segment that does not start with one. As HF's
  // NormalizedString::prepend aligns it, the added space spans the segment's first character.
  const bool prefix = options_.add_prefix_space && text.front() != ' ';
  std::string buf;
  if (prefix) buf = " ";
  buf.append(text);
  // The input span [begin, end) of the whole character each byte of `buf` belongs to.
  const auto chars = unicode::decode(text);
  std::vector<std::pair<int64_t, int64_t>> span(buf.size());
  size_t k = prefix ? 1 : 0;
  for (const auto& c : chars)
    for (int64_t b = c.begin; b < c.end; ++b) span[k++] = {c.begin, c.end};
  if (prefix) span[0] = span[1];
  for (const auto& piece : pre_tokenize(buf)) {
    const int64_t word = out.word_ids.empty() ? 0 : out.word_ids.back() + 1;
    const std::string bytechars = bytes_to_unicode(piece.text);
    std::vector<std::string> toks;
    if (options_.ignore_merges && vocab_.count(bytechars)) toks = {bytechars};
    else toks = bpe(bytechars);
    int64_t pos = piece.begin;
    for (const auto& t : toks) {
      auto it = vocab_.find(t);
      if (it == vocab_.end()) throw ConfigError(source_, fmt::format("BPE produced \"{}\", which is not in the vocabulary", t));
      const int64_t nbytes = static_cast<int64_t>(unicode::decode(t).size());
      const int64_t b = span[static_cast<size_t>(pos)].first, e = span[static_cast<size_t>(pos + nbytes - 1)].second;
      pos += nbytes;
      out.ids.push_back(it->second);
      out.offsets.emplace_back(base + b, base + e);
      out.word_ids.push_back(word);
    }
  }
}

const AddedToken* BpeTokenizer::added_by_id(int64_t id) const {
  for (const auto& a : added_)
    if (a.id == id) return &a;
  return nullptr;
}

// tokenizers' ByteLevel process_offsets: count the token's leading and trailing "Ġ" (or
// whitespace) characters; move the start right past the leading ones (never past the end) unless
// it is the first token, add_prefix_space is set and there is exactly one; move the end left past
// the trailing ones (never before the start). A token of spaces only ends with an empty span at
// its end.
void BpeTokenizer::trim_offsets(Encoding& enc) const {
  if (!options_.trim_offsets) return;
  for (size_t i = 0; i < enc.ids.size(); ++i) {
    const AddedToken* a = added_by_id(enc.ids[i]);
    const auto cs = unicode::decode(a ? a->content : id_to_token_[static_cast<size_t>(enc.ids[i])]);
    auto is_space = [](char32_t c) { return c == 0x120 || unicode::is_white_space(c); };
    int64_t lead = 0, trail = 0;
    while (lead < static_cast<int64_t>(cs.size()) && is_space(cs[static_cast<size_t>(lead)].cp)) ++lead;
    while (trail < static_cast<int64_t>(cs.size()) && is_space(cs[cs.size() - 1 - static_cast<size_t>(trail)].cp)) ++trail;
    auto& [b, e] = enc.offsets[i];
    if (lead > 0) {
      const bool first = i == 0 || b == 0;
      if (!(first && options_.trim_keeps_prefix_space && lead == 1)) b = std::min(b + lead, e);
    }
    if (trail > 0 && e >= trail) e = std::max(e - trail, b);
  }
}

Encoding BpeTokenizer::encode(std::string_view text, bool add_special) const {
  Encoding out;
  detail::split_on_added(
      text, added_,
      [&](std::string_view seg, size_t at) { encode_plain(seg, static_cast<int64_t>(at), at == 0, out); },
      [&](const AddedToken& a, size_t b, size_t e) {
        out.ids.push_back(a.id);
        out.offsets.emplace_back(static_cast<int64_t>(b), static_cast<int64_t>(e));
        out.word_ids.push_back(out.word_ids.empty() ? 0 : out.word_ids.back() + 1);
      });
  trim_offsets(out);
  if (add_special) detail::add_specials(out, prefix_ids_, suffix_ids_);
  return out;
}

Encoding BpeTokenizer::encode_words(const std::vector<std::string>& words, bool add_special) const {
  // Word i > 0 is encoded with its separating space, as it reads in the joined text.
  return detail::encode_words_joined(
      words,
      [this](const std::string& w, int64_t offset, size_t index) {
        Encoding e;
        if (index == 0) {
          encode_plain(w, offset, true, e);
        } else {
          encode_plain(" " + w, offset - 1, false, e);
        }
        trim_offsets(e);
        return e;
      },
      add_special ? prefix_ids_ : std::vector<int64_t>{}, add_special ? suffix_ids_ : std::vector<int64_t>{});
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  // tokenizers' ByteLevel decoder: a token whose characters are all byte characters gives those
  // bytes, any other token (an added "<mask>" with a space, ...) its own UTF-8 text.
  std::string out;
  for (int64_t id : ids) {
    const std::string tok = id_to_token(id);
    const AddedToken* added = added_by_id(id);
    if (skip_special && ((added && added->special) || detail::is_skippable_special(special_, id))) continue;
    std::string bytes;
    bool all_bytes = true;
    for (const auto& c : unicode::decode(tok)) {
      const int b = byte_map().to_byte(c.cp);
      if (b < 0) {
        all_bytes = false;
        break;
      }
      bytes.push_back(static_cast<char>(b));
    }
    out += all_bytes ? bytes : tok;
  }
  return out;
}

std::string BpeTokenizer::fingerprint() const {
  uint64_t h = unicode::fnv1a(fmt::format("bpe|pre={}|prefix_space={}|ignore_merges={}|",
                                          static_cast<int>(options_.pre_tokenizer), options_.add_prefix_space,
                                          options_.ignore_merges));
  for (size_t i = 0; i < id_to_token_.size(); ++i) h = unicode::fnv1a(id_to_token_[i] + "\n", h);
  for (const auto& [a, b] : merges_) h = unicode::fnv1a(a + " " + b + "\n", h);
  for (const auto& a : added_) h = unicode::fnv1a(fmt::format("{}:{}:{}\n", a.id, a.content, a.special), h);
  return detail::hex64(h);
}

nlohmann::json BpeTokenizer::to_json() const {
  using json = nlohmann::json;
  json added = json::array();
  for (const auto& a : added_)
    added.push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", a.lstrip},
                     {"rstrip", a.rstrip}, {"normalized", false}, {"special", a.special}});
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", options_.add_prefix_space},
                     {"trim_offsets", options_.trim_offsets}, {"use_regex", true}};
  json pre = byte_level;
  if (options_.pre_tokenizer == PreTokenizer::Llama3) {
    json bl = byte_level;
    bl["use_regex"] = false;
    json split = {{"type", "Split"},
                  {"pattern", {{"Regex", pattern_of(options_.pre_tokenizer)}}},
                  {"behavior", "Isolated"},
                  {"invert", false}};
    pre = {{"type", "Sequence"}, {"pretokenizers", json::array({split, bl})}};
  }
  json post = byte_level;
  post["add_prefix_space"] = options_.trim_keeps_prefix_space;
  if (!options_.trim_offsets) post = nullptr;
  if (!prefix_ids_.empty() || !suffix_ids_.empty()) {
    json single = json::array(), specials = json::object();
    auto add = [&](const std::string& t, int64_t id) {
      single.push_back({{"SpecialToken", {{"id", t}, {"type_id", 0}}}});
      specials[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
    };
    for (size_t i = 0; i < prefix_ids_.size(); ++i) add(options_.prefix_tokens[i], prefix_ids_[i]);
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    for (size_t i = 0; i < suffix_ids_.size(); ++i) add(options_.suffix_tokens[i], suffix_ids_[i]);
    json pair = single;
    pair.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
    json tp = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
    post = post.is_null() ? tp : json{{"type", "Sequence"}, {"processors", json::array({post, tp})}};
  }
  json merges = json::array();
  for (const auto& [a, b] : merges_) merges.push_back(json::array({a, b}));
  json vocab = json::object();
  for (const auto& [t, id] : vocab_) vocab[t] = id;
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre},
          {"post_processor", post},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
            {"ignore_merges", options_.ignore_merges}, {"vocab", vocab}, {"merges", merges}}}};
}

void BpeTokenizer::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  io::write_file_atomic(dir / "tokenizer.json", to_json().dump(2) + "\n");
  nlohmann::json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                        {"add_prefix_space", options_.add_prefix_space}};
  detail::write_hf_config(dir, options_.specials, cfg);
}

}  // namespace biolm::tokenize

// WordPiece (BERT): BasicTokenizer + greedy longest-match-first, and a WordPiece trainer.
// Behaviour follows google-research/bert tokenization.py (BasicTokenizer, WordpieceTokenizer) and
// the options of transformers' BertTokenizer (do_lower_case, strip_accents, tokenize_chinese_chars).
#include "biolm/tokenize/wordpiece.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <queue>
#include <unordered_set>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/io/files.h"
#include "tokenize/common.h"
#include "tokenize/unicode.h"

namespace biolm::tokenize {
namespace {

using unicode::Char;

bool is_bert_whitespace(char32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || unicode::is_space_separator(cp) ||
         unicode::is_white_space(cp);
}

// HF tokenizers' BertNormalizer drops every "other" character (Rust's is_other: Cc, Cf, Cs, Co
// and unassigned Cn), not only BERT's Cc/Cf; tab, CR and LF are whitespace.
bool is_bert_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return unicode::is_other(cp);
}

// BERT treats every ASCII non-alphanumeric printable as punctuation ("$", "^", "`" are not P*).
bool is_bert_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  return unicode::is_punctuation(cp);
}

bool strips_accents(const WordPieceOptions& o) {
  return o.strip_accents ? *o.strip_accents : o.lowercase;
}

// BasicTokenizer on decoded characters: the words, each a run of normalized characters that
// keep the byte span of the input character they came from.
std::vector<std::vector<Char>> basic_words(std::string_view text, int64_t base, const WordPieceOptions& o) {
  const auto chars = unicode::decode(text, base);
  std::vector<std::vector<Char>> raw;
  std::vector<Char> cur;
  auto flush = [&] {
    if (!cur.empty()) raw.push_back(std::move(cur));
    cur.clear();
  };
  for (const Char& c : chars) {
    if (o.clean_text && (c.cp == 0 || c.cp == 0xFFFD || is_bert_control(c.cp))) continue;
    if (is_bert_whitespace(c.cp)) {
      flush();
      continue;
    }
    if (o.tokenize_chinese_chars && unicode::is_cjk(c.cp)) {
      flush();
      raw.push_back({c});
      continue;
    }
    cur.push_back(c);
  }
  flush();

  const bool strip = strips_accents(o);
  std::vector<std::vector<Char>> words;
  std::vector<char32_t> tmp, tmp2;
  for (auto& w : raw) {
    // HF's BertNormalizer order: accents stripped (NFD, Mn removed) first, then lower-cased
    // (U+212B ANGSTROM SIGN -> A + ring -> A -> a; U+2126 OHM SIGN -> omega; U+212A KELVIN -> k).
    std::vector<Char> norm;
    for (const Char& c : w) {
      tmp.clear();
      if (strip) {
        tmp2.clear();
        unicode::nfd(c.cp, tmp2);
        for (char32_t y : tmp2)
          if (!unicode::is_nonspacing_mark(y)) tmp.push_back(y);
      } else {
        tmp.push_back(c.cp);
      }
      for (char32_t x : tmp) {
        if (!o.lowercase) {
          norm.push_back({x, c.begin, c.end});
          continue;
        }
        tmp2.clear();
        unicode::to_lower(x, tmp2);
        for (char32_t y : tmp2) norm.push_back({y, c.begin, c.end});
      }
    }
    // split on punctuation: each punctuation character is a word of its own
    std::vector<Char> part;
    for (const Char& c : norm) {
      if (is_bert_punctuation(c.cp)) {
        if (!part.empty()) words.push_back(std::move(part));
        part.clear();
        words.push_back({c});
      } else {
        part.push_back(c);
      }
    }
    if (!part.empty()) words.push_back(std::move(part));
  }
  return words;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options, std::string source)
    : vocab_(std::move(vocab)), options_(std::move(options)), source_(std::move(source)) {
  if (vocab_.empty()) throw ConfigError(source_, "WordPiece vocabulary is empty");
  for (size_t i = 0; i < vocab_.size(); ++i) {
    if (!ids_.emplace(vocab_[i], static_cast<int64_t>(i)).second && !vocab_[i].empty())
      throw DataError(source_, static_cast<int64_t>(i) + 1, "token",
                      fmt::format("duplicate token \"{}\" (first at line {})", vocab_[i], ids_[vocab_[i]] + 1));
  }
  if (options_.max_chars_per_word <= 0) throw ConfigError("max_chars_per_word", "must be > 0");
  special_ = detail::resolve_special(options_.specials, [this](std::string_view t) { return token_to_id(t); },
                                     source_);
  if (!special_.unk) throw ConfigError(source_ + ":unk_token", "WordPiece needs an unknown token");
}

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_vocab_file(const std::filesystem::path& path,
                                                                         WordPieceOptions options) {
  const std::string text = io::read_file(path);
  std::vector<std::string> vocab;
  size_t start = 0;
  int64_t line = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string tok = text.substr(start, nl - start);
    ++line;
    if (!tok.empty() && tok.back() == '\r') tok.pop_back();
    // BERT's load_vocab strips surrounding whitespace from each line.
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.pop_back();
    size_t lead = 0;
    while (lead < tok.size() && (tok[lead] == ' ' || tok[lead] == '\t')) ++lead;
    tok.erase(0, lead);
    // An empty line is a token that can never match (SciBERT's vocab.txt has one at line 30107);
    // it keeps its id, as BERT's load_vocab does.
    vocab.push_back(std::move(tok));
    start = nl + 1;
  }
  return std::make_unique<WordPieceTokenizer>(std::move(vocab), std::move(options), path.string());
}

std::optional<int64_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::string WordPieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ConfigError("token_id", fmt::format("id {} outside the vocabulary [0, {})", id, vocab_size()));
  return vocab_[static_cast<size_t>(id)];
}

std::vector<Span> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<Span> out;
  for (const auto& w : basic_words(text, 0, options_))
    out.push_back({unicode::encode(w, 0, w.size()), w.front().begin, w.back().end});
  return out;
}

void WordPieceTokenizer::encode_into(std::string_view text, int64_t base, int64_t word_id_override,
                                     int64_t& next_word, Encoding& out) const {
  // Special tokens written in the text ("[MASK]") are kept whole, as transformers does.
  std::vector<std::pair<std::string, int64_t>> specials;
  for (const auto& name : {options_.specials.cls, options_.specials.sep, options_.specials.pad,
                           options_.specials.mask, options_.specials.unk})
    if (name && !name->empty()) specials.emplace_back(*name, *token_to_id(*name));
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    int64_t best_id = -1;
    for (const auto& [s, id] : specials) {
      const size_t at = text.find(s, pos);
      if (at != std::string_view::npos && (at < best || (at == best && s.size() > best_len))) {
        best = at;
        best_len = s.size();
        best_id = id;
      }
    }
    const size_t stop = best == std::string_view::npos ? text.size() : best;
    for (const auto& w : basic_words(text.substr(pos, stop - pos), base + static_cast<int64_t>(pos), options_)) {
      const int64_t word_id = word_id_override >= 0 ? word_id_override : next_word++;
      const size_t n = w.size();
      if (static_cast<int64_t>(n) > options_.max_chars_per_word) {
        out.ids.push_back(*special_.unk);
        out.offsets.emplace_back(w.front().begin, w.back().end);
        out.word_ids.push_back(word_id);
        continue;
      }
      std::string s;
      std::vector<size_t> bytepos{0};
      for (const Char& c : w) {
        unicode::append_utf8(s, c.cp);
        bytepos.push_back(s.size());
      }
      std::vector<std::pair<int64_t, std::pair<size_t, size_t>>> pieces;  // id, [start, end) chars
      size_t start = 0;
      bool bad = false;
      std::string key;
      while (start < n) {
        size_t end = n;
        int64_t found = -1;
        while (start < end) {
          key.clear();
          if (start > 0) key = options_.continuation_prefix;
          key.append(s, bytepos[start], bytepos[end] - bytepos[start]);
          auto it = ids_.find(key);
          if (it != ids_.end()) {
            found = it->second;
            break;
          }
          --end;
        }
        if (found < 0) {
          bad = true;
          break;
        }
        pieces.push_back({found, {start, end}});
        start = end;
      }
      if (bad) {
        out.ids.push_back(*special_.unk);
        out.offsets.emplace_back(w.front().begin, w.back().end);
        out.word_ids.push_back(word_id);
        continue;
      }
      for (const auto& [id, range] : pieces) {
        out.ids.push_back(id);
        out.offsets.emplace_back(w[range.first].begin, w[range.second - 1].end);
        out.word_ids.push_back(word_id);
      }
    }
    if (best == std::string_view::npos) break;
    out.ids.push_back(best_id);
    out.offsets.emplace_back(base + static_cast<int64_t>(best), base + static_cast<int64_t>(best + best_len));
    out.word_ids.push_back(word_id_override >= 0 ? word_id_override : next_word++);
    pos = best + best_len;
  }
}

Encoding WordPieceTokenizer::encode(std::string_view text, bool add_special) const {
  Encoding out;
  int64_t next_word = 0;
  encode_into(text, 0, -1, next_word, out);
  if (add_special && special_.cls && special_.sep) detail::add_specials(out, {*special_.cls}, {*special_.sep});
  return out;
}

Encoding WordPieceTokenizer::encode_words(const std::vector<std::string>& words, bool add_special) const {
  std::vector<int64_t> prefix, suffix;
  if (add_special && special_.cls && special_.sep) {
    prefix = {*special_.cls};
    suffix = {*special_.sep};
  }
  return detail::encode_words_joined(
      words,
      [this](const std::string& w, int64_t offset, size_t index) {
        Encoding e;
        int64_t next = 0;
        encode_into(w, offset, static_cast<int64_t>(index), next, e);
        return e;
      },
      prefix, suffix);
}

std::string WordPieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  // BERT's convention: tokens joined by spaces, then " ##" removed to glue continuations.
  // HF tokenizers' WordPiece decoder: the first token as it is, a later "##x" glued as "x", any
  // other later token after a space; with cleanup, each token then loses the space before
  // . ? ! , (its cleanup() runs per token, so only those four rules can apply). skip_special
  // drops every special token, [UNK] included, as transformers' skip_special_tokens does.
  std::string out;
  bool first = true;
  for (int64_t id : ids) {
    if (skip_special && (detail::is_skippable_special(special_, id) || (special_.unk && *special_.unk == id))) continue;
    const std::string tok = id_to_token(id);
    const auto& pre = options_.continuation_prefix;
    std::string piece;
    if (!first && tok.compare(0, pre.size(), pre) == 0) piece = tok.substr(pre.size());
    else piece = (first ? "" : " ") + tok;
    if (options_.decode_cleanup && (piece == " ." || piece == " ?" || piece == " !" || piece == " ,"))
      piece.erase(0, 1);
    out += piece;
    first = false;
  }
  return out;
}

std::string WordPieceTokenizer::fingerprint() const {
  // decode_cleanup changes no ids, so it stays out of the fingerprint.
  uint64_t h = unicode::fnv1a(fmt::format("wordpiece|lower={}|strip={}|cjk={}|clean={}|max={}|prefix={}|",
                                          options_.lowercase, strips_accents(options_), options_.tokenize_chinese_chars,
                                          options_.clean_text, options_.max_chars_per_word,
                                          options_.continuation_prefix));
  for (const auto& t : vocab_) h = unicode::fnv1a(t + "\n", h);
  return detail::hex64(h);
}

void WordPieceTokenizer::save_vocab(const std::filesystem::path& path) const {
  std::string text;
  for (const auto& t : vocab_) text += t + "\n";
  io::write_file_atomic(path, text);
}

void WordPieceTokenizer::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  save_vocab(dir / "vocab.txt");
  nlohmann::json cfg = {{"tokenizer_class", "BertTokenizer"},
                        {"do_lower_case", options_.lowercase},
                        {"tokenize_chinese_chars", options_.tokenize_chinese_chars}};
  cfg["strip_accents"] = options_.strip_accents ? nlohmann::json(*options_.strip_accents) : nlohmann::json(nullptr);
  detail::write_hf_config(dir, options_.specials, cfg);
}

// --- training -----------------------------------------------------------------------------------

std::vector<std::string> train_wordpiece(const std::vector<std::filesystem::path>& files,
                                         const WordPieceTrainOptions& options) {
  if (options.vocab_size <= static_cast<int64_t>(options.special_tokens.size()))
    throw ConfigError("vocab_size", fmt::format("must exceed the {} special tokens, got {}",
                                                options.special_tokens.size(), options.vocab_size));
  if (files.empty()) throw ConfigError("input", "no corpus files given");
  WordPieceOptions wo;
  wo.lowercase = options.lowercase;
  // Word counts from the BasicTokenizer, as the encoder will see the words.
  std::unordered_map<std::string, int64_t> word_counts;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw IoError::from_errno(f.string(), "cannot open corpus file");
    std::string line;
    while (std::getline(in, line))
      for (const auto& w : basic_words(line, 0, wo)) ++word_counts[unicode::encode(w, 0, w.size())];
  }
  // Alphabet: the limit_alphabet most frequent characters (ties by code point).
  std::map<char32_t, int64_t> char_counts;
  for (const auto& [w, n] : word_counts)
    for (const auto& c : unicode::decode(w)) char_counts[c.cp] += n;
  std::vector<std::pair<char32_t, int64_t>> by_freq(char_counts.begin(), char_counts.end());
  std::stable_sort(by_freq.begin(), by_freq.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (static_cast<int64_t>(by_freq.size()) > options.limit_alphabet)
    by_freq.resize(static_cast<size_t>(options.limit_alphabet));
  std::unordered_set<char32_t> alphabet;
  for (const auto& kv : by_freq) alphabet.insert(kv.first);

  // Symbols and words as symbol-id sequences (words with characters outside the alphabet are left
  // out of the merge statistics; they encode to [UNK] pieces later).
  std::vector<std::string> sym;                     // id -> text
  std::unordered_map<std::string, int32_t> sym_id;  // text -> id
  auto intern = [&](const std::string& s) {
    auto [it, fresh] = sym_id.emplace(s, static_cast<int32_t>(sym.size()));
    if (fresh) sym.push_back(s);
    return it->second;
  };
  const std::string& pre = WordPieceOptions{}.continuation_prefix;
  struct Word {
    std::vector<int32_t> syms;
    int64_t count;
  };
  std::vector<Word> words;
  std::vector<std::string> sorted_words;
  for (const auto& kv : word_counts) sorted_words.push_back(kv.first);
  std::sort(sorted_words.begin(), sorted_words.end());  // deterministic symbol ids
  for (const auto& w : sorted_words) {
    const auto chars = unicode::decode(w);
    bool ok = true;
    for (const auto& c : chars) ok = ok && alphabet.count(c.cp);
    if (!ok) continue;
    Word word{{}, word_counts[w]};
    for (size_t i = 0; i < chars.size(); ++i) {
      std::string s = i == 0 ? "" : pre;
      unicode::append_utf8(s, chars[i].cp);
      word.syms.push_back(intern(s));
    }
    words.push_back(std::move(word));
  }

  std::vector<std::string> vocab = options.special_tokens;
  std::unordered_set<std::string> in_vocab(vocab.begin(), vocab.end());
  std::vector<std::string> initial(sym.begin(), sym.end());
  for (const auto& kv : by_freq) {  // every alphabet character can also start a word
    std::string c;
    unicode::append_utf8(c, kv.first);
    initial.push_back(c);
  }
  std::sort(initial.begin(), initial.end());
  initial.erase(std::unique(initial.begin(), initial.end()), initial.end());
  for (const auto& s : initial)
    if (in_vocab.insert(s).second) vocab.push_back(s);
  if (static_cast<int64_t>(vocab.size()) > options.vocab_size)
    throw ConfigError("vocab_size", fmt::format("{} special tokens and characters already exceed vocab_size {}; "
                                                "raise it or lower limit_alphabet",
                                                vocab.size(), options.vocab_size));

  // Pair statistics, updated incrementally; a lazy max-heap picks the next merge.
  auto key = [](int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); };
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::unordered_set<int32_t>> pair_words;
  struct Cand {
    int64_t count;
    int32_t a, b;
  };
  auto worse = [&sym](const Cand& x, const Cand& y) {  // heap order: higher count, then smaller (a, b) text
    if (x.count != y.count) return x.count < y.count;
    if (sym[x.a] != sym[y.a]) return sym[x.a] > sym[y.a];
    return sym[x.b] > sym[y.b];
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].syms;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      pair_count[key(s[i], s[i + 1])] += words[w].count;
      pair_words[key(s[i], s[i + 1])].insert(static_cast<int32_t>(w));
    }
  }
  for (const auto& [k, n] : pair_count)
    heap.push({n, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xFFFFFFFFu)});

  while (static_cast<int64_t>(vocab.size()) < options.vocab_size && !heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    const uint64_t k = key(top.a, top.b);
    auto pc = pair_count.find(k);
    if (pc == pair_count.end() || pc->second != top.count || top.count <= 0) continue;  // stale entry
    if (top.count < options.min_frequency) break;
    const std::string& tb = sym[top.b];
    const std::string merged = sym[top.a] + (tb.compare(0, pre.size(), pre) == 0 ? tb.substr(pre.size()) : tb);
    const int32_t m = intern(merged);
    if (in_vocab.insert(merged).second) vocab.push_back(merged);
    std::unordered_map<uint64_t, int64_t> changed;
    const auto affected = pair_words[k];
    for (int32_t w : affected) {
      auto& s = words[static_cast<size_t>(w)].syms;
      const int64_t n = words[static_cast<size_t>(w)].count;
      for (size_t i = 0; i + 1 < s.size(); ++i) changed[key(s[i], s[i + 1])] -= n;
      std::vector<int32_t> next;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == top.a && s[i + 1] == top.b) {
          next.push_back(m);
          ++i;
        } else {
          next.push_back(s[i]);
        }
      }
      s = std::move(next);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        changed[key(s[i], s[i + 1])] += n;
        pair_words[key(s[i], s[i + 1])].insert(w);
      }
    }
    for (const auto& [ck, delta] : changed) {
      if (delta == 0) continue;
      const int64_t now = (pair_count[ck] += delta);
      if (now > 0) heap.push({now, static_cast<int32_t>(ck >> 32), static_cast<int32_t>(ck & 0xFFFFFFFFu)});
    }
  }
  log::info("train_wordpiece: {} words ({} distinct), vocabulary of {}", [&] {
    int64_t t = 0;
    for (const auto& kv : word_counts) t += kv.second;
    return t;
  }(), word_counts.size(), vocab.size());
  return vocab;
}

void train_wordpiece(const std::vector<std::filesystem::path>& files, const WordPieceTrainOptions& options,
                     const std::filesystem::path& out_vocab) {
  const auto vocab = train_wordpiece(files, options);
  std::string text;
  for (const auto& t : vocab) text += t + "\n";
  io::write_file_atomic(out_vocab, text);
}

}  // namespace biolm::tokenize

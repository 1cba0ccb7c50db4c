// Byte-level BPE training, a line-by-line port of HF tokenizers' BpeTrainer::do_train
// (tokenizers/src/models/bpe/trainer.rs and word.rs, v0.23) for the ByteLevel pre-tokenizer, no
// continuing-subword prefix, no end-of-word suffix, no limit_alphabet, no max_token_length.
// Checked against tokenizers itself in tests/parity/test_tokenizers.py (identical merges).
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/tokenize/bpe.h"
#include "biolm/io/files.h"
#include "tokenize/unicode.h"

namespace biolm::tokenize {
namespace {

using Pair = uint64_t;  // (first id << 32) | second id: compares as the (first, second) tuple
Pair make_pair_key(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }
uint32_t first_of(Pair p) { return static_cast<uint32_t>(p >> 32); }
uint32_t second_of(Pair p) { return static_cast<uint32_t>(p & 0xFFFFFFFFu); }

struct Merge {
  Pair pair;
  int64_t count;
  std::shared_ptr<const std::unordered_set<size_t>> pos;  // words that may hold the pair
};
// trainer.rs `impl Ord for Merge`: the higher count first, then the smaller pair.
struct MergeLess {
  bool operator()(const Merge& x, const Merge& y) const {
    if (x.count != y.count) return x.count < y.count;
    return x.pair > y.pair;
  }
};

// word.rs Word::merge: replaces every (c1, c2) left to right; returns the pair count changes.
void merge_word(std::vector<uint32_t>& s, uint32_t c1, uint32_t c2, uint32_t replacement,
                std::vector<std::pair<Pair, int>>& changes) {
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == c1 && i + 1 < s.size() && s[i + 1] == c2) {
      if (i > 0) {
        changes.emplace_back(make_pair_key(s[i - 1], c1), -1);
        changes.emplace_back(make_pair_key(s[i - 1], replacement), 1);
      }
      s[i] = replacement;
      s.erase(s.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      if (i + 1 < s.size()) {
        changes.emplace_back(make_pair_key(c2, s[i + 1]), -1);
        changes.emplace_back(make_pair_key(replacement, s[i + 1]), 1);
      }
    }
    ++i;
  }
}

}  // namespace

std::unique_ptr<BpeTokenizer> train_bpe(const std::vector<std::filesystem::path>& files, const BpeTrainOptions& options) {
  if (files.empty()) throw ConfigError("input", "no corpus files given");
  if (options.vocab_size < 256 + static_cast<int64_t>(options.special_tokens.size()))
    throw ConfigError("vocab_size", fmt::format("must hold the 256 byte characters and {} special tokens, got {}",
                                                options.special_tokens.size(), options.vocab_size));
  // Word counts: each line with its line end (train_from_files keeps "\n"), pre-tokenized by a
  // ByteLevel tokenizer and mapped to byte characters. The tokenizer used for this is the
  // GPT-2-pattern one with no merges.
  std::unordered_map<std::string, int64_t> bytes_vocab;
  for (int b = 0; b < 256; ++b) bytes_vocab.emplace(bytes_to_unicode(std::string(1, static_cast<char>(b))), b);
  BpeOptions pre_options;
  pre_options.add_prefix_space = options.add_prefix_space;
  const BpeTokenizer pre(bytes_vocab, {}, {}, pre_options, "train_bpe");
  std::unordered_map<std::string, int64_t> word_counts;
  int64_t n_words = 0;
  for (const auto& f : files) {
    const std::string text = io::read_file(f);
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      const size_t end = nl == std::string::npos ? text.size() : nl + 1;
      std::string line = text.substr(start, end - start);
      start = end;
      if (options.add_prefix_space && line.front() != ' ') line.insert(line.begin(), ' ');
      for (const auto& piece : pre.pre_tokenize(line)) {
        ++word_counts[bytes_to_unicode(piece.text)];
        ++n_words;
      }
    }
  }

  // 1. special tokens, 2. the alphabet (all 256 byte characters, by code point).
  std::unordered_map<std::string, uint32_t> w2id;
  std::vector<std::string> id2w;
  auto add_word = [&](const std::string& w) {
    if (w2id.emplace(w, static_cast<uint32_t>(id2w.size())).second) id2w.push_back(w);
  };
  for (const auto& t : options.special_tokens) add_word(t);
  std::vector<char32_t> alphabet;
  for (int b = 0; b < 256; ++b) alphabet.push_back(unicode::decode(bytes_to_unicode(std::string(1, static_cast<char>(b))))[0].cp);
  std::sort(alphabet.begin(), alphabet.end());
  for (char32_t c : alphabet) {
    std::string s;
    unicode::append_utf8(s, c);
    add_word(s);
  }
  // 3. words as symbol ids, in a fixed order (the counts below do not depend on it).
  std::vector<std::string> keys;
  keys.reserve(word_counts.size());
  for (const auto& kv : word_counts) keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  std::vector<std::vector<uint32_t>> words(keys.size());
  std::vector<int64_t> counts(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    counts[i] = word_counts[keys[i]];
    for (const auto& c : unicode::decode(keys[i])) {
      std::string s;
      unicode::append_utf8(s, c.cp);
      words[i].push_back(w2id.at(s));
    }
  }
  // 4. pair counts and where each pair occurs.
  std::unordered_map<Pair, int64_t> pair_counts;
  std::unordered_map<Pair, std::unordered_set<size_t>> where;
  for (size_t i = 0; i < words.size(); ++i)
    for (size_t k = 0; k + 1 < words[i].size(); ++k) {
      const Pair p = make_pair_key(words[i][k], words[i][k + 1]);
      pair_counts[p] += counts[i];
      where[p].insert(i);
    }
  std::priority_queue<Merge, std::vector<Merge>, MergeLess> queue;
  auto drain_where = [&] {
    for (auto& [p, pos] : where) {
      const int64_t c = pair_counts[p];
      if (c > 0) queue.push({p, c, std::make_shared<const std::unordered_set<size_t>>(std::move(pos))});
    }
    where.clear();
  };
  drain_where();

  // 5. merges.
  std::vector<std::pair<Pair, uint32_t>> merges;
  std::vector<std::pair<Pair, int>> changes;
  while (static_cast<int64_t>(w2id.size()) < options.vocab_size && !queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    const int64_t now = pair_counts[top.pair];
    if (top.count != now) {
      top.count = now;
      queue.push(top);
      continue;
    }
    if (top.count < 1 || options.min_frequency > top.count) break;
    const uint32_t a = first_of(top.pair), b = second_of(top.pair);
    const std::string token = id2w[a] + id2w[b];
    add_word(token);
    const uint32_t id = w2id.at(token);
    merges.emplace_back(top.pair, id);
    std::vector<size_t> pos(top.pos->begin(), top.pos->end());
    std::sort(pos.begin(), pos.end());
    for (size_t w : pos) {
      changes.clear();
      merge_word(words[w], a, b, id, changes);
      for (const auto& [p, change] : changes) {
        pair_counts[p] += change * counts[w];
        if (change > 0) where[p].insert(w);
      }
    }
    drain_where();
  }

  // The trained model keeps merges in a map pair -> (rank, id): a pair merged twice keeps its
  // last rank; saved merges are ordered by rank.
  std::unordered_map<Pair, size_t> last;
  for (size_t r = 0; r < merges.size(); ++r) last[merges[r].first] = r;
  std::vector<std::pair<std::string, std::string>> merge_strings;
  for (size_t r = 0; r < merges.size(); ++r)
    if (last[merges[r].first] == r)
      merge_strings.emplace_back(id2w[first_of(merges[r].first)], id2w[second_of(merges[r].first)]);
  if (merge_strings.size() != merges.size())
    log::debug("train_bpe: {} pairs were merged twice (kept at their last rank)", merges.size() - merge_strings.size());

  std::unordered_map<std::string, int64_t> vocab;
  std::vector<AddedToken> added;
  for (size_t i = 0; i < id2w.size(); ++i) vocab.emplace(id2w[i], static_cast<int64_t>(i));
  for (const auto& t : options.special_tokens) added.push_back({w2id.at(t), t, true, false, false});
  BpeOptions o;
  o.add_prefix_space = options.add_prefix_space;
  o.trim_offsets = true;
  o.trim_keeps_prefix_space = true;
  if (w2id.count("<|endoftext|>")) o.specials.bos = o.specials.eos = o.specials.unk = "<|endoftext|>";
  log::info("train_bpe: {} words ({} distinct), {} merges, vocabulary of {}", n_words, word_counts.size(),
            merge_strings.size(), vocab.size());
  return std::make_unique<BpeTokenizer>(std::move(vocab), std::move(merge_strings), std::move(added), std::move(o),
                                        "train_bpe");
}

void BpeTokenizer::save_vocab_merges(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < id_to_token_.size(); ++i) vocab[id_to_token_[i]] = i;
  io::write_file_atomic(dir / "vocab.json", vocab.dump() + "\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : merges_) merges += a + " " + b + "\n";
  io::write_file_atomic(dir / "merges.txt", merges);
}

}  // namespace biolm::tokenize

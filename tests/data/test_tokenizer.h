// A tiny deterministic tokenizer for the data tests: words (split as data::split_words does)
// cut into pieces of at most 3 bytes; piece id = 5 + FNV-1a(piece) % 9000. Specials: [PAD] 0,
// [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4. Offsets are exact byte offsets.
#pragma once

#include <filesystem>
#include <fstream>

#include "biolm/data/tasks.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::test {

class PieceTokenizer : public tokenize::Tokenizer {
 public:
  explicit PieceTokenizer(int64_t piece_len = 3) : piece_len_(piece_len) {
    special_.pad = 0;
    special_.unk = 1;
    special_.cls = 2;
    special_.sep = 3;
    special_.mask = 4;
  }
  static int64_t piece_id(std::string_view p) {
    uint32_t h = 2166136261u;
    for (char c : p) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    return 5 + static_cast<int64_t>(h % 9000);
  }
  tokenize::Encoding encode(std::string_view text, bool add_special = true) const override {
    tokenize::Encoding e;
    if (add_special) push(e, 2, {0, 0}, -1);
    int64_t w = 0;
    for (const auto& [b, end] : data::split_words(std::string(text))) {
      add_word(e, text, b, end, w++);
    }
    if (add_special) push(e, 3, {0, 0}, -1);
    return e;
  }
  tokenize::Encoding encode_words(const std::vector<std::string>& words, bool add_special = true) const override {
    tokenize::Encoding e;
    if (add_special) push(e, 2, {0, 0}, -1);
    std::string joined;
    for (size_t i = 0; i < words.size(); ++i) {
      const auto b = static_cast<int64_t>(joined.size());
      joined += words[i];
      add_word(e, joined, b, static_cast<int64_t>(joined.size()), static_cast<int64_t>(i));
      joined += ' ';
    }
    if (add_special) push(e, 3, {0, 0}, -1);
    return e;
  }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    std::string s;
    for (auto id : ids) s += std::to_string(id) + " ";
    return s;
  }
  int64_t vocab_size() const override { return 9005; }
  std::optional<int64_t> token_to_id(std::string_view t) const override { return piece_id(t); }
  std::string id_to_token(int64_t id) const override { return std::to_string(id); }
  const tokenize::SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "test-pieces"; }
  std::string fingerprint() const override { return "test-pieces-" + std::to_string(piece_len_); }
  // The data tests never reload it; the file records what the tokenizer was.
  void save(const std::filesystem::path& dir) const override {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "test_tokenizer.json") << "{\"kind\": \"test-pieces\", \"piece_len\": " << piece_len_ << "}\n";
  }

 private:
  static void push(tokenize::Encoding& e, int64_t id, std::pair<int64_t, int64_t> off, int64_t word) {
    e.ids.push_back(id);
    e.offsets.push_back(off);
    e.word_ids.push_back(word);
  }
  void add_word(tokenize::Encoding& e, std::string_view text, int64_t b, int64_t end, int64_t w) const {
    for (int64_t p = b; p < end; p += piece_len_) {
      const int64_t q = std::min(end, p + piece_len_);
      push(e, piece_id(text.substr(static_cast<size_t>(p), static_cast<size_t>(q - p))), {p, q}, w);
    }
  }
  int64_t piece_len_;
  tokenize::SpecialTokens special_;
};

}  // namespace biolm::test

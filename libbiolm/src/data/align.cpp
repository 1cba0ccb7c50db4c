#include "biolm/data/align.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "biolm/data/batch.h"

namespace biolm::data {

std::vector<int64_t> align_word_labels(const std::vector<int64_t>& word_ids, const std::vector<int64_t>& word_labels,
                                       LabelPieces mode, const std::vector<int64_t>* continuation) {
  std::vector<int64_t> out(word_ids.size(), kIgnoreIndex);
  int64_t prev = -1;
  for (size_t t = 0; t < word_ids.size(); ++t) {
    const int64_t w = word_ids[t];
    if (w >= 0) {
      if (w >= static_cast<int64_t>(word_labels.size())) {
        throw std::out_of_range("align_word_labels: token " + std::to_string(t) + " names word " + std::to_string(w) +
                                " of " + std::to_string(word_labels.size()));
      }
      const int64_t lab = word_labels[static_cast<size_t>(w)];
      if (w != prev) {
        out[t] = lab;
      } else if (mode == LabelPieces::All) {
        out[t] = continuation != nullptr && lab >= 0 && lab < static_cast<int64_t>(continuation->size())
                     ? (*continuation)[static_cast<size_t>(lab)] : lab;
      }
    }
    prev = w;
  }
  return out;
}

std::vector<int64_t> word_predictions(const std::vector<int64_t>& word_ids, const std::vector<int64_t>& token_preds,
                                      int64_t n_words) {
  if (token_preds.size() != word_ids.size()) throw std::invalid_argument("word_predictions: length mismatch");
  std::vector<int64_t> out(static_cast<size_t>(n_words), kIgnoreIndex);
  std::vector<bool> seen(static_cast<size_t>(n_words), false);
  for (size_t t = 0; t < word_ids.size(); ++t) {
    const int64_t w = word_ids[t];
    if (w < 0 || w >= n_words || seen[static_cast<size_t>(w)]) continue;
    seen[static_cast<size_t>(w)] = true;
    out[static_cast<size_t>(w)] = token_preds[t];
  }
  return out;
}

std::optional<std::pair<int64_t, int64_t>> span_to_tokens(const std::vector<std::pair<int64_t, int64_t>>& offsets,
                                                          int64_t begin, int64_t end) {
  int64_t first = -1, last = -1;
  for (size_t t = 0; t < offsets.size(); ++t) {
    const auto [b, e] = offsets[t];
    if (e <= b) continue;  // specials
    if (b < end && begin < e) {
      if (first < 0) first = static_cast<int64_t>(t);
      last = static_cast<int64_t>(t);
    }
  }
  if (first < 0) return std::nullopt;
  return std::make_pair(first, last);
}

std::vector<Window> make_windows(int64_t n_tokens, int64_t size, int64_t overlap) {
  if (size <= 0 || overlap < 0 || overlap >= size) {
    throw std::invalid_argument("make_windows: need size > 0 and 0 <= overlap < size (size " + std::to_string(size) +
                                ", overlap " + std::to_string(overlap) + ")");
  }
  std::vector<Window> out;
  int64_t begin = 0;
  for (;;) {
    const int64_t end = std::min(begin + size, n_tokens);
    out.push_back({begin, end});
    if (end >= n_tokens) break;
    begin += size - overlap;
  }
  return out;
}

std::vector<int64_t> merge_windows(const std::vector<Window>& windows, const std::vector<std::vector<int64_t>>& preds,
                                   int64_t n_tokens) {
  if (windows.size() != preds.size()) throw std::invalid_argument("merge_windows: one prediction list per window");
  std::vector<int64_t> out(static_cast<size_t>(n_tokens), kIgnoreIndex);
  std::vector<int64_t> best(static_cast<size_t>(n_tokens), -1);
  for (size_t k = 0; k < windows.size(); ++k) {
    const auto& w = windows[k];
    if (static_cast<int64_t>(preds[k].size()) != w.end - w.begin) {
      throw std::invalid_argument("merge_windows: window " + std::to_string(k) + " has " + std::to_string(preds[k].size()) +
                                  " predictions for " + std::to_string(w.end - w.begin) + " tokens");
    }
    for (int64_t t = w.begin; t < w.end; ++t) {
      const int64_t context = std::min(t - w.begin, w.end - 1 - t);
      if (context > best[static_cast<size_t>(t)]) {
        best[static_cast<size_t>(t)] = context;
        out[static_cast<size_t>(t)] = preds[k][static_cast<size_t>(t - w.begin)];
      }
    }
  }
  return out;
}

}  // namespace biolm::data

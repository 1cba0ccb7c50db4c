// biolm/data/align.h: word-level labels <-> sub-word tokens, character spans <-> tokens, and
// long sequences split into overlapping windows and put back together.
//
// A tokenizer's Encoding gives, per token, the word it came from (word_ids, -1 for specials)
// and its byte offsets. Word labels go onto the first piece of each word (First) or onto every
// piece (All; continuation pieces can be mapped B-X -> I-X); every other position gets -100.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace biolm::data {

enum class LabelPieces { First, All };

/// Token labels (kIgnoreIndex where no label) from word labels. `continuation`, when given,
/// maps a label id to the id used on non-first pieces under LabelPieces::All (B-X -> I-X).
std::vector<int64_t> align_word_labels(const std::vector<int64_t>& word_ids, const std::vector<int64_t>& word_labels,
                                       LabelPieces mode, const std::vector<int64_t>* continuation = nullptr);
/// Word predictions back from token predictions: each word takes the prediction of its first
/// piece. Words with no piece (dropped by truncation) get kIgnoreIndex.
std::vector<int64_t> word_predictions(const std::vector<int64_t>& word_ids, const std::vector<int64_t>& token_preds,
                                      int64_t n_words);
/// Tokens [first, last] (inclusive) covering bytes [begin, end) given per-token byte offsets
/// ({0,0} offsets of specials are never chosen); nullopt when no token overlaps the span.
std::optional<std::pair<int64_t, int64_t>> span_to_tokens(const std::vector<std::pair<int64_t, int64_t>>& offsets,
                                                          int64_t begin, int64_t end);

/// A window over a token sequence: tokens [begin, end).
struct Window {
  int64_t begin = 0, end = 0;
};
/// Windows of at most `size` tokens, consecutive windows sharing `overlap` tokens (HF's
/// "stride"); the last window ends at n_tokens. One window when n_tokens <= size.
std::vector<Window> make_windows(int64_t n_tokens, int64_t size, int64_t overlap);
/// Puts per-window token predictions back into one sequence of n_tokens: each token takes the
/// prediction of the window in which it has the most context on its nearer side.
std::vector<int64_t> merge_windows(const std::vector<Window>& windows, const std::vector<std::vector<int64_t>>& preds,
                                   int64_t n_tokens);

}  // namespace biolm::data

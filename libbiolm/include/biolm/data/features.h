// biolm/data/features.h: examples -> token ids, one Features per model input.
//
// Features is the row a Dataset hands to a collator (collate.h); which fields are filled says
// which task it is: token `labels` (NER, CLM), a sequence `label` (classification, NLI,
// relations, multiple choice), a `score` (STS), start/end positions (span QA), `choices`
// (multiple choice), `segment_ids`/`word_starts` (packed pretraining sequences).
//
// Special tokens: [CLS] a [SEP] (b [SEP]) when the tokenizer has cls and sep, else
// <s> a </s> (b </s>) with bos/eos, else none. Pairs are truncated longest-first.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "biolm/data/align.h"
#include "biolm/data/examples.h"
#include "biolm/data/tags.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::data {

struct Features {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;  ///< empty = all zeros
  std::vector<int64_t> labels;          ///< per token, -100 = ignore; empty when not a token task
  std::vector<int64_t> segment_ids;     ///< packed documents; empty when not packed
  std::vector<uint8_t> word_starts;     ///< 1 where a word starts (whole-word masking)
  int64_t label = -100;                 ///< sequence label; -100 when none
  bool has_score = false;
  double score = 0.0;
  std::vector<float> targets;  ///< multi-label (hoc): one 0/1 per label; empty otherwise -> batch "targets" (B,L)
  int64_t start_position = -1, end_position = -1;  ///< span QA, token indices; 0/0 = no answer here
  std::vector<std::vector<int64_t>> choices;        ///< multiple choice: one id list per option
  std::vector<std::vector<int64_t>> choice_type_ids;
  // Bookkeeping for evaluation (not tensors):
  int64_t example_index = -1;                        ///< which example this row came from
  int64_t window_begin = 0;                          ///< first content token of this window
  std::vector<int64_t> word_ids;                     ///< NER: word of each token (-1 specials)
  std::vector<std::pair<int64_t, int64_t>> offsets;  ///< span QA: byte offsets into the context (-1,-1 elsewhere)
};

/// The specials a tokenizer puts around one or two texts.
struct SpecialLayout {
  std::vector<int64_t> prefix, middle, suffix;  ///< [CLS] | [SEP] | [SEP]  or  <s> | </s> | </s>
  static SpecialLayout of(const tokenize::Tokenizer& tok);
};

struct NerFeatureOptions {
  int64_t max_length = 512;  ///< including specials
  int64_t overlap = 128;     ///< tokens shared by consecutive windows of a long sentence
  LabelPieces pieces = LabelPieces::First;
};
/// One Features per window of the sentence (usually one). Unknown tags throw DataError naming
/// the sentence's origin.
std::vector<Features> ner_features(const NerSentence& s, int64_t example_index, const tokenize::Tokenizer& tok,
                                   const LabelMap& labels, const NerFeatureOptions& opts = {});
/// Word-level predictions of a sentence from its windows' token predictions (argmax ids, one
/// list per window in the order ner_features returned them, over the full window incl. specials).
std::vector<int64_t> ner_word_predictions(const std::vector<Features>& windows,
                                          const std::vector<std::vector<int64_t>>& token_preds, int64_t n_words);

/// A single text or a pair with a class label (label < 0: none) or a score.
Features pair_features(const std::string& a, const std::string& b, const tokenize::Tokenizer& tok, int64_t max_length);
/// Multiple choice: [question, option_k] for each option; label = answer.
Features choice_features(const ChoiceExample& ex, const tokenize::Tokenizer& tok, int64_t max_length);
/// Span QA: [question, context window]; one Features per window of a long context.
std::vector<Features> span_qa_features(const SpanQaExample& ex, int64_t example_index, const tokenize::Tokenizer& tok,
                                       int64_t max_length, int64_t overlap);

struct ChatFormat {
  std::string system = "### System:\n", user = "### User:\n", assistant = "### Assistant:\n", turn_end = "\n";
};
/// Instruction tuning: the conversation rendered with `format`; labels only on assistant turns
/// (their content and turn_end), -100 elsewhere; truncated to max_length.
Features instruction_features(const InstructionExample& ex, const tokenize::Tokenizer& tok, int64_t max_length,
                              const ChatFormat& format = {});

/// Packs rows (input_ids + labels) in order, greedily, into rows of at most max_length tokens
/// with segment_ids 1, 2, ... per packed example; the first label of every example is ignored
/// (-100) so no loss crosses a boundary. A row that is empty, longer than max_length or whose
/// labels do not match its input_ids is a DataError naming the example (its example_index).
/// The one packing function: instruction tuning packs with it (tasks/instruct).
std::vector<Features> pack_rows(const std::vector<Features>& rows, int64_t max_length);

}  // namespace biolm::data

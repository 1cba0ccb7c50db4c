#include "biolm/data/features.h"

#include <algorithm>

#include "biolm/core/error.h"
#include "biolm/data/batch.h"

namespace biolm::data {

SpecialLayout SpecialLayout::of(const tokenize::Tokenizer& tok) {
  const auto& sp = tok.special();
  SpecialLayout l;
  if (sp.cls && sp.sep) {
    l.prefix = {*sp.cls};
    l.middle = {*sp.sep};
    l.suffix = {*sp.sep};
  } else if (sp.bos || sp.eos) {
    if (sp.bos) l.prefix = {*sp.bos};
    if (sp.eos) l.middle = l.suffix = {*sp.eos};
  }
  return l;
}

std::vector<Features> ner_features(const NerSentence& s, int64_t example_index, const tokenize::Tokenizer& tok,
                                   const LabelMap& labels, const NerFeatureOptions& opts) {
  std::vector<int64_t> word_labels;
  for (size_t i = 0; i < s.tags.size(); ++i) {
    try {
      word_labels.push_back(labels.id(s.tags[i]));
    } catch (const std::out_of_range& e) {
      throw DataError(s.origin.source, s.origin.line > 0 ? s.origin.line + static_cast<int64_t>(i) : 0, "tag",
                      std::string(e.what()) + " (not in the label map)");
    }
  }
  std::vector<int64_t> continuation(static_cast<size_t>(labels.size()));
  for (int64_t id = 0; id < labels.size(); ++id) {
    const std::string& n = labels.name(id);
    int64_t c = id;
    if (n.rfind("B-", 0) == 0) {
      try {
        c = labels.id("I-" + n.substr(2));
      } catch (const std::out_of_range&) {
      }
    }
    continuation[static_cast<size_t>(id)] = c;
  }
  const auto enc = tok.encode_words(s.words, /*add_special=*/false);
  const auto token_labels = align_word_labels(enc.word_ids, word_labels, opts.pieces, &continuation);
  const auto layout = SpecialLayout::of(tok);
  const int64_t room = opts.max_length - static_cast<int64_t>(layout.prefix.size() + layout.suffix.size());
  std::vector<Features> out;
  for (const auto& w : make_windows(static_cast<int64_t>(enc.ids.size()), room, std::min(opts.overlap, room - 1))) {
    Features f;
    f.example_index = example_index;
    f.window_begin = w.begin;
    const auto add = [&](int64_t id, int64_t word, int64_t lab) {
      f.input_ids.push_back(id);
      f.word_ids.push_back(word);
      f.labels.push_back(lab);
    };
    for (auto id : layout.prefix) add(id, -1, kIgnoreIndex);
    for (int64_t t = w.begin; t < w.end; ++t) {
      add(enc.ids[static_cast<size_t>(t)], enc.word_ids[static_cast<size_t>(t)], token_labels[static_cast<size_t>(t)]);
    }
    for (auto id : layout.suffix) add(id, -1, kIgnoreIndex);
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<int64_t> ner_word_predictions(const std::vector<Features>& windows,
                                          const std::vector<std::vector<int64_t>>& token_preds, int64_t n_words) {
  if (windows.size() != token_preds.size()) throw std::invalid_argument("ner_word_predictions: one list per window");
  // Back to the un-windowed content sequence, then to words.
  std::vector<Window> spans;
  std::vector<std::vector<int64_t>> content_preds;
  std::vector<int64_t> all_word_ids;
  for (size_t k = 0; k < windows.size(); ++k) {
    const auto& f = windows[k];
    std::vector<int64_t> preds;
    std::vector<int64_t> wids;
    for (size_t t = 0; t < f.word_ids.size(); ++t) {
      if (f.word_ids[t] < 0) continue;
      preds.push_back(token_preds[k][t]);
      wids.push_back(f.word_ids[t]);
    }
    const int64_t end = f.window_begin + static_cast<int64_t>(preds.size());
    if (static_cast<int64_t>(all_word_ids.size()) < end) all_word_ids.resize(static_cast<size_t>(end), -1);
    for (size_t t = 0; t < wids.size(); ++t) all_word_ids[static_cast<size_t>(f.window_begin) + t] = wids[t];
    spans.push_back({f.window_begin, end});
    content_preds.push_back(std::move(preds));
  }
  const auto merged = merge_windows(spans, content_preds, static_cast<int64_t>(all_word_ids.size()));
  return word_predictions(all_word_ids, merged, n_words);
}

namespace {
// Longest-first truncation of a and b so that a + b fits `room`.
void truncate_pair(std::vector<int64_t>& a, std::vector<int64_t>& b, int64_t room) {
  while (static_cast<int64_t>(a.size() + b.size()) > room && room >= 0) {
    if (a.size() >= b.size()) a.pop_back();
    else b.pop_back();
  }
}
}  // namespace

Features pair_features(const std::string& a, const std::string& b, const tokenize::Tokenizer& tok, int64_t max_length) {
  const auto layout = SpecialLayout::of(tok);
  auto ia = tok.encode(a, false).ids;
  auto ib = b.empty() ? std::vector<int64_t>{} : tok.encode(b, false).ids;
  const auto n_special = static_cast<int64_t>(layout.prefix.size() + layout.suffix.size() + (b.empty() ? 0 : layout.middle.size()));
  truncate_pair(ia, ib, max_length - n_special);
  Features f;
  const auto put = [&](const std::vector<int64_t>& ids, int64_t type) {
    f.input_ids.insert(f.input_ids.end(), ids.begin(), ids.end());
    f.token_type_ids.insert(f.token_type_ids.end(), ids.size(), type);
  };
  put(layout.prefix, 0);
  put(ia, 0);
  if (!b.empty()) {
    put(layout.middle, 0);
    put(ib, 1);
  }
  put(layout.suffix, b.empty() ? 0 : 1);
  return f;
}

Features choice_features(const ChoiceExample& ex, const tokenize::Tokenizer& tok, int64_t max_length) {
  Features f;
  for (const auto& opt : ex.options) {
    auto p = pair_features(ex.question, opt, tok, max_length);
    f.choices.push_back(std::move(p.input_ids));
    f.choice_type_ids.push_back(std::move(p.token_type_ids));
  }
  f.label = ex.answer >= 0 ? ex.answer : kIgnoreIndex;
  return f;
}

std::vector<Features> span_qa_features(const SpanQaExample& ex, int64_t example_index, const tokenize::Tokenizer& tok,
                                       int64_t max_length, int64_t overlap) {
  const auto layout = SpecialLayout::of(tok);
  auto q = tok.encode(ex.question, false).ids;
  const auto ctx = tok.encode(ex.context, false);
  const auto n_special = static_cast<int64_t>(layout.prefix.size() + layout.middle.size() + layout.suffix.size());
  const int64_t max_q = std::max<int64_t>(1, (max_length - n_special) / 2);
  if (static_cast<int64_t>(q.size()) > max_q) q.resize(static_cast<size_t>(max_q));
  const int64_t room = max_length - n_special - static_cast<int64_t>(q.size());
  if (room <= 0) throw Error("span_qa_features: max_length " + std::to_string(max_length) + " leaves no room for context");
  std::optional<std::pair<int64_t, int64_t>> answer;
  if (!ex.answers.empty()) {
    const auto& a = ex.answers.front();
    answer = span_to_tokens(ctx.offsets, a.begin, a.begin + static_cast<int64_t>(a.text.size()));
  }
  std::vector<Features> out;
  for (const auto& w : make_windows(static_cast<int64_t>(ctx.ids.size()), room, std::min(overlap, room - 1))) {
    Features f;
    f.example_index = example_index;
    f.window_begin = w.begin;
    const auto put = [&](int64_t id, int64_t type, std::pair<int64_t, int64_t> off) {
      f.input_ids.push_back(id);
      f.token_type_ids.push_back(type);
      f.offsets.push_back(off);
    };
    for (auto id : layout.prefix) put(id, 0, {-1, -1});
    for (auto id : q) put(id, 0, {-1, -1});
    for (auto id : layout.middle) put(id, 0, {-1, -1});
    const auto ctx_start = static_cast<int64_t>(f.input_ids.size());
    for (int64_t t = w.begin; t < w.end; ++t) put(ctx.ids[static_cast<size_t>(t)], 1, ctx.offsets[static_cast<size_t>(t)]);
    for (auto id : layout.suffix) put(id, 1, {-1, -1});
    if (answer && answer->first >= w.begin && answer->second < w.end) {
      f.start_position = ctx_start + answer->first - w.begin;
      f.end_position = ctx_start + answer->second - w.begin;
    } else {
      f.start_position = f.end_position = 0;  // no answer in this window: points at the first token
    }
    out.push_back(std::move(f));
  }
  return out;
}

Features instruction_features(const InstructionExample& ex, const tokenize::Tokenizer& tok, int64_t max_length,
                              const ChatFormat& format) {
  Features f;
  const auto& sp = tok.special();
  const auto put = [&](const std::string& text, bool learn) {
    const auto ids = tok.encode(text, false).ids;
    f.input_ids.insert(f.input_ids.end(), ids.begin(), ids.end());
    f.labels.insert(f.labels.end(), ids.size(), kIgnoreIndex);
    if (learn) std::copy(ids.begin(), ids.end(), f.labels.end() - static_cast<std::ptrdiff_t>(ids.size()));
  };
  if (sp.bos) {
    f.input_ids.push_back(*sp.bos);
    f.labels.push_back(kIgnoreIndex);
  }
  for (const auto& t : ex.turns) {
    const bool assistant = t.role == "assistant";
    put(t.role == "system" ? format.system : t.role == "user" ? format.user : format.assistant, false);
    put(t.content + format.turn_end, assistant);
    if (assistant && sp.eos) {
      f.input_ids.push_back(*sp.eos);
      f.labels.push_back(*sp.eos);
    }
  }
  if (static_cast<int64_t>(f.input_ids.size()) > max_length) {
    f.input_ids.resize(static_cast<size_t>(max_length));
    f.labels.resize(static_cast<size_t>(max_length));
  }
  return f;
}

std::vector<Features> pack_rows(const std::vector<Features>& rows, int64_t max_length) {
  std::vector<Features> out;
  Features cur;
  int64_t seg = 0;
  BIOLM_CHECK(max_length > 0, ConfigError, "data.max_length", "must be > 0 to pack rows");
  for (const auto& r : rows) {
    const auto n = static_cast<int64_t>(r.input_ids.size());
    if (n == 0 || n > max_length || r.labels.size() != r.input_ids.size()) {
      throw DataError::at_record("<packing>", r.example_index, "input_ids",
                                 "example of " + std::to_string(n) + " tokens (with " + std::to_string(r.labels.size()) +
                                     " labels) cannot be packed into rows of max_length " + std::to_string(max_length));
    }
    if (static_cast<int64_t>(cur.input_ids.size() + r.input_ids.size()) > max_length) {
      out.push_back(std::move(cur));
      cur = Features{};
      seg = 0;
    }
    ++seg;
    const size_t at = cur.input_ids.size();
    cur.input_ids.insert(cur.input_ids.end(), r.input_ids.begin(), r.input_ids.end());
    cur.labels.insert(cur.labels.end(), r.labels.begin(), r.labels.end());
    cur.segment_ids.insert(cur.segment_ids.end(), r.input_ids.size(), seg);
    if (at < cur.labels.size()) cur.labels[at] = kIgnoreIndex;
    if (cur.example_index < 0) cur.example_index = r.example_index;
  }
  if (!cur.input_ids.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace biolm::data

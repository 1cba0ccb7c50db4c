// SQuAD v1.1 / v2.0 EM/F1, NLTK and sacrebleu BLEU, rouge-score ROUGE-L (see biolm/eval/text.h).
#include "biolm/eval/text.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <fmt/format.h>

#include "biolm/core/error.h"
#include "porter.h"
#include "python_text.h"

namespace biolm::eval {
namespace {

using detail::py_split;
using detail::py_split_utf8;
using detail::utf8_decode;
using detail::utf8_encode;

// Python's string.punctuation.
bool py_punct(char32_t c) {
  static const std::u32string kPunct = U"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  return c < 0x80 && kPunct.find(c) != std::u32string::npos;
}

std::map<std::string, int64_t> counter(const std::vector<std::string>& tokens) {
  std::map<std::string, int64_t> c;
  for (const auto& t : tokens) c[t] += 1;
  return c;
}

int64_t common_count(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  const auto ac = counter(a);
  const auto bc = counter(b);
  int64_t same = 0;
  for (const auto& kv : ac) {
    const auto it = bc.find(kv.first);
    if (it != bc.end()) same += std::min(kv.second, it->second);
  }
  return same;
}

double overlap_f1(int64_t same, size_t n_pred, size_t n_gold) {
  const double precision = static_cast<double>(same) / static_cast<double>(n_pred);
  const double recall = static_cast<double>(same) / static_cast<double>(n_gold);
  return 2.0 * precision * recall / (precision + recall);
}

using NGramCounts = std::map<std::vector<std::string>, int64_t>;
NGramCounts ngrams(const std::vector<std::string>& tokens, size_t n) {
  NGramCounts out;
  if (tokens.size() < n) return out;
  for (size_t i = 0; i + n <= tokens.size(); ++i) {
    out[std::vector<std::string>(tokens.begin() + static_cast<std::ptrdiff_t>(i),
                                 tokens.begin() + static_cast<std::ptrdiff_t>(i + n))] += 1;
  }
  return out;
}

// n-gram counts of order n, each clipped to its largest count in any one reference (the
// "max_ref" of NLTK modified_precision and of sacrebleu _extract_reference_info).
NGramCounts max_reference_counts(const std::vector<std::vector<std::string>>& references, size_t n) {
  NGramCounts max_ref;
  for (const auto& ref : references) {
    for (const auto& kv : ngrams(ref, n)) {
      auto& m = max_ref[kv.first];
      m = std::max(m, kv.second);
    }
  }
  return max_ref;
}

// Closest reference length, ties to the shorter one (NLTK closest_ref_length, sacrebleu
// _get_closest_ref_len: the same rule).
int64_t closest_length(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best = -1;
  for (const int64_t len : ref_lens) {
    const int64_t d = std::llabs(len - hyp_len), bd = std::llabs(best - hyp_len);
    if (best < 0 || d < bd || (d == bd && len < best)) best = len;
  }
  return best;
}

}  // namespace

// ---- SQuAD ----------------------------------------------------------------------------------
std::string squad_normalize(std::string_view text) {
  // lower, then remove_punc, then remove_articles, then white_space_fix (the script's order).
  std::u32string s;
  for (char32_t c : detail::py_lower(utf8_decode(text))) {
    if (!py_punct(c)) s.push_back(c);
  }
  // re.sub(r"\b(a|an|the)\b", " ", s): a match is a whole run of \w characters.
  std::u32string no_articles;
  size_t i = 0;
  while (i < s.size()) {
    if (!detail::py_isword(s[i])) {
      no_articles.push_back(s[i++]);
      continue;
    }
    size_t j = i;
    while (j < s.size() && detail::py_isword(s[j])) ++j;
    const std::u32string_view word(s.data() + i, j - i);
    if (word == U"a" || word == U"an" || word == U"the") {
      no_articles.push_back(U' ');
    } else {
      no_articles.append(word);
    }
    i = j;
  }
  std::u32string out;
  for (const auto& tok : py_split(no_articles)) {
    if (!out.empty()) out.push_back(U' ');
    out += tok;
  }
  return utf8_encode(out);
}

double squad_exact_match(std::string_view prediction, std::string_view gold) {
  return squad_normalize(prediction) == squad_normalize(gold) ? 1.0 : 0.0;
}

double squad_f1(std::string_view prediction, std::string_view gold) {
  const auto p = py_split_utf8(squad_normalize(prediction));
  const auto g = py_split_utf8(squad_normalize(gold));
  const int64_t same = common_count(p, g);
  if (same == 0) return 0.0;
  return overlap_f1(same, p.size(), g.size());
}

double squad2_f1(std::string_view prediction, std::string_view gold) {
  const auto p = py_split_utf8(squad_normalize(prediction));
  const auto g = py_split_utf8(squad_normalize(gold));
  if (p.empty() || g.empty()) return p == g ? 1.0 : 0.0;  // no-answer agrees, or not
  const int64_t same = common_count(p, g);
  if (same == 0) return 0.0;
  return overlap_f1(same, p.size(), g.size());
}

QaScore squad_score(std::string_view prediction, const std::vector<std::string>& golds) {
  BIOLM_CHECK(!golds.empty(), Error, "squad: an example has no gold answer");
  QaScore s;
  for (const auto& g : golds) {
    s.exact_match = std::max(s.exact_match, squad_exact_match(prediction, g));
    s.f1 = std::max(s.f1, squad_f1(prediction, g));
  }
  return s;
}

QaScore squad_corpus(const std::vector<std::string>& predictions,
                     const std::vector<std::vector<std::string>>& golds) {
  BIOLM_CHECK(predictions.size() == golds.size() && !golds.empty(), Error,
              fmt::format("squad: {} predictions for {} examples", predictions.size(), golds.size()));
  QaScore total;
  for (size_t i = 0; i < golds.size(); ++i) {
    const QaScore s = squad_score(predictions[i], golds[i]);
    total.exact_match += s.exact_match;
    total.f1 += s.f1;
  }
  total.exact_match /= static_cast<double>(golds.size());
  total.f1 /= static_cast<double>(golds.size());
  return total;
}

Squad2Result squad2_evaluate(const std::vector<std::string>& predictions,
                             const std::vector<std::vector<std::string>>& golds,
                             const std::vector<double>& na_probs, double na_prob_thresh) {
  const size_t n = golds.size();
  BIOLM_CHECK(predictions.size() == n && n > 0, Error,
              fmt::format("squad2: {} predictions for {} questions", predictions.size(), n));
  BIOLM_CHECK(na_probs.empty() || na_probs.size() == n, Error,
              fmt::format("squad2: {} no-answer probabilities for {} questions", na_probs.size(), n));
  const bool have_probs = !na_probs.empty();
  std::vector<double> exact_raw(n), f1_raw(n);
  std::vector<bool> has_ans(n);
  for (size_t i = 0; i < n; ++i) {
    has_ans[i] = !golds[i].empty();  // make_qid_to_has_ans: bool(qa['answers'])
    std::vector<std::string> gold;
    for (const auto& a : golds[i]) {
      if (!squad_normalize(a).empty()) gold.push_back(a);
    }
    if (gold.empty()) gold = {""};
    for (const auto& a : gold) {
      exact_raw[i] = std::max(exact_raw[i], squad_exact_match(predictions[i], a));
      f1_raw[i] = std::max(f1_raw[i], squad2_f1(predictions[i], a));
    }
  }
  // apply_no_ans_threshold, then make_eval_dict over all / HasAns / NoAns.
  auto thresholded = [&](const std::vector<double>& raw) {
    std::vector<double> out(raw);
    for (size_t i = 0; i < n; ++i) {
      const double p = have_probs ? na_probs[i] : 0.0;
      if (p > na_prob_thresh) out[i] = has_ans[i] ? 0.0 : 1.0;
    }
    return out;
  };
  const auto exact = thresholded(exact_raw), f1 = thresholded(f1_raw);
  auto split = [&](int which) {  // -1 all, 1 has answer, 0 no answer
    QaSplit s;
    for (size_t i = 0; i < n; ++i) {
      if (which >= 0 && has_ans[i] != (which == 1)) continue;
      s.exact += exact[i];
      s.f1 += f1[i];
      s.total += 1;
    }
    if (s.total > 0) {
      s.exact /= static_cast<double>(s.total);
      s.f1 /= static_cast<double>(s.total);
    }
    return s;
  };
  Squad2Result r;
  r.all = split(-1);
  const QaSplit ha = split(1), na = split(0);
  if (ha.total > 0) r.has_ans = ha;
  if (na.total > 0) r.no_ans = na;
  if (have_probs) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return na_probs[a] < na_probs[b]; });
    auto best = [&](const std::vector<double>& raw, std::optional<double>& score, std::optional<double>& thresh) {
      double cur = static_cast<double>(na.total);
      double best_score = cur, best_thresh = 0.0;
      for (const size_t i : order) {
        double diff = 0.0;
        if (has_ans[i]) {
          diff = raw[i];
        } else if (!predictions[i].empty()) {
          diff = -1.0;
        }
        cur += diff;
        if (cur > best_score) {
          best_score = cur;
          best_thresh = na_probs[i];
        }
      }
      score = best_score / static_cast<double>(n);
      thresh = best_thresh;
    };
    best(exact_raw, r.best_exact, r.best_exact_thresh);
    best(f1_raw, r.best_f1, r.best_f1_thresh);
  }
  return r;
}

// ---- BLEU (NLTK) ----------------------------------------------------------------------------
BleuStats& BleuStats::operator+=(const BleuStats& o) {
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    matches[n] += o.matches[n];
    totals[n] += o.totals[n];
  }
  hyp_len += o.hyp_len;
  ref_len += o.ref_len;
  return *this;
}

std::vector<std::string> whitespace_tokens(std::string_view text, bool lowercase) {
  if (!lowercase) return py_split_utf8(text);
  std::vector<std::string> out;
  for (const auto& t : py_split(detail::py_lower(utf8_decode(text)))) out.push_back(utf8_encode(t));
  return out;
}

BleuStats bleu_stats(const std::vector<std::string>& hypothesis,
                     const std::vector<std::vector<std::string>>& references) {
  BIOLM_CHECK(!references.empty(), Error, "bleu: a hypothesis has no reference");
  BleuStats s;
  for (int n = 1; n <= kBleuMaxOrder; ++n) {
    const NGramCounts hyp = ngrams(hypothesis, static_cast<size_t>(n));
    const NGramCounts max_ref = max_reference_counts(references, static_cast<size_t>(n));
    int64_t clipped = 0, total = 0;
    for (const auto& kv : hyp) {
      total += kv.second;
      const auto it = max_ref.find(kv.first);
      if (it != max_ref.end()) clipped += std::min(kv.second, it->second);
    }
    s.matches[n - 1] = clipped;
    s.totals[n - 1] = std::max<int64_t>(1, total);  // NLTK modified_precision's guard
  }
  s.hyp_len = static_cast<int64_t>(hypothesis.size());
  std::vector<int64_t> lens;
  for (const auto& ref : references) lens.push_back(static_cast<int64_t>(ref.size()));
  s.ref_len = closest_length(s.hyp_len, lens);
  return s;
}

double bleu_from_stats(const BleuStats& s, const BleuOptions& options) {
  BIOLM_CHECK(options.max_order >= 1 && options.max_order <= kBleuMaxOrder, ConfigError,
              "bleu.max_order", fmt::format("must be in 1..4, got {}", options.max_order));
  if (s.matches[0] == 0) return 0.0;  // NLTK: no unigram match, BLEU 0 whatever the smoothing
  double log_sum = 0.0;
  const double weight = 1.0 / options.max_order;
  for (int n = 0; n < options.max_order; ++n) {
    double num = static_cast<double>(s.matches[n]);
    double den = static_cast<double>(s.totals[n]);
    if (options.smoothing == BleuSmoothing::AddOne && n > 0) {
      num += 1.0;
      den += 1.0;
    }
    if (num == 0.0) return 0.0;
    log_sum += weight * std::log(num / den);
  }
  double bp = 1.0;
  if (s.hyp_len == 0) {
    bp = 0.0;
  } else if (s.hyp_len <= s.ref_len) {
    bp = std::exp(1.0 - static_cast<double>(s.ref_len) / static_cast<double>(s.hyp_len));
  }
  return bp * std::exp(log_sum);
}

double corpus_bleu(const std::vector<std::string>& hypotheses,
                   const std::vector<std::vector<std::string>>& references,
                   const BleuOptions& options) {
  BIOLM_CHECK(hypotheses.size() == references.size() && !hypotheses.empty(), Error,
              fmt::format("bleu: {} hypotheses for {} reference sets", hypotheses.size(),
                          references.size()));
  BleuStats total;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    std::vector<std::vector<std::string>> refs;
    for (const auto& r : references[i]) refs.push_back(whitespace_tokens(r, options.lowercase));
    total += bleu_stats(whitespace_tokens(hypotheses[i], options.lowercase), refs);
  }
  return bleu_from_stats(total, options);
}

double sentence_bleu(const std::string& hypothesis, const std::vector<std::string>& references,
                     BleuOptions options) {
  return corpus_bleu({hypothesis}, {references}, options);
}

// ---- BLEU (sacrebleu) -----------------------------------------------------------------------
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// re.sub of a two-character pattern (A)(B) with replacement "\1 \2 " etc., left to right without
// overlaps. On UTF-8 bytes this equals the code-point regex: both classes test ASCII only, and a
// continuation byte never equals '.', ',' or '-'.
template <class First, class Second>
std::string sub_pairs(const std::string& s, First first, Second second, const char* pre, const char* mid,
                      const char* post) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      out += pre;
      out.push_back(s[i]);
      out += mid;
      out.push_back(s[i + 1]);
      out += post;
      i += 2;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

}  // namespace

std::string tokenize_13a(std::string_view text) {
  std::string line(text);
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  line = " " + line + " ";
  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 ": ASCII punctuation and space except ' , - .
  std::string spaced;
  for (char c : line) {
    const bool p = (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
                   (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
    if (p) {
      spaced.push_back(' ');
      spaced.push_back(c);
      spaced.push_back(' ');
    } else {
      spaced.push_back(c);
    }
  }
  auto period_comma = [](char c) { return c == '.' || c == ','; };
  auto non_digit = [](char c) { return !digit(c); };
  spaced = sub_pairs(spaced, non_digit, period_comma, "", " ", " ");  // ([^0-9])([\.,]) -> \1 \2_
  spaced = sub_pairs(spaced, period_comma, non_digit, " ", " ", "");  // ([\.,])([^0-9]) -> _\1 \2
  spaced = sub_pairs(spaced, digit, [](char c) { return c == '-'; }, "", " ", " ");  // ([0-9])(-)
  std::string out;
  for (const auto& t : py_split_utf8(spaced)) {
    if (!out.empty()) out.push_back(' ');
    out += t;
  }
  return out;
}

SacreBleuStats& SacreBleuStats::operator+=(const SacreBleuStats& o) {
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    correct[n] += o.correct[n];
    total[n] += o.total[n];
  }
  sys_len += o.sys_len;
  ref_len += o.ref_len;
  return *this;
}

namespace {
// BLEU._preprocess_segment: rstrip() (Unicode whitespace), then the tokenizer.
std::vector<std::string> sacre_tokens(std::string_view text) {
  std::u32string s = utf8_decode(text);
  while (!s.empty() && detail::py_isspace(s.back())) s.pop_back();
  return py_split_utf8(tokenize_13a(utf8_encode(s)));
}
}  // namespace

SacreBleuStats sacrebleu_stats(std::string_view hypothesis, const std::vector<std::string>& references) {
  BIOLM_CHECK(!references.empty(), Error, "sacrebleu: a hypothesis has no reference");
  const auto hyp = sacre_tokens(hypothesis);
  std::vector<std::vector<std::string>> refs;
  std::vector<int64_t> lens;
  for (const auto& r : references) {
    refs.push_back(sacre_tokens(r));
    lens.push_back(static_cast<int64_t>(refs.back().size()));
  }
  SacreBleuStats s;
  for (int n = 1; n <= kBleuMaxOrder; ++n) {
    const NGramCounts max_ref = max_reference_counts(refs, static_cast<size_t>(n));
    for (const auto& kv : ngrams(hyp, static_cast<size_t>(n))) {
      s.total[n - 1] += kv.second;
      const auto it = max_ref.find(kv.first);
      if (it != max_ref.end()) s.correct[n - 1] += std::min(kv.second, it->second);
    }
  }
  s.sys_len = static_cast<int64_t>(hyp.size());
  s.ref_len = closest_length(s.sys_len, lens);
  return s;
}

double sacrebleu_from_stats(const SacreBleuStats& s) {
  double bp = 1.0;
  if (s.sys_len < s.ref_len) {
    bp = s.sys_len > 0 ? std::exp(1.0 - static_cast<double>(s.ref_len) / static_cast<double>(s.sys_len)) : 0.0;
  }
  if (std::all_of(s.correct.begin(), s.correct.end(), [](int64_t c) { return c == 0; })) return 0.0;
  std::array<double, kBleuMaxOrder> precisions{};
  double smooth = 1.0;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (s.total[n] == 0) break;
    if (s.correct[n] == 0) {
      smooth *= 2.0;
      precisions[n] = 100.0 / (smooth * static_cast<double>(s.total[n]));
    } else {
      precisions[n] = 100.0 * static_cast<double>(s.correct[n]) / static_cast<double>(s.total[n]);
    }
  }
  // my_log(0) = -9999999999: any zero precision drives the score to exp(-2.5e9) = 0.
  double log_sum = 0.0;
  for (double p : precisions) {
    if (p == 0.0) return 0.0;
    log_sum += std::log(p);
  }
  return bp * std::exp(log_sum / kBleuMaxOrder);
}

double sacrebleu_corpus(const std::vector<std::string>& hypotheses,
                        const std::vector<std::vector<std::string>>& references) {
  BIOLM_CHECK(hypotheses.size() == references.size() && !hypotheses.empty(), Error,
              fmt::format("sacrebleu: {} hypotheses for {} reference sets", hypotheses.size(),
                          references.size()));
  SacreBleuStats total;
  for (size_t i = 0; i < hypotheses.size(); ++i) total += sacrebleu_stats(hypotheses[i], references[i]);
  return sacrebleu_from_stats(total);
}

// ---- ROUGE-L --------------------------------------------------------------------------------
std::vector<std::string> rouge_tokens(std::string_view text, bool use_stemmer) {
  // lower(), then [^a-z0-9]+ -> " " (so everything outside ASCII letters/digits separates).
  std::string s;
  for (char32_t c : detail::py_lower(utf8_decode(text))) {
    s.push_back(((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? static_cast<char>(c) : ' ');
  }
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) tokens.push_back(s.substr(i, j - i));
    i = j;
  }
  if (use_stemmer) {
    for (auto& t : tokens) {
      if (t.size() > 3) t = detail::porter_stem(t);
    }
    tokens.erase(std::remove_if(tokens.begin(), tokens.end(), [](const std::string& t) { return t.empty(); }),
                 tokens.end());
  }
  return tokens;
}

int64_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<int64_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

RougeScore rouge_l(std::string_view target, std::string_view prediction, bool use_stemmer) {
  const auto t = rouge_tokens(target, use_stemmer);
  const auto p = rouge_tokens(prediction, use_stemmer);
  RougeScore s;
  if (t.empty() || p.empty()) return s;
  const double lcs = static_cast<double>(lcs_length(t, p));
  s.precision = lcs / static_cast<double>(p.size());
  s.recall = lcs / static_cast<double>(t.size());
  s.fmeasure = s.precision + s.recall > 0.0
                   ? 2.0 * s.precision * s.recall / (s.precision + s.recall)
                   : 0.0;
  return s;
}

RougeScore rouge_l_multi(const std::vector<std::string>& targets, std::string_view prediction,
                         bool use_stemmer) {
  BIOLM_CHECK(!targets.empty(), Error, "rouge: an example has no target");
  RougeScore best = rouge_l(targets[0], prediction, use_stemmer);
  for (size_t i = 1; i < targets.size(); ++i) {
    const RougeScore s = rouge_l(targets[i], prediction, use_stemmer);
    if (s.fmeasure > best.fmeasure) best = s;
  }
  return best;
}

double corpus_rouge_l(const std::vector<std::string>& predictions,
                      const std::vector<std::vector<std::string>>& targets, bool use_stemmer) {
  BIOLM_CHECK(predictions.size() == targets.size() && !targets.empty(), Error,
              fmt::format("rouge: {} predictions for {} examples", predictions.size(), targets.size()));
  double sum = 0.0;
  for (size_t i = 0; i < targets.size(); ++i) {
    sum += rouge_l_multi(targets[i], predictions[i], use_stemmer).fmeasure;
  }
  return sum / static_cast<double>(targets.size());
}

}  // namespace biolm::eval

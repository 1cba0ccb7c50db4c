// SQuAD v1.1 EM/F1, NLTK-style BLEU and rouge-score ROUGE-L (see biolm/eval/text.h).
#include "biolm/eval/text.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "biolm/core/error.h"

namespace biolm::eval {
namespace {

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Python's str.split() separators within ASCII (includes the \x1c-\x1f separators).
bool py_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' ||
         (c >= '\x1c' && c <= '\x1f');
}

// Python's string.punctuation.
bool py_punct(char c) {
  static const std::string kPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  return kPunct.find(c) != std::string::npos;
}

// A regex \w character: ASCII alnum or underscore; bytes of non-ASCII UTF-8 sequences count as
// word characters (Python's Unicode \w covers letters of every script).
bool word_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_';
}

std::vector<std::string> split_py(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && py_space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !py_space(text[j])) ++j;
    if (j > i) out.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::map<std::string, int64_t> counter(const std::vector<std::string>& tokens) {
  std::map<std::string, int64_t> c;
  for (const auto& t : tokens) c[t] += 1;
  return c;
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

}  // namespace

// ---- SQuAD ----------------------------------------------------------------------------------
std::string squad_normalize(std::string_view text) {
  // lower, then remove_punc, then remove_articles, then white_space_fix (the script's order).
  std::string s;
  s.reserve(text.size());
  for (char c : text) {
    if (!py_punct(c)) s.push_back(ascii_lower(c));
  }
  std::string no_articles;
  size_t i = 0;
  while (i < s.size()) {
    if (!word_char(s[i])) {
      no_articles.push_back(s[i++]);
      continue;
    }
    size_t j = i;
    while (j < s.size() && word_char(s[j])) ++j;
    const std::string_view word(s.data() + i, j - i);
    if (word == "a" || word == "an" || word == "the") {
      no_articles.push_back(' ');
    } else {
      no_articles.append(word);
    }
    i = j;
  }
  std::string out;
  for (const auto& tok : split_py(no_articles)) {
    if (!out.empty()) out.push_back(' ');
    out += tok;
  }
  return out;
}

double squad_exact_match(std::string_view prediction, std::string_view gold) {
  return squad_normalize(prediction) == squad_normalize(gold) ? 1.0 : 0.0;
}

double squad_f1(std::string_view prediction, std::string_view gold) {
  const auto p = split_py(squad_normalize(prediction));
  const auto g = split_py(squad_normalize(gold));
  const auto pc = counter(p);
  const auto gc = counter(g);
  int64_t same = 0;
  for (const auto& kv : pc) {
    const auto it = gc.find(kv.first);
    if (it != gc.end()) same += std::min(kv.second, it->second);
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(p.size());
  const double recall = static_cast<double>(same) / static_cast<double>(g.size());
  return 2.0 * precision * recall / (precision + recall);
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

// ---- BLEU -----------------------------------------------------------------------------------
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
  auto tokens = split_py(text);
  if (lowercase) {
    for (auto& t : tokens) std::transform(t.begin(), t.end(), t.begin(), ascii_lower);
  }
  return tokens;
}

BleuStats bleu_stats(const std::vector<std::string>& hypothesis,
                     const std::vector<std::vector<std::string>>& references) {
  BIOLM_CHECK(!references.empty(), Error, "bleu: a hypothesis has no reference");
  BleuStats s;
  for (int n = 1; n <= kBleuMaxOrder; ++n) {
    const NGramCounts hyp = ngrams(hypothesis, static_cast<size_t>(n));
    NGramCounts max_ref;
    for (const auto& ref : references) {
      for (const auto& kv : ngrams(ref, static_cast<size_t>(n))) {
        auto& m = max_ref[kv.first];
        m = std::max(m, kv.second);
      }
    }
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
  // Closest reference length, ties to the shorter one (NLTK closest_ref_length).
  int64_t best = -1;
  for (const auto& ref : references) {
    const auto len = static_cast<int64_t>(ref.size());
    if (best < 0 || std::llabs(len - s.hyp_len) < std::llabs(best - s.hyp_len) ||
        (std::llabs(len - s.hyp_len) == std::llabs(best - s.hyp_len) && len < best)) {
      best = len;
    }
  }
  s.ref_len = best;
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

// ---- ROUGE-L --------------------------------------------------------------------------------
std::vector<std::string> rouge_tokens(std::string_view text) {
  std::string s;
  s.reserve(text.size());
  for (char c : text) {
    const char l = ascii_lower(c);
    s.push_back(((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) ? l : ' ');
  }
  return split_py(s);
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

RougeScore rouge_l(std::string_view target, std::string_view prediction) {
  const auto t = rouge_tokens(target);
  const auto p = rouge_tokens(prediction);
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

RougeScore rouge_l_multi(const std::vector<std::string>& targets, std::string_view prediction) {
  BIOLM_CHECK(!targets.empty(), Error, "rouge: an example has no target");
  RougeScore best = rouge_l(targets[0], prediction);
  for (size_t i = 1; i < targets.size(); ++i) {
    const RougeScore s = rouge_l(targets[i], prediction);
    if (s.fmeasure > best.fmeasure) best = s;
  }
  return best;
}

double corpus_rouge_l(const std::vector<std::string>& predictions,
                      const std::vector<std::vector<std::string>>& targets) {
  BIOLM_CHECK(predictions.size() == targets.size() && !targets.empty(), Error,
              fmt::format("rouge: {} predictions for {} examples", predictions.size(), targets.size()));
  double sum = 0.0;
  for (size_t i = 0; i < targets.size(); ++i) sum += rouge_l_multi(targets[i], predictions[i]).fmeasure;
  return sum / static_cast<double>(targets.size());
}

}  // namespace biolm::eval

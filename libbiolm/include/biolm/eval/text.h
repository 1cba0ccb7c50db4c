// biolm/eval/text.h: text metrics: SQuAD exact match / token F1, BLEU, ROUGE-L.
//
// SQuAD: the official SQuAD v1.1 evaluate script (evaluate-v1.1.py). normalize_answer: lower
// case, drop ASCII punctuation (Python's string.punctuation), replace the words a / an / the by
// a space, collapse whitespace. EM = normalized strings equal; F1 = token-overlap F1 over the
// normalized whitespace tokens (multiset intersection; 0 when nothing is shared, so two empty
// answers score EM 1, F1 0 as in v1.1); both are the max over the gold answers, averaged over
// examples. We report fractions in [0, 1]; the script prints 100 x these. Case folding is ASCII
// only (Python also lowercases non-ASCII letters).
//
// BLEU: Papineni et al. 2002 as NLTK computes it (nltk.translate.bleu_score.corpus_bleu /
// sentence_bleu with uniform weights 1/N): clipped n-gram counts (clip = max count over the
// references); a hypothesis contributes max(1, number of its n-grams) to each order's
// denominator (NLTK's guard, which matters for hypotheses shorter than n); the reference length
// is the closest one (ties -> shorter); brevity penalty exp(1 - r/c) when c <= r, 0 when c = 0.
// No unigram match at all gives 0. Smoothing: BleuSmoothing::None (NLTK method0; where an
// order has no match we return 0 where NLTK returns a number below 1e-70) is the corpus
// default; BleuSmoothing::AddOne is Lin & Och 2004 "ORANGE" add-one, exactly NLTK
// SmoothingFunction().method2 (NLTK >= 3.6): (matches+1)/(total+1) for orders n >= 2, unigrams
// unsmoothed. It is the sentence default. BLEU-1 = N=1, BLEU-4 = N=4. Tokens: whitespace split,
// case kept (BleuOptions::lowercase to fold ASCII case).
//
// ROUGE-L: Google's rouge-score package (rouge_scorer.RougeScorer(["rougeL"]), use_stemmer
// False). Tokenizer: lowercase, every run of characters outside [a-z0-9] becomes a space, split
// on whitespace. P = LCS/|prediction|, R = LCS/|target|, F = 2PR/(P+R) (0 when P+R = 0); an
// empty target or prediction scores 0. Several targets: the one with the best F (score_multi).
// Corpus ROUGE-L = mean of the per-example F.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace biolm::eval {

// ---- SQuAD --------------------------------------------------------------------------------
std::string squad_normalize(std::string_view text);
double squad_exact_match(std::string_view prediction, std::string_view gold);
double squad_f1(std::string_view prediction, std::string_view gold);

struct QaScore {
  double exact_match = 0.0;
  double f1 = 0.0;
};
/// Max over gold answers (metric_max_over_ground_truths). Throws biolm::Error on no golds.
QaScore squad_score(std::string_view prediction, const std::vector<std::string>& golds);
/// Mean over examples.
QaScore squad_corpus(const std::vector<std::string>& predictions,
                     const std::vector<std::vector<std::string>>& golds);

// ---- BLEU ---------------------------------------------------------------------------------
enum class BleuSmoothing { None, AddOne };
constexpr int kBleuMaxOrder = 4;

struct BleuOptions {
  int max_order = 4;  ///< 1 = BLEU-1, 4 = BLEU-4
  BleuSmoothing smoothing = BleuSmoothing::None;
  bool lowercase = false;
};

/// Sufficient statistics of one hypothesis (they add up over a corpus).
struct BleuStats {
  std::array<int64_t, kBleuMaxOrder> matches{};  ///< clipped n-gram matches per order
  std::array<int64_t, kBleuMaxOrder> totals{};   ///< max(1, hypothesis n-grams) per order
  int64_t hyp_len = 0;
  int64_t ref_len = 0;  ///< closest reference length
  BleuStats& operator+=(const BleuStats& o);
};

/// Whitespace tokens (ASCII whitespace), optionally ASCII-lowercased.
std::vector<std::string> whitespace_tokens(std::string_view text, bool lowercase = false);
BleuStats bleu_stats(const std::vector<std::string>& hypothesis,
                     const std::vector<std::vector<std::string>>& references);
/// BLEU from (summed) statistics with options.max_order and options.smoothing.
double bleu_from_stats(const BleuStats& stats, const BleuOptions& options);
/// Corpus BLEU over texts (one hypothesis, several references each).
double corpus_bleu(const std::vector<std::string>& hypotheses,
                   const std::vector<std::vector<std::string>>& references,
                   const BleuOptions& options = {});
/// Sentence BLEU; default smoothing AddOne (NLTK method2).
double sentence_bleu(const std::string& hypothesis, const std::vector<std::string>& references,
                     BleuOptions options = {4, BleuSmoothing::AddOne, false});

// ---- ROUGE-L ------------------------------------------------------------------------------
struct RougeScore {
  double precision = 0.0;
  double recall = 0.0;
  double fmeasure = 0.0;
};
/// rouge-score's default tokenizer (see above).
std::vector<std::string> rouge_tokens(std::string_view text);
int64_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b);
RougeScore rouge_l(std::string_view target, std::string_view prediction);
/// Best F over several targets.
RougeScore rouge_l_multi(const std::vector<std::string>& targets, std::string_view prediction);
/// Mean per-example ROUGE-L F.
double corpus_rouge_l(const std::vector<std::string>& predictions,
                      const std::vector<std::vector<std::string>>& targets);

}  // namespace biolm::eval

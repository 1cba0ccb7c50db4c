// biolm/eval/text.h: text metrics: SQuAD v1.1 / v2.0 exact match and token F1, BLEU (NLTK and
// sacrebleu), ROUGE-L (rouge-score).
//
// Strings are UTF-8 and are read with Python's str semantics wherever the reference is Python:
// lower() is full Unicode lowercasing (U+0130 -> "i\u0307", final sigma), split() splits on
// Unicode whitespace (NBSP, U+2000..U+200A, U+3000, ...), the regex \w is str.isalnum() or '_'
// (tables from Python 3.11 / Unicode 14.0, libbiolm/src/eval/gen_unicode_tables.py). An invalid
// UTF-8 byte reads as U+FFFD. tests/parity/test_metrics.py checks every function below against
// the reference package on generated cases (unicode ones included), to 1e-9.
//
// SQuAD v1.1 (evaluate-v1.1.py): normalize_answer = lower(), drop the ASCII punctuation of
// string.punctuation, replace \b(a|an|the)\b by a space, ' '.join(split()). EM = normalized
// strings equal; F1 = multiset token-overlap F1, 0 when nothing is shared (two empty answers: EM 1,
// F1 0); both the max over the gold answers, averaged over questions. Fractions in [0, 1] (the
// script prints 100 x these).
// SQuAD v2.0 (evaluate-v2.0.py, the official script, not on PyPI): same normalization; gold
// answers that normalize to "" are dropped and a question left with none has the single gold ""
// (the only right answer is the empty string); compute_f1 gives 1 when both token lists are empty,
// 0 when only one is. has_ans = the question lists at least one answer (raw, before dropping).
// With no-answer probabilities, a question with na_prob > na_prob_thresh (default 1.0) is
// predicted unanswerable and scores 1 exactly when it has no answer; best_exact / best_f1 and
// their thresholds are find_best_thresh: questions sorted by na_prob (stable, input order on ties),
// the running score starts at the number of unanswerable questions and, question by question,
// adds the raw score (answerable), -1 (unanswerable with a non-empty raw prediction string) or 0;
// the best strictly-greater running score (and the na_prob where it was reached, else 0.0) wins.
//
// BLEU, NLTK (nltk.translate.bleu_score.corpus_bleu / sentence_bleu, uniform weights 1/N) on
// str.split() tokens: clipped n-gram counts (clip = max count over the references); a hypothesis
// contributes max(1, its n-grams) to each order's denominator; reference length = the closest
// (ties -> shorter); brevity penalty exp(1 - r/c) when c <= r, 0 when c = 0; no unigram match at
// all gives 0. Smoothing: BleuSmoothing::None = NLTK method0, the corpus default (where an order
// has no match NLTK multiplies by sys.float_info.min^(1/N), a number below 1e-70; we return 0);
// BleuSmoothing::AddOne = NLTK SmoothingFunction().method2 (Lin & Och 2004: (m+1)/(t+1) for
// orders >= 2), the sentence default. BLEU-1 = N=1, BLEU-4 = N=4. Range [0, 1].
//
// BLEU, sacrebleu (sacrebleu.corpus_bleu(hyps, [refs...]) with its defaults: tokenize="13a",
// smooth_method="exp", lowercase=False, effective order off): each segment is rstrip()ped and
// tokenized by mteval-v13a (tokenize_13a below), n-grams over str.split(); totals without NLTK's
// max(1, .) guard; BP = exp(1 - r/c) when c < r (0 when c = 0); no match in any order gives 0;
// an order with no n-grams at all ends the loop (its precision stays 0 and BLEU is 0); an order
// with n-grams but no match gets 100 / (2^k * total), k counting such orders. Range [0, 100].
//
// ROUGE-L: Google's rouge-score (rouge_scorer.RougeScorer(["rougeL"], use_stemmer)). Tokenizer:
// lower(), every run of characters outside [a-z0-9] becomes a space, split; with the stemmer,
// tokens longer than 3 characters go through NLTK's PorterStemmer (NLTK_EXTENSIONS mode).
// P = LCS/|prediction|, R = LCS/|target|, F = 2PR/(P+R) (0 when P+R = 0); an empty token list on
// either side scores 0. Several targets: the first with the best F (score_multi). Corpus ROUGE-L
// = mean of the per-example F.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace biolm::eval {

// ---- SQuAD --------------------------------------------------------------------------------
std::string squad_normalize(std::string_view text);
double squad_exact_match(std::string_view prediction, std::string_view gold);
/// v1.1 f1_score (0 when no token is shared, so "" vs "" is 0).
double squad_f1(std::string_view prediction, std::string_view gold);
/// v2.0 compute_f1 (1 when both normalize to no tokens, 0 when one does).
double squad2_f1(std::string_view prediction, std::string_view gold);

struct QaScore {
  double exact_match = 0.0;
  double f1 = 0.0;
};
/// v1.1: max over gold answers (metric_max_over_ground_truths). Throws biolm::Error on no golds.
QaScore squad_score(std::string_view prediction, const std::vector<std::string>& golds);
/// v1.1: mean over examples.
QaScore squad_corpus(const std::vector<std::string>& predictions,
                     const std::vector<std::vector<std::string>>& golds);

/// exact / f1 as fractions and the number of questions (make_eval_dict, / 100).
struct QaSplit {
  double exact = 0.0;
  double f1 = 0.0;
  int64_t total = 0;
};
struct Squad2Result {
  QaSplit all;
  std::optional<QaSplit> has_ans, no_ans;  ///< present when such questions exist
  /// find_all_best_thresh: only with no-answer probabilities.
  std::optional<double> best_exact, best_exact_thresh, best_f1, best_f1_thresh;
};
/// The v2.0 evaluation: golds[i] empty = unanswerable; na_probs empty = none given (all 0, no
/// best_* keys); predicted unanswerable when na_prob > na_prob_thresh.
Squad2Result squad2_evaluate(const std::vector<std::string>& predictions,
                             const std::vector<std::vector<std::string>>& golds,
                             const std::vector<double>& na_probs = {}, double na_prob_thresh = 1.0);

// ---- BLEU (NLTK) --------------------------------------------------------------------------
enum class BleuSmoothing { None, AddOne };
constexpr int kBleuMaxOrder = 4;

struct BleuOptions {
  int max_order = 4;  ///< 1 = BLEU-1, 4 = BLEU-4
  BleuSmoothing smoothing = BleuSmoothing::None;
  bool lowercase = false;  ///< str.lower() before splitting
};

/// Sufficient statistics of one hypothesis (they add up over a corpus).
struct BleuStats {
  std::array<int64_t, kBleuMaxOrder> matches{};  ///< clipped n-gram matches per order
  std::array<int64_t, kBleuMaxOrder> totals{};   ///< max(1, hypothesis n-grams) per order
  int64_t hyp_len = 0;
  int64_t ref_len = 0;  ///< closest reference length
  BleuStats& operator+=(const BleuStats& o);
};

/// str.split() tokens, optionally str.lower()ed first.
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

// ---- BLEU (sacrebleu) ---------------------------------------------------------------------
/// sacrebleu's Tokenizer13a (mteval-v13a): drops "<skipped>", joins "-\n", unescapes &quot;
/// &amp; &lt; &gt;, spaces out ASCII punctuation except ' , - . (periods and commas unless
/// between digits, a dash after a digit), then ' '.join(split()).
std::string tokenize_13a(std::string_view text);

struct SacreBleuStats {
  std::array<int64_t, kBleuMaxOrder> correct{};
  std::array<int64_t, kBleuMaxOrder> total{};
  int64_t sys_len = 0;
  int64_t ref_len = 0;
  SacreBleuStats& operator+=(const SacreBleuStats& o);
};
/// One segment: hypothesis and its references as raw text (tokenized here).
SacreBleuStats sacrebleu_stats(std::string_view hypothesis, const std::vector<std::string>& references);
/// sacrebleu BLEU.compute_bleu with smooth_method="exp", 4-grams: a score in [0, 100].
double sacrebleu_from_stats(const SacreBleuStats& stats);
/// sacrebleu.corpus_bleu(hypotheses, references transposed).score.
double sacrebleu_corpus(const std::vector<std::string>& hypotheses,
                        const std::vector<std::vector<std::string>>& references);

// ---- ROUGE-L ------------------------------------------------------------------------------
struct RougeScore {
  double precision = 0.0;
  double recall = 0.0;
  double fmeasure = 0.0;
};
/// rouge-score's default tokenizer (see above), with or without the Porter stemmer.
std::vector<std::string> rouge_tokens(std::string_view text, bool use_stemmer = false);
int64_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b);
RougeScore rouge_l(std::string_view target, std::string_view prediction, bool use_stemmer = false);
/// Best F over several targets (the first of equal ones).
RougeScore rouge_l_multi(const std::vector<std::string>& targets, std::string_view prediction,
                         bool use_stemmer = false);
/// Mean per-example ROUGE-L F.
double corpus_rouge_l(const std::vector<std::string>& predictions,
                      const std::vector<std::vector<std::string>>& targets, bool use_stemmer = false);

}  // namespace biolm::eval

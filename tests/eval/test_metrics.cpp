// Tests for biolm/eval metrics and bootstrap: hand-computed expectations on small cases,
// including the edge cases the reference tools are known for. Each expected value says how it
// was derived; tests/reference/eval_reference.py recomputes the non-trivial ones (stdlib only)
// and its output is committed next to it.
#include <catch2/catch.hpp>

#include <cmath>

#include "biolm/core/error.h"
#include "biolm/eval/bootstrap.h"
#include "biolm/eval/classification.h"
#include "biolm/eval/correlation.h"
#include "biolm/eval/metric_files.h"
#include "biolm/eval/ner.h"
#include "biolm/eval/text.h"
#include "support/test_util.h"

namespace biolm::eval {
// Catch prints mismatching entity lists through this.
std::ostream& operator<<(std::ostream& os, const Entity& e) {
  return os << e.type << "[" << e.start << "," << e.end << "]";
}
}  // namespace biolm::eval

using namespace biolm::eval;
using Strs = std::vector<std::string>;

TEST_CASE("classification_report matches sklearn per class and averaged", "[eval][cls]") {
  SECTION("all classes predicted") {
    // gold a b b c / pred a b c c. a: 1/1,1/1; b: tp1 pred1 gold2 -> P1 R.5 F 2/3;
    // c: tp1 pred2 gold1 -> P.5 R1 F 2/3. macro P = 2.5/3, F = (1+2/3+2/3)/3 = 7/9.
    const auto r = classification_report({"a", "b", "b", "c"}, {"a", "b", "c", "c"});
    CHECK(r.accuracy == Approx(0.75));
    REQUIRE(r.prf.labels == Strs{"a", "b", "c"});
    CHECK(r.prf.per_label[1].recall == Approx(0.5));
    CHECK(r.prf.per_label[2].precision == Approx(0.5));
    CHECK(r.prf.macro.precision == Approx(2.5 / 3));
    CHECK(r.prf.macro.f1 == Approx(7.0 / 9));
    CHECK(r.prf.micro.f1 == Approx(0.75));  // micro = accuracy for single-label multi-class
    // weighted by support 1,2,1: F = (1 + 2*2/3 + 2/3)/4 = 0.75
    CHECK(r.prf.weighted.f1 == Approx(0.75));
  }
  SECTION("a class never predicted: zero_division 0, 1 and nan") {
    // gold a a b c / pred a a a c. a: tp2 pred3 gold2 -> P 2/3 R 1 F 4/5; b: pred 0 -> P = zd,
    // R 0, F 0; c: 1,1,1. sklearn: macro P (zd=0) = (2/3+0+1)/3 = 5/9; (zd=1) = (2/3+1+1)/3 = 8/9;
    // (zd=nan) = nanmean(2/3, nan, 1) = 5/6. macro F = (0.8+0+1)/3 = 0.6 in all three.
    // weighted (support 2,1,1) P (zd=0) = (2*2/3+0+1)/4 = 7/12, R = 3/4, F = (1.6+0+1)/4 = 0.65.
    const Strs g{"a", "a", "b", "c"}, p{"a", "a", "a", "c"};
    const auto r0 = classification_report(g, p, {{}, ZeroDivision::Zero});
    CHECK(r0.prf.per_label[1].precision == 0.0);
    CHECK(r0.prf.macro.precision == Approx(5.0 / 9));
    CHECK(r0.prf.macro.f1 == Approx(0.6));
    CHECK(r0.prf.weighted.precision == Approx(7.0 / 12));
    CHECK(r0.prf.weighted.recall == Approx(0.75));
    CHECK(r0.prf.weighted.f1 == Approx(0.65));
    const auto r1 = classification_report(g, p, {{}, ZeroDivision::One});
    CHECK(r1.prf.per_label[1].precision == 1.0);
    CHECK(r1.prf.macro.precision == Approx(8.0 / 9));
    CHECK(r1.prf.macro.f1 == Approx(0.6));
    const auto rn = classification_report(g, p, {{}, ZeroDivision::NaN});
    CHECK(std::isnan(rn.prf.per_label[1].precision));
    CHECK(rn.prf.macro.precision == Approx(5.0 / 6));
  }
  SECTION("a label only predicted, never present") {
    // gold a b / pred a c: c has gold 0 -> R = zd = 0, P 0, F 0; b: P = zd = 0.
    // macro R = (1 + 0 + 0)/3; weighted ignores c (support 0): R = (1*1 + 1*0)/2 = 0.5.
    const auto r = classification_report({"a", "b"}, {"a", "c"});
    CHECK(r.prf.labels == Strs{"a", "b", "c"});
    CHECK(r.prf.per_label[2].recall == 0.0);
    CHECK(r.prf.macro.recall == Approx(1.0 / 3));
    CHECK(r.prf.weighted.recall == Approx(0.5));
  }
  CHECK_THROWS_AS(accuracy({"a"}, {"a", "b"}), biolm::Error);
}

TEST_CASE("relation micro-F1 leaves the negative class out", "[eval][re]") {
  // gold false CPR:3 CPR:4 CPR:3 false / pred CPR:3 CPR:3 false CPR:4 false: positives in gold
  // 3, predicted 3, correct positive 1 (index 1) -> P = R = F = 1/3 (sklearn f1_score with
  // labels=[CPR:3, CPR:4], average="micro" gives the same). Accuracy would be 2/5.
  const Strs g{"false", "CPR:3", "CPR:4", "CPR:3", "false"};
  const Strs p{"CPR:3", "CPR:3", "false", "CPR:4", "false"};
  const PRF r = relation_micro_f1(g, p, "false");
  CHECK(r.precision == Approx(1.0 / 3));
  CHECK(r.recall == Approx(1.0 / 3));
  CHECK(r.f1 == Approx(1.0 / 3));
  const auto sk = classification_report(g, p, {{"CPR:3", "CPR:4"}, ZeroDivision::Zero});
  CHECK(sk.prf.micro.f1 == Approx(r.f1));
  // Nothing predicted positive: P = zero_division, R = 0, F = 0.
  const PRF none = relation_micro_f1(g, Strs(5, "false"), "false");
  CHECK(none.precision == 0.0);
  CHECK(none.f1 == 0.0);
}

TEST_CASE("NER default mode follows seqeval's conlleval-like chunking", "[eval][ner]") {
  const NerOptions def;
  SECTION("I- without B- starts an entity; a type change ends one") {
    CHECK(extract_entities({"I-PER", "I-PER", "O", "B-LOC"}, def) ==
          std::vector<Entity>{{"PER", 0, 1}, {"LOC", 3, 3}});
    CHECK(extract_entities({"B-PER", "I-LOC"}, def) == std::vector<Entity>{{"PER", 0, 0}, {"LOC", 1, 1}});
    CHECK(extract_entities({"B-X", "E-X", "S-Y", "O"}, def) ==
          std::vector<Entity>{{"X", 0, 1}, {"Y", 2, 2}});
  }
  SECTION("gold B-PER I-PER O B-LOC vs pred I-PER I-PER O B-LOC: default 1.0, strict 1/1, 1/2") {
    const std::vector<Strs> gold{{"B-PER", "I-PER", "O", "B-LOC"}};
    const std::vector<Strs> pred{{"I-PER", "I-PER", "O", "B-LOC"}};
    const auto d = ner_report(gold, pred, def);
    CHECK(d.micro.f1 == Approx(1.0));
    NerOptions strict;
    strict.mode = NerMode::Strict;
    const auto s = ner_report(gold, pred, strict);
    // strict: pred has only LOC -> tp 1, pred 1, gold 2: P 1, R 0.5, F 2/3; PER: P = zd = 0.
    CHECK(s.micro.precision == Approx(1.0));
    CHECK(s.micro.recall == Approx(0.5));
    CHECK(s.micro.f1 == Approx(2.0 / 3));
    REQUIRE(s.labels == Strs{"LOC", "PER"});
    CHECK(s.per_label[1].precision == 0.0);
    CHECK(s.per_label[1].support == 1);
  }
  SECTION("entities never cross sentences") {
    const std::vector<Strs> gold{{"O", "I-A"}, {"I-A", "O"}};
    const auto t = ner_sentence_tallies(gold, gold, def);
    CHECK(t[0].at("A").gold == 1);
    CHECK(t[1].at("A").gold == 1);
  }
  SECTION("micro, macro, weighted over types") {
    // A: gold 1, pred 2, tp 1 -> P .5 R 1 F 2/3; B: gold 2, pred 1, tp 1 -> P 1 R .5 F 2/3.
    // micro tp 2 pred 3 gold 3 -> 2/3; macro P .75; weighted P (1*.5 + 2*1)/3 = 5/6.
    const std::vector<Strs> gold{{"B-A", "I-A", "O", "B-B"}, {"B-B", "O"}};
    const std::vector<Strs> pred{{"B-A", "I-A", "O", "B-A"}, {"B-B", "O"}};
    const auto r = ner_report(gold, pred, def);
    CHECK(r.micro.precision == Approx(2.0 / 3));
    CHECK(r.micro.f1 == Approx(2.0 / 3));
    CHECK(r.macro.precision == Approx(0.75));
    CHECK(r.weighted.precision == Approx(5.0 / 6));
    CHECK(r.weighted.recall == Approx(2.0 / 3));
  }
  SECTION("no predicted entities: P = zero_division, R = 0, F = 0") {
    const std::vector<Strs> gold{{"B-X", "O"}}, pred{{"O", "O"}};
    const auto r = ner_report(gold, pred, def);
    CHECK(r.micro.precision == 0.0);
    CHECK(r.micro.recall == 0.0);
    CHECK(r.micro.f1 == 0.0);
    NerOptions one;
    one.zero_division = ZeroDivision::One;
    const auto r1 = ner_report(gold, pred, one);
    CHECK(r1.micro.precision == 1.0);
    CHECK(r1.micro.f1 == 0.0);  // seqeval: 2*1*0/(1+0)
  }
  CHECK_THROWS_AS(extract_entities({"B_X"}, def), biolm::DataError);
}

TEST_CASE("NER strict mode: IOB2 and IOBES", "[eval][ner]") {
  NerOptions iob2;
  iob2.mode = NerMode::Strict;
  NerOptions iobes = iob2;
  iobes.scheme = NerScheme::IOBES;
  // IOB2: B-PER then I-LOC: PER ends validly at the type change; the orphan I-LOC is no entity.
  CHECK(extract_entities({"B-PER", "I-LOC"}, iob2) == std::vector<Entity>{{"PER", 0, 0}});
  CHECK(extract_entities({"B-X", "B-X", "I-X"}, iob2) == std::vector<Entity>{{"X", 0, 0}, {"X", 1, 2}});
  CHECK_THROWS_AS(extract_entities({"S-X"}, iob2), biolm::DataError);
  // IOBES: B-X I-X S-Y O -> B-X I-X never ends with E-: invalid; S-Y is an entity.
  CHECK(extract_entities({"B-X", "I-X", "S-Y", "O"}, iobes) == std::vector<Entity>{{"Y", 2, 2}});
  CHECK(extract_entities({"B-X", "I-X", "E-X", "S-X"}, iobes) ==
        std::vector<Entity>{{"X", 0, 2}, {"X", 3, 3}});
  CHECK(extract_entities({"B-X", "I-X", "I-Y", "E-Y"}, iobes).empty());
  CHECK(extract_entities({"I-X", "E-X"}, iobes).empty());
  // gold B-X E-X S-Y O / pred B-X I-X S-Y O: strict IOBES P 1 R .5; default mode scores 1.0
  // (default chunking takes B-X I-X as X(0,1)).
  const std::vector<Strs> gold{{"B-X", "E-X", "S-Y", "O"}}, pred{{"B-X", "I-X", "S-Y", "O"}};
  CHECK(ner_report(gold, pred, iobes).micro.recall == Approx(0.5));
  CHECK(ner_report(gold, pred, iobes).micro.precision == Approx(1.0));
  CHECK(ner_report(gold, pred, NerOptions{}).micro.f1 == Approx(1.0));
}

TEST_CASE("SQuAD v1.1 normalisation, exact match and token F1", "[eval][qa]") {
  CHECK(squad_normalize("The  Cat's hat!") == "cats hat");
  CHECK(squad_normalize("theory of a thing") == "theory of thing");
  CHECK(squad_normalize("Anne, an\tAN-apple") == "anne anapple");  // "AN-apple" -> "anapple"
  CHECK(squad_exact_match("An apple.", "apple") == 1.0);
  // pred tokens cat sat on mat, gold cat on mat: common 3, P 3/4, R 1, F 6/7.
  CHECK(squad_f1("the cat sat on the mat", "a cat on a mat") == Approx(6.0 / 7));
  // multiset overlap: x x y vs x y y -> common 2, P = R = 2/3.
  CHECK(squad_f1("x x y", "x y y") == Approx(2.0 / 3));
  const QaScore s = squad_score("Paris", {"London", "paris, France"});
  CHECK(s.exact_match == 0.0);
  CHECK(s.f1 == Approx(2.0 / 3));
  CHECK(squad_score("Paris", {"London", "Paris."}).exact_match == 1.0);
  // v1.1: two empty answers are an exact match, F1 0 (no shared token).
  CHECK(squad_exact_match("", "the") == 1.0);
  CHECK(squad_f1("", "") == 0.0);
  const QaScore c = squad_corpus({"Paris", "no"}, {{"paris"}, {"yes"}});
  CHECK(c.exact_match == Approx(0.5));
}

TEST_CASE("BLEU as NLTK computes it", "[eval][bleu]") {
  const std::string hyp = "the cat sat on the mat", ref = "the cat is on the mat";
  // Clipped matches 1..4-grams: 5/6, 3/5, 1/4, 0/3; lengths 6 and 6 -> BP 1.
  const auto st = bleu_stats(whitespace_tokens(hyp), {whitespace_tokens(ref)});
  CHECK(st.matches == std::array<int64_t, 4>{5, 3, 1, 0});
  CHECK(st.totals == std::array<int64_t, 4>{6, 5, 4, 3});
  CHECK(sentence_bleu(hyp, {ref}, {1, BleuSmoothing::None, false}) == Approx(5.0 / 6));
  CHECK(sentence_bleu(hyp, {ref}, {4, BleuSmoothing::None, false}) == 0.0);
  // method2: (5/6 * 4/6 * 2/5 * 1/4)^(1/4) = 0.0555...^(1/4) = 0.485492 (reference script).
  CHECK(sentence_bleu(hyp, {ref}) == Approx(std::pow(5.0 / 6 * 4.0 / 6 * 2.0 / 5 * 1.0 / 4, 0.25)));
  SECTION("corpus BLEU sums statistics before dividing; brevity penalty on total lengths") {
    // + hyp "a b" ref "a b c d": p1 = 7/8; c = 8, r = 10 -> BP exp(1 - 10/8) = exp(-0.25).
    const Strs hyps{hyp, "a b"};
    const std::vector<Strs> refs{{ref}, {"a b c d"}};
    CHECK(corpus_bleu(hyps, refs, {1, BleuSmoothing::None, false}) == Approx(0.875 * std::exp(-0.25)));
    // add-one for n >= 2: 7/8, (4+1)/(6+1), (1+1)/(5+1), (0+1)/(4+1); "a b" adds max(1,0) = 1
    // trigram and 4-gram to the denominators.
    CHECK(corpus_bleu(hyps, refs, {4, BleuSmoothing::AddOne, false}) ==
          Approx(std::exp(-0.25) * std::pow(7.0 / 8 * 5.0 / 7 * 2.0 / 6 * 1.0 / 5, 0.25)));
  }
  SECTION("empty hypotheses") {
    CHECK(sentence_bleu("", {"a b"}) == 0.0);
    // NLTK's max(1, .) denominator: the empty hypothesis still adds 1: p1 = 2/3; c 2, r 3.
    CHECK(corpus_bleu({"a b", ""}, {{"a b"}, {"c"}}, {1, BleuSmoothing::None, false}) ==
          Approx(2.0 / 3 * std::exp(1.0 - 1.5)));
  }
  SECTION("closest reference length, ties to the shorter") {
    // hyp of 3 tokens, references of 2 and 4: r = 2 -> BP 1 (r = 4 would give exp(-1/3)).
    CHECK(sentence_bleu("a b c", {"a b", "a b c d"}, {1, BleuSmoothing::None, false}) == Approx(1.0));
  }
}

TEST_CASE("ROUGE-L as rouge-score computes it", "[eval][rouge]") {
  CHECK(rouge_tokens("Hello-world,  CT-scan2 café") == Strs{"hello", "world", "ct", "scan2", "caf"});
  // target the cat sat on the mat (6), prediction the cat on a mat (5): LCS 4 (the cat on mat)
  // P 4/5, R 4/6, F = 2PR/(P+R) = 8/11.
  const RougeScore r = rouge_l("The cat sat on the mat.", "the cat on a mat!!");
  CHECK(r.precision == Approx(0.8));
  CHECK(r.recall == Approx(4.0 / 6));
  CHECK(r.fmeasure == Approx(8.0 / 11));
  CHECK(rouge_l("a b", "").fmeasure == 0.0);
  CHECK(rouge_l("a b", "!!!").fmeasure == 0.0);  // only punctuation -> no tokens
  CHECK(rouge_l("", "a").fmeasure == 0.0);
  CHECK(rouge_l_multi({"x y", "the cat on a mat"}, "the cat on a mat").fmeasure == Approx(1.0));
  CHECK(corpus_rouge_l({"a b", ""}, {{"a b"}, {"c"}}) == Approx(0.5));
}

TEST_CASE("Pearson and Spearman with tied ranks", "[eval][corr]") {
  const std::vector<double> x{1, 2, 3, 4, 5}, y{2, 4, 5, 4, 5};
  // dx -2..2, dy -2 0 1 0 1: r = 6 / sqrt(10 * 6).
  CHECK(pearson(x, y) == Approx(6.0 / std::sqrt(60.0)));
  // ranks of y with ties averaged: 1 2.5 4.5 2.5 4.5 -> r = 7 / sqrt(10 * 9).
  CHECK(average_ranks(y) == std::vector<double>{1, 2.5, 4.5, 2.5, 4.5});
  CHECK(spearman(x, y) == Approx(7.0 / std::sqrt(90.0)));
  CHECK(spearman(x, {5, 4, 3, 2, 1}) == Approx(-1.0));
  CHECK(std::isnan(pearson(x, {3, 3, 3, 3, 3})));
  CHECK_THROWS_AS(pearson({1.0}, {1.0}), biolm::Error);
}

TEST_CASE("bootstrap intervals: contain the estimate, shrink with n, fixed by the seed", "[eval][bootstrap]") {
  CHECK(quantile_sorted({1, 2, 3, 4}, 0.25) == Approx(1.75));  // numpy.quantile linear
  auto bernoulli = [](int64_t n, int64_t ones) {
    std::vector<double> v(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < n; i += n / ones) v[static_cast<size_t>(i)] = 1.0;
    return v;
  };
  auto mean_ci = [](const std::vector<double>& v, BootstrapOptions o) {
    return bootstrap_interval(
        static_cast<int64_t>(v.size()),
        [&](const std::vector<int64_t>& idx) {
          double s = 0;
          for (auto i : idx) s += v[static_cast<size_t>(i)];
          return s / static_cast<double>(idx.size());
        },
        o);
  };
  const auto small = bernoulli(40, 20), large = bernoulli(800, 400);
  const Interval a = mean_ci(small, {1000, 7, 0.95});
  const Interval b = mean_ci(large, {1000, 7, 0.95});
  CHECK(a.point == Approx(0.5));
  CHECK(a.lower <= a.point);
  CHECK(a.point <= a.upper);
  CHECK(b.lower <= b.point);
  CHECK(b.point <= b.upper);
  CHECK(b.upper - b.lower < 0.5 * (a.upper - a.lower));
  // Normal theory: width ~ 2 * 1.96 * sqrt(0.25 / 800) = 0.069.
  CHECK(b.upper - b.lower == Approx(0.069).margin(0.012));
  CHECK(b.n_valid == 1000);
  const Interval again = mean_ci(large, {1000, 7, 0.95});
  CHECK(again.lower == b.lower);
  CHECK(again.upper == b.upper);
  // Another seed draws other resamples (the small set's percentiles are coarse multiples of
  // 1/40 and may coincide, so compare the draws themselves and the fine-grained large set).
  const Interval other = mean_ci(large, {1000, 8, 0.95});
  CHECK((other.lower != b.lower || other.upper != b.upper));
  std::vector<int64_t> d7, d8;
  ResampleGenerator g7(7), g8(8);
  g7.draw(50, d7);
  g8.draw(50, d8);
  CHECK(d7 != d8);
  SECTION("paired test: clearly better system -> small p; identical systems -> p = 1") {
    std::vector<double> good(200), bad(200);
    for (size_t i = 0; i < 200; ++i) {
      good[i] = i % 10 != 0 ? 1.0 : 0.0;  // 90% correct
      bad[i] = i % 10 < 6 ? 1.0 : 0.0;    // 60% correct
    }
    auto acc_of = [](const std::vector<double>& v) {
      return [&v](const std::vector<int64_t>& idx) {
        double s = 0;
        for (auto i : idx) s += v[static_cast<size_t>(i)];
        return s / static_cast<double>(idx.size());
      };
    };
    const auto r = paired_bootstrap(200, acc_of(good), acc_of(bad), {1000, 3, 0.95});
    CHECK(r.delta == Approx(0.3));
    CHECK(r.p_value < 0.01);
    CHECK(r.delta_interval.lower > 0.0);
    const auto same = paired_bootstrap(200, acc_of(good), acc_of(good), {1000, 3, 0.95});
    CHECK(same.p_value == 1.0);
    CHECK(same.a_wins == 0);
    // Slightly better (61% vs 60%) is not significant.
    std::vector<double> slightly(bad);
    slightly[7] = 1.0;
    CHECK(paired_bootstrap(200, acc_of(slightly), acc_of(bad), {1000, 3, 0.95}).p_value > 0.1);
  }
}

TEST_CASE("metrics from files: formats, intervals and errors", "[eval][files]") {
  biolm::test::TempDir dir("evalfiles");
  SECTION("ner CoNLL, default and strict") {
    biolm::test::write_text(dir / "gold.conll",
                            "-DOCSTART- O\n\nJohn B-PER\nSmith I-PER\nin O\nParis B-LOC\n\nHe O\n");
    biolm::test::write_text(dir / "pred.conll", "John I-PER\nSmith I-PER\nin O\nParis B-LOC\n\nHe O\n");
    FileMetricOptions o;
    const auto d = file_metrics(MetricTask::Ner, dir / "gold.conll", dir / "pred.conll", o);
    CHECK(d["f1"].get<double>() == Approx(1.0));
    CHECK(d["n_sentences"] == 2);
    o.ner.mode = NerMode::Strict;
    const auto s = file_metrics(MetricTask::Ner, dir / "gold.conll", dir / "pred.conll", o);
    CHECK(s["recall"].get<double>() == Approx(0.5));
    CHECK(s["per_type"]["PER"]["support"] == 1);
    CHECK(s["scheme"] == "IOB2");
    biolm::test::write_text(dir / "bad.conll", "John I-PER\nSmith I_PER\nin O\nParis B-LOC\n\nHe O\n");
    try {
      file_metrics(MetricTask::Ner, dir / "gold.conll", dir / "bad.conll", o);
      FAIL("expected a DataError");
    } catch (const biolm::DataError& e) {
      CHECK_THAT(e.what(), Catch::Contains("bad.conll:2:"));
      CHECK(e.line() == 2);
    }
  }
  SECTION("cls with bootstrap; mismatched line counts name both files") {
    biolm::test::write_text(dir / "g.txt", "a\nb\nb\nc\n");
    biolm::test::write_text(dir / "p.txt", "a\nb\nc\nc\n");
    FileMetricOptions o;
    o.bootstrap = BootstrapOptions{200, 1, 0.95};
    const auto r = file_metrics(MetricTask::Cls, dir / "g.txt", dir / "p.txt", o);
    CHECK(r["accuracy"].get<double>() == Approx(0.75));
    CHECK(r["macro"]["f1"].get<double>() == Approx(7.0 / 9));
    REQUIRE(r["accuracy_ci"].size() == 2);
    CHECK(r["accuracy_ci"][0].get<double>() <= 0.75);
    CHECK(r["accuracy_ci"][1].get<double>() >= 0.75);
    CHECK(r["per_class"]["b"].contains("f1_ci"));
    CHECK_FALSE(r["per_class"]["b"].contains("support_ci"));
    biolm::test::write_text(dir / "short.txt", "a\nb\n");
    try {
      file_metrics(MetricTask::Cls, dir / "g.txt", dir / "short.txt");
      FAIL("expected a DataError");
    } catch (const biolm::DataError& e) {
      CHECK_THAT(e.what(), Catch::Contains("short.txt") && Catch::Contains("g.txt"));
    }
    biolm::test::write_text(dir / "blank.txt", "a\n \nb\nc\n");
    CHECK_THROWS_WITH(file_metrics(MetricTask::Cls, dir / "g.txt", dir / "blank.txt"),
                      Catch::Contains("blank.txt:2:"));
  }
  SECTION("corr, text, qa, re") {
    biolm::test::write_text(dir / "g.txt", "1\n2\n3\n4\n5\n");
    biolm::test::write_text(dir / "p.txt", "2\n4\n5\n4\n5\n");
    const auto c = file_metrics(MetricTask::Corr, dir / "g.txt", dir / "p.txt");
    CHECK(c["spearman"].get<double>() == Approx(7.0 / std::sqrt(90.0)));
    biolm::test::write_text(dir / "bad.txt", "2\n4\nfive\n4\n5\n");
    CHECK_THROWS_WITH(file_metrics(MetricTask::Corr, dir / "g.txt", dir / "bad.txt"),
                      Catch::Contains("bad.txt:3:"));
    biolm::test::write_text(dir / "gt.txt", "the cat is on the mat\na b c d\n");
    biolm::test::write_text(dir / "pt.txt", "the cat sat on the mat\na b\n");
    const auto t = file_metrics(MetricTask::Text, dir / "gt.txt", dir / "pt.txt");
    CHECK(t["bleu1"].get<double>() == Approx(0.875 * std::exp(-0.25)));
    CHECK(t["bleu4"].get<double>() == 0.0);
    // ROUGE-L F: line 1 LCS 5 of 6/6 -> 5/6; line 2 P 1 R .5 -> 2/3; mean 0.75.
    CHECK(t["rougeL"].get<double>() == Approx(0.75));
    biolm::test::write_text(dir / "gq.txt", "Paris ||| the city of Paris\nyes\n");
    biolm::test::write_text(dir / "pq.txt", "city of paris\nno\n");
    const auto q = file_metrics(MetricTask::Qa, dir / "gq.txt", dir / "pq.txt");
    CHECK(q["exact_match"].get<double>() == Approx(0.5));
    CHECK(q["f1"].get<double>() == Approx(0.5));
    biolm::test::write_text(dir / "gr.txt", "false\nCPR:3\nCPR:4\nCPR:3\nfalse\n");
    biolm::test::write_text(dir / "pr.txt", "CPR:3\nCPR:3\nfalse\nCPR:4\nfalse\n");
    const auto re = file_metrics(MetricTask::Re, dir / "gr.txt", dir / "pr.txt");
    CHECK(re["f1"].get<double>() == Approx(1.0 / 3));
  }
  CHECK_THROWS_AS(parse_metric_task("pos"), biolm::ConfigError);
  CHECK(parse_ner_scheme("iobes") == NerScheme::IOBES);
}

// ---- parity additions (issue #16): each expectation is a hand derivation or the reference's
// own output, printed by the one-liner named beside it (reference venv, tests/parity/).
TEST_CASE("NER tags seqeval accepts: bare prefixes, empty and dashed types", "[eval][ner]") {
  const NerOptions def;
  NerOptions strict;
  strict.mode = NerMode::Strict;
  // seqeval: "B" / "I" carry type "_"; B I is one chunk (0, 1).
  CHECK(extract_entities({"B", "I"}, def) == std::vector<Entity>{{"_", 0, 1}});
  CHECK(extract_entities({"B-", "I-"}, def) == std::vector<Entity>{{"_", 0, 1}});
  // default type = chunk[1:].split("-", 1)[-1]; strict (scheme.Token) = chunk[1:].strip("-").
  CHECK(extract_entities({"B--X-"}, def) == std::vector<Entity>{{"-X-", 0, 0}});
  CHECK(extract_entities({"B--X-"}, strict) == std::vector<Entity>{{"X", 0, 0}});
  CHECK_THROWS_AS(extract_entities({"BX"}, def), biolm::DataError);
  CHECK_THROWS_AS(extract_entities({"U-X"}, def), biolm::DataError);
  // No entity anywhere: micro = zero_division, macro = np.average([]) = nan (seqeval).
  const auto empty = ner_report({{"O"}}, {{"O"}});
  CHECK(empty.micro.f1 == 0.0);
  CHECK(std::isnan(empty.macro.f1));
  // Gold without entities, zero_division=1: weighted = (0, 1, 0) as seqeval returns it.
  NerOptions one;
  one.zero_division = ZeroDivision::One;
  const auto w = ner_report({{"O", "O"}}, {{"B-X", "O"}}, one);
  CHECK(w.weighted.precision == 0.0);
  CHECK(w.weighted.recall == 1.0);
  CHECK(w.weighted.f1 == 0.0);
}

TEST_CASE("weighted average over labels without support is sklearn's unweighted mean", "[eval][cls]") {
  // labels {b (predicted once, never gold), z (absent)}, zero_division=1: P = (0 + 1) / 2.
  const auto r = classification_report({"a", "a"}, {"a", "b"}, {{"b", "z"}, ZeroDivision::One});
  CHECK(r.prf.weighted.precision == Approx(0.5));
  CHECK(r.prf.weighted.recall == Approx(1.0));
  CHECK(r.prf.weighted.f1 == Approx(0.5));
}

TEST_CASE("Python string semantics in SQuAD, BLEU and ROUGE tokens", "[eval][qa][unicode]") {
  // normalize_answer (python -c 'print(repr(normalize_answer(s)))' with the official function):
  // "İ".lower() = "i\u0307"; U+0307 is no \w, so the "a" after it is a whole word and goes.
  CHECK(squad_normalize("\u0130a") == "i\u0307");
  CHECK(squad_normalize("THE\u00a0CAT") == "cat");  // NBSP separates (\b, split())
  CHECK(squad_normalize("\u038c\u03a3\u039f\u03a3 a") == "\u03cc\u03c3\u03bf\u03c2");  // final sigma
  CHECK(squad_normalize("Die  Stra\u00dfe!") == "die stra\u00dfe");
  CHECK(squad_exact_match("\u00c9cole", "\u00e9cole") == 1.0);
  CHECK(whitespace_tokens("a\u00a0b\u3000c\u2003d") == Strs{"a", "b", "c", "d"});
  CHECK(whitespace_tokens("a\u200bb") == Strs{"a\u200bb"});  // ZERO WIDTH SPACE is no space
  CHECK(rouge_tokens("\u212aelvin \u0130") == Strs{"kelvin", "i"});  // KELVIN SIGN -> k
}

TEST_CASE("SQuAD v2.0: no-answer questions, thresholds, best threshold", "[eval][qa]") {
  // q0 answer "Paris", predicted "paris"; q1 no answer, predicted ""; q2 no answer, "London".
  const std::vector<std::vector<std::string>> golds{{"Paris"}, {}, {}};
  const std::vector<std::string> preds{"paris", "", "London"};
  const auto r = squad2_evaluate(preds, golds, {0.2, 0.9, 0.6});
  CHECK(r.all.exact == Approx(2.0 / 3));
  CHECK(r.has_ans->exact == 1.0);
  CHECK(r.no_ans->f1 == Approx(0.5));
  CHECK(r.no_ans->total == 2);
  // find_best_thresh: start 2 (no-answer count); q0 (0.2) +1 -> 3 best, q2 (0.6) -1, q1 (0.9) 0.
  CHECK(*r.best_exact == Approx(1.0));
  CHECK(*r.best_exact_thresh == Approx(0.2));
  CHECK(*r.best_f1_thresh == Approx(0.2));
  // na_prob_thresh 0.5: q1 and q2 are predicted unanswerable and score 1.
  CHECK(squad2_evaluate(preds, golds, {0.2, 0.9, 0.6}, 0.5).all.exact == Approx(1.0));
  CHECK_FALSE(squad2_evaluate(preds, golds).best_exact.has_value());
  // compute_f1: both empty -> 1; "the" normalizes to "" so the gold becomes "" (answerable still).
  CHECK(squad2_f1("", "") == 1.0);
  CHECK(squad2_f1("a", "x") == 0.0);
  const auto art = squad2_evaluate({""}, {{"the"}});
  CHECK(art.all.f1 == 1.0);
  CHECK(art.has_ans.has_value());
}

TEST_CASE("sacrebleu: 13a tokenizer and corpus BLEU", "[eval][bleu]") {
  // sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a()(s):
  CHECK(tokenize_13a("Hello, world. 3.14 a-b 1-2 &amp; (x) \"q\" 1,000.5 end.") ==
        "Hello , world . 3.14 a-b 1 - 2 & ( x ) \" q \" 1,000.5 end .");
  // hyps "The cat sat on the mat." / "a b c d", refs "The cat is on the mat." / "a b c e":
  // 13a splits the final "."; p1 = 9/11, p2 = 6/9, p3 = 3/7, p4 = 1/5, BP = 1 (11 vs 11).
  // sacrebleu.corpus_bleu(...).score = 46.49999903730473.
  const double expected = 100.0 * std::pow(9.0 / 11 * 6.0 / 9 * 3.0 / 7 * 1.0 / 5, 0.25);
  CHECK(sacrebleu_corpus({"The cat sat on the mat.", "a b c d"}, {{"The cat is on the mat."}, {"a b c e"}}) ==
        Approx(expected).epsilon(1e-12));
  // exp smoothing: "a b" vs "a c": p1 = 1/2, p2 = 0/1 -> 100/(2*1), p3, p4: no n-grams -> 0.
  CHECK(sacrebleu_corpus({"a b"}, {{"a c"}}) == 0.0);
  // "a b c" vs "a b d": p1 2/3, p2 1/2, p3 0/1 -> 100/(2*1) = 50 %, p4 no 4-grams -> BLEU 0.
  CHECK(sacrebleu_corpus({"a b c"}, {{"a b d"}}) == 0.0);
  // "a b c d" vs "a b c e": p4 0/1 -> 100/2 %: 100 * (3/4 * 2/3 * 1/2 * 1/2)^(1/4).
  CHECK(sacrebleu_corpus({"a b c d"}, {{"a b c e"}}) == Approx(100.0 * std::pow(0.75 * 2.0 / 3 * 0.5 * 0.5, 0.25)));
  CHECK(sacrebleu_corpus({""}, {{"a"}}) == 0.0);
}

TEST_CASE("ROUGE-L with rouge-score's Porter stemmer", "[eval][rouge]") {
  // nltk PorterStemmer().stem: relational -> relat, ponies -> poni; tokens of <= 3 characters
  // are not stemmed. RougeScorer(["rougeL"], use_stemmer=True).score("the relational ponies",
  // "relate pony"): LCS 2 of 3 target / 2 prediction tokens -> P 1, R 2/3, F 0.8.
  CHECK(rouge_tokens("The relational PONIES skies dying agreed", true) ==
        Strs{"the", "relat", "poni", "sky", "die", "agre"});
  const RougeScore r = rouge_l("the relational ponies", "relate pony", true);
  CHECK(r.precision == Approx(1.0));
  CHECK(r.recall == Approx(2.0 / 3));
  CHECK(r.fmeasure == Approx(0.8));
  CHECK(rouge_l("the relational ponies", "relate pony").fmeasure == 0.0);
}

TEST_CASE("metrics batches: one result per case, refusals inline", "[eval][files]") {
  biolm::test::TempDir dir("metrics_cases");
  biolm::test::write_text(
      dir / "cases.jsonl",
      R"({"id": 1, "task": "cls", "gold": ["a", "b"], "pred": ["a", "a"]})"
      "\n\n"
      R"({"id": "two", "task": "corr", "gold": [1], "pred": [2]})"
      "\n"
      R"({"task": "qa", "squad_version": "2.0", "gold": [[], ["x"]], "pred": ["", "x"], "na_probs": [0.1, 0.2]})"
      "\n"
      R"({"task": "cls", "gold": ["a"], "pred": ["a"], "colour": 1})"
      "\n"
      // Resamples without an answerable (or unanswerable) question keep the split, as NaN.
      R"({"task": "qa", "squad_version": "2.0", "gold": [[], ["x"]], "pred": ["", "y"], "bootstrap": 50, "seed": 3})"
      "\n");
  const auto out = metrics_for_cases(dir / "cases.jsonl");
  REQUIRE(out.size() == 5);
  CHECK(out[4]["has_ans"]["f1_ci"].size() == 2);
  CHECK(out[4]["no_ans"]["exact_match"].get<double>() == 1.0);
  CHECK(out[0]["id"] == 1);
  CHECK(out[0]["accuracy"].get<double>() == Approx(0.5));
  CHECK(out[1]["id"] == "two");
  CHECK(out[1]["line"] == 3);
  CHECK(out[1]["error"].get<std::string>().find("at least 2") != std::string::npos);
  CHECK(out[2]["exact_match"].get<double>() == 1.0);
  CHECK(out[2]["best_f1"].get<double>() == 1.0);
  CHECK(out[3]["error"].get<std::string>().find("colour") != std::string::npos);
}

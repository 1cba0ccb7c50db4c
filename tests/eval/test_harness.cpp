// Tests for the zero-/few-shot harness (on a tiny bigram decoder whose log-likelihoods the test
// recomputes with plain loops) and for reports.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <cmath>
#include <fstream>

#include "biolm/core/error.h"
#include "biolm/eval/harness.h"
#include "biolm/eval/report.h"
#include "support/test_util.h"

using namespace biolm::eval;
using Strs = std::vector<std::string>;

namespace {

// Characters ' '..'~' -> ids 2..96, '\n' -> 97; 0 = BOS, 1 = PAD.
class CharTokenizer : public biolm::tokenize::Tokenizer {
 public:
  CharTokenizer() { special_.bos = 0; special_.pad = 1; }
  biolm::tokenize::Encoding encode(std::string_view text, bool add_special) const override {
    biolm::tokenize::Encoding e;
    if (add_special) {
      e.ids.push_back(0);
      e.offsets.push_back({0, 0});
      e.word_ids.push_back(-1);
    }
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      e.ids.push_back(char_id(c));
      e.offsets.push_back({static_cast<int64_t>(i), static_cast<int64_t>(i + 1)});
      e.word_ids.push_back(0);
    }
    return e;
  }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    std::string s;
    for (auto id : ids) {
      if (id == 97) s.push_back('\n');
      if (id >= 2 && id < 97) s.push_back(static_cast<char>(id - 2 + ' '));
    }
    return s;
  }
  int64_t vocab_size() const override { return 98; }
  std::optional<int64_t> token_to_id(std::string_view t) const override {
    if (t.size() != 1) return std::nullopt;
    return char_id(t[0]);
  }
  static int64_t char_id(char c) {
    if (c == '\n') return 97;
    if (c < ' ' || c > '~') throw biolm::Error("CharTokenizer: character outside ' '..'~' and newline");
    return c - ' ' + 2;
  }
  std::string id_to_token(int64_t id) const override { return decode({id}, true); }
  const biolm::tokenize::SpecialTokens& special() const override { return special_; }
  std::string kind() const override { return "char"; }
  std::string fingerprint() const override { return "char-97"; }
  void save(const std::filesystem::path&) const override {}
  biolm::tokenize::Encoding encode_words(const std::vector<std::string>& words, bool add_special) const override {
    std::string joined;
    for (const auto& w : words) joined += (joined.empty() ? "" : " ") + w;
    return encode(joined, add_special);
  }

 private:
  biolm::tokenize::SpecialTokens special_;
};

// A bigram LM: logits[b, t] = W[ids[b, t]], W fixed from a sine (no RNG).
class BigramScorer : public CausalScorer {
 public:
  BigramScorer() {
    W = torch::empty({98, 98});
    auto a = W.accessor<float, 2>();
    for (int i = 0; i < 98; ++i) {
      for (int j = 0; j < 98; ++j) a[i][j] = static_cast<float>(2.0 * std::sin(0.7 * i + 1.3 * j + 0.01 * i * j));
    }
    emb = torch::nn::Embedding(torch::nn::EmbeddingOptions(98, 98));
    emb->weight.set_data(W.clone());
  }
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& mask) override {
    ++calls;
    last_mask = mask.clone();
    return emb(ids);  // (B,T,V)
  }
  // log p(next | prev), plain loops over a log-softmax of W's row in double.
  double log_prob(int64_t prev, int64_t next) const {
    auto a = W.accessor<float, 2>();
    double m = -1e300;
    for (int j = 0; j < 98; ++j) m = std::max(m, static_cast<double>(a[prev][j]));
    double z = 0.0;
    for (int j = 0; j < 98; ++j) z += std::exp(static_cast<double>(a[prev][j]) - m);
    return static_cast<double>(a[prev][next]) - m - std::log(z);
  }
  torch::Tensor W;
  torch::nn::Embedding emb{nullptr};
  int calls = 0;
  torch::Tensor last_mask;
};

// Independent log-likelihood of `cont` after BOS + `ctx` with the char tokenizer.
double reference_loglik(const BigramScorer& s, const std::string& ctx, const std::string& cont) {
  std::vector<int64_t> ids{0};
  for (char c : ctx + cont) ids.push_back(CharTokenizer::char_id(c));
  double ll = 0.0;
  for (size_t i = ids.size() - cont.size(); i < ids.size(); ++i) ll += s.log_prob(ids[i - 1], ids[i]);
  return ll;
}

}  // namespace

TEST_CASE("MCQA scorer picks the highest total and normalised log-likelihood", "[eval][harness]") {
  torch::NoGradGuard no_grad;
  BigramScorer scorer;
  CharTokenizer tok;
  const Strs prompts{"Question: Is aspirin an NSAID?\nAnswer:", "Q: x\nA:", "Abstract: ok\nAnswer:",
                     "Does it work?", "Answer:", "zz", "Is the drug safe?\nAnswer:", "p"};
  const Strs choices{" yes", " no", " maybe"};
  int disagreements = 0;
  for (const auto& p : prompts) {
    const ChoiceScores s = score_choices(scorer, tok, p, choices, {BosPolicy::Tokenizer, 2, 0});
    std::vector<double> ref, ref_norm;
    for (const auto& c : choices) {
      ref.push_back(reference_loglik(scorer, p, c));
      ref_norm.push_back(ref.back() / static_cast<double>(c.size() - 1));  // characters of "yes"
    }
    for (size_t i = 0; i < choices.size(); ++i) {
      CHECK(s.loglik[i] == Approx(ref[i]).epsilon(1e-12).margin(1e-9));
      CHECK(s.loglik_norm[i] == Approx(ref_norm[i]).epsilon(1e-12).margin(1e-9));
    }
    CHECK(s.pred == std::max_element(ref.begin(), ref.end()) - ref.begin());
    CHECK(s.pred_norm == std::max_element(ref_norm.begin(), ref_norm.end()) - ref_norm.begin());
    disagreements += s.pred != s.pred_norm ? 1 : 0;
  }
  // The prompts were chosen so that acc and acc_norm disagree at least once here.
  CHECK(disagreements > 0);

  SECTION("batching, padding and trailing spaces change nothing") {
    const auto one = loglikelihoods(scorer, tok, {{"Answer:", " yes"}, {"A much longer context:", " no"}}, {BosPolicy::Tokenizer, 1, 0});
    const auto two = loglikelihoods(scorer, tok, {{"Answer:", " yes"}, {"A much longer context:", " no"}}, {BosPolicy::Tokenizer, 8, 0});
    CHECK(one[0].loglik == Approx(two[0].loglik).epsilon(1e-12));
    CHECK(one[1].loglik == Approx(two[1].loglik).epsilon(1e-12));
    CHECK(scorer.last_mask.sum().item<int64_t>() == (1 + 7 + 4 - 1) + (1 + 22 + 3 - 1));  // BOS + context + continuation - 1
    const auto moved = loglikelihoods(scorer, tok, {{"Answer: ", "yes"}}, {});
    CHECK(moved[0].loglik == Approx(two[0].loglik).epsilon(1e-12));
    CHECK(moved[0].n_tokens == 4);
  }
  SECTION("BOS as the tokenizer adds it (lm-eval), always, never; an empty context is the BOS") {
    // CharTokenizer adds BOS itself with add_special: Tokenizer and Always give BOS + "Answer:" +
    // " ye" (7 + 3 tokens), Never drops the BOS.
    for (auto [policy, width] : {std::pair{BosPolicy::Tokenizer, 11}, {BosPolicy::Always, 11}, {BosPolicy::Never, 10}}) {
      loglikelihoods(scorer, tok, {{"Answer:", " yes"}}, {policy, 1, 0});
      CHECK(scorer.last_mask.size(1) == width);
    }
    // lm-eval loglikelihood(): context "" -> [BOS], the whole continuation is scored.
    const auto empty = loglikelihoods(scorer, tok, {{"", "ab"}}, {});
    CHECK(empty[0].n_tokens == 2);
    CHECK(empty[0].loglik == Approx(reference_loglik(scorer, "", "ab")).epsilon(1e-12));
  }
  SECTION("acc_norm divides by len(choice) as it is: surrounding spaces count") {
    const auto s = score_choices(scorer, tok, "Answer:", {" yes ", " no"}, {});
    CHECK(s.loglik_norm[0] == Approx(s.loglik[0] / 4.0).epsilon(1e-12));  // "yes " (lm-eval len 4)
    CHECK(s.loglik_norm[1] == Approx(s.loglik[1] / 2.0).epsilon(1e-12));
  }
  SECTION("left truncation to max_length") {
    // Bigram model: only the previous token matters, so truncation keeps the value.
    const auto full = loglikelihoods(scorer, tok, {{"a long context here", " yes"}}, {BosPolicy::Tokenizer, 4, 0});
    const auto cut = loglikelihoods(scorer, tok, {{"a long context here", " yes"}}, {BosPolicy::Tokenizer, 4, 6});
    CHECK(cut[0].loglik == Approx(full[0].loglik).epsilon(1e-12));
    CHECK(scorer.last_mask.size(1) == 6);
    CHECK_THROWS_AS(loglikelihoods(scorer, tok, {{"ctx", " a long answer"}}, {BosPolicy::Tokenizer, 4, 3}), biolm::ConfigError);
  }
  SECTION("evaluate_mcqa_loglik: acc from the same scores, with intervals") {
    std::vector<McqaExample> exs;
    for (size_t i = 0; i < prompts.size(); ++i) {
      exs.push_back(pubmedqa_example("abstract " + std::to_string(i), prompts[i], i % 2 ? "no" : "yes"));
    }
    PromptOptions po;
    po.format = ChoiceFormat::Texts;
    const McqaResult r = evaluate_mcqa_loglik(scorer, tok, exs, exs, po, {}, {200, 1, 0.95});
    double acc = 0, acc_norm = 0;
    for (size_t i = 0; i < exs.size(); ++i) {
      const std::string prompt = build_prompt(exs[i], static_cast<int64_t>(i), exs, po);
      std::vector<double> ref;
      for (const auto& c : exs[i].choices) ref.push_back(reference_loglik(scorer, prompt, " " + c));
      const auto best = std::max_element(ref.begin(), ref.end()) - ref.begin();
      CHECK(r.scores[i].pred == best);
      acc += best == exs[i].answer ? 1 : 0;
      acc_norm += r.scores[i].pred_norm == exs[i].answer ? 1 : 0;
    }
    CHECK(r.acc.point == Approx(acc / exs.size()));
    CHECK(r.acc_norm.point == Approx(acc_norm / exs.size()));
    CHECK(r.acc.lower <= r.acc.point);
    CHECK(r.acc.point <= r.acc.upper);
    po.chain_of_thought = true;
    CHECK_THROWS_AS(evaluate_mcqa_loglik(scorer, tok, exs, exs, po), biolm::ConfigError);
  }
}

TEST_CASE("few-shot prompts: seeded, distinct, never the evaluated example", "[eval][harness]") {
  for (int64_t i = 0; i < 10; ++i) {
    const auto s = draw_shots(10, 4, 99, i, i);
    REQUIRE(s.size() == 4);
    CHECK(std::find(s.begin(), s.end(), i) == s.end());
    CHECK(std::set<int64_t>(s.begin(), s.end()).size() == 4);
    CHECK(s == draw_shots(10, 4, 99, i, i));
  }
  CHECK(draw_shots(10, 4, 99, 0, -1) != draw_shots(10, 4, 100, 0, -1));
  CHECK_THROWS_AS(draw_shots(3, 3, 1, 0, 0), biolm::ConfigError);
  std::vector<McqaExample> pool;
  for (int i = 0; i < 5; ++i) pool.push_back({"q" + std::to_string(i), {"x", "y"}, i % 2, "", "because " + std::to_string(i)});
  PromptOptions po;
  po.k_shot = 2;
  po.pool_is_eval_set = true;
  po.description = "Medical questions.";
  const std::string p = build_prompt(pool[0], 0, pool, po);
  CHECK(p.rfind("Medical questions.\n\n", 0) == 0);
  CHECK(p.find("Question: q0\n") == p.size() - std::string("Question: q0\nA. x\nB. y\nAnswer:").size());
  size_t shots = 0;
  for (size_t pos = p.find("Answer: "); pos != std::string::npos; pos = p.find("Answer: ", pos + 1)) ++shots;
  CHECK(shots == 2);
  po.chain_of_thought = true;
  const std::string cot = build_prompt(pool[0], 0, pool, po);
  CHECK(cot.find("The answer is (") != std::string::npos);
  const std::string tail = "Answer: Let's think step by step.";
  CHECK(cot.substr(cot.size() - tail.size()) == tail);
}

TEST_CASE("answer extraction without regular expressions", "[eval][harness]") {
  const Strs abcd{"w", "x", "y", "z"};
  CHECK(extract_choice("First... so the answer is (C).", abcd, ChoiceFormat::Letters) == 2);
  CHECK(extract_choice("The Answer is: b", abcd, ChoiceFormat::Letters) == 1);
  CHECK(extract_choice("answer is A, not the answer is D", abcd, ChoiceFormat::Letters) == 3);
  CHECK(extract_choice("B) because", abcd, ChoiceFormat::Letters) == 1);
  CHECK_FALSE(extract_choice("I think E", abcd, ChoiceFormat::Letters).has_value());
  const Strs ynm{"yes", "no", "maybe"};
  CHECK(extract_choice("Answer: Maybe.", ynm, ChoiceFormat::Texts) == 2);
  CHECK(extract_choice("No, it does not.", ynm, ChoiceFormat::Texts) == 1);
  CHECK_FALSE(extract_choice("nothing", ynm, ChoiceFormat::Texts).has_value());
  CHECK(extract_free_answer("Reasoning.\nSo the answer is aspirin.\nmore") == "aspirin");
  CHECK(extract_free_answer("\n  BRCA1.\nextra") == "BRCA1");

  std::vector<McqaExample> exs{{"q0", abcd, 2, "", ""}, {"q1", abcd, 0, "", ""}, {"q2", abcd, 1, "", ""}};
  PromptOptions po;
  po.chain_of_thought = true;
  std::vector<std::string> seen;
  const auto r = evaluate_mcqa_generate(
      [&](const std::string& prompt) {
        seen.push_back(prompt);
        return seen.size() == 1 ? std::string("so the answer is (C).") : seen.size() == 2 ? "The answer is B" : "unsure";
      },
      exs, {}, po, {100, 1, 0.95});
  CHECK(r.pred == std::vector<int64_t>{2, 1, -1});
  CHECK(r.n_unparsed == 1);
  CHECK(r.acc.point == Approx(1.0 / 3));
  CHECK(seen[0].find("Let's think step by step.") != std::string::npos);

  std::vector<QaExample> qa{{"Which gene?", "ctx", {"BRCA1", "brca-1 gene"}}, {"Drug?", "", {"aspirin"}}};
  const auto q = evaluate_qa_generate(
      [](const std::string& prompt) {
        return prompt.find("gene") != std::string::npos ? std::string("The answer is BRCA1.") : "ibuprofen\n";
      },
      qa, {}, PromptOptions{}, {100, 1, 0.95});
  CHECK(q.answers == Strs{"BRCA1", "ibuprofen"});
  CHECK(q.exact_match.point == Approx(0.5));
  CHECK(q.f1.point == Approx(0.5));
  CHECK(q.rouge_l.point == Approx(0.5));
  // corpus BLEU-1: hyps BRCA1 (matches ref 1), ibuprofen (no match): p1 = 1/2; c 2, r 1+1 -> BP 1.
  CHECK(q.bleu1.point == Approx(0.5));
}

TEST_CASE("reports: JSON, markdown table with intervals, SVG curves, biolm-metrics output", "[eval][report]") {
  biolm::test::TempDir dir("evalreport");
  std::filesystem::create_directories(dir / "zero");
  std::filesystem::create_directories(dir / "lora");
  biolm::test::write_text(dir / "zero" / "results.json",
                          R"({"name": "zero-shot", "tasks": {"pubmedqa": {"acc": {"value": 0.55, "ci": [0.5, 0.6]}}}})");
  // The lora run pastes `biolm metrics` output as its task metrics.
  biolm::test::write_text(dir / "lora" / "results.json",
                          R"({"tasks": {"pubmedqa": {"acc": 0.8123, "acc_ci": [0.7901, 0.8349]},
                               "ncbi": {"task": "ner", "n_sentences": 3, "f1": 0.9, "macro": {"f1": 0.8}}}})");
  biolm::test::write_text(dir / "lora" / "metrics.jsonl",
                          "{\"step\": 1, \"loss\": 2.5, \"lr\": 0.001}\n{\"step\": 2, \"loss\": 2.0}\n"
                          "{\"step\": 3, \"loss\": 1.5, \"eval_f1\": 0.7}\n");
  std::vector<RunResult> runs{load_run(dir / "zero"), load_run(dir / "lora")};
  CHECK(runs[1].name == "lora");
  REQUIRE(runs[1].find("pubmedqa", "acc") != nullptr);
  CHECK(format_metric(*runs[1].find("pubmedqa", "acc")) == "0.812 [0.790, 0.835]");
  CHECK(runs[1].find("ncbi", "macro.f1")->value == Approx(0.8));
  CHECK(runs[1].find("ncbi", "n_sentences") == nullptr);
  CHECK(runs[1].curves.at("loss").size() == 3);
  const std::string md = markdown_table(runs);
  CHECK(md.find("| run | pubmedqa/acc | ncbi/f1 | ncbi/macro.f1 |") != std::string::npos);
  CHECK(md.find("| zero-shot | 0.550 [0.500, 0.600] | – | – |") != std::string::npos);
  CHECK(md.find("| lora | 0.812 [0.790, 0.835] | 0.900 | 0.800 |") != std::string::npos);
  write_report(runs, dir / "out");
  const std::string svg = biolm::test::read_text(dir / "out" / "curves.svg");
  size_t lines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
  CHECK(lines == 3);  // eval_f1, loss, lr: one run has curves
  CHECK(svg.find(">eval_f1<") != std::string::npos);
  const auto j = nlohmann::json::parse(biolm::test::read_text(dir / "out" / "report.json"));
  CHECK(j["runs"][1]["tasks"]["pubmedqa"]["acc"]["ci"][1].get<double>() == Approx(0.8349));
  CHECK(biolm::test::read_text(dir / "out" / "report.md").find("0.812 [0.790, 0.835]") != std::string::npos);
  // A malformed metrics line names file and line.
  biolm::test::write_text(dir / "lora" / "metrics.jsonl", "{\"step\": 1, \"loss\": 2}\n{\"loss\": 1}\n");
  CHECK_THROWS_WITH(load_run(dir / "lora"), Catch::Contains("metrics.jsonl:2:") && Catch::Contains("step"));
  CHECK_THROWS_AS(load_run(dir / "missing"), biolm::IoError);
}

// tests/tasks/test_tasks.cpp: the task families (featurize / predict / score / write_predictions,
// best_span, pack_rows) against hand-built inputs and hand-computed metric values.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <map>

#include "biolm/core/error.h"
#include "biolm/core/seed.h"
#include "biolm/data/collate.h"
#include "biolm/data/tasks.h"
#include "biolm/io/model_dir.h"
#include "biolm/peft/method.h"
#include "biolm/models/task_model.h"
#include "biolm/tasks/classification.h"
#include "biolm/tasks/instruct.h"
#include "biolm/tasks/ner.h"
#include "biolm/tasks/qa_span.h"
#include "biolm/tokenize/wordpiece.h"
#include "support/test_util.h"

using namespace biolm;

namespace {

// ids: [PAD]0 [UNK]1 [CLS]2 [SEP]3 [MASK]4 does5 drug6 help7 yes8 it9 did10 not11 ?12 .13
std::unique_ptr<tokenize::WordPieceTokenizer> tiny_tokenizer(bool decoder = false) {
  tokenize::WordPieceOptions o;
  if (decoder) {
    o.specials.bos = "[CLS]";
    o.specials.eos = "[SEP]";
  }
  return std::make_unique<tokenize::WordPieceTokenizer>(
      std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "does", "drug", "help", "yes", "it",
                               "did", "not", "?", "."},
      o);
}

data::Features window(std::vector<std::pair<int64_t, int64_t>> offsets) {
  data::Features f;
  f.offsets = std::move(offsets);
  f.input_ids.assign(f.offsets.size(), 5);
  return f;
}

}  // namespace

TEST_CASE("task names, heads and metrics", "[tasks]") {
  const auto names = tasks::task_names();
  REQUIRE(names.size() >= 8);
  CHECK(std::vector<std::string>(names.begin(), names.begin() + 8) ==
        std::vector<std::string>{"ner", "re", "nli", "sts", "qa-span", "mcqa", "pubmedqa", "instruct"});
  for (const auto& n : names) CHECK(tasks::make_task(n)->name() == n);
  CHECK(tasks::make_task("qa-span")->head_kind() == models::TaskKind::SpanQA);
  CHECK(tasks::make_task("mcqa")->head_kind() == models::TaskKind::MultipleChoice);
  CHECK(tasks::make_task("pubmedqa")->head_kind() == models::TaskKind::SequenceClassification);
  CHECK(tasks::make_task("instruct")->head_kind() == models::TaskKind::CausalLM);
  CHECK(tasks::make_task("instruct")->primary_metric() == "rouge_l");
  CHECK(tasks::make_task("qa-span")->primary_metric() == "f1");
  // One metric naming scheme: accuracy, never acc.
  for (const auto& n : names) {
    const auto t = tasks::make_task(n);
    CHECK(t->primary_metric() != "acc");
    for (const auto& m : t->secondary_metrics()) CHECK(m != "acc");
  }
  try {
    tasks::make_task("parse");
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("ner|re|nli|sts|qa-span|mcqa|pubmedqa|instruct") != std::string::npos);
  }
}

TEST_CASE("best_span re-assembles the best span across windows", "[tasks][qa]") {
  // context bytes: aa(0,2) bb(3,5) cc(6,8) dd(9,11) ee(12,14)
  const std::string context = "aa bb cc dd ee";
  const std::pair<int64_t, int64_t> sp{-1, -1};
  // Window 1: [CLS] q [SEP] aa bb cc [SEP]; window 2: [CLS] q [SEP] cc dd ee [SEP].
  const auto w1 = window({sp, sp, sp, {0, 2}, {3, 5}, {6, 8}, sp});
  const auto w2 = window({sp, sp, sp, {6, 8}, {9, 11}, {12, 14}, sp});
  // Specials carry the largest logits (must be skipped); window 1's list is padded with a huge
  // logit past its length (must be ignored); window 2 has a high end BEFORE the best start.
  std::vector<std::vector<float>> start = {{10, 0, 0, 2.0f, 0, 0, 9, 50}, {10, 0, 0, 0.5f, 3.0f, 0, 9}};
  std::vector<std::vector<float>> end = {{10, 0, 0, 2.0f, 0, 0, 9, 50}, {10, 0, 0, 4.0f, 0.0f, 2.5f, 9}};
  const std::vector<const data::Features*> ws = {&w1, &w2};
  // Candidates: aa..aa = 4, cc..cc (w2) = 4.5, cc..ee = 3.0, dd..ee = 5.5 (best).
  CHECK(tasks::best_span(ws, start, end, context, 30) == "dd ee");
  // At most one token: dd..dd = 3.0 < aa..aa = 4 < cc..cc = 4.5.
  CHECK(tasks::best_span(ws, start, end, context, 1) == "cc");
  // Only window 1: aa..aa (4) beats aa..cc (2) and specials.
  CHECK(tasks::best_span({&w1}, {start[0]}, {end[0]}, context, 30) == "aa");
  CHECK_THROWS_AS(tasks::best_span(ws, {start[0]}, end, context, 30), Error);
}

TEST_CASE("pubmedqa reasoning-free: question + LONG_ANSWER, a record without one named", "[tasks][pubmedqa]") {
  test::TempDir dir("pubmedqa-free");
  test::write_text(dir / "p.json", R"({"11": {"QUESTION": "Does drug help?", "CONTEXTS": ["It did not help."],
    "final_decision": "no", "LONG_ANSWER": "It did not."},
    "12": {"QUESTION": "Does drug help?", "CONTEXTS": ["It did", "help."], "final_decision": "maybe"}})");
  test::write_text(dir / "one.json", R"({"11": {"QUESTION": "Does drug help?", "CONTEXTS": ["It did not help."],
    "final_decision": "no", "LONG_ANSWER": "It did not."}})");
  auto tok = tiny_tokenizer();
  tasks::TaskOptions spec;
  spec.max_length = 32;
  spec.pubmedqa_setting = "reasoning-free";
  auto task = tasks::make_task("pubmedqa", spec);
  const auto dp = task->featurize_train(*tok, (dir / "one.json").string());
  const auto& d = tasks::as<tasks::LabelData>(*dp, "pubmedqa");
  REQUIRE(d.rows.size() == 1);
  // [CLS] does drug help ? [SEP] it did not . [SEP]: the conclusion, not the context ("help").
  CHECK(d.rows[0].input_ids == std::vector<int64_t>{2, 5, 6, 7, 12, 3, 9, 10, 11, 13, 3});
  CHECK(d.rows[0].label == 1);
  try {
    task->featurize(*tok, (dir / "p.json").string());
    FAIL("expected DataError");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()).find("p.json") != std::string::npos);
    CHECK(std::string(e.what()).find("PMID 12") != std::string::npos);
    CHECK(e.field() == "LONG_ANSWER");
  }
  spec.pubmedqa_setting = "reasoning_free";
  try {
    (void)tasks::make_task("pubmedqa", spec);
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("data.pubmedqa_setting") != std::string::npos);
    CHECK(std::string(e.what()).find("reasoning_free") != std::string::npos);
  }
}

TEST_CASE("pubmedqa featurization: question + joined contexts, yes/no/maybe ids", "[tasks][pubmedqa]") {
  test::TempDir dir("pubmedqa");
  test::write_text(dir / "p.json", R"({"11": {"QUESTION": "Does drug help?", "CONTEXTS": ["It did not help."],
    "LABELS": ["RESULTS"], "final_decision": "no", "LONG_ANSWER": "It did not."},
    "12": {"QUESTION": "Does drug help?", "CONTEXTS": ["It did", "help."], "LABELS": ["A", "B"],
    "final_decision": "maybe"}})");
  auto tok = tiny_tokenizer();
  tasks::TaskOptions spec;
  spec.max_length = 32;
  auto task = tasks::make_task("pubmedqa", spec);
  CHECK(task->labels().names() == std::vector<std::string>{"yes", "no", "maybe"});
  CHECK(task->n_labels() == 3);
  const auto dp = task->featurize_train(*tok, (dir / "p.json").string());
  const auto& d = tasks::as<tasks::LabelData>(*dp, "pubmedqa");
  REQUIRE(d.rows.size() == 2);
  CHECK(d.rows[0].input_ids == std::vector<int64_t>{2, 5, 6, 7, 12, 3, 9, 10, 11, 7, 13, 3});
  CHECK(d.rows[0].token_type_ids == std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  CHECK(d.rows[0].label == 1);
  CHECK(d.rows[1].input_ids == std::vector<int64_t>{2, 5, 6, 7, 12, 3, 9, 10, 7, 13, 3});  // contexts joined
  CHECK(d.rows[1].label == 2);
  CHECK(d.gold_labels == std::vector<std::string>{"no", "maybe"});

  // A label the model was not trained on is a DataError naming the file.
  const auto names = task->labels().names();
  task->set_labels(data::LabelMap::from_names({"yes", "no"}));
  try {
    task->featurize(*tok, (dir / "p.json").string());
    FAIL("expected DataError");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()).find("p.json") != std::string::npos);
    CHECK(e.field() == "final_decision");
  }

  // Scoring: accuracy and macro-F1 by hand. gold [no, maybe], pred [no, no]: accuracy 0.5;
  // per class F1: no = 2*1/(2+1) = 2/3, maybe = 0 -> macro 1/3.
  task->set_labels(data::LabelMap::from_names(names));
  tasks::ClassPredictions p;
  p.classes = {1, 1};
  const auto m = task->score(d, p, 0, 1);
  CHECK(m.at("accuracy").get<double>() == Approx(0.5));
  CHECK(m.at("macro_f1").get<double>() == Approx(1.0 / 3.0));
  const auto mb = task->score(d, p, 50, 1);
  CHECK(tasks::metric_value(mb.at("accuracy")) == Approx(0.5));
  CHECK(mb.at("accuracy").at("ci").size() == 2);
  // Predictions file: one label per line.
  task->write_predictions(d, p, (dir / "pred.txt").string());
  CHECK(test::read_text(dir / "pred.txt") == "no\nno\n");
  // Another family's data is refused by name.
  CHECK_THROWS_AS(tasks::make_task("sts")->score(d, p, 0, 1), Error);
}

TEST_CASE("re scoring: F1 over every label, or without eval.negative_label's class, sts: Pearson and Spearman",
          "[tasks][re][sts]") {
  test::TempDir dir("re_negative");
  test::write_text(dir / "r.jsonl",
                   "{\"text\": \"<< a >> binds [[ b ]]\", \"label\": \"CPR:3\"}\n"
                   "{\"text\": \"<< a >> blocks [[ b ]]\", \"label\": \"CPR:4\"}\n"
                   "{\"text\": \"<< a >> and [[ b ]]\", \"label\": \"NONE\"}\n"
                   "{\"text\": \"<< a >> or [[ b ]]\", \"label\": \"NONE\"}\n");
  auto tok = tiny_tokenizer();
  // gold [CPR:3, CPR:4, NONE, NONE], predicted [CPR:3, NONE, NONE, NONE] (ids: labels sorted).
  tasks::ClassPredictions p;
  p.classes = {0, 2, 2, 2};
  auto all = tasks::make_task("re");
  const auto d_all = all->featurize_train(*tok, (dir / "r.jsonl").string());
  const auto m_all = all->score(*d_all, p, 0, 1);
  // Every label counts: micro-F1 = accuracy = 3/4; F1 per class CPR:3 1, CPR:4 0, NONE
  // 2 * (2/3 * 1) / (2/3 + 1) = 0.8 -> macro (1 + 0 + 0.8) / 3.
  CHECK(m_all.at("accuracy").get<double>() == Approx(0.75));
  CHECK(m_all.at("micro_f1").get<double>() == Approx(0.75));
  CHECK(m_all.at("macro_f1").get<double>() == Approx(0.6));
  tasks::TaskOptions spec;
  spec.negative_label = "NONE";
  auto pos = tasks::make_task("re", spec);
  const auto d_pos = pos->featurize_train(*tok, (dir / "r.jsonl").string());
  const auto m_pos = pos->score(*d_pos, p, 0, 1);
  // Without NONE: 1 true positive of 1 predicted and 2 gold positives: P 1, R 1/2, F1 2/3;
  // macro over CPR:3 (1) and CPR:4 (0) 1/2. Accuracy still counts every example.
  CHECK(m_pos.at("accuracy").get<double>() == Approx(0.75));
  CHECK(m_pos.at("micro_f1").get<double>() == Approx(2.0 / 3.0));
  CHECK(m_pos.at("macro_f1").get<double>() == Approx(0.5));
  spec.negative_label = "false";
  CHECK_THROWS_AS(tasks::make_task("re", spec)->featurize_train(*tok, (dir / "r.jsonl").string()), ConfigError);

  // sts: gold 1..4, predicted [1, 3, 2, 10]. Pearson by hand: deviations (-1.5, -.5, .5, 1.5) and
  // (-3, -1, -2, 6): 13 / sqrt(5 * 50); Spearman on the ranks (1, 3, 2, 4): 1 - 6 * 2 / (4 * 15).
  tasks::ScoreData sd;
  sd.gold_scores = {1, 2, 3, 4};
  tasks::ScorePredictions sp;
  sp.scores = {1, 3, 2, 10};
  const auto ms = tasks::make_task("sts")->score(sd, sp, 0, 1);
  CHECK(ms.at("pearson").get<double>() == Approx(13.0 / std::sqrt(250.0)));
  CHECK(ms.at("spearman").get<double>() == Approx(0.8));
}

TEST_CASE("mcqa featurization: one [question, option] per choice, answer index", "[tasks][mcqa]") {
  test::TempDir dir("mcqa");
  test::write_text(dir / "m.jsonl",
                   "{\"question\": \"drug help ?\", \"options\": {\"A\": \"yes\", \"B\": \"not\", \"C\": \"it\"}, "
                   "\"answer_idx\": \"B\"}\n"
                   "{\"question\": \"does it help ?\", \"options\": {\"A\": \"yes\", \"B\": \"not\"}, "
                   "\"answer_idx\": \"A\"}\n");
  auto tok = tiny_tokenizer();
  tasks::TaskOptions spec;
  spec.max_length = 16;
  auto task = tasks::make_task("mcqa", spec);
  const auto dp = task->featurize(*tok, (dir / "m.jsonl").string());
  const auto& d = tasks::as<tasks::ChoiceData>(*dp, "mcqa");
  REQUIRE(d.rows.size() == 2);
  REQUIRE(d.rows[0].choices.size() == 3);
  CHECK(d.rows[0].choices[0] == std::vector<int64_t>{2, 6, 7, 12, 3, 8, 3});
  CHECK(d.rows[0].choices[1] == std::vector<int64_t>{2, 6, 7, 12, 3, 11, 3});
  CHECK(d.rows[0].choices[2] == std::vector<int64_t>{2, 6, 7, 12, 3, 9, 3});
  CHECK(d.rows[0].label == 1);
  CHECK(d.rows[1].choices.size() == 2);
  CHECK(d.gold_choices == std::vector<int64_t>{1, 0});
  tasks::ClassPredictions p;
  p.classes = {1, 1};
  CHECK(task->score(d, p, 0, 1).at("accuracy").get<double>() == Approx(0.5));
  task->write_predictions(d, p, (dir / "pred.txt").string());
  CHECK(test::read_text(dir / "pred.txt") == "B\nB\n");
  spec.format = "medmcq";
  CHECK_THROWS_AS(tasks::make_task("mcqa", spec)->featurize(*tok, (dir / "m.jsonl").string()), ConfigError);
}

TEST_CASE("qa-span scoring: SQuAD exact match and F1 per example, averaged", "[tasks][qa]") {
  auto task = tasks::make_task("qa-span");
  tasks::SpanQaData d;
  data::SpanQaExample a, b;
  a.id = "q1";
  a.answers = {{"Metformin", 0}};
  b.id = "q2";
  b.answers = {{"wound culture", 0}, {"the culture", 0}};
  d.examples = {a, b};
  tasks::TextPredictions p;
  p.texts = {"metformin.", "culture"};
  // a: normalized equal -> EM 1, F1 1. b: vs "wound culture" F1 = 2*(1*0.5)/(1.5) = 2/3; vs "the
  // culture" (normalized "culture") EM 1, F1 1 -> max 1. Means: EM 1, F1 1.
  auto m = task->score(d, p, 0, 1);
  CHECK(m.at("exact_match").get<double>() == Approx(1.0));
  CHECK(m.at("f1").get<double>() == Approx(1.0));
  d.examples[1].answers.pop_back();
  m = task->score(d, p, 0, 1);
  CHECK(m.at("exact_match").get<double>() == Approx(0.5));
  CHECK(m.at("f1").get<double>() == Approx((1.0 + 2.0 / 3.0) / 2.0));
  // SQuAD's predictions file: {id: answer}.
  test::TempDir dir("qa_pred");
  task->write_predictions(d, p, (dir / "p.json").string());
  CHECK(nlohmann::json::parse(test::read_text(dir / "p.json")) ==
        nlohmann::json{{"q1", "metformin."}, {"q2", "culture"}});
}

TEST_CASE("instruct featurization: prompt = tokens before the response, packing", "[tasks][instruct]") {
  test::TempDir dir("instruct");
  test::write_text(dir / "a.jsonl",
                   "{\"instruction\": \"does it help ?\", \"input\": \"\", \"output\": \"yes it did .\"}\n"
                   "{\"instruction\": \"drug ?\", \"input\": \"\", \"output\": \"not\"}\n");
  auto tok = tiny_tokenizer(/*decoder=*/true);
  tasks::TaskOptions spec;
  spec.max_length = 64;
  spec.prompt_format = train::PromptFormat::Llama2Chat;
  const auto dp = tasks::make_task("instruct", spec)->featurize(*tok, (dir / "a.jsonl").string());
  const auto& d = tasks::as<tasks::InstructData>(*dp, "instruct");
  REQUIRE(d.loss_rows.size() == 2);
  REQUIRE(d.rows.size() == 2);  // no packing
  CHECK(d.references == std::vector<std::string>{"yes it did .", "not"});
  for (size_t i = 0; i < 2; ++i) {
    const auto& r = d.loss_rows[i];
    const auto& prompt = d.prompts[i];
    REQUIRE(prompt.size() < r.input_ids.size());
    CHECK(std::equal(prompt.begin(), prompt.end(), r.input_ids.begin()));
    CHECK(r.input_ids.front() == 2);  // BOS
    CHECK(r.input_ids.back() == 3);   // EOS closes the response and is learned
    for (size_t t = 0; t < r.labels.size(); ++t) CHECK(r.labels[t] == (t < prompt.size() ? -100 : r.input_ids[t]));
  }
  // The learned tokens of example 0 are the response and EOS.
  const std::vector<int64_t> response(d.loss_rows[0].input_ids.begin() + static_cast<long>(d.prompts[0].size()),
                                      d.loss_rows[0].input_ids.end());
  CHECK(response == std::vector<int64_t>{8, 9, 10, 13, 3});

  // Packing: both fit into one row with segments 1 and 2; each example's first label ignored.
  const auto n0 = d.loss_rows[0].input_ids.size(), n1 = d.loss_rows[1].input_ids.size();
  auto packed = data::pack_rows(d.loss_rows, static_cast<int64_t>(n0 + n1));
  REQUIRE(packed.size() == 1);
  CHECK(packed[0].input_ids.size() == n0 + n1);
  CHECK(packed[0].segment_ids[n0 - 1] == 1);
  CHECK(packed[0].segment_ids[n0] == 2);
  CHECK(packed[0].labels[n0] == -100);
  CHECK(packed[0].labels.back() == 3);
  CHECK(data::pack_rows(d.loss_rows, static_cast<int64_t>(n0 + n1 - 1)).size() == 2);
  CHECK_THROWS_AS(data::pack_rows(d.loss_rows, static_cast<int64_t>(n0 - 1)), Error);
  spec.packing = true;
  spec.max_length = static_cast<int64_t>(n0 + n1);
  CHECK(tasks::make_task("instruct", spec)->featurize(*tok, (dir / "a.jsonl").string())->rows.size() == 1);

  // Too short a max_length for any response token: DataError naming the record.
  spec.packing = false;
  spec.max_length = 4;
  CHECK_THROWS_AS(tasks::make_task("instruct", spec)->featurize(*tok, (dir / "a.jsonl").string()), DataError);
}

TEST_CASE("instruct scoring: ROUGE-L, BLEU-1 and token loss by hand", "[tasks][instruct]") {
  auto task = tasks::make_task("instruct");
  tasks::InstructData d;
  d.references = {"metformin", "wound culture"};
  tasks::GenerationPredictions p;
  p.texts = {"metformin", "urine culture"};
  p.loss_sum = {1.0, 3.0};
  p.loss_tokens = {1, 3};
  const auto m = task->score(d, p, 0, 1);
  // ROUGE-L F: 1 and (LCS 1: P = R = 1/2) 1/2 -> mean 0.75.
  CHECK(m.at("rouge_l").get<double>() == Approx(0.75));
  // BLEU-1: clipped unigram matches 1 + 1 over 1 + 2 hypothesis tokens, lengths equal (BP 1).
  CHECK(m.at("bleu1").get<double>() == Approx(2.0 / 3.0));
  // Loss: token-weighted, (1 + 3) / (1 + 3) = 1; with 1 + 1 tokens (1 + 3) / 2 = 2.
  CHECK(m.at("loss").get<double>() == Approx(1.0));
  p.loss_tokens = {1, 1};
  CHECK(task->score(d, p, 0, 1).at("loss").get<double>() == Approx(2.0));
}

TEST_CASE("predict on real models: span answers are context slices, losses count response tokens",
          "[tasks][predict]") {
  core::seed_all(3);
  auto tok = tiny_tokenizer(/*decoder=*/true);
  test::TempDir dir("predict");
  // Span QA with a context longer than one window (max_length 12, stride 2).
  test::write_text(dir / "q.json", R"({"data": [{"title": "t", "paragraphs": [{"context": "it did not help . it did help .",
    "qas": [{"id": "1", "question": "does it help ?", "answers": [{"text": "did help", "answer_start": 21}]}]}]}]})");
  tasks::TaskOptions qs;
  qs.max_length = 12;
  qs.doc_stride = 2;
  qs.batch_size = 2;
  const auto qtask = tasks::make_task("qa-span", qs);
  const auto qdp = qtask->featurize(*tok, (dir / "q.json").string());
  const auto& qd = tasks::as<tasks::SpanQaData>(*qdp, "qa-span");
  REQUIRE(qd.rows.size() >= 2);  // split into windows
  auto enc = models::preset("tiny-encoder");
  enc.vocab_size = tok->vocab_size();
  auto qa = models::make_task_model(enc, models::TaskKind::SpanQA);
  const auto qpp = qtask->predict(*qa, *tok, qd);
  const auto& qp = tasks::as<tasks::TextPredictions>(*qpp, "qa-span");
  REQUIRE(qp.texts.size() == 1);
  CHECK(!qp.texts[0].empty());
  CHECK(qd.examples[0].context.find(qp.texts[0]) != std::string::npos);
  const auto qm = qtask->score(qd, qp, 0, 1);
  CHECK(qm.at("f1").get<double>() >= 0.0);
  CHECK(qm.at("f1").get<double>() <= 1.0);

  // Instruct: generation per example and teacher-forced response losses.
  test::write_text(dir / "a.jsonl", "{\"instruction\": \"does it help ?\", \"output\": \"yes it did .\"}\n"
                                    "{\"instruction\": \"drug ?\", \"output\": \"not\"}\n");
  tasks::TaskOptions is;
  is.max_length = 48;
  is.prompt_format = train::PromptFormat::Llama2Chat;
  is.max_new_tokens = 3;
  const auto itask = tasks::make_task("instruct", is);
  const auto idp = itask->featurize(*tok, (dir / "a.jsonl").string());
  const auto& id = tasks::as<tasks::InstructData>(*idp, "instruct");
  auto dec = models::preset("tiny-decoder");
  dec.vocab_size = tok->vocab_size();
  dec.pad_token_id = 0;
  dec.bos_token_id = 2;
  dec.eos_token_id = 3;
  auto lm = models::make_task_model(dec, models::TaskKind::CausalLM);
  const auto ipp = itask->predict(*lm, *tok, id);
  const auto& ip = tasks::as<tasks::GenerationPredictions>(*ipp, "instruct");
  REQUIRE(ip.texts.size() == 2);
  CHECK(ip.loss_tokens == std::vector<int64_t>{5, 2});  // "yes it did ." + EOS, "not" + EOS
  // An untrained model over 14 tokens: per-token loss near ln(14) = 2.64.
  for (size_t i = 0; i < 2; ++i) CHECK(ip.loss_sum[i] / static_cast<double>(ip.loss_tokens[i]) == Approx(2.64).margin(0.5));
  // The same loss through the model's own (mean) loss on the unpacked rows.
  lm->eval();
  data::CollateOptions co;
  auto batch = data::collate({id.loss_rows[0]}, co);
  torch::NoGradGuard ng;
  const auto step = lm->run(batch);
  const double mean = step.loss_sum.item<double>() / static_cast<double>(step.n_target_tokens);
  CHECK(ip.loss_sum[0] / 5.0 == Approx(mean).epsilon(1e-4));
  // A SpanQA model cannot generate.
  CHECK_THROWS_AS(itask->predict(*qa, *tok, id), ConfigError);
}

TEST_CASE("evaluate_file on a model directory with unmerged LoRA adapters gives the same metrics",
          "[tasks][model_dir]") {
  core::seed_all(5);
  auto tok = tiny_tokenizer(/*decoder=*/true);
  test::TempDir dir("evalfile");
  test::write_text(dir / "p.json", R"({"1": {"QUESTION": "Does drug help?", "CONTEXTS": ["It did not help."], "final_decision": "no"},
    "2": {"QUESTION": "Does it help?", "CONTEXTS": ["It did help."], "final_decision": "yes"},
    "3": {"QUESTION": "Drug?", "CONTEXTS": ["Not it."], "final_decision": "maybe"}})");
  tasks::TaskOptions spec;
  spec.max_length = 16;
  const auto task = tasks::make_task("pubmedqa", spec);
  // A decoder body (last-token pooling) with LoRA on q/v and a trained classifier.
  auto cfg = models::preset("tiny-decoder");
  cfg.vocab_size = tok->vocab_size();
  auto model = models::make_task_model(cfg, task->head_kind(), task->n_labels());
  const auto method = peft::method_config_from_json(
      {{"method", "hybrid"}, {"lora", {{"rank", 4}, {"targets", {"**.q_proj", "**.v_proj"}}}},
       {"train_patterns", {"classifier.**"}}});
  peft::apply(*model, method);
  {  // non-zero B so the adapters change the outputs
    torch::NoGradGuard ng;
    for (auto& p : model->named_parameters())
      if (p.key().find("lora_b") != std::string::npos) p.value().normal_(0.0, 0.5);
  }
  const auto dp = task->featurize(*tok, (dir / "p.json").string());
  const auto& d = *dp;
  const auto before = task->predict(*model, *tok, d);
  const auto m_before = task->evaluate_file(*model, *tok, (dir / "p.json").string(), 0, 1);

  io::ModelDirInfo info;
  info.config = cfg;
  info.task = task->head_kind();
  info.n_labels = model->n_labels();
  info.labels = task->labels().names();
  info.peft = method;
  io::ModelDirSaveOptions so;
  so.tokenizer = tok.get();
  io::save_model_dir(*model, info, dir / "model", so);
  const auto loaded = io::load_model_dir(dir / "model");
  REQUIRE(loaded.tokenizer);
  CHECK(loaded.info.labels == std::vector<std::string>{"yes", "no", "maybe"});
  const auto after = task->predict(*loaded.model, *loaded.tokenizer, d);
  CHECK(tasks::as<tasks::ClassPredictions>(*after, "pubmedqa").classes ==
        tasks::as<tasks::ClassPredictions>(*before, "pubmedqa").classes);
  // The logits themselves: adapters (non-zero B) came back with the weights.
  model->eval();
  loaded.model->eval();
  torch::NoGradGuard ng;
  const auto batch = data::collate(d.rows, data::CollateOptions{});
  BIOLM_REQUIRE_CLOSE(loaded.model->run(batch).logits, model->run(batch).logits, 1e-5);
  CHECK(task->evaluate_file(*loaded.model, *loaded.tokenizer, (dir / "p.json").string(), 0, 1) == m_before);
}

TEST_CASE("instruct featurization of ShareGPT: system prompt kept, the last response is the reference",
          "[tasks][instruct]") {
  test::TempDir dir("sharegpt");
  test::write_text(dir / "s.json", R"([{"id": "c1", "conversations": [
    {"from": "system", "value": "it"}, {"from": "human", "value": "does drug help ?"},
    {"from": "gpt", "value": "yes"}, {"from": "human", "value": "did it ?"}, {"from": "gpt", "value": "it did not ."}]}])");
  auto tok = tiny_tokenizer(/*decoder=*/true);
  const auto ex = data::read_sharegpt((dir / "s.json").string());
  REQUIRE(ex.size() == 1);
  const auto conv = tasks::to_conversation(ex[0]);
  CHECK(conv.system == "it");
  REQUIRE(conv.turns.size() == 4);
  CHECK(conv.turns[3].role == train::Role::Assistant);

  tasks::TaskOptions spec;
  spec.format = "sharegpt";
  spec.max_length = 128;
  spec.prompt_format = train::PromptFormat::Llama2Chat;
  const auto dp = tasks::make_task("instruct", spec)->featurize(*tok, (dir / "s.json").string());
  const auto& d = tasks::as<tasks::InstructData>(*dp, "instruct");
  CHECK(d.references == std::vector<std::string>{"it did not ."});
  const auto& r = d.loss_rows[0];
  // Both responses are learned ("yes" + EOS and "it did not ." + EOS); the prompt for generation
  // stops before the second one and so contains the first.
  int64_t learned = 0;
  for (auto l : r.labels) learned += l != -100;
  CHECK(learned == 2 + 5);
  const std::vector<int64_t> tail(r.input_ids.begin() + static_cast<long>(d.prompts[0].size()), r.input_ids.end());
  CHECK(tail == std::vector<int64_t>{9, 10, 11, 13, 3});
  CHECK(std::count(d.prompts[0].begin(), d.prompts[0].end(), 8) == 1);  // "yes", the first response
  spec.format = "vicuna";
  CHECK_THROWS_AS(tasks::make_task("instruct", spec)->featurize(*tok, (dir / "s.json").string()), ConfigError);
}

TEST_CASE("hoc (multi-label): reader, multi-hot targets, BCE loss and F1 by hand", "[tasks][hoc]") {
  test::TempDir dir("hoc");
  // Labels in the training file: a, b, c (sorted). Gold: {a}, {a, c}, {}, {b}.
  test::write_text(dir / "t.jsonl", "{\"id\": \"d1\", \"text\": \"drug help\", \"labels\": [\"a\"]}\n"
                                    "{\"id\": \"d2\", \"text\": \"it did not\", \"labels\": [\"c\", \"a\"]}\n"
                                    "\n"
                                    "{\"id\": \"d3\", \"text\": \"yes\", \"labels\": []}\n"
                                    "{\"id\": \"d4\", \"text\": \"does it\", \"labels\": [\"b\"]}\n");
  auto tok = tiny_tokenizer();
  tasks::TaskOptions o;
  o.max_length = 16;
  auto task = tasks::make_task("hoc", o);
  CHECK(task->primary_metric() == "micro_f1");
  const auto d = task->featurize_train(*tok, (dir / "t.jsonl").string());
  CHECK(task->labels().names() == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(d->rows.size() == 4);
  CHECK(d->rows[1].targets == std::vector<float>{1, 0, 1});
  CHECK(d->rows[2].targets == std::vector<float>{0, 0, 0});

  // A classifier that ignores the text: logits (+2, -2, +2) -> every document gets {a, c}.
  auto cfg = models::preset("tiny-encoder");
  cfg.vocab_size = tok->vocab_size();
  auto model = models::make_task_model(cfg, task->head_kind(), task->n_labels());
  auto& head = dynamic_cast<models::SequenceClassificationModelImpl&>(*model);
  {
    torch::NoGradGuard ng;
    head.classifier->weight.zero_();
    head.classifier->bias.copy_(torch::tensor({2.0f, -2.0f, 2.0f}));
  }
  // BCE with logits by hand: per label -log(sigmoid(z)) if gold else -log(1 - sigmoid(z)).
  // z = +2: 0.126928 (gold) / 2.126928 (not); z = -2: 2.126928 (gold) / 0.126928 (not).
  const double lo = std::log1p(std::exp(-2.0)), hi = std::log1p(std::exp(2.0));
  const double per_doc[4] = {lo + lo + hi, lo + lo + lo, hi + lo + hi, hi + hi + hi};
  const double mean = (per_doc[0] + per_doc[1] + per_doc[2] + per_doc[3]) / 12.0;  // over B x L
  model->eval();
  const auto step = model->run(data::collate(d->rows, data::CollateOptions{}));
  CHECK(step.n_target_tokens == 4);
  CHECK(step.loss_sum.item<double>() / 4.0 == Approx(mean).epsilon(1e-6));

  // Predicted {a, c} x 4 vs gold: a tp 2 fp 2 fn 0; b tp 0 fp 0 fn 1; c tp 1 fp 3 fn 0.
  // micro: tp 3, pred 8, gold 4 -> F1 = 6 / 12 = 0.5; per label F1 a = 4/6, b = 0, c = 2/5.
  const auto p = task->predict(*model, *tok, *d);
  const auto m = task->score(*d, *p, 0, 1);
  CHECK(m.at("micro_f1").get<double>() == Approx(0.5));
  CHECK(m.at("f1_a").get<double>() == Approx(4.0 / 6.0));
  CHECK(m.at("f1_b").get<double>() == Approx(0.0));
  CHECK(m.at("f1_c").get<double>() == Approx(2.0 / 5.0));
  CHECK(m.at("macro_f1").get<double>() == Approx((4.0 / 6.0 + 0.4) / 3.0));
  task->write_predictions(*d, *p, (dir / "p.jsonl").string());
  CHECK(test::read_text(dir / "p.jsonl").substr(0, 34) == "{\"id\":\"d1\",\"labels\":[\"a\",\"c\"]}\n{\"i");

  // A bad record names file, line and field.
  test::write_text(dir / "bad.jsonl", "{\"text\": \"x\", \"labels\": [\"a\"]}\n{\"text\": \"y\", \"labels\": \"a\"}\n");
  try {
    task->featurize(*tok, (dir / "bad.jsonl").string());
    FAIL("expected DataError");
  } catch (const DataError& e) {
    CHECK(e.line() == 2);
    CHECK(e.field() == "labels");
  }
  // A label the model was not trained on.
  test::write_text(dir / "new.jsonl", "{\"text\": \"x\", \"labels\": [\"z\"]}\n");
  CHECK_THROWS_AS(task->featurize(*tok, (dir / "new.jsonl").string()), DataError);
}

namespace {

// Entities (B- tags) per type over a ner task's featurized file.
std::map<std::string, int64_t> entity_counts(const tasks::TaskData& d) {
  std::map<std::string, int64_t> out;
  for (const auto& s : tasks::as<tasks::NerData>(d, "ner").sentences)
    for (const auto& t : s.tags)
      if (t.rfind("B-", 0) == 0) ++out[t.substr(2)];
  return out;
}

int64_t total(const std::map<std::string, int64_t>& m) {
  int64_t n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

}  // namespace

TEST_CASE("ner reads BRAT and PubTator: the entity counts of the CoNLL view of the same corpus",
          "[tasks][ner][real]") {
  auto tok = tiny_tokenizer();
  tasks::TaskOptions o;
  o.max_length = 64;
  SECTION("NCBI-disease test: BRAT standoff vs CoNLL (960 mentions)") {
    BIOLM_SHARED_DATA_OR_SKIP(brat, "brat_ncbi_disease/test");
    BIOLM_SHARED_DATA_OR_SKIP(conll, "ncbi_disease_conll/test.tsv");
    o.format = "brat";
    auto bt = tasks::make_task("ner", o);
    const auto bd = bt->featurize_train(*tok, brat.string());
    // BRAT keeps the fine types (SpecificDisease, Modifier, DiseaseClass, CompositeMention).
    CHECK(bt->labels().size() == 1 + 2 * 4);
    o.format = "conll";
    const auto cd = tasks::make_task("ner", o)->featurize_train(*tok, conll.string());
    CHECK(total(entity_counts(*cd)) == 960);
    CHECK(total(entity_counts(*bd)) == total(entity_counts(*cd)));
    CHECK(entity_counts(*bd).at("SpecificDisease") == 555);
  }
  SECTION("BC5CDR test: PubTator vs CoNLL (5,385 Chemical, 4,424 Disease)") {
    BIOLM_SHARED_DATA_OR_SKIP(pt, "bc5cdr_pubtator/CDR_TestSet.PubTator.txt");
    BIOLM_SHARED_DATA_OR_SKIP(conll, "bc5cdr_conll/test.tsv");
    o.format = "pubtator";
    const auto pd = tasks::make_task("ner", o)->featurize_train(*tok, pt.string());
    o.format = "conll";
    const auto cd = tasks::make_task("ner", o)->featurize_train(*tok, conll.string());
    const auto pc = entity_counts(*pd), cc = entity_counts(*cd);
    CHECK(pc.at("Chemical") == 5385);
    CHECK(pc.at("Disease") == 4424);
    CHECK(pc == cc);
  }
  o.format = "bioc";
  CHECK_THROWS_AS(tasks::make_task("ner", o)->featurize(*tok, "x"), ConfigError);
}

TEST_CASE("qa-span reads BioASQ: factoid/list answers located in the joined snippets", "[tasks][qa]") {
  test::TempDir dir("bioasq");
  test::write_text(dir / "b.json", R"({"questions": [
    {"id": "f1", "body": "does it help ?", "type": "factoid", "exact_answer": [["Drug"]],
     "ideal_answer": ["x"], "snippets": [{"text": "it did not ."}, {"text": "the drug did help ."}]},
    {"id": "y1", "body": "yes ?", "type": "yesno", "exact_answer": "yes", "ideal_answer": ["x"], "snippets": []},
    {"id": "f2", "body": "what ?", "type": "factoid", "exact_answer": [["absent"]], "ideal_answer": ["x"],
     "snippets": [{"text": "it did ."}]}]})");
  auto tok = tiny_tokenizer();
  tasks::TaskOptions o;
  o.format = "bioasq";
  o.max_length = 32;
  auto task = tasks::make_task("qa-span", o);
  const auto dp = task->featurize(*tok, (dir / "b.json").string());
  const auto& d = tasks::as<tasks::SpanQaData>(*dp, "qa-span");
  // The yesno question and the one whose answer is in no snippet are left out (and logged).
  REQUIRE(d.examples.size() == 1);
  const auto& ex = d.examples[0];
  CHECK(ex.id == "f1");
  CHECK(ex.context == "it did not . the drug did help .");
  REQUIRE(ex.answers.size() == 1);
  CHECK(ex.answers[0].text == "drug");  // the context's own spelling
  CHECK(ex.answers[0].begin == 17);
  // The answer's tokens are the training target: "drug" is token 6 of the tiny vocabulary.
  REQUIRE(d.rows.size() == 1);
  const auto& f = d.rows[0];
  REQUIRE(f.start_position >= 0);
  CHECK(f.start_position == f.end_position);
  CHECK(f.input_ids[static_cast<size_t>(f.start_position)] == 6);
}

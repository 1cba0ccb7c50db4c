// Tests for the harness on real models (eval/model_scorer.h) and the evaluation datasets and
// encoder heads (eval/tasks.h). References are independent of the harness: each request runs
// alone through the model, unpadded, and its log-probabilities come from a log-sum-exp written
// out in the test; heads are compared with one-example forward passes.
// The hidden case [.make_eval_model] writes the tiny model directories the `biolm eval`
// command-line tests use (tests/cli/eval.cmake runs it as a ctest fixture).
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/data/features.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/model_scorer.h"
#include "biolm/eval/report.h"
#include "biolm/eval/tasks.h"
#include "biolm/io/hf_weights.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/task_model.h"
#include "biolm/peft/method.h"
#include "biolm/tasks/classification.h"
#include "biolm/tasks/task.h"
#include "biolm/tokenize/wordpiece.h"
#include "support/test_util.h"

using namespace biolm;
using Strs = std::vector<std::string>;

namespace {

std::shared_ptr<tokenize::WordPieceTokenizer> word_tokenizer() {
  Strs vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "question", "answer", "context", ":", "?", ".",
                "is",    "the",   "drug",  "safe",  "yes",    "no",     "maybe",  "a",      "b", "c", "d",
                "aspirin", "helps", "pain", "fever", "patients", "with", "took", "and", "improved", "of", "for",
                "which", "test", "confirms", "diagnosis", "heart", "failure", "echocardiogram", "x", "ray"};
  return std::make_shared<tokenize::WordPieceTokenizer>(vocab);
}

std::shared_ptr<models::CausalLMModelImpl> tiny_decoder(int64_t vocab, int64_t max_positions, uint64_t seed) {
  auto c = models::preset("tiny-decoder");
  c.vocab_size = vocab;
  c.max_positions = max_positions;
  c.pad_token_id = 0;
  c.bos_token_id.reset();
  c.eos_token_id.reset();
  c.init_std = 0.3;  // well separated log-likelihoods, so rankings are not decided by rounding
  torch::manual_seed(seed);
  return std::dynamic_pointer_cast<models::CausalLMModelImpl>(models::make_task_model(c, models::TaskKind::CausalLM));
}

// log p(continuation | context): the sequence alone, no padding, log-softmax written out.
double reference_loglik(models::CausalLMModelImpl& m, const tokenize::Tokenizer& tok, const std::string& ctx,
                        const std::string& cont, int64_t max_len = 0) {
  const auto ctx_ids = tok.encode(ctx, false).ids;
  const auto whole = tok.encode(ctx + cont, false).ids;
  const std::vector<int64_t> target(whole.begin() + static_cast<std::ptrdiff_t>(ctx_ids.size()), whole.end());
  std::vector<int64_t> seq(whole.begin(), whole.end() - 1);
  if (max_len > 0 && static_cast<int64_t>(seq.size()) > max_len) seq.erase(seq.begin(), seq.end() - max_len);
  torch::NoGradGuard no_grad;
  m.eval();
  models::ModelInputs in;
  in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
  const auto logits = m.forward(in).logits[0].to(torch::kDouble).contiguous();  // (L,V)
  const auto a = logits.accessor<double, 2>();
  const auto L = static_cast<int64_t>(seq.size()), n = static_cast<int64_t>(target.size());
  double ll = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t pos = L - n + j;
    double mx = a[pos][0];
    for (int64_t v = 1; v < logits.size(1); ++v) mx = std::max(mx, a[pos][v]);
    double sum = 0.0;
    for (int64_t v = 0; v < logits.size(1); ++v) sum += std::exp(a[pos][v] - mx);
    ll += a[pos][target[static_cast<size_t>(j)]] - (mx + std::log(sum));
  }
  return ll;
}

// Greedy decoding by full recomputation (no KV cache): the new token ids.
std::vector<int64_t> reference_greedy(models::CausalLMModelImpl& m, std::vector<int64_t> ids, int64_t n) {
  torch::NoGradGuard no_grad;
  m.eval();
  std::vector<int64_t> out;
  for (int64_t s = 0; s < n; ++s) {
    models::ModelInputs in;
    in.input_ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
    const auto logits = m.forward(in).logits[0];
    const int64_t next = logits[logits.size(0) - 1].argmax().item<int64_t>();
    ids.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::filesystem::path repo_data(const std::string& rel) { return test::source_dir() / "data" / rel; }

std::shared_ptr<tokenize::Tokenizer> data_tokenizer(const std::filesystem::path& dir) {
  tokenize::WordPieceTrainOptions wo;
  wo.vocab_size = 400;
  tokenize::train_wordpiece({repo_data("pubmedqa/test.json"), repo_data("mcqa/train.jsonl"),
                             repo_data("instruct/train.jsonl")},
                            wo, dir / "vocab.txt");
  return tokenize::load_tokenizer(dir / "vocab.txt");
}

models::ModelConfig tiny_encoder_config(int64_t vocab) {
  auto c = models::preset("tiny-encoder");
  c.vocab_size = vocab;
  c.max_positions = 256;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  return c;
}

// Macro F1 over the classes present in gold or pred (plain loops, sklearn's definition).
double macro_f1(const std::vector<int64_t>& gold, const std::vector<int64_t>& pred) {
  std::set<int64_t> classes(gold.begin(), gold.end());
  classes.insert(pred.begin(), pred.end());
  double sum = 0.0;
  for (int64_t c : classes) {
    double tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < gold.size(); ++i) {
      tp += (pred[i] == c && gold[i] == c) ? 1 : 0;
      fp += (pred[i] == c && gold[i] != c) ? 1 : 0;
      fn += (pred[i] != c && gold[i] == c) ? 1 : 0;
    }
    sum += tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
  }
  return sum / static_cast<double>(classes.size());
}

}  // namespace

TEST_CASE("ModelScorer log-likelihoods equal an unpadded token-by-token log-softmax", "[eval][model]") {
  const auto tok = word_tokenizer();
  auto model = tiny_decoder(tok->vocab_size(), 64, 11);
  eval::ModelScorer scorer(model);
  // Different lengths in one batch (right padding) and one request alone: padding changes nothing.
  const std::vector<eval::LoglikRequest> reqs = {
      {"question: is the drug safe? answer:", " yes"},
      {"question: is the drug safe? answer:", " maybe"},
      {"context: patients took aspirin and improved. question: aspirin helps pain? answer:", " yes and improved"},
      {"answer:", " no"},
      {"question: which test confirms the diagnosis of heart failure? answer:", " echocardiogram"},
  };
  eval::LoglikOptions lo = eval::loglik_options_for(*model, 3);
  REQUIRE(lo.max_length == 64);
  const auto res = eval::loglikelihoods(scorer, *tok, reqs, lo);
  lo.batch_size = 1;
  const auto alone = eval::loglikelihoods(scorer, *tok, reqs, lo);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const double ref = reference_loglik(*model, *tok, reqs[i].context, reqs[i].continuation);
    INFO("request " << i << ": " << res[i].loglik << " vs reference " << ref);
    // float32 model: 1e-4 absolute on sums of a few log-probabilities of magnitude ~5.
    REQUIRE(std::abs(res[i].loglik - ref) < 1e-4);
    REQUIRE(std::abs(res[i].loglik - alone[i].loglik) < 1e-4);
    REQUIRE(res[i].n_tokens == static_cast<int64_t>(tok->encode(reqs[i].continuation, false).ids.size()));
  }
  REQUIRE(res[2].n_tokens == 3);
  REQUIRE(res[0].loglik != res[1].loglik);
}

TEST_CASE("ModelScorer gives left-padded rows the logits they get alone", "[eval][model]") {
  const auto tok = word_tokenizer();
  auto model = tiny_decoder(tok->vocab_size(), 32, 12);
  eval::ModelScorer scorer(model);
  const std::vector<int64_t> a = {5, 6, 7}, b = {8, 9, 10, 11, 12, 13};
  // Row 0: three pads on the left, then a. Row 1: b.
  auto ids = torch::tensor({0, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13}, torch::kLong).view({2, 6});
  auto mask = torch::tensor({0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, torch::kLong).view({2, 6});
  const auto batched = scorer.logits(ids, mask);
  const auto one_a = scorer.logits(torch::tensor(a, torch::kLong).unsqueeze(0), torch::ones({1, 3}, torch::kLong));
  const auto one_b = scorer.logits(torch::tensor(b, torch::kLong).unsqueeze(0), torch::ones({1, 6}, torch::kLong));
  // 1e-5: the same float32 sums with masked (exactly zero) attention weights added.
  BIOLM_REQUIRE_CLOSE(batched[0].slice(0, 3, 6), one_a[0], 1e-5);
  BIOLM_REQUIRE_CLOSE(batched[1], one_b[0], 1e-5);
  REQUIRE(model->is_training());  // the scorer ran in eval mode and gave the training mode back
}

TEST_CASE("ModelScorer scores a prompt-tuned model with its soft prompt, as run() does", "[eval][model][prompt]") {
  const auto tok = word_tokenizer();
  auto model = tiny_decoder(tok->vocab_size(), 32, 14);
  const auto ids = torch::tensor({5, 6, 7, 8}, torch::kLong).unsqueeze(0);
  eval::ModelScorer scorer(model);
  const auto plain = scorer.logits(ids, torch::ones({1, 4}, torch::kLong));
  peft::MethodConfig pc;
  pc.method = peft::Method::PromptTuning;
  pc.prompt = peft::PromptTuningOptions(4, model->config().hidden_size).init_std(1.0);
  peft::apply(*model, pc);
  REQUIRE(scorer.max_length() == 28);  // 32 positions, 4 taken by the soft prompt
  REQUIRE(eval::loglik_options_for(*model).max_length == 28);
  const auto scored = scorer.logits(ids, torch::ones({1, 4}, torch::kLong));
  REQUIRE(scored.sizes() == plain.sizes());
  data::Batch b;
  b["input_ids"] = ids;
  b["attention_mask"] = torch::ones({1, 4}, torch::kLong);
  model->eval();
  torch::Tensor trained_path;
  {
    torch::NoGradGuard no_grad;
    trained_path = model->run(b).logits.narrow(1, 4, 4);
  }
  BIOLM_REQUIRE_CLOSE(scored, trained_path, 1e-6);
  REQUIRE(test::max_abs_diff(scored, plain).max_abs > 1e-3);  // the soft prompt is used
  // Left padding after the prompt still gives a row what it gets alone.
  const auto padded = scorer.logits(torch::tensor({0, 0, 5, 6, 7, 8}, torch::kLong).unsqueeze(0),
                                    torch::tensor({0, 0, 1, 1, 1, 1}, torch::kLong).unsqueeze(0));
  BIOLM_REQUIRE_CLOSE(padded[0].slice(0, 2, 6), scored[0], 1e-5);
}

TEST_CASE("ModelScorer truncates contexts from the left to max_positions", "[eval][model]") {
  const auto tok = word_tokenizer();
  auto model = tiny_decoder(tok->vocab_size(), 8, 13);
  model->train();
  eval::ModelScorer scorer(model);
  REQUIRE(scorer.max_length() == 8);
  const std::string ctx = "context: patients with fever took aspirin and improved. question: is the drug safe? answer:";
  const std::vector<eval::LoglikRequest> reqs = {{ctx, " yes"}, {ctx, " no and improved"}};
  const auto res = eval::loglikelihoods(scorer, *tok, reqs, eval::loglik_options_for(*model));
  REQUIRE(std::abs(res[0].loglik - reference_loglik(*model, *tok, ctx, " yes", 8)) < 1e-4);
  REQUIRE(std::abs(res[1].loglik - reference_loglik(*model, *tok, ctx, " no and improved", 8)) < 1e-4);
  // Without the limit the model refuses the long input by name; its training mode is restored.
  model->train();
  REQUIRE_THROWS_WITH(eval::loglikelihoods(scorer, *tok, reqs, eval::LoglikOptions{}),
                      Catch::Contains("ModelScorer") && Catch::Contains("max_positions 8"));
  REQUIRE(model->is_training());
}

TEST_CASE("score_choices on a real decoder picks the independent argmax of total and normalised log-likelihood",
          "[eval][model]") {
  const auto tok = word_tokenizer();
  const std::string ctx = "context: patients took aspirin and improved. question: aspirin helps pain? answer:";
  const Strs conts = {" yes", " no", " maybe", " improved and safe", " the drug"};
  int64_t n_differ = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    auto model = tiny_decoder(tok->vocab_size(), 64, seed);
    eval::ModelScorer scorer(model);
    const auto s = eval::score_choices(scorer, *tok, ctx, conts, eval::loglik_options_for(*model, 2));
    std::vector<double> ll, norm;
    for (const auto& c : conts) {
      ll.push_back(reference_loglik(*model, *tok, ctx, c));
      norm.push_back(ll.back() / static_cast<double>(c.size() - 1));  // characters without the space
    }
    const auto best = std::max_element(ll.begin(), ll.end()) - ll.begin();
    const auto best_norm = std::max_element(norm.begin(), norm.end()) - norm.begin();
    REQUIRE(s.pred == best);
    REQUIRE(s.pred_norm == best_norm);
    for (size_t i = 0; i < conts.size(); ++i) REQUIRE(std::abs(s.loglik_norm[i] - norm[i]) < 1e-4);
    n_differ += best != best_norm ? 1 : 0;
  }
  // Over six random decoders the total and normalised winners disagree at least once: the
  // multi-token choices pay for their length in acc, not in acc_norm.
  REQUIRE(n_differ > 0);
}

TEST_CASE("make_generate_fn: greedy equals recomputed argmax decoding, stop strings, seeded sampling",
          "[eval][model]") {
  const auto tok = word_tokenizer();
  auto model = tiny_decoder(tok->vocab_size(), 64, 21);
  const std::string prompt = "question: is the drug safe? answer:";
  eval::GenerateFnOptions o;
  o.generation.max_new_tokens = 6;
  o.stop_strings = {};
  const auto greedy = eval::make_generate_fn(model, tok, o);
  const auto ref_ids = reference_greedy(*model, tok->encode(prompt, false).ids, 6);
  const std::string ref = tok->decode(ref_ids, true);
  REQUIRE(greedy(prompt) == ref);
  REQUIRE_FALSE(ref.empty());
  // A stop string cuts the text before its first occurrence.
  // A later generated word whose first occurrence is not at the start of the text.
  std::string cut_word;
  for (size_t j = 1; j < ref_ids.size() && cut_word.empty(); ++j) {
    const auto w = tok->id_to_token(ref_ids[j]);
    const auto at = ref.find(w);
    if (at != std::string::npos && at > 0) cut_word = w;
  }
  INFO("greedy text: " << ref);
  REQUIRE_FALSE(cut_word.empty());
  o.stop_strings = {cut_word};
  const std::string cut = eval::make_generate_fn(model, tok, o)(prompt);
  REQUIRE(cut == ref.substr(0, ref.find(cut_word)));
  REQUIRE(eval::cut_at_stop("yes.\n\nQuestion: next", {"\n\n", "\nQuestion:"}) == "yes.");
  REQUIRE(eval::cut_at_stop("no stop here", {"", "zzz"}) == "no stop here");
  // Sampling: the same seed gives the same text; another seed changes some of them.
  o.stop_strings = {};
  o.generation.temperature = 2.0;
  o.generation.seed = 7;
  const auto s7 = eval::make_generate_fn(model, tok, o);
  o.generation.seed = 8;
  const auto s8 = eval::make_generate_fn(model, tok, o);
  const Strs prompts = {prompt, "answer:", "context: patients took aspirin. answer:"};
  int64_t differ = 0;
  for (const auto& p : prompts) {
    REQUIRE(s7(p) == s7(p));
    differ += s7(p) != s8(p) ? 1 : 0;
  }
  REQUIRE(differ > 0);
  // The prompt is truncated from the left to leave room for the new tokens.
  auto small = tiny_decoder(tok->vocab_size(), 10, 22);
  o.generation.temperature = 0.0;
  o.generation.max_new_tokens = 4;
  const std::string long_prompt = "context: patients with fever took aspirin and improved. question: is the drug safe?";
  auto ids = tok->encode(long_prompt, false).ids;
  ids.erase(ids.begin(), ids.end() - 6);
  REQUIRE(eval::make_generate_fn(small, tok, o)(long_prompt) == tok->decode(reference_greedy(*small, ids, 4), true));
  o.generation.max_new_tokens = 10;
  REQUIRE_THROWS_WITH(eval::make_generate_fn(small, tok, o), Catch::Contains("generation.max_new_tokens"));
}

TEST_CASE("evaluate_mcqa_loglik on a real decoder equals independently scored choices", "[eval][model]") {
  const auto tok = word_tokenizer();
  auto model = tiny_decoder(tok->vocab_size(), 128, 31);
  eval::ModelScorer scorer(model);
  std::vector<eval::McqaExample> exs;
  exs.push_back(eval::pubmedqa_example("patients took aspirin and improved.", "aspirin helps pain?", "yes"));
  exs.push_back(eval::pubmedqa_example("patients with fever took the drug.", "is the drug safe?", "maybe"));
  exs.push_back(eval::pubmedqa_example("the drug and fever.", "is the drug safe for patients?", "no"));
  eval::PromptOptions po;
  po.format = eval::ChoiceFormat::Texts;
  po.k_shot = 1;
  po.pool_is_eval_set = true;
  eval::BootstrapOptions bo;
  bo.n_resamples = 200;
  const auto r = eval::evaluate_mcqa_loglik(scorer, *tok, exs, exs, po, eval::loglik_options_for(*model, 4), bo);
  double hits = 0, hits_norm = 0;
  for (size_t i = 0; i < exs.size(); ++i) {
    const std::string ctx = eval::build_prompt(exs[i], static_cast<int64_t>(i), exs, po);
    REQUIRE(ctx.find(exs[i].question) != std::string::npos);
    std::vector<double> ll, norm;
    for (const auto& c : exs[i].choices) {
      ll.push_back(reference_loglik(*model, *tok, ctx, " " + c));
      norm.push_back(ll.back() / static_cast<double>(c.size()));
    }
    const auto best = std::max_element(ll.begin(), ll.end()) - ll.begin();
    const auto best_norm = std::max_element(norm.begin(), norm.end()) - norm.begin();
    REQUIRE(r.scores[i].pred == best);
    REQUIRE(r.scores[i].pred_norm == best_norm);
    hits += best == exs[i].answer ? 1 : 0;
    hits_norm += best_norm == exs[i].answer ? 1 : 0;
  }
  REQUIRE(r.acc.point == Approx(hits / 3.0));
  REQUIRE(r.acc_norm.point == Approx(hits_norm / 3.0));
  REQUIRE(r.acc.lower <= r.acc.point);
  REQUIRE(r.acc.point <= r.acc.upper);
}

TEST_CASE("PubMedQA and MedQA files become harness examples, k-shot prompts follow the seed", "[eval][tasks]") {
  const auto pq = eval::pubmedqa_examples(data::read_pubmedqa(repo_data("pubmedqa/test.json").string()));
  REQUIRE(pq.size() == 100);
  REQUIRE(pq[0].question == "Does lisinopril reduce complications in hypertension?");
  REQUIRE(pq[0].context ==
          "We studied adults with hypertension in a synthetic cohort. Patients receiving lisinopril were compared "
          "with matched controls. Treatment with lisinopril significantly reduced complications of hypertension.");
  REQUIRE(pq[0].choices == Strs{"yes", "no", "maybe"});
  REQUIRE(pq[0].answer == 0);
  REQUIRE(pq[0].rationale == "Lisinopril significantly reduced complications of hypertension.");
  int64_t yes = 0, no = 0, maybe = 0;
  for (const auto& e : pq) (e.answer == 0 ? yes : e.answer == 1 ? no : maybe)++;
  REQUIRE((yes == 50 && no == 24 && maybe == 26));

  const auto mq = eval::mcqa_examples(data::read_medqa(repo_data("mcqa/test.jsonl").string()));
  REQUIRE(mq.size() == 100);
  REQUIRE(mq[0].choices == Strs{"colchicine", "prednisone", "nitrofurantoin", "omeprazole"});
  REQUIRE(mq[0].answer == 3);
  REQUIRE(mq[1].answer == 2);
  REQUIRE(eval::format_question(mq[0], eval::ChoiceFormat::Letters).find("\nD. omeprazole\nAnswer:") !=
          std::string::npos);

  const auto pool = eval::mcqa_examples(data::read_medqa(repo_data("mcqa/train.jsonl").string()));
  REQUIRE(pool.size() == 400);
  eval::PromptOptions po;
  po.k_shot = 3;
  po.seed = 5;
  const std::string p5 = eval::build_prompt(mq[0], 0, pool, po);
  REQUIRE(p5 == eval::build_prompt(mq[0], 0, pool, po));
  // Three shots, each a question with its answer letter, then the question.
  size_t n_answers = 0;
  for (size_t pos = p5.find("Answer: "); pos != std::string::npos; pos = p5.find("Answer: ", pos + 1)) ++n_answers;
  REQUIRE(n_answers == 3);
  REQUIRE(p5.size() > eval::format_question(mq[0], eval::ChoiceFormat::Letters).size());
  po.seed = 6;
  REQUIRE(eval::build_prompt(mq[0], 0, pool, po) != p5);
  po.seed = 5;
  REQUIRE(eval::build_prompt(mq[1], 1, pool, po) != p5);
}

TEST_CASE("MedMCQA records, unanswered records and free-text QA files", "[eval][tasks]") {
  test::TempDir dir("evaltasks");
  test::write_text(dir / "medmcqa.jsonl",
                   "{\"id\": \"m1\", \"question\": \"Drug for fever?\", \"opa\": \"aspirin\", \"opb\": \"x\", "
                   "\"opc\": \"y\", \"opd\": \"z\", \"cop\": 1, \"exp\": \"Aspirin lowers fever.\", "
                   "\"subject_name\": \"Pharmacology\"}\n"
                   "{\"id\": \"m2\", \"question\": \"Unlabelled?\", \"opa\": \"a\", \"opb\": \"b\", \"opc\": \"c\", "
                   "\"opd\": \"d\", \"subject_name\": \"Medicine\"}\n");
  const auto recs = data::read_medmcqa((dir / "medmcqa.jsonl").string());
  REQUIRE(recs.size() == 2);
  const auto one = eval::mcqa_examples({recs[0]});
  REQUIRE(one[0].answer == 0);
  REQUIRE(one[0].choices == Strs{"aspirin", "x", "y", "z"});
  REQUIRE(one[0].rationale == "Aspirin lowers fever.");
  REQUIRE(eval::format_answer(one[0], eval::ChoiceFormat::Letters, true) == " Aspirin lowers fever. The answer is (A).");
  REQUIRE_THROWS_WITH(eval::mcqa_examples(recs), Catch::Contains("medmcqa.jsonl:2") && Catch::Contains("answer"));

  test::write_text(dir / "qa.jsonl",
                   "{\"prompt\": \"Name the drug for fever.\", \"answer\": \"aspirin\"}\n"
                   "\n"
                   "{\"question\": \"What confirms heart failure?\", \"context\": \"Echo was done.\", "
                   "\"answers\": [\"echocardiogram\", \"echo\"]}\n");
  const auto qa = eval::read_qa_examples((dir / "qa.jsonl").string());
  REQUIRE(qa.size() == 2);
  REQUIRE(qa[0].question == "Name the drug for fever.");
  REQUIRE(qa[0].answers == Strs{"aspirin"});
  REQUIRE(qa[1].context == "Echo was done.");
  REQUIRE(qa[1].answers == Strs{"echocardiogram", "echo"});
  test::write_text(dir / "bad.jsonl", "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"prompt\": \"c\", \"answer\": 3}\n");
  REQUIRE_THROWS_WITH(eval::read_qa_examples((dir / "bad.jsonl").string()),
                      Catch::Contains("bad.jsonl:2") && Catch::Contains("answer"));
  test::write_text(dir / "noans.jsonl", "{\"prompt\": \"a\"}\n");
  REQUIRE_THROWS_WITH(eval::read_qa_examples((dir / "noans.jsonl").string()),
                      Catch::Contains("noans.jsonl:1") && Catch::Contains("answer"));

  const auto alpaca = eval::read_qa_examples(repo_data("instruct/train.jsonl").string());
  REQUIRE(alpaca.size() == 500);
  REQUIRE(alpaca[0].question == "Name the test that confirms the condition.\n\ncellulitis");
  REQUIRE(alpaca[0].answers == Strs{"wound culture"});

  // Scoring generations: a generator answering the first two right and the third wrong.
  const eval::GenerateFn gen = [](const std::string& prompt) -> std::string {
    if (prompt.find("cellulitis\nAnswer:") != std::string::npos) return " wound culture\n";
    if (prompt.find("acute kidney injury\nAnswer:") != std::string::npos) return " intravenous fluids";
    return " chest x ray";
  };
  const std::vector<eval::QaExample> three(alpaca.begin(), alpaca.begin() + 3);  // third: heart failure -> echocardiogram
  eval::BootstrapOptions bo;
  bo.n_resamples = 100;
  const auto r = eval::evaluate_qa_generate(gen, three, three, eval::PromptOptions{}, bo);
  REQUIRE(r.answers == Strs{"wound culture", "intravenous fluids", "chest x ray"});
  REQUIRE(r.exact_match.point == Approx(2.0 / 3.0));
  REQUIRE(r.f1.point == Approx(2.0 / 3.0));
}

TEST_CASE("Encoder heads on PubMedQA and MedQA, scored by their task family, equal one-example forward passes",
          "[eval][tasks]") {
  test::TempDir dir("evalheads");
  const auto tok = data_tokenizer(dir.path());
  const int64_t pad = tok->special().pad.value_or(0);
  tasks::TaskOptions o;
  o.max_length = 96;
  o.batch_size = 4;

  SECTION("sequence classification with labels yes/no/maybe in the model's own order") {
    const auto task = tasks::make_task("pubmedqa", o);
    task->set_labels(data::LabelMap::from_names({"maybe", "yes", "no"}));
    const auto d = task->featurize(*tok, repo_data("pubmedqa/test.json").string());
    const auto records = data::read_pubmedqa(repo_data("pubmedqa/test.json").string());
    REQUIRE(d->n_examples() == static_cast<int64_t>(records.size()));
    torch::manual_seed(3);
    auto model = models::make_task_model(tiny_encoder_config(tok->vocab_size()), models::TaskKind::SequenceClassification, 3);
    const auto preds = task->predict(*model, *tok, *d);
    const auto& cls = dynamic_cast<const tasks::ClassPredictions&>(*preds).classes;
    model->eval();
    torch::NoGradGuard no_grad;
    const Strs names = {"maybe", "yes", "no"};
    std::vector<int64_t> gold, pred;
    for (size_t i = 0; i < records.size(); ++i) {
      std::string ctx;
      for (const auto& c : records[i].contexts) ctx += (ctx.empty() ? "" : " ") + c;
      const auto f = data::pair_features(records[i].question, ctx, *tok, 96);
      const auto p = model->run(data::collate({f}, {pad})).logits[0].argmax().item<int64_t>();
      REQUIRE(cls[i] == p);
      pred.push_back(p);
      gold.push_back(std::find(names.begin(), names.end(), records[i].label) - names.begin());
    }
    const auto m = task->score(*d, *preds, 200, 7);
    double hits = 0;
    for (size_t i = 0; i < pred.size(); ++i) hits += pred[i] == gold[i] ? 1 : 0;
    REQUIRE(m["accuracy"]["value"].get<double>() == Approx(hits / static_cast<double>(pred.size())));
    REQUIRE(m["macro_f1"]["value"].get<double>() == Approx(macro_f1(gold, pred)));
    // A head whose labels are not PubMedQA's: the record and field are named.
    task->set_labels(data::LabelMap::from_names({"a", "b", "c"}));
    REQUIRE_THROWS_WITH(task->featurize(*tok, repo_data("pubmedqa/test.json").string()),
                        Catch::Contains("final_decision") && Catch::Contains("test.json"));
  }
  SECTION("multiple choice with 4 and 5 options in one file and one batch") {
    // Records 2 and 5 get a fifth option, so batches of 4 mix K = 4 and K = 5 (collate pads).
    std::ifstream in(repo_data("mcqa/test.jsonl"));
    std::string line, text;
    for (int i = 0; i < 7 && std::getline(in, line); ++i) {
      auto j = nlohmann::json::parse(line);
      if (i == 2 || i == 5) j["options"]["E"] = i == 2 ? "none of the above" : "all of the above";
      text += j.dump() + "\n";
    }
    test::write_text(dir.path() / "mixed.jsonl", text);
    const auto task = tasks::make_task("mcqa", o);
    const auto d = task->featurize(*tok, (dir.path() / "mixed.jsonl").string());
    REQUIRE(d->rows[2].choices.size() == 5);
    REQUIRE(d->rows[0].choices.size() == 4);
    torch::manual_seed(4);
    auto model = models::make_task_model(tiny_encoder_config(tok->vocab_size()), models::TaskKind::MultipleChoice);
    const auto preds = task->predict(*model, *tok, *d);
    const auto& cls = dynamic_cast<const tasks::ClassPredictions&>(*preds).classes;
    model->eval();
    torch::NoGradGuard no_grad;
    // Padding options change nothing: the ragged batch's logits and summed loss equal one-example runs.
    std::vector<data::Features> four(d->rows.begin(), d->rows.begin() + 4);
    const auto ragged = model->run(data::collate(four, {pad}));
    REQUIRE(ragged.logits.size(1) == 5);
    double loss_sum = 0;
    for (size_t i = 0; i < d->rows.size(); ++i) {
      const auto one = model->run(data::collate({d->rows[i]}, {pad}));
      REQUIRE(cls[i] == one.logits[0].argmax().item<int64_t>());
      if (i < 4) {
        const auto K = static_cast<int64_t>(d->rows[i].choices.size());
        REQUIRE(torch::allclose(ragged.logits[static_cast<int64_t>(i)].narrow(0, 0, K), one.logits[0], 1e-5, 1e-5));
        if (K < 5) REQUIRE(std::isinf(ragged.logits[static_cast<int64_t>(i)][4].item<double>()));
        loss_sum += one.loss_sum.item<double>();
      }
    }
    REQUIRE(ragged.loss_sum.item<double>() == Approx(loss_sum).epsilon(1e-5));
    const auto m = task->score(*d, *preds, 0, 1);
    REQUIRE(m.contains("accuracy"));
    REQUIRE(m.contains("macro_f1"));
  }
}

TEST_CASE("Real PubMedQA and MedQA-USMLE samples become harness examples", "[eval][tasks][shared]") {
  {
    BIOLM_SHARED_DATA_OR_SKIP(path, "pubmedqa/ori_pqal.json");
    const auto exs = eval::pubmedqa_examples(data::read_pubmedqa(path.string()));
    REQUIRE(exs.size() == 1000);
    int64_t counts[3] = {0, 0, 0};
    for (const auto& e : exs) {
      ++counts[e.answer];
      REQUIRE_FALSE(e.context.empty());
      REQUIRE_FALSE(e.rationale.empty());
    }
    // MANIFEST.json: final_decision yes 552, no 338, maybe 110.
    REQUIRE((counts[0] == 552 && counts[1] == 338 && counts[2] == 110));
  }
  {
    BIOLM_SHARED_DATA_OR_SKIP(path, "medqa_usmle/phrases_no_exclude_test.jsonl");
    const auto exs = eval::mcqa_examples(data::read_medqa(path.string()));
    REQUIRE(exs.size() == 1273);
    int64_t counts[4] = {0, 0, 0, 0};
    for (const auto& e : exs) {
      REQUIRE(e.choices.size() == 4);
      ++counts[e.answer];
    }
    // MANIFEST.json: answer_idx A 353, B 309, C 346, D 265.
    REQUIRE((counts[0] == 353 && counts[1] == 309 && counts[2] == 346 && counts[3] == 265));
  }
}

TEST_CASE("biolm report reads a biolm eval result file beside run directories", "[eval][report]") {
  test::TempDir dir("evalreport");
  test::write_text(dir / "zero.json",
                   R"({"name": "gpt 0-shot", "task": "pubmedqa", "mode": "loglik", "n": 20, "shots": 0,
                       "metrics": {"acc": {"value": 0.6, "ci": [0.4, 0.75]}, "acc_norm": {"value": 0.55, "ci": [0.35, 0.7]}}})");
  std::filesystem::create_directories(dir / "ft");
  test::write_text(dir / "ft" / "results.json",
                   R"({"tasks": {"pubmedqa": {"acc": {"value": 0.7, "ci": [0.6, 0.8]}}}})");
  const auto zero = eval::load_run(dir / "zero.json");
  REQUIRE(zero.name == "gpt 0-shot");
  REQUIRE(zero.tasks.size() == 1);
  REQUIRE(zero.find("pubmedqa", "acc")->value == 0.6);
  REQUIRE(*zero.find("pubmedqa", "acc_norm")->upper == 0.7);
  REQUIRE(zero.find("pubmedqa", "n") == nullptr);
  const auto table = eval::markdown_table({zero, eval::load_run(dir / "ft")});
  REQUIRE(table.find("| gpt 0-shot | 0.600 [0.400, 0.750] | 0.550 [0.350, 0.700] |") != std::string::npos);
  REQUIRE(table.find("| ft | 0.700 [0.600, 0.800] | – |") != std::string::npos);
  test::write_text(dir / "unnamed.json", R"({"task": "medqa", "metrics": {"acc": 0.25}})");
  REQUIRE(eval::load_run(dir / "unnamed.json").name == "unnamed");
  test::write_text(dir / "neither.json", R"({"task": "medqa"})");
  REQUIRE_THROWS_WITH(eval::load_run(dir / "neither.json"), Catch::Contains("neither.json") && Catch::Contains("tasks"));
}

// Writes the model directories `biolm eval` is tested on (tests/cli/eval.cmake) into
// $BIOLM_EVAL_MODEL_DIR: decoder/ (causal_lm), hf-decoder/ (the same as a Hugging Face
// directory), pubmedqa-cls/ (sequence_classification, labels yes/no/maybe) and
// hf-pubmedqa-cls/ (the same as a Hugging Face directory), mcqa-mc/ (multiple_choice). Random weights, seeded: the command is tested, not the model.
TEST_CASE("make the tiny model directories of the biolm eval command-line tests", "[.make_eval_model]") {
  const char* env = std::getenv("BIOLM_EVAL_MODEL_DIR");
  REQUIRE(env != nullptr);
  const std::filesystem::path out(env);
  std::filesystem::create_directories(out / "tokenizer");
  const auto tok = data_tokenizer(out / "tokenizer");
  const int64_t V = tok->vocab_size();
  io::ModelDirSaveOptions save;
  save.tokenizer = tok.get();

  auto dc = models::preset("tiny-decoder");
  dc.vocab_size = V;
  dc.max_positions = 256;
  dc.pad_token_id = tok->special().pad.value_or(0);
  dc.bos_token_id.reset();
  dc.eos_token_id.reset();
  torch::manual_seed(1);
  auto decoder = models::make_task_model(dc, models::TaskKind::CausalLM);
  io::ModelDirInfo di;
  di.config = dc;
  di.task = models::TaskKind::CausalLM;
  io::save_model_dir(*decoder, di, out / "decoder", save);
  io::HfSaveOptions hs;
  hs.task = models::TaskKind::CausalLM;
  hs.tokenizer_dir = out / "tokenizer";
  io::save_hf_directory(*decoder, dc, out / "hf-decoder", hs);

  torch::manual_seed(2);
  auto cls = models::make_task_model(tiny_encoder_config(V), models::TaskKind::SequenceClassification, 3);
  io::ModelDirInfo ci;
  ci.config = tiny_encoder_config(V);
  ci.task = models::TaskKind::SequenceClassification;
  ci.n_labels = 3;
  ci.labels = {"yes", "no", "maybe"};
  io::save_model_dir(*cls, ci, out / "pubmedqa-cls", save);
  io::HfSaveOptions hc;
  hc.task = models::TaskKind::SequenceClassification;
  hc.labels = ci.labels;
  hc.tokenizer_dir = out / "tokenizer";
  io::save_hf_directory(*cls, ci.config, out / "hf-pubmedqa-cls", hc);

  torch::manual_seed(3);
  auto mc = models::make_task_model(tiny_encoder_config(V), models::TaskKind::MultipleChoice);
  io::ModelDirInfo mi;
  mi.config = tiny_encoder_config(V);
  mi.task = models::TaskKind::MultipleChoice;
  io::save_model_dir(*mc, mi, out / "mcqa-mc", save);
  REQUIRE(io::is_model_dir(out / "decoder"));
  REQUIRE(std::filesystem::exists(out / "hf-decoder" / "config.json"));
}

// Zero-shot / few-shot harness: log-likelihood multiple choice, generation with answer
// extraction, seeded k-shot prompts (see biolm/eval/harness.h for the lm-eval reference).
#include "biolm/eval/harness.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "biolm/core/error.h"
#include "biolm/eval/classification.h"
#include "biolm/eval/py_random.h"
#include "biolm/eval/text.h"

namespace biolm::eval {
namespace {

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

int64_t argmax(const std::vector<double>& v) {
  return static_cast<int64_t>(std::max_element(v.begin(), v.end()) - v.begin());  // first max
}

// Position just after the last "answer is" / "answer:" marker, or npos.
size_t after_last_marker(const std::string& lower) {
  size_t best = std::string::npos;
  for (const char* marker : {"answer is", "answer:"}) {
    const size_t p = lower.rfind(marker);
    if (p != std::string::npos && (best == std::string::npos || p + std::char_traits<char>::length(marker) > best)) {
      best = p + std::char_traits<char>::length(marker);
    }
  }
  return best;
}

std::optional<int64_t> parse_choice_at(const std::string& lower, size_t pos,
                                       const std::vector<std::string>& choices, ChoiceFormat format) {
  while (pos < lower.size() && (is_space(lower[pos]) || lower[pos] == ':' || lower[pos] == '*')) ++pos;
  if (pos >= lower.size()) return std::nullopt;
  auto boundary = [&](size_t end) { return end >= lower.size() || !is_alnum(lower[end]); };
  if (format == ChoiceFormat::Letters) {
    size_t p = pos;
    if (lower[p] == '(') ++p;
    if (p >= lower.size() || lower[p] < 'a' || lower[p] > 'z' || !boundary(p + 1)) return std::nullopt;
    const int64_t idx = lower[p] - 'a';
    if (idx >= static_cast<int64_t>(choices.size())) return std::nullopt;
    return idx;
  }
  std::optional<int64_t> best;
  size_t best_len = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    const std::string c = lower_ascii(trim(choices[i]));
    if (!c.empty() && lower.compare(pos, c.size(), c) == 0 && boundary(pos + c.size()) && c.size() > best_len) {
      best = static_cast<int64_t>(i);
      best_len = c.size();
    }
  }
  return best;
}

bool same_example(const McqaExample& a, const McqaExample& b) {
  return a.question == b.question && a.choices == b.choices && a.answer == b.answer && a.context == b.context &&
         a.rationale == b.rationale;
}
bool same_example(const QaExample& a, const QaExample& b) {
  return a.question == b.question && a.context == b.context && a.answers == b.answers;
}

// The shots of every example; with LmEval, pool entries equal in content to the evaluated example
// are left out as lm-eval's rm_eval_doc does (it compares documents by value).
template <typename Example>
std::vector<std::vector<int64_t>> shots_of_all(const std::vector<Example>& examples, const std::vector<Example>& pool,
                                               const PromptOptions& o) {
  const auto n = static_cast<int64_t>(examples.size());
  if (o.sampler == ShotSampler::LmEval) {
    return draw_shots_lm_eval(static_cast<int64_t>(pool.size()), n, o.k_shot, o.seed, o.pool_is_eval_set,
                              [&](int64_t i, int64_t j) {
                                return same_example(examples[static_cast<size_t>(i)], pool[static_cast<size_t>(j)]);
                              });
  }
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(draw_shots(static_cast<int64_t>(pool.size()), o.k_shot, o.seed, i, o.pool_is_eval_set ? i : -1));
  }
  return out;
}

std::string join_prompt(const PromptOptions& o, const std::vector<std::string>& shots,
                        const std::string& question) {
  std::string out;
  if (!o.description.empty()) out += o.description + o.shot_separator;
  for (const auto& s : shots) out += s + o.shot_separator;
  out += question;
  if (o.chain_of_thought) out += " " + o.cot_trigger;
  return out;
}

std::string format_qa_question(const QaExample& ex) {
  std::string out;
  if (!ex.context.empty()) out += "Context: " + ex.context + "\n";
  return out + "Question: " + ex.question + "\nAnswer:";
}

// Choice scores from the results of choices[0..n) starting at results[first]; `choices` are the
// choice strings without the target delimiter (lm-eval: len(doc_to_choice(doc)[i])).
ChoiceScores choice_scores(const std::vector<LoglikResult>& results, size_t first,
                           const std::vector<std::string>& choices) {
  ChoiceScores s;
  for (size_t i = 0; i < choices.size(); ++i) {
    const double ll = results[first + i].loglik;
    s.loglik.push_back(ll);
    // lm-eval divides by float(len(choice)) as it is, untrimmed (an empty choice would divide by
    // zero there; we divide by 1).
    const auto chars = std::max<int64_t>(1, utf8_length(choices[i]));
    s.loglik_norm.push_back(ll / static_cast<double>(chars));
  }
  s.pred = argmax(s.loglik);
  s.pred_norm = argmax(s.loglik_norm);
  return s;
}

double mean_at(const std::vector<double>& v, const std::vector<int64_t>& idx) {
  double s = 0.0;
  for (int64_t i : idx) s += v[static_cast<size_t>(i)];
  return s / static_cast<double>(idx.size());
}

}  // namespace

int64_t utf8_length(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

std::vector<LoglikResult> loglikelihoods(CausalScorer& scorer, const tokenize::Tokenizer& tokenizer,
                                         const std::vector<LoglikRequest>& requests,
                                         const LoglikOptions& options) {
  BIOLM_CHECK(options.batch_size > 0, ConfigError, "eval.batch_size",
              fmt::format("must be > 0, got {}", options.batch_size));
  struct Item {
    std::vector<int64_t> input;  // model input (context + continuation)[:-1], maybe truncated
    std::vector<int64_t> cont;   // continuation ids: the last cont.size() targets
  };
  std::vector<Item> items;
  const auto bos = tokenizer.special().bos;
  // lm-eval's HFLM.tok_encode(text) is tokenizer.encode(text) with the tokenizer's own special
  // tokens (HF add_special_tokens=True), except for a text that already starts with the prefix
  // token's text (BOS, else EOS). We keep only the leading BOS of those specials: a decoder
  // tokenizer that also appends EOS (biolm's SentencePiece decoders do) would otherwise put an EOS
  // between context and continuation, where lm-eval scores whole[len(context + EOS):], the
  // continuation shifted by one token.
  const auto prefix_token = bos ? bos : tokenizer.special().eos;
  const std::string prefix_text = prefix_token ? tokenizer.decode({*prefix_token}, false) : std::string();
  const bool tokenizer_adds_bos = [&] {
    if (!bos) return false;
    const auto with = tokenizer.encode("a", true).ids, without = tokenizer.encode("a", false).ids;
    return !with.empty() && with.front() == *bos && (without.empty() || without.front() != *bos);
  }();
  auto encode = [&](const std::string& text) {
    auto ids = tokenizer.encode(text, false).ids;
    const bool has_prefix_text = !prefix_text.empty() && text.compare(0, prefix_text.size(), prefix_text) == 0;
    const bool add = options.bos == BosPolicy::Always ||
                     (options.bos == BosPolicy::Tokenizer && tokenizer_adds_bos && !has_prefix_text);
    if (add && bos) ids.insert(ids.begin(), *bos);
    return ids;
  };
  for (size_t r = 0; r < requests.size(); ++r) {
    std::string context = requests[r].context;
    std::string continuation = requests[r].continuation;
    Item item;
    std::vector<int64_t> ctx_ids;
    if (context.empty()) {
      // lm-eval loglikelihood(): an empty context is the prefix token (BOS, else EOS), unless the
      // continuation itself starts with it.
      item.cont = tokenizer.encode(continuation, false).ids;
      const auto& prefix = prefix_token;
      BIOLM_CHECK(!item.cont.empty(), Error, fmt::format("eval: request {}: empty context and continuation", r));
      if (prefix && *prefix != item.cont.front()) {
        ctx_ids = {*prefix};
      } else {
        BIOLM_CHECK(item.cont.size() > 1, Error,
                    fmt::format("eval: request {}: empty context and no BOS/EOS token to condition on", r));
        ctx_ids = {item.cont.front()};
        item.cont.erase(item.cont.begin());
      }
    } else {
      // lm-eval _encode_pair: trailing whitespace of the context belongs to the continuation.
      size_t keep = context.size();
      while (keep > 0 && is_space(context[keep - 1])) --keep;
      continuation = context.substr(keep) + continuation;
      context.resize(keep);
      ctx_ids = encode(context);
      const std::vector<int64_t> whole = encode(context + continuation);
      BIOLM_CHECK(whole.size() > ctx_ids.size(), Error,
                  fmt::format("eval: request {}: continuation \"{}\" adds no token", r, continuation));
      item.cont.assign(whole.begin() + static_cast<std::ptrdiff_t>(ctx_ids.size()), whole.end());
    }
    BIOLM_CHECK(!ctx_ids.empty(), Error,
                fmt::format("eval: request {}: the context encodes to no token (whitespace only?)", r));
    item.input = ctx_ids;
    item.input.insert(item.input.end(), item.cont.begin(), item.cont.end() - 1);
    if (options.max_length > 0 && static_cast<int64_t>(item.input.size()) > options.max_length) {
      BIOLM_CHECK(static_cast<int64_t>(item.cont.size()) <= options.max_length, ConfigError,
                  "eval.max_length",
                  fmt::format("request {}: continuation of {} tokens exceeds max_length {}", r,
                              item.cont.size(), options.max_length));
      item.input.erase(item.input.begin(), item.input.end() - options.max_length);
    }
    items.push_back(std::move(item));
  }

  const int64_t pad = tokenizer.special().pad.value_or(tokenizer.special().eos.value_or(0));
  std::vector<LoglikResult> out(items.size());
  torch::NoGradGuard no_grad;
  for (size_t start = 0; start < items.size(); start += static_cast<size_t>(options.batch_size)) {
    const size_t end = std::min(items.size(), start + static_cast<size_t>(options.batch_size));
    const auto B = static_cast<int64_t>(end - start);
    int64_t T = 0;
    for (size_t i = start; i < end; ++i) T = std::max<int64_t>(T, static_cast<int64_t>(items[i].input.size()));
    auto ids = torch::full({B, T}, pad, torch::kLong);
    auto mask = torch::zeros({B, T}, torch::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& in = items[start + static_cast<size_t>(b)].input;
      for (size_t t = 0; t < in.size(); ++t) {
        ids_a[b][static_cast<int64_t>(t)] = in[t];
        mask_a[b][static_cast<int64_t>(t)] = 1;
      }
    }
    const at::Tensor logits = scorer.logits(ids.to(scorer.device()), mask.to(scorer.device()));
    BIOLM_CHECK(logits.dim() == 3 && logits.size(0) == B && logits.size(1) == T, ShapeError,
                "CausalScorer", fmt::format("expected logits (B={}, T={}, V), got {}", B, T,
                                            fmt::join(logits.sizes().vec(), "x")));
    // log_softmax in float64 on the CPU: sums of many log-probabilities stay exact enough to
    // rank options that differ in the last digits.
    const auto logp = torch::log_softmax(logits.to(torch::kCPU, torch::kDouble), -1);
    const auto lp = logp.accessor<double, 3>();
    const int64_t V = logp.size(2);
    for (int64_t b = 0; b < B; ++b) {
      const Item& item = items[start + static_cast<size_t>(b)];
      const auto L = static_cast<int64_t>(item.input.size());
      const auto n_cont = static_cast<int64_t>(item.cont.size());
      LoglikResult& res = out[start + static_cast<size_t>(b)];
      res.n_tokens = n_cont;
      res.is_greedy = true;
      for (int64_t j = 0; j < n_cont; ++j) {
        const int64_t pos = L - n_cont + j;  // this position predicts continuation token j
        const int64_t target = item.cont[static_cast<size_t>(j)];
        BIOLM_CHECK(target >= 0 && target < V, ShapeError, "CausalScorer",
                    fmt::format("token id {} outside the vocabulary of {} logits", target, V));
        res.loglik += lp[b][pos][target];
        int64_t best = 0;
        for (int64_t v = 1; v < V; ++v) best = lp[b][pos][v] > lp[b][pos][best] ? v : best;
        res.is_greedy = res.is_greedy && best == target;
      }
    }
  }
  return out;
}

ChoiceScores score_choices(CausalScorer& scorer, const tokenize::Tokenizer& tokenizer,
                           const std::string& context, const std::vector<std::string>& continuations,
                           const LoglikOptions& options) {
  std::vector<LoglikRequest> reqs;
  std::vector<std::string> choices;
  for (const auto& c : continuations) {
    reqs.push_back({context, c});
    choices.push_back(!c.empty() && c.front() == ' ' ? c.substr(1) : c);
  }
  return choice_scores(loglikelihoods(scorer, tokenizer, reqs, options), 0, choices);
}

std::string choice_letter(int64_t i) {
  BIOLM_CHECK(i >= 0 && i < 26, ConfigError, "eval.choices", fmt::format("choice {} has no letter A-Z", i));
  return std::string(1, static_cast<char>('A' + i));
}

std::string format_question(const McqaExample& ex, ChoiceFormat format, const std::string& context_label) {
  std::string out;
  if (!ex.context.empty()) out += context_label + ": " + ex.context + "\n";
  out += "Question: " + ex.question + "\n";
  if (format == ChoiceFormat::Letters) {
    for (size_t i = 0; i < ex.choices.size(); ++i) {
      out += choice_letter(static_cast<int64_t>(i)) + ". " + ex.choices[i] + "\n";
    }
  }
  return out + "Answer:";
}

std::string format_answer(const McqaExample& ex, ChoiceFormat format, bool chain_of_thought) {
  BIOLM_CHECK(ex.answer >= 0 && ex.answer < static_cast<int64_t>(ex.choices.size()), ConfigError,
              "eval.answer", fmt::format("answer {} outside {} choices", ex.answer, ex.choices.size()));
  const std::string label = format == ChoiceFormat::Letters
                                ? choice_letter(ex.answer)
                                : ex.choices[static_cast<size_t>(ex.answer)];
  if (!chain_of_thought) return " " + label;
  const std::string shown = format == ChoiceFormat::Letters ? "(" + label + ")" : label;
  return (ex.rationale.empty() ? std::string() : " " + ex.rationale) + " The answer is " + shown + ".";
}

std::vector<int64_t> draw_shots(int64_t pool_size, int64_t k, uint64_t seed, int64_t example_index,
                                int64_t exclude) {
  std::vector<int64_t> candidates;
  for (int64_t i = 0; i < pool_size; ++i) {
    if (i != exclude) candidates.push_back(i);
  }
  BIOLM_CHECK(k >= 0 && k <= static_cast<int64_t>(candidates.size()), ConfigError, "eval.k_shot",
              fmt::format("{} shots requested from a pool of {}", k, candidates.size()));
  ResampleGenerator gen(splitmix64(seed ^ splitmix64(static_cast<uint64_t>(example_index))));
  // Partial Fisher-Yates: the first k positions become a uniform sample without replacement.
  for (int64_t i = 0; i < k; ++i) {
    const auto j = i + static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(candidates.size() - i)));
    std::swap(candidates[static_cast<size_t>(i)], candidates[static_cast<size_t>(j)]);
  }
  candidates.resize(static_cast<size_t>(k));
  return candidates;
}

std::vector<std::vector<int64_t>> draw_shots_lm_eval(int64_t pool_size, int64_t n_examples, int64_t k,
                                                     uint64_t seed, bool pool_is_eval_set,
                                                     const std::function<bool(int64_t, int64_t)>& same) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(n_examples));
  if (k == 0) return out;  // ContextSampler.sample(0) returns before drawing
  const int64_t drawn = pool_is_eval_set ? k + 1 : k;
  BIOLM_CHECK(k > 0 && drawn <= pool_size, ConfigError, "eval.k_shot",
              fmt::format("{} shots requested from a pool of {}{}", k, pool_size,
                          pool_is_eval_set ? " that holds the evaluated example (lm-eval draws k + 1)" : ""));
  // ContextSampler.set_rnd(seed): random.Random(int); lm-eval's seeds are Python ints.
  PyRandom rnd(static_cast<int64_t>(seed));
  for (int64_t i = 0; i < n_examples; ++i) {
    auto& shots = out[static_cast<size_t>(i)];
    if (!pool_is_eval_set) {
      shots = rnd.sample(pool_size, k);
      continue;
    }
    auto is_eval_doc = [&](int64_t j) { return j == i || same(i, j); };
    for (int64_t j : rnd.sample(pool_size, k + 1)) {
      if (!is_eval_doc(j) && static_cast<int64_t>(shots.size()) < k) shots.push_back(j);
    }
    if (static_cast<int64_t>(shots.size()) < k) {
      // The pool held more than one copy of the evaluated document: resample from the rest.
      std::vector<int64_t> rest;
      for (int64_t j = 0; j < pool_size; ++j) {
        if (!is_eval_doc(j)) rest.push_back(j);
      }
      shots.clear();
      for (int64_t r : rnd.sample(static_cast<int64_t>(rest.size()), k)) shots.push_back(rest[static_cast<size_t>(r)]);
    }
  }
  return out;
}

std::vector<std::vector<int64_t>> draw_all_shots(const std::vector<McqaExample>& examples,
                                                 const std::vector<McqaExample>& pool, const PromptOptions& options) {
  return shots_of_all(examples, pool, options);
}

std::string build_prompt(const McqaExample& example, int64_t example_index,
                         const std::vector<McqaExample>& pool, const PromptOptions& options) {
  return build_prompt_with_shots(example,
                                 draw_shots(static_cast<int64_t>(pool.size()), options.k_shot, options.seed,
                                            example_index, options.pool_is_eval_set ? example_index : -1),
                                 pool, options);
}

std::string build_prompt_with_shots(const McqaExample& example, const std::vector<int64_t>& shot_indices,
                                    const std::vector<McqaExample>& pool, const PromptOptions& options) {
  std::vector<std::string> shots;
  for (int64_t s : shot_indices) {
    const auto& shot = pool[static_cast<size_t>(s)];
    shots.push_back(format_question(shot, options.format, options.context_label) +
                    format_answer(shot, options.format, options.chain_of_thought));
  }
  return join_prompt(options, shots, format_question(example, options.format, options.context_label));
}

McqaExample pubmedqa_example(const std::string& abstract, const std::string& question,
                             const std::string& gold_label) {
  static const std::vector<std::string> kLabels = {"yes", "no", "maybe"};
  const auto it = std::find(kLabels.begin(), kLabels.end(), gold_label);
  BIOLM_CHECK(it != kLabels.end(), ConfigError, "pubmedqa.final_decision",
              fmt::format("expected yes|no|maybe, found \"{}\"", gold_label));
  McqaExample ex;
  ex.context = abstract;
  ex.question = question;
  ex.choices = kLabels;
  ex.answer = it - kLabels.begin();
  return ex;
}

std::optional<int64_t> extract_choice(std::string_view generation, const std::vector<std::string>& choices,
                                      ChoiceFormat format) {
  const std::string lower = lower_ascii(generation);
  const size_t marker = after_last_marker(lower);
  if (marker != std::string::npos) {
    if (auto c = parse_choice_at(lower, marker, choices, format)) return c;
  }
  return parse_choice_at(lower, 0, choices, format);
}

std::string extract_free_answer(std::string_view generation) {
  const std::string text(generation);
  const size_t marker = after_last_marker(lower_ascii(text));
  std::string answer;
  if (marker != std::string::npos) {
    const size_t nl = text.find('\n', marker);
    answer = trim(text.substr(marker, nl == std::string::npos ? std::string::npos : nl - marker));
  } else {
    size_t pos = 0;
    while (pos <= text.size()) {
      const size_t nl = text.find('\n', pos);
      answer = trim(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
      if (!answer.empty() || nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  if (!answer.empty() && answer.back() == '.') answer.pop_back();
  return trim(answer);
}

McqaResult evaluate_mcqa_loglik(CausalScorer& scorer, const tokenize::Tokenizer& tokenizer,
                                const std::vector<McqaExample>& examples,
                                const std::vector<McqaExample>& shot_pool, const PromptOptions& prompt,
                                const LoglikOptions& loglik, const BootstrapOptions& bootstrap) {
  BIOLM_CHECK(!prompt.chain_of_thought, ConfigError, "eval.chain_of_thought",
              "log-likelihood scoring has no generated reasoning; use evaluate_mcqa_generate");
  BIOLM_CHECK(!examples.empty(), Error, "eval: no examples");
  std::vector<LoglikRequest> reqs;
  std::vector<std::vector<std::string>> choices(examples.size());
  McqaResult out;
  const auto shots = draw_all_shots(examples, shot_pool, prompt);
  for (size_t i = 0; i < examples.size(); ++i) {
    out.prompts.push_back(build_prompt_with_shots(examples[i], shots[i], shot_pool, prompt));
    for (size_t c = 0; c < examples[i].choices.size(); ++c) {
      choices[i].push_back(prompt.format == ChoiceFormat::Letters ? choice_letter(static_cast<int64_t>(c))
                                                                  : examples[i].choices[c]);
      reqs.push_back({out.prompts.back(), " " + choices[i].back()});  // lm-eval target_delimiter " "
    }
  }
  const auto res = loglikelihoods(scorer, tokenizer, reqs, loglik);
  size_t r = 0;
  std::vector<double> correct, correct_norm;
  std::vector<std::string> gold, pred;
  for (size_t i = 0; i < examples.size(); ++i) {
    ChoiceScores s = choice_scores(res, r, choices[i]);
    r += choices[i].size();
    correct.push_back(s.pred == examples[i].answer ? 1.0 : 0.0);
    correct_norm.push_back(s.pred_norm == examples[i].answer ? 1.0 : 0.0);
    gold.push_back(std::to_string(examples[i].answer));
    pred.push_back(std::to_string(s.pred));
    out.scores.push_back(std::move(s));
  }
  const auto labels = sorted_labels(gold, pred);
  const auto stats = bootstrap_intervals(
      static_cast<int64_t>(examples.size()),
      [&](const std::vector<int64_t>& idx) {
        std::vector<std::string> g, p;
        for (int64_t i : idx) {
          g.push_back(gold[static_cast<size_t>(i)]);
          p.push_back(pred[static_cast<size_t>(i)]);
        }
        return std::vector<double>{mean_at(correct, idx), mean_at(correct_norm, idx),
                                   classification_report(g, p, {labels, ZeroDivision::Zero}).prf.macro.f1};
      },
      bootstrap);
  out.acc = stats[0];
  out.acc_norm = stats[1];
  out.macro_f1 = stats[2];
  return out;
}

McqaGenerationResult evaluate_mcqa_generate(const GenerateFn& generate,
                                            const std::vector<McqaExample>& examples,
                                            const std::vector<McqaExample>& shot_pool,
                                            const PromptOptions& prompt, const BootstrapOptions& bootstrap) {
  BIOLM_CHECK(!examples.empty(), Error, "eval: no examples");
  McqaGenerationResult out;
  std::vector<double> correct;
  const auto shots = draw_all_shots(examples, shot_pool, prompt);
  for (size_t i = 0; i < examples.size(); ++i) {
    out.generations.push_back(generate(build_prompt_with_shots(examples[i], shots[i], shot_pool, prompt)));
    const auto choice = extract_choice(out.generations.back(), examples[i].choices, prompt.format);
    out.pred.push_back(choice.value_or(-1));
    out.n_unparsed += choice ? 0 : 1;
    correct.push_back(choice && *choice == examples[i].answer ? 1.0 : 0.0);
  }
  out.acc = bootstrap_interval(static_cast<int64_t>(examples.size()),
                               [&](const std::vector<int64_t>& idx) { return mean_at(correct, idx); },
                               bootstrap);
  return out;
}

QaGenerationResult evaluate_qa_generate(const GenerateFn& generate, const std::vector<QaExample>& examples,
                                        const std::vector<QaExample>& shot_pool,
                                        const PromptOptions& prompt, const BootstrapOptions& bootstrap) {
  BIOLM_CHECK(!examples.empty(), Error, "eval: no examples");
  QaGenerationResult out;
  std::vector<double> em, f1, rouge;
  std::vector<BleuStats> bleu;
  const auto drawn = shots_of_all(examples, shot_pool, prompt);
  for (size_t i = 0; i < examples.size(); ++i) {
    const QaExample& ex = examples[i];
    BIOLM_CHECK(!ex.answers.empty(), Error, fmt::format("eval: QA example {} has no gold answer", i));
    std::vector<std::string> shots;
    for (int64_t s : drawn[i]) {
      const auto& shot = shot_pool[static_cast<size_t>(s)];
      BIOLM_CHECK(!shot.answers.empty(), Error, fmt::format("eval: QA shot {} has no gold answer", s));
      shots.push_back(format_qa_question(shot) + " " + shot.answers.front());
    }
    out.generations.push_back(generate(join_prompt(prompt, shots, format_qa_question(ex))));
    out.answers.push_back(extract_free_answer(out.generations.back()));
    const QaScore q = squad_score(out.answers.back(), ex.answers);
    em.push_back(q.exact_match);
    f1.push_back(q.f1);
    std::vector<std::vector<std::string>> refs;
    for (const auto& a : ex.answers) refs.push_back(whitespace_tokens(a));
    bleu.push_back(bleu_stats(whitespace_tokens(out.answers.back()), refs));
    rouge.push_back(rouge_l_multi(ex.answers, out.answers.back()).fmeasure);
  }
  const auto stats = bootstrap_intervals(
      static_cast<int64_t>(examples.size()),
      [&](const std::vector<int64_t>& idx) {
        BleuStats total;
        for (int64_t i : idx) total += bleu[static_cast<size_t>(i)];
        return std::vector<double>{mean_at(em, idx), mean_at(f1, idx),
                                   bleu_from_stats(total, {1, BleuSmoothing::None, false}),
                                   bleu_from_stats(total, {4, BleuSmoothing::None, false}),
                                   mean_at(rouge, idx)};
      },
      bootstrap);
  out.exact_match = stats[0];
  out.f1 = stats[1];
  out.bleu1 = stats[2];
  out.bleu4 = stats[3];
  out.rouge_l = stats[4];
  return out;
}

}  // namespace biolm::eval

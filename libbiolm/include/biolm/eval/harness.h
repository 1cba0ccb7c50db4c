// biolm/eval/harness.h: zero-shot / few-shot evaluation of decoders.
//
// Written against two small interfaces so it does not depend on the model code: CausalScorer
// (next-token logits) for log-likelihood scoring and GenerateFn (prompt -> text) for free
// generation. Reference: EleutherAI lm-evaluation-harness (v0.4, checked against 0.4.13 by
// tests/parity/test_harness.py):
//   - loglikelihood(context, continuation) (lm_eval/api/model.py, _encode_pair): trailing spaces
//     of the context move to the continuation; whole = encode(context + continuation),
//     context_ids = encode(context), continuation ids = whole[len(context_ids):], both encoded
//     WITH the tokenizer's own special tokens (HF add_special_tokens=True: a BOS only when the
//     tokenizer's post-processor adds one, none for GPT-2-style tokenizers; BosPolicy); an
//     empty context is the BOS (else EOS) token; the model sees (context + continuation)[:-1]
//     (left-truncated to max_length) and the continuation log-probabilities are summed;
//   - multiple choice: acc takes argmax of the summed log-likelihood of " " + choice, acc_norm the
//     argmax of log-likelihood / len(choice) (the choice string without the delimiter, in Python
//     characters: we count UTF-8 code points). Ties go to the first choice.
//   - PubMedQA: lm-eval's own pubmedqa task writes "Abstract: ..."; we write "Context: ...\n
//     Question: ...\nAnswer:" with choices yes / no / maybe, scored as multiple choice.
// Few-shot: k examples drawn without replacement from a pool, the evaluated example left out when
// the pool is the evaluation set. ShotSampler::Biolm gives each evaluated example its own draw
// from (seed, example index), so results do not depend on evaluation order; ShotSampler::LmEval
// reproduces lm-eval's ContextSampler: one Python random.Random(seed) for the whole run, drawn in
// example order, sample(pool, k) (or sample(pool, k + 1) minus the evaluated example when the
// pool is the evaluation set); see py_random.h.
// Chain of thought: the prompt ends in "Answer: Let's think step by step." and shots show their
// rationale followed by "The answer is (X)."; the final answer is parsed from the generation
// without regular expressions (extract_choice).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "biolm/eval/bootstrap.h"
#include "biolm/tokenize/tokenizer.h"

namespace biolm::eval {

/// What the harness needs from a decoder.
class CausalScorer {
 public:
  virtual ~CausalScorer() = default;
  /// input_ids (B,T) int64, attention_mask (B,T) int64 (1 = token, 0 = right padding)
  /// -> logits (B,T,V): position t predicts token t+1.
  virtual at::Tensor logits(const at::Tensor& input_ids, const at::Tensor& attention_mask) = 0;
  /// Where input_ids should live (the model's device).
  virtual at::Device device() const { return at::Device(at::kCPU); }
};

/// Free generation: prompt in, generated continuation out (greedy decoding is the usual choice).
using GenerateFn = std::function<std::string(const std::string& prompt)>;

/// Whether each encoded context (and context + continuation) starts with the tokenizer's BOS.
enum class BosPolicy {
  Tokenizer,  ///< when the tokenizer adds it itself (encode(text, true) starts with BOS): lm-eval's
              ///< HF default (a template "<s> $A" yes, GPT-2 no); a text starting with the BOS
              ///< text gets none; a trailing EOS the tokenizer would add is never used
  Always,     ///< always prepend the tokenizer's BOS (when it has one)
  Never,      ///< no BOS (lm-eval's add_bos_token=False)
};

struct LoglikOptions {
  BosPolicy bos = BosPolicy::Tokenizer;
  int64_t batch_size = 8;
  int64_t max_length = 0;  ///< 0 = no limit; else inputs keep their last max_length tokens
};

struct LoglikRequest {
  std::string context;
  std::string continuation;
};

struct LoglikResult {
  double loglik = 0.0;       ///< sum of log p(continuation token | prefix)
  bool is_greedy = false;    ///< every continuation token is the argmax
  int64_t n_tokens = 0;      ///< continuation tokens scored
};

/// Scores requests in batches of options.batch_size (no gradient).
std::vector<LoglikResult> loglikelihoods(CausalScorer& scorer, const tokenize::Tokenizer& tokenizer,
                                         const std::vector<LoglikRequest>& requests,
                                         const LoglikOptions& options = {});

struct ChoiceScores {
  std::vector<double> loglik;       ///< per choice
  std::vector<double> loglik_norm;  ///< loglik / characters of the choice (without the delimiter)
  int64_t pred = 0;                 ///< argmax loglik (acc)
  int64_t pred_norm = 0;            ///< argmax loglik_norm (acc_norm)
};

/// Scores each continuation after `context` (continuations as they follow the context, e.g. " A";
/// acc_norm divides by the characters of the continuation less one leading space, the delimiter).
ChoiceScores score_choices(CausalScorer& scorer, const tokenize::Tokenizer& tokenizer,
                           const std::string& context, const std::vector<std::string>& continuations,
                           const LoglikOptions& options = {});

/// Number of Unicode code points of UTF-8 text (Python's len()).
int64_t utf8_length(std::string_view text);

// ---- prompts ------------------------------------------------------------------------------
struct McqaExample {
  std::string question;
  std::vector<std::string> choices;
  int64_t answer = 0;      ///< index into choices
  std::string context;     ///< optional passage (PubMedQA abstract); "Context: ..." line
  std::string rationale;   ///< optional reasoning shown in chain-of-thought shots
};

/// Letters: choices listed as "A. text" and answered " A"; Texts: answered " " + choice text.
enum class ChoiceFormat { Letters, Texts };

/// How the k shots of each example are drawn (see the file comment).
enum class ShotSampler { Biolm, LmEval };

struct PromptOptions {
  std::string description;            ///< text before the shots ("" = none)
  int64_t k_shot = 0;
  uint64_t seed = 1234;               ///< lm-eval's default few-shot seed
  bool pool_is_eval_set = false;      ///< leave the evaluated example out of its own shots
  ShotSampler sampler = ShotSampler::Biolm;
  std::string context_label = "Context";  ///< lm-eval's pubmedqa task writes "Abstract"
  std::string shot_separator = "\n\n";
  ChoiceFormat format = ChoiceFormat::Letters;
  bool chain_of_thought = false;
  std::string cot_trigger = "Let's think step by step.";
};

/// "Context: ...\n" (when any; the label is context_label) + "Question: ...\n" + ("A. ...\n" per
/// choice with Letters) + "Answer:".
std::string format_question(const McqaExample& example, ChoiceFormat format,
                            const std::string& context_label = "Context");
/// " B" / " yes"; with chain of thought " <rationale> The answer is (B)." (or "is yes.").
std::string format_answer(const McqaExample& example, ChoiceFormat format, bool chain_of_thought);
/// Letter of choice i: A, B, ... (i < 26).
std::string choice_letter(int64_t i);

/// k distinct pool indices drawn from (seed, example_index), skipping `exclude` (-1: none).
std::vector<int64_t> draw_shots(int64_t pool_size, int64_t k, uint64_t seed, int64_t example_index,
                                int64_t exclude);

/// lm-eval's ContextSampler draw for examples 0..n_examples-1 in order: one
/// random.Random(seed); pool_is_eval_set: sample(pool, k + 1), drop the evaluated example (index
/// i and any pool entry `same(i, j)` says equals it: lm-eval compares documents by value), keep
/// k, and when fewer remain resample k from the pool without them.
std::vector<std::vector<int64_t>> draw_shots_lm_eval(int64_t pool_size, int64_t n_examples, int64_t k,
                                                     uint64_t seed, bool pool_is_eval_set,
                                                     const std::function<bool(int64_t, int64_t)>& same);

/// The shot indices of every example, drawn as options.sampler says.
std::vector<std::vector<int64_t>> draw_all_shots(const std::vector<McqaExample>& examples,
                                                 const std::vector<McqaExample>& pool,
                                                 const PromptOptions& options);

/// description + shots (question + answer) + the example's question (+ " " + cot trigger).
/// The shots are drawn with ShotSampler::Biolm; build_prompt_with_shots takes them drawn.
std::string build_prompt(const McqaExample& example, int64_t example_index,
                         const std::vector<McqaExample>& pool, const PromptOptions& options);
std::string build_prompt_with_shots(const McqaExample& example, const std::vector<int64_t>& shots,
                                    const std::vector<McqaExample>& pool, const PromptOptions& options);

/// PubMedQA as lm-eval's task: choices yes / no / maybe, gold label one of them.
McqaExample pubmedqa_example(const std::string& abstract, const std::string& question,
                             const std::string& gold_label);

// ---- answer extraction (no regular expressions) -------------------------------------------
/// The chosen choice in a generation: the last "answer is" / "answer:" marker (ASCII case
/// folded) followed by "(X)", "X", "X." or, with Texts, a choice text; else a leading "X" / "(X)"
/// / choice word at the start of the text. nullopt when nothing parses.
std::optional<int64_t> extract_choice(std::string_view generation, const std::vector<std::string>& choices,
                                      ChoiceFormat format);
/// A free-text answer: the rest of the line after the last "answer is" / "answer:" marker, else
/// the first non-empty line; trimmed, one trailing '.' removed.
std::string extract_free_answer(std::string_view generation);

// ---- tasks --------------------------------------------------------------------------------
struct McqaResult {
  std::vector<ChoiceScores> scores;  ///< per example
  std::vector<std::string> prompts;  ///< per example: the context the choices were scored after
  Interval acc, acc_norm;            ///< with bootstrap intervals
  Interval macro_f1;                 ///< sklearn macro F1 of pred vs gold choice index (PubMedQA)
};
McqaResult evaluate_mcqa_loglik(CausalScorer& scorer, const tokenize::Tokenizer& tokenizer,
                                const std::vector<McqaExample>& examples,
                                const std::vector<McqaExample>& shot_pool,
                                const PromptOptions& prompt, const LoglikOptions& loglik = {},
                                const BootstrapOptions& bootstrap = {});

struct McqaGenerationResult {
  std::vector<std::string> generations;
  std::vector<int64_t> pred;  ///< -1 where no answer could be parsed (counted as wrong)
  int64_t n_unparsed = 0;
  Interval acc;
};
McqaGenerationResult evaluate_mcqa_generate(const GenerateFn& generate,
                                            const std::vector<McqaExample>& examples,
                                            const std::vector<McqaExample>& shot_pool,
                                            const PromptOptions& prompt,
                                            const BootstrapOptions& bootstrap = {});

struct QaExample {
  std::string question;
  std::string context;
  std::vector<std::string> answers;  ///< gold answers (first one shown in shots)
};
struct QaGenerationResult {
  std::vector<std::string> generations;
  std::vector<std::string> answers;  ///< extracted
  Interval exact_match, f1, bleu1, bleu4, rouge_l;
};
/// Prompt "Context: ...\nQuestion: ...\nAnswer:"; metrics: SQuAD EM/F1, corpus BLEU-1/4 (no
/// smoothing, first gold as the reference set = all golds), mean ROUGE-L.
QaGenerationResult evaluate_qa_generate(const GenerateFn& generate, const std::vector<QaExample>& examples,
                                        const std::vector<QaExample>& shot_pool,
                                        const PromptOptions& prompt,
                                        const BootstrapOptions& bootstrap = {});

}  // namespace biolm::eval

// Task glue of fine-tuning: readers -> features, model outputs -> per-example predictions ->
// metrics with bootstrap intervals. See biolm/tasks/finetune_tasks.h and docs/tasks.md.
#include "biolm/tasks/finetune_tasks.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/bootstrap.h"
#include "biolm/eval/classification.h"
#include "biolm/eval/correlation.h"
#include "biolm/eval/ner.h"
#include "biolm/eval/text.h"
#include "biolm/models/generate.h"
#include "biolm/peft/prompt_tuning.h"

namespace biolm::tasks {
namespace {

using nlohmann::json;

const std::vector<std::pair<Task, std::string>>& task_table() {
  static const std::vector<std::pair<Task, std::string>> t = {
      {Task::Ner, "ner"},         {Task::Re, "re"},     {Task::Nli, "nli"},           {Task::Sts, "sts"},
      {Task::QaSpan, "qa-span"}, {Task::Mcqa, "mcqa"}, {Task::Pubmedqa, "pubmedqa"}, {Task::Instruct, "instruct"}};
  return t;
}

int64_t doc_stride(const TaskSpec& s) { return s.doc_stride >= 0 ? s.doc_stride : s.max_length / 4; }

DataError origin_error(const data::Origin& o, const std::string& field, const std::string& msg) {
  if (o.line > 0) return DataError(o.source, o.line, field, msg);
  return DataError::at_record(o.source, o.record, field, msg);
}

/// A label's id, as a DataError naming where the example came from.
int64_t label_id(const TaskSpec& s, const std::string& label, const data::Origin& o, const std::string& field) {
  try {
    return s.labels.id(label);
  } catch (const std::out_of_range&) {
    std::string valid;
    for (const auto& n : s.labels.names()) valid += (valid.empty() ? "" : "|") + n;
    const std::string msg = "label \"" + label + "\" is not one of the training labels (" + valid + ")";
    throw origin_error(o, field, msg);
  }
}

std::vector<data::ChoiceExample> read_choices(const TaskSpec& s, const std::string& path) {
  if (s.format.empty() || s.format == "medqa") return data::read_medqa(path);
  if (s.format == "medmcqa") return data::read_medmcqa(path);
  throw ConfigError("data.format", "mcqa reads medqa | medmcqa, got \"" + s.format + "\"");
}

std::vector<data::InstructionExample> read_instructions(const TaskSpec& s, const std::string& path) {
  if (s.format.empty() || s.format == "alpaca") return data::read_alpaca(path);
  if (s.format == "sharegpt") return data::read_sharegpt(path);
  throw ConfigError("data.format", "instruct reads alpaca | sharegpt, got \"" + s.format + "\"");
}

std::string pubmedqa_text(const data::PubmedQaExample& ex) {
  std::string ctx;
  for (const auto& c : ex.contexts) ctx += (ctx.empty() ? "" : " ") + c;
  return ctx;
}

/// The model's outputs on a batch through run() (which prepends the soft prompt when one is
/// attached), its P positions removed again from token-level logits, so callers see (B,T,...).
models::StepOutput run_task(models::TaskModelImpl& model, const data::Batch& batch) {
  const auto& prompt = model.soft_prompt();
  const auto& ids = batch.at("input_ids");
  BIOLM_CHECK(!prompt || ids.dim() == 2, ConfigError, "peft.method",
              "prompt tuning needs (B,T) inputs; multiple-choice batches are (B,K,T)");
  auto out = model.run(batch);
  if (prompt) {
    const int64_t P = prompt->n_prefix_tokens(), T = ids.size(1);
    auto& t = out.logits;
    if (t.defined() && t.dim() >= 2 && t.size(1) == P + T) t = t.narrow(1, P, T);
  }
  return out;
}

torch::Device model_device(models::TaskModelImpl& model) {
  for (const auto& p : model.parameters()) return p.device();
  return torch::Device(torch::kCPU);
}

std::vector<float> row_floats(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

/// Index of the first occurrence of `needle` in `hay` at or after `from`, or hay.size().
size_t find_ids(const std::vector<int64_t>& hay, const std::vector<int64_t>& needle, size_t from = 0) {
  if (needle.empty() || hay.size() < needle.size()) return hay.size();
  for (size_t i = from; i + needle.size() <= hay.size(); ++i)
    if (std::equal(needle.begin(), needle.end(), hay.begin() + static_cast<long>(i))) return i;
  return hay.size();
}

/// Greedy generations for the instruct prompts, cut at the format's end marker.
std::vector<std::string> generate_responses(models::TaskModelImpl& model, const TaskSpec& spec,
                                            const tokenize::Tokenizer& tok, const TaskData& d, torch::Device device) {
  auto* lm = dynamic_cast<models::CausalLMModelImpl*>(&model);
  BIOLM_CHECK(lm != nullptr, ConfigError, "task", "instruct evaluation needs a causal-LM model (a decoder preset)");
  BIOLM_CHECK(!model.soft_prompt(), ConfigError, "peft.method",
              "generation does not prepend a soft prompt; use lora, ia3 or full for instruct");
  const auto& sp = tok.special();
  const int64_t pad = sp.pad.value_or(0);
  std::vector<int64_t> end_marker;
  if (spec.prompt_format == train::PromptFormat::ChatML) end_marker = tok.encode("<|im_end|>", false).ids;
  models::GenerationOptions go;
  go.max_new_tokens = spec.max_new_tokens;
  if (sp.eos) go.stop_tokens = {*sp.eos};
  go.pad_token_id = pad;
  std::vector<std::string> out;
  const auto bs = static_cast<size_t>(std::max<int64_t>(1, spec.batch_size));
  for (size_t i = 0; i < d.prompts.size(); i += bs) {
    const size_t n = std::min(d.prompts.size(), i + bs) - i;
    size_t T = 0;
    for (size_t r = 0; r < n; ++r) T = std::max(T, d.prompts[i + r].size());
    auto ids = torch::full({static_cast<int64_t>(n), static_cast<int64_t>(T)}, pad, torch::kLong);
    auto mask = torch::zeros({static_cast<int64_t>(n), static_cast<int64_t>(T)}, torch::kLong);
    for (size_t r = 0; r < n; ++r) {  // left padding
      const auto& p = d.prompts[i + r];
      const auto off = static_cast<int64_t>(T - p.size());
      for (size_t t = 0; t < p.size(); ++t) {
        ids[static_cast<int64_t>(r)][off + static_cast<int64_t>(t)] = p[t];
        mask[static_cast<int64_t>(r)][off + static_cast<int64_t>(t)] = 1;
      }
    }
    const auto res = models::generate(*lm, ids.to(device), mask.to(device), go);
    const auto new_tokens = res.new_tokens.to(torch::kCPU);
    const auto n_new = res.n_new.to(torch::kCPU);
    for (size_t r = 0; r < n; ++r) {
      const auto row = new_tokens[static_cast<int64_t>(r)];
      std::vector<int64_t> toks(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + n_new[static_cast<int64_t>(r)].item<int64_t>());
      toks.resize(std::min(toks.size(), find_ids(toks, end_marker)));
      if (sp.eos) toks.erase(std::remove(toks.begin(), toks.end(), *sp.eos), toks.end());
      out.push_back(tok.decode(toks, true));
    }
  }
  return out;
}

/// Teacher-forced response-token loss per example: sum and count of -log p(label_t | < t).
void response_losses(models::TaskModelImpl& model, const TaskSpec& spec, const TaskData& d, torch::Device device,
                     int64_t pad_id, Predictions& p) {
  const auto bs = static_cast<size_t>(std::max<int64_t>(1, spec.batch_size));
  for (size_t i = 0; i < d.loss_rows.size(); i += bs) {
    std::vector<data::Features> rows(d.loss_rows.begin() + static_cast<long>(i),
                                     d.loss_rows.begin() + static_cast<long>(std::min(d.loss_rows.size(), i + bs)));
    data::CollateOptions co;
    co.pad_id = pad_id;
    auto batch = data::collate(rows, co).to(device);
    const auto labels = batch.at("labels");
    batch.tensors.erase("labels");
    const auto logits = run_task(model, batch).logits.to(torch::kFloat);  // (B,T,V)
    const auto lp = torch::log_softmax(logits.narrow(1, 0, logits.size(1) - 1), -1);
    const auto target = labels.narrow(1, 1, labels.size(1) - 1);       // (B,T-1)
    const auto valid = target.ne(data::kIgnoreIndex);
    const auto nll = -lp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1) * valid.to(torch::kFloat);
    const auto sums = nll.sum(1).to(torch::kCPU, torch::kDouble);
    const auto counts = valid.sum(1).to(torch::kCPU);
    for (int64_t r = 0; r < sums.size(0); ++r) {
      p.loss_sum.push_back(sums[r].item<double>());
      p.loss_tokens.push_back(counts[r].item<int64_t>());
    }
  }
}

}  // namespace

std::vector<std::string> task_names() {
  std::vector<std::string> out;
  for (const auto& [t, n] : task_table()) out.push_back(n);
  return out;
}

std::string to_string(Task task) {
  for (const auto& [t, n] : task_table())
    if (t == task) return n;
  throw Error("tasks::to_string: unknown task value");
}

Task parse_task(const std::string& name, const std::string& key) {
  std::string valid;
  for (const auto& [t, n] : task_table()) {
    if (n == name) return t;
    valid += (valid.empty() ? "" : "|") + n;
  }
  throw ConfigError(key, "expected " + valid + ", got \"" + name + "\"");
}

models::TaskKind head_kind(Task task) {
  switch (task) {
    case Task::Ner: return models::TaskKind::TokenClassification;
    case Task::Sts: return models::TaskKind::Regression;
    case Task::QaSpan: return models::TaskKind::SpanQA;
    case Task::Mcqa: return models::TaskKind::MultipleChoice;
    case Task::Instruct: return models::TaskKind::CausalLM;
    case Task::Re:
    case Task::Nli:
    case Task::Pubmedqa: return models::TaskKind::SequenceClassification;
  }
  return models::TaskKind::SequenceClassification;
}

std::string primary_metric(Task task) {
  switch (task) {
    case Task::Ner:
    case Task::QaSpan: return "f1";
    case Task::Sts: return "pearson";
    case Task::Instruct: return "rouge_l";
    default: return "accuracy";
  }
}

int64_t TaskData::n_examples() const {
  if (!sentences.empty()) return static_cast<int64_t>(sentences.size());
  if (!qa_examples.empty()) return static_cast<int64_t>(qa_examples.size());
  if (!references.empty()) return static_cast<int64_t>(references.size());
  return static_cast<int64_t>(rows.size());
}

std::vector<std::string> label_names(const TaskSpec& spec, const std::string& train_path) {
  std::set<std::string> seen;
  switch (spec.task) {
    case Task::Ner:
      for (const auto& s : data::read_conll(train_path))
        for (const auto& t : s.tags)
          if (t.size() > 2) seen.insert(t.substr(2));
      break;
    case Task::Re:
      for (const auto& ex : data::read_chemprot(train_path)) seen.insert(ex.label);
      break;
    case Task::Nli: return {"entailment", "neutral", "contradiction"};
    case Task::Pubmedqa: return {"yes", "no", "maybe"};
    default: return {};
  }
  return {seen.begin(), seen.end()};
}

int64_t n_labels(const TaskSpec& spec) {
  switch (spec.task) {
    case Task::Ner:
    case Task::Re:
    case Task::Nli:
    case Task::Pubmedqa: return spec.labels.size();
    case Task::Sts: return 1;
    default: return 2;
  }
}

train::Conversation to_conversation(const data::InstructionExample& ex) {
  train::Conversation c;
  for (size_t i = 0; i < ex.turns.size(); ++i) {
    const auto& t = ex.turns[i];
    if (t.role == "system" && i == 0) {
      c.system = t.content;
    } else if (t.role == "user") {
      c.turns.push_back({train::Role::User, t.content});
    } else if (t.role == "assistant") {
      c.turns.push_back({train::Role::Assistant, t.content});
    } else {
      throw origin_error(ex.origin, "turns[" + std::to_string(i) + "].role",
                      "expected user or assistant (system only first), found \"" + t.role + "\"");
    }
  }
  return c;
}

std::vector<data::Features> pack_rows(const std::vector<data::Features>& rows, int64_t max_length) {
  std::vector<data::Features> out;
  data::Features cur;
  int64_t seg = 0;
  for (const auto& r : rows) {
    BIOLM_CHECK(static_cast<int64_t>(r.input_ids.size()) <= max_length, Error,
                "pack_rows: example " + std::to_string(r.example_index) + " has " + std::to_string(r.input_ids.size()) +
                    " tokens, more than max_length " + std::to_string(max_length));
    if (static_cast<int64_t>(cur.input_ids.size() + r.input_ids.size()) > max_length) {
      out.push_back(std::move(cur));
      cur = data::Features{};
      seg = 0;
    }
    ++seg;
    const size_t at = cur.input_ids.size();
    cur.input_ids.insert(cur.input_ids.end(), r.input_ids.begin(), r.input_ids.end());
    cur.labels.insert(cur.labels.end(), r.labels.begin(), r.labels.end());
    cur.segment_ids.insert(cur.segment_ids.end(), r.input_ids.size(), seg);
    if (at < cur.labels.size()) cur.labels[at] = data::kIgnoreIndex;
    if (cur.example_index < 0) cur.example_index = r.example_index;
  }
  if (!cur.input_ids.empty()) out.push_back(std::move(cur));
  return out;
}

TaskData featurize(const TaskSpec& s, const tokenize::Tokenizer& tok, const std::string& path) {
  TaskData d;
  switch (s.task) {
    case Task::Ner: {
      d.sentences = data::read_conll(path);
      data::NerFeatureOptions o;
      o.max_length = s.max_length;
      o.overlap = doc_stride(s);
      for (size_t i = 0; i < d.sentences.size(); ++i)
        for (auto& f : data::ner_features(d.sentences[i], static_cast<int64_t>(i), tok, s.labels, o))
          d.rows.push_back(std::move(f));
      break;
    }
    case Task::Re:
      for (const auto& ex : data::read_chemprot(path)) {
        auto f = data::pair_features(ex.marked_text, "", tok, s.max_length);
        f.label = label_id(s, ex.label, ex.origin, "label");
        f.example_index = static_cast<int64_t>(d.rows.size());
        d.gold_labels.push_back(ex.label);
        d.rows.push_back(std::move(f));
      }
      break;
    case Task::Nli:
    case Task::Sts: {
      const auto pairs = s.task == Task::Nli ? data::read_mednli(path) : data::read_sts(path);
      for (const auto& ex : pairs) {
        auto f = data::pair_features(ex.text_a, ex.text_b, tok, s.max_length);
        if (s.task == Task::Nli) {
          f.label = label_id(s, ex.label, ex.origin, "gold_label");
          d.gold_labels.push_back(ex.label);
        } else {
          f.has_score = true;
          f.score = ex.score;
          d.gold_scores.push_back(ex.score);
        }
        f.example_index = static_cast<int64_t>(d.rows.size());
        d.rows.push_back(std::move(f));
      }
      break;
    }
    case Task::Pubmedqa:
      for (const auto& ex : data::read_pubmedqa(path)) {
        auto f = data::pair_features(ex.question, pubmedqa_text(ex), tok, s.max_length);
        f.label = label_id(s, ex.label, ex.origin, "final_decision");
        f.example_index = static_cast<int64_t>(d.rows.size());
        d.gold_labels.push_back(ex.label);
        d.rows.push_back(std::move(f));
      }
      break;
    case Task::Mcqa:
      for (const auto& ex : read_choices(s, path)) {
        if (ex.answer < 0)
          throw origin_error(ex.origin, "answer", "the example has no answer; training and evaluation need one");
        auto f = data::choice_features(ex, tok, s.max_length);
        f.example_index = static_cast<int64_t>(d.rows.size());
        d.gold_choices.push_back(ex.answer);
        d.rows.push_back(std::move(f));
      }
      break;
    case Task::QaSpan:
      d.qa_examples = data::read_squad(path);
      for (size_t i = 0; i < d.qa_examples.size(); ++i)
        for (auto& f : data::span_qa_features(d.qa_examples[i], static_cast<int64_t>(i), tok, s.max_length,
                                              doc_stride(s)))
          d.rows.push_back(std::move(f));
      break;
    case Task::Instruct: {
      const auto examples = read_instructions(s, path);
      for (size_t i = 0; i < examples.size(); ++i) {
        const auto& ex = examples[i];
        const auto conv = to_conversation(ex);
        const auto te = train::tokenize_segments(
            tok, train::render(s.prompt_format, conv, ex.origin.source, ex.origin.record), s.max_length);
        // The last response is what generation must reproduce: the prompt is everything before
        // the last run of trainable labels.
        size_t end = te.labels.size();
        while (end > 0 && te.labels[end - 1] == data::kIgnoreIndex) --end;
        if (end == 0)
          throw origin_error(ex.origin, "turns", "no response token fits in max_length " + std::to_string(s.max_length) +
                              " (raise data.max_length)");
        size_t begin = end;
        while (begin > 0 && te.labels[begin - 1] != data::kIgnoreIndex) --begin;
        d.prompts.emplace_back(te.input_ids.begin(), te.input_ids.begin() + static_cast<long>(begin));
        std::string ref;
        for (const auto& t : conv.turns)
          if (t.role == train::Role::Assistant) ref = t.content;
        d.references.push_back(ref);
        data::Features f;
        f.input_ids = te.input_ids;
        f.labels = te.labels;
        f.example_index = static_cast<int64_t>(i);
        d.loss_rows.push_back(f);
      }
      d.rows = s.packing ? pack_rows(d.loss_rows, s.max_length) : d.loss_rows;
      break;
    }
  }
  return d;
}

std::string best_span(const std::vector<const data::Features*>& windows,
                      const std::vector<std::vector<float>>& start_logits,
                      const std::vector<std::vector<float>>& end_logits, const std::string& context,
                      int64_t max_answer_tokens) {
  BIOLM_CHECK(windows.size() == start_logits.size() && windows.size() == end_logits.size(), Error,
              "best_span: " + std::to_string(windows.size()) + " windows but " + std::to_string(start_logits.size()) +
                  " start and " + std::to_string(end_logits.size()) + " end logit lists");
  double best = -std::numeric_limits<double>::infinity();
  std::pair<int64_t, int64_t> bytes{-1, -1};
  for (size_t w = 0; w < windows.size(); ++w) {
    const auto& off = windows[w]->offsets;
    const auto n = std::min({off.size(), start_logits[w].size(), end_logits[w].size()});
    for (size_t s = 0; s < n; ++s) {
      if (off[s].first < 0) continue;
      for (size_t e = s; e < n && static_cast<int64_t>(e - s) < max_answer_tokens; ++e) {
        if (off[e].first < 0) break;  // the context is contiguous: a special ends it
        const double v = static_cast<double>(start_logits[w][s]) + static_cast<double>(end_logits[w][e]);
        if (v > best) {
          best = v;
          bytes = {off[s].first, off[e].second};
        }
      }
    }
  }
  if (bytes.first < 0) return "";
  const auto b = static_cast<size_t>(std::clamp<int64_t>(bytes.first, 0, static_cast<int64_t>(context.size())));
  const auto e = static_cast<size_t>(std::clamp<int64_t>(bytes.second, static_cast<int64_t>(b), static_cast<int64_t>(context.size())));
  return context.substr(b, e - b);
}

Predictions predict(models::TaskModelImpl& model, const TaskSpec& spec, const tokenize::Tokenizer& tok,
                    const TaskData& d) {
  torch::NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const auto device = model_device(model);
  const int64_t pad_id = tok.special().pad.value_or(0);
  Predictions p;
  if (spec.task == Task::Instruct) {
    BIOLM_CHECK(dynamic_cast<models::CausalLMModelImpl*>(&model) != nullptr, ConfigError, "task",
                "instruct evaluation needs a causal-LM model (a decoder preset)");
    response_losses(model, spec, d, device, pad_id, p);
    p.texts = generate_responses(model, spec, tok, d, device);
    model.train(was_training);
    return p;
  }
  std::vector<std::vector<float>> starts, ends;  // qa-span, per row
  const auto bs = static_cast<size_t>(std::max<int64_t>(1, spec.batch_size));
  for (size_t i = 0; i < d.rows.size(); i += bs) {
    std::vector<data::Features> rows(d.rows.begin() + static_cast<long>(i),
                                     d.rows.begin() + static_cast<long>(std::min(d.rows.size(), i + bs)));
    data::CollateOptions co;
    co.pad_id = pad_id;
    const auto out = run_task(model, data::collate(rows, co).to(device));
    const auto logits = out.logits.to(torch::kCPU);
    switch (spec.task) {
      case Task::Ner: {
        const auto am = logits.argmax(-1);
        for (size_t r = 0; r < rows.size(); ++r) {
          const auto row = am[static_cast<int64_t>(r)].contiguous();
          p.token_preds.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
        }
        break;
      }
      case Task::Sts: {
        const auto v = logits.reshape({-1}).to(torch::kDouble);
        for (int64_t r = 0; r < v.numel(); ++r) p.scores.push_back(v[r].item<double>());
        break;
      }
      case Task::QaSpan: {
        const auto st = logits.select(2, 0), en = logits.select(2, 1);  // (B,T) each
        for (int64_t r = 0; r < st.size(0); ++r) {
          starts.push_back(row_floats(st[r]));
          ends.push_back(row_floats(en[r]));
        }
        break;
      }
      default: {
        const auto am = logits.argmax(-1);
        for (int64_t r = 0; r < am.numel(); ++r) p.classes.push_back(am[r].item<int64_t>());
      }
    }
  }
  if (spec.task == Task::QaSpan) {
    std::vector<std::vector<size_t>> rows_of(d.qa_examples.size());
    for (size_t r = 0; r < d.rows.size(); ++r) rows_of[static_cast<size_t>(d.rows[r].example_index)].push_back(r);
    for (size_t e = 0; e < d.qa_examples.size(); ++e) {
      std::vector<const data::Features*> w;
      std::vector<std::vector<float>> s, en;
      for (auto r : rows_of[e]) {
        w.push_back(&d.rows[r]);
        s.push_back(starts[r]);
        en.push_back(ends[r]);
      }
      p.texts.push_back(best_span(w, s, en, d.qa_examples[e].context, spec.max_answer_tokens));
    }
  }
  model.train(was_training);
  return p;
}

json score(const TaskSpec& s, const TaskData& d, const Predictions& p, int64_t n_boot, uint64_t seed) {
  json out;
  eval::BootstrapOptions bo;
  bo.n_resamples = n_boot;
  bo.seed = seed;
  auto put = [&](const std::string& name, int64_t n, const eval::Statistic& stat) {
    if (n_boot > 0) {
      const auto iv = eval::bootstrap_interval(n, stat, bo);
      out[name] = {{"value", iv.point}, {"ci", {iv.lower, iv.upper}}};
    } else {
      std::vector<int64_t> all(static_cast<size_t>(n));
      std::iota(all.begin(), all.end(), 0);
      out[name] = stat(all);
    }
  };
  const auto mean_of = [](const std::vector<double>& v) {
    return [&v](const std::vector<int64_t>& idx) {
      double sum = 0;
      for (auto i : idx) sum += v[static_cast<size_t>(i)];
      return idx.empty() ? 0.0 : sum / static_cast<double>(idx.size());
    };
  };
  switch (s.task) {
    case Task::Ner: {
      // Windows back to words, ids back to tags (sentence level).
      std::vector<std::vector<data::Features>> windows(d.sentences.size());
      std::vector<std::vector<std::vector<int64_t>>> preds(d.sentences.size());
      for (size_t r = 0; r < d.rows.size(); ++r) {
        const auto e = static_cast<size_t>(d.rows[r].example_index);
        windows[e].push_back(d.rows[r]);
        preds[e].push_back(p.token_preds[r]);
      }
      std::vector<std::vector<std::string>> gold, pred;
      for (size_t e = 0; e < d.sentences.size(); ++e) {
        const auto words =
            data::ner_word_predictions(windows[e], preds[e], static_cast<int64_t>(d.sentences[e].words.size()));
        std::vector<std::string> tags;
        for (auto w : words) tags.push_back(w < 0 ? "O" : s.labels.name(w));
        gold.push_back(d.sentences[e].tags);
        pred.push_back(tags);
      }
      put("f1", static_cast<int64_t>(gold.size()), [&](const std::vector<int64_t>& idx) {
        std::vector<std::vector<std::string>> g, q;
        for (auto i : idx) {
          g.push_back(gold[static_cast<size_t>(i)]);
          q.push_back(pred[static_cast<size_t>(i)]);
        }
        return eval::ner_report(g, q).micro.f1;
      });
      // seqeval's mode="strict" (IOB2), and per-type F1 when the corpus has several types
      // (BC5CDR: Chemical, Disease), each with its own bootstrap interval.
      eval::NerOptions strict;
      strict.mode = eval::NerMode::Strict;
      const auto strict_tallies = eval::ner_sentence_tallies(gold, pred, strict);
      const auto types = eval::ner_types(strict_tallies);
      put("f1_strict", static_cast<int64_t>(gold.size()), [&](const std::vector<int64_t>& idx) {
        return eval::ner_table(strict_tallies, idx, types).micro.f1;
      });
      const auto tallies = eval::ner_sentence_tallies(gold, pred, eval::NerOptions{});
      const auto all_types = eval::ner_types(tallies);
      if (all_types.size() > 1) {
        for (size_t t = 0; t < all_types.size(); ++t) {
          put("f1_" + all_types[t], static_cast<int64_t>(gold.size()), [&, t](const std::vector<int64_t>& idx) {
            return eval::ner_table(tallies, idx, all_types).per_label[t].f1;
          });
        }
      }
      break;
    }
    case Task::Sts:
      put("pearson", static_cast<int64_t>(p.scores.size()), [&](const std::vector<int64_t>& idx) {
        std::vector<double> x, y;
        for (auto i : idx) {
          x.push_back(p.scores[static_cast<size_t>(i)]);
          y.push_back(d.gold_scores[static_cast<size_t>(i)]);
        }
        return eval::pearson(x, y);
      });
      break;
    case Task::QaSpan: {
      std::vector<double> em, f1;
      for (size_t e = 0; e < d.qa_examples.size(); ++e) {
        std::vector<std::string> golds;
        for (const auto& a : d.qa_examples[e].answers) golds.push_back(a.text);
        if (golds.empty()) golds.push_back("");  // unanswerable (SQuAD 2.0): the empty answer is right
        const auto sc = eval::squad_score(p.texts[e], golds);
        em.push_back(sc.exact_match);
        f1.push_back(sc.f1);
      }
      put("exact_match", static_cast<int64_t>(em.size()), mean_of(em));
      put("f1", static_cast<int64_t>(f1.size()), mean_of(f1));
      break;
    }
    case Task::Mcqa: {
      std::vector<double> ok;
      for (size_t i = 0; i < p.classes.size(); ++i) ok.push_back(p.classes[i] == d.gold_choices[i] ? 1.0 : 0.0);
      put("accuracy", static_cast<int64_t>(ok.size()), mean_of(ok));
      break;
    }
    case Task::Instruct: {
      std::vector<double> rouge;
      std::vector<eval::BleuStats> stats;
      for (size_t i = 0; i < p.texts.size(); ++i) {
        rouge.push_back(eval::rouge_l(d.references[i], p.texts[i]).fmeasure);
        stats.push_back(eval::bleu_stats(eval::whitespace_tokens(p.texts[i]), {eval::whitespace_tokens(d.references[i])}));
      }
      put("rouge_l", static_cast<int64_t>(rouge.size()), mean_of(rouge));
      put("bleu1", static_cast<int64_t>(stats.size()), [&](const std::vector<int64_t>& idx) {
        eval::BleuStats sum;
        for (auto i : idx) sum += stats[static_cast<size_t>(i)];
        eval::BleuOptions o;
        o.max_order = 1;
        return eval::bleu_from_stats(sum, o);
      });
      put("loss", static_cast<int64_t>(p.loss_sum.size()), [&](const std::vector<int64_t>& idx) {
        double sum = 0;
        int64_t n = 0;
        for (auto i : idx) {
          sum += p.loss_sum[static_cast<size_t>(i)];
          n += p.loss_tokens[static_cast<size_t>(i)];
        }
        return n == 0 ? 0.0 : sum / static_cast<double>(n);
      });
      break;
    }
    case Task::Re:
    case Task::Nli:
    case Task::Pubmedqa: {
      std::vector<std::string> pred;
      for (auto c : p.classes) pred.push_back(s.labels.name(c));
      put("accuracy", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
        double ok = 0;
        for (auto i : idx) ok += pred[static_cast<size_t>(i)] == d.gold_labels[static_cast<size_t>(i)];
        return idx.empty() ? 0.0 : ok / static_cast<double>(idx.size());
      });
      if (s.task == Task::Re) {
        // ChemProt as SciBERT scores it: micro-F1 over the labels (with no negative class it
        // equals accuracy) and macro-F1 over the labels of the gold file.
        std::vector<std::string> label_set(d.gold_labels.begin(), d.gold_labels.end());
        std::sort(label_set.begin(), label_set.end());
        label_set.erase(std::unique(label_set.begin(), label_set.end()), label_set.end());
        const auto report_of = [&](const std::vector<int64_t>& idx) {
          std::vector<std::string> g, q;
          for (auto i : idx) {
            g.push_back(d.gold_labels[static_cast<size_t>(i)]);
            q.push_back(pred[static_cast<size_t>(i)]);
          }
          eval::ClassificationOptions co;
          co.labels = label_set;
          return eval::classification_report(g, q, co);
        };
        put("micro_f1", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
          return idx.empty() ? 0.0 : report_of(idx).prf.micro.f1;
        });
        put("macro_f1", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
          return idx.empty() ? 0.0 : report_of(idx).prf.macro.f1;
        });
      }
      if (s.task == Task::Pubmedqa) {
        put("macro_f1", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
          std::vector<std::string> g, q;
          for (auto i : idx) {
            g.push_back(d.gold_labels[static_cast<size_t>(i)]);
            q.push_back(pred[static_cast<size_t>(i)]);
          }
          return g.empty() ? 0.0 : eval::classification_report(g, q).prf.macro.f1;
        });
      }
      break;
    }
  }
  return out;
}

json evaluate_file(models::TaskModelImpl& model, const tokenize::Tokenizer& tok, const TaskSpec& spec,
                   const std::string& path, int64_t n_bootstrap, uint64_t seed) {
  const auto d = featurize(spec, tok, path);
  return score(spec, d, predict(model, spec, tok, d), n_bootstrap, seed);
}

double metric_value(const json& m) { return m.is_object() ? m.at("value").get<double>() : m.get<double>(); }

}  // namespace biolm::tasks

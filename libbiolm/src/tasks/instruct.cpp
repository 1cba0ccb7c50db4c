// The instruct family: Alpaca / ShareGPT conversations rendered in a prompt format -> a causal
// LM trained on the response tokens (packed rows optional) -> teacher-forced response loss and
// greedy generations for the last response, scored with ROUGE-L (F) and BLEU-1 (whitespace
// tokens). Predictions file: JSONL {"index", "reference", "generation", "loss"} per example.
#include "biolm/tasks/instruct.h"

#include <algorithm>

#include "biolm/data/tasks.h"
#include "biolm/eval/text.h"
#include "biolm/models/generate.h"
#include "common.h"

namespace biolm::tasks {
namespace {

/// Index of the first occurrence of `needle` in `hay`, or hay.size().
size_t find_ids(const std::vector<int64_t>& hay, const std::vector<int64_t>& needle) {
  if (needle.empty() || hay.size() < needle.size()) return hay.size();
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (std::equal(needle.begin(), needle.end(), hay.begin() + static_cast<long>(i))) return i;
  return hay.size();
}

class InstructTask : public Task {
 public:
  using Task::Task;
  std::string name() const override { return "instruct"; }
  models::TaskKind head_kind() const override { return models::TaskKind::CausalLM; }
  std::string predictions_file() const override { return "predictions.jsonl"; }
  std::string primary_metric() const override { return "rouge_l"; }
  std::vector<std::string> secondary_metrics() const override { return {"bleu1", "loss"}; }
  std::vector<std::string> formats() const override { return {"alpaca", "sharegpt"}; }
  bool needs_decoder() const override { return true; }
  int64_t n_labels() const override { return 2; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    auto d = std::make_unique<InstructData>();
    const auto examples = read(path);
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& ex = examples[i];
      const auto conv = to_conversation(ex);
      const auto te = train::tokenize_segments(
          tok, train::render(options_.prompt_format, conv, ex.origin.source, ex.origin.record), options_.max_length);
      // The last response is what generation must reproduce: the prompt is everything before
      // the last run of trainable labels.
      size_t end = te.labels.size();
      while (end > 0 && te.labels[end - 1] == data::kIgnoreIndex) --end;
      if (end == 0)
        throw detail::origin_error(ex.origin, "turns", "no response token fits in max_length " +
                                                           std::to_string(options_.max_length) +
                                                           " (raise data.max_length)");
      size_t begin = end;
      while (begin > 0 && te.labels[begin - 1] != data::kIgnoreIndex) --begin;
      d->prompts.emplace_back(te.input_ids.begin(), te.input_ids.begin() + static_cast<long>(begin));
      std::string ref;
      for (const auto& t : conv.turns)
        if (t.role == train::Role::Assistant) ref = t.content;
      d->references.push_back(ref);
      data::Features f;
      f.input_ids = te.input_ids;
      f.labels = te.labels;
      f.example_index = static_cast<int64_t>(i);
      d->loss_rows.push_back(f);
    }
    d->rows = options_.packing ? data::pack_rows(d->loss_rows, options_.max_length) : d->loss_rows;
    return d;
  }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    const auto& d = as<InstructData>(data, name());
    auto* lm = dynamic_cast<models::CausalLMModelImpl*>(&model);
    BIOLM_CHECK(lm != nullptr, ConfigError, "task", "instruct evaluation needs a causal-LM model (a decoder preset)");
    auto p = std::make_unique<GenerationPredictions>();
    // Teacher-forced response-token loss per example: sum and count of -log p(label_t | < t).
    detail::for_each_batch(
        model, tok, d.loss_rows, options_.batch_size,
        [&](const std::vector<data::Features>& rows, const torch::Tensor& out) {
          // The labels as collate pads them: -100 past each row's end.
          const auto B = static_cast<int64_t>(rows.size()), T = out.size(1);
          std::vector<int64_t> flat(static_cast<size_t>(B * T), data::kIgnoreIndex);
          for (size_t r = 0; r < rows.size(); ++r)
            std::copy(rows[r].labels.begin(), rows[r].labels.end(), flat.begin() + static_cast<long>(r) * T);
          const auto labels = torch::tensor(flat, torch::kLong).view({B, T});
          const auto logits = out.to(torch::kFloat);  // (B,T,V)
          const auto lp = torch::log_softmax(logits.narrow(1, 0, logits.size(1) - 1), -1);
          const auto target = labels.narrow(1, 1, labels.size(1) - 1);  // (B,T-1)
          const auto valid = target.ne(data::kIgnoreIndex);
          const auto nll = -lp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1) * valid.to(torch::kFloat);
          const auto sums = nll.sum(1).to(torch::kDouble);
          const auto counts = valid.sum(1);
          for (int64_t r = 0; r < sums.size(0); ++r) {
            p->loss_sum.push_back(sums[r].item<double>());
            p->loss_tokens.push_back(counts[r].item<int64_t>());
          }
        },
        /*with_labels=*/false);
    p->texts = generate_responses(*lm, tok, d);
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& d = as<InstructData>(data, name());
    const auto& p = as<GenerationPredictions>(predictions, name());
    std::vector<double> rouge;
    std::vector<eval::BleuStats> stats;
    for (size_t i = 0; i < p.texts.size(); ++i) {
      rouge.push_back(eval::rouge_l(d.references[i], p.texts[i]).fmeasure);
      stats.push_back(eval::bleu_stats(eval::whitespace_tokens(p.texts[i]), {eval::whitespace_tokens(d.references[i])}));
    }
    detail::MetricWriter m(n_boot, seed);
    m.put_mean("rouge_l", rouge);
    m.put("bleu1", static_cast<int64_t>(stats.size()), [&](const std::vector<int64_t>& idx) {
      eval::BleuStats sum;
      for (auto i : idx) sum += stats[static_cast<size_t>(i)];
      eval::BleuOptions o;
      o.max_order = 1;
      return eval::bleu_from_stats(sum, o);
    });
    m.put("loss", static_cast<int64_t>(p.loss_sum.size()), [&](const std::vector<int64_t>& idx) {
      double sum = 0;
      int64_t n = 0;
      for (auto i : idx) {
        sum += p.loss_sum[static_cast<size_t>(i)];
        n += p.loss_tokens[static_cast<size_t>(i)];
      }
      return n == 0 ? 0.0 : sum / static_cast<double>(n);
    });
    return m.take();
  }

  void write_predictions(const TaskData& data, const Predictions& predictions,
                         const std::string& path) const override {
    const auto& d = as<InstructData>(data, name());
    const auto& p = as<GenerationPredictions>(predictions, name());
    auto f = detail::open_output(path);
    for (size_t i = 0; i < p.texts.size(); ++i) {
      const double loss = p.loss_tokens[i] == 0 ? 0.0 : p.loss_sum[i] / static_cast<double>(p.loss_tokens[i]);
      f << nlohmann::json{{"index", i}, {"reference", d.references[i]}, {"generation", p.texts[i]}, {"loss", loss}}.dump()
        << '\n';
    }
  }

 private:
  std::vector<data::InstructionExample> read(const std::string& path) const {
    if (options_.format.empty() || options_.format == "alpaca") return data::read_alpaca(path);
    if (options_.format == "sharegpt") return data::read_sharegpt(path);
    throw ConfigError("data.format", "instruct reads alpaca | sharegpt, got \"" + options_.format + "\"");
  }

  /// Greedy generations for the prompts (left-padded batches), cut at the format's end marker.
  std::vector<std::string> generate_responses(models::CausalLMModelImpl& lm, const tokenize::Tokenizer& tok,
                                              const InstructData& d) const {
    torch::NoGradGuard ng;
    const bool was_training = lm.is_training();
    lm.eval();
    const auto device = detail::model_device(lm);
    const auto& sp = tok.special();
    const int64_t pad = sp.pad.value_or(0);
    std::vector<int64_t> end_marker;
    if (options_.prompt_format == train::PromptFormat::ChatML) end_marker = tok.encode("<|im_end|>", false).ids;
    models::GenerationOptions go;
    go.max_new_tokens = options_.max_new_tokens;
    if (sp.eos) go.stop_tokens = {*sp.eos};
    go.pad_token_id = pad;
    std::vector<std::string> out;
    const auto bs = static_cast<size_t>(std::max<int64_t>(1, options_.batch_size));
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
      const auto res = models::generate(lm, ids.to(device), mask.to(device), go);
      const auto new_tokens = res.new_tokens.to(torch::kCPU);
      const auto n_new = res.n_new.to(torch::kCPU);
      for (size_t r = 0; r < n; ++r) {
        const auto row = new_tokens[static_cast<int64_t>(r)];
        std::vector<int64_t> toks(row.data_ptr<int64_t>(),
                                  row.data_ptr<int64_t>() + n_new[static_cast<int64_t>(r)].item<int64_t>());
        toks.resize(std::min(toks.size(), find_ids(toks, end_marker)));
        if (sp.eos) toks.erase(std::remove(toks.begin(), toks.end(), *sp.eos), toks.end());
        out.push_back(tok.decode(toks, true));
      }
    }
    lm.train(was_training);
    return out;
  }
};

}  // namespace

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
      throw detail::origin_error(ex.origin, "turns[" + std::to_string(i) + "].role",
                                 "expected user or assistant (system only first), found \"" + t.role + "\"");
    }
  }
  return c;
}

std::unique_ptr<Task> make_instruct(const TaskOptions& o) { return std::make_unique<InstructTask>(o); }

}  // namespace biolm::tasks

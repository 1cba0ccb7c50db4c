// The qa-span family: SQuAD-style extractive QA (SQuAD 1.1/2.0, emrQA) -> windows of
// [CLS] question [SEP] context [SEP] with doc_stride overlap -> SpanQA head (logits (B,T,2):
// start, end) -> the best span over all windows -> SQuAD v1.1 exact match and F1 (max over the
// gold answers, the empty answer for unanswerable questions). Predictions file: SQuAD's
// {"id": "answer", ...} JSON, which the official evaluate-v1.1.py reads.
//
// data.format: squad (default; SQuAD 1.1/2.0, emrQA) or bioasq (BioASQ task B JSON, as BioBERT
// turned it into SQuAD: factoid and list questions, context = the snippets joined by " ", the
// answers = each exact answer's first occurrence in it, found case-insensitively; questions of
// another type, or whose answers occur in no snippet, are left out and counted in a warning).
#include "biolm/tasks/qa_span.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include "biolm/core/log.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/text.h"
#include "common.h"

namespace biolm::tasks {
namespace {

std::vector<float> row_floats(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

class QaSpanTask : public Task {
 public:
  using Task::Task;
  std::string name() const override { return "qa-span"; }
  models::TaskKind head_kind() const override { return models::TaskKind::SpanQA; }
  std::string predictions_file() const override { return "predictions.json"; }
  std::string primary_metric() const override { return "f1"; }
  std::vector<std::string> secondary_metrics() const override { return {"exact_match"}; }
  int64_t n_labels() const override { return 2; }
  std::vector<std::string> formats() const override { return {"squad", "bioasq"}; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    auto d = std::make_unique<SpanQaData>();
    d->examples = read(path);
    for (size_t i = 0; i < d->examples.size(); ++i)
      for (auto& f : data::span_qa_features(d->examples[i], static_cast<int64_t>(i), tok, options_.max_length,
                                            detail::doc_stride(options_)))
        d->rows.push_back(std::move(f));
    return d;
  }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    const auto& d = as<SpanQaData>(data, name());
    std::vector<std::vector<float>> starts, ends;  // per row
    detail::for_each_batch(model, tok, d.rows, options_.batch_size,
                           [&](const std::vector<data::Features>&, const torch::Tensor& logits) {
                             const auto st = logits.select(2, 0), en = logits.select(2, 1);  // (B,T)
                             for (int64_t r = 0; r < st.size(0); ++r) {
                               starts.push_back(row_floats(st[r]));
                               ends.push_back(row_floats(en[r]));
                             }
                           });
    std::vector<std::vector<size_t>> rows_of(d.examples.size());
    for (size_t r = 0; r < d.rows.size(); ++r) rows_of[static_cast<size_t>(d.rows[r].example_index)].push_back(r);
    auto p = std::make_unique<TextPredictions>();
    for (size_t e = 0; e < d.examples.size(); ++e) {
      std::vector<const data::Features*> w;
      std::vector<std::vector<float>> s, en;
      for (auto r : rows_of[e]) {
        w.push_back(&d.rows[r]);
        s.push_back(starts[r]);
        en.push_back(ends[r]);
      }
      p->texts.push_back(best_span(w, s, en, d.examples[e].context, options_.max_answer_tokens));
    }
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& d = as<SpanQaData>(data, name());
    const auto& texts = as<TextPredictions>(predictions, name()).texts;
    std::vector<double> em, f1;
    for (size_t e = 0; e < d.examples.size(); ++e) {
      std::vector<std::string> golds;
      for (const auto& a : d.examples[e].answers) golds.push_back(a.text);
      if (golds.empty()) golds.push_back("");  // unanswerable (SQuAD 2.0): the empty answer is right
      const auto sc = eval::squad_score(texts[e], golds);
      em.push_back(sc.exact_match);
      f1.push_back(sc.f1);
    }
    detail::MetricWriter m(n_boot, seed);
    m.put_mean("exact_match", em);
    m.put_mean("f1", f1);
    return m.take();
  }

  void write_predictions(const TaskData& data, const Predictions& predictions,
                         const std::string& path) const override {
    const auto& d = as<SpanQaData>(data, name());
    const auto& texts = as<TextPredictions>(predictions, name()).texts;
    nlohmann::json out = nlohmann::json::object();
    for (size_t e = 0; e < d.examples.size(); ++e) {
      const auto& id = d.examples[e].id;
      out[id.empty() ? std::to_string(e) : id] = texts[e];
    }
    detail::open_output(path) << out.dump(2) << '\n';
  }

 private:
  std::vector<data::SpanQaExample> read(const std::string& path) const {
    const auto& f = options_.format;
    if (f.empty() || f == "squad") return data::read_squad(path);
    if (f != "bioasq") throw ConfigError("data.format", "qa-span reads squad | bioasq, got \"" + f + "\"");
    std::vector<data::SpanQaExample> out;
    int64_t other_type = 0, not_found = 0;
    for (const auto& q : data::read_bioasq(path)) {
      if (q.type != "factoid" && q.type != "list") {
        ++other_type;
        continue;
      }
      data::SpanQaExample ex;
      ex.id = q.id;
      ex.question = q.body;
      ex.origin = q.origin;
      for (const auto& s : q.snippets) ex.context += (ex.context.empty() ? "" : " ") + s;
      const auto lower = [](std::string s) {
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
      };
      const auto hay = lower(ex.context);
      for (const auto& a : q.exact_answer) {
        const auto at = a.empty() ? std::string::npos : hay.find(lower(a));
        if (at != std::string::npos)
          ex.answers.push_back({ex.context.substr(at, a.size()), static_cast<int64_t>(at)});
      }
      if (ex.answers.empty()) {
        ++not_found;
        continue;
      }
      out.push_back(std::move(ex));
    }
    if (other_type + not_found > 0)
      log::warn("{}: {} BioASQ question(s) kept; left out: {} yesno/summary, {} whose exact answer is in no snippet",
                path, out.size(), other_type, not_found);
    return out;
  }
};

}  // namespace

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
  const auto e = static_cast<size_t>(
      std::clamp<int64_t>(bytes.second, static_cast<int64_t>(b), static_cast<int64_t>(context.size())));
  return context.substr(b, e - b);
}

std::unique_ptr<Task> make_qa_span(const TaskOptions& o) { return std::make_unique<QaSpanTask>(o); }

}  // namespace biolm::tasks

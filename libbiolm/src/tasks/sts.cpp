// The sts family: sentence pairs with a similarity score (BIOSSES, n2c2 2019 TSV) -> a
// Regression head; Pearson r (the headline) and Spearman rho. Predictions file: one score per line.
#include "biolm/data/tasks.h"
#include "biolm/eval/correlation.h"
#include "biolm/tasks/classification.h"
#include "common.h"

namespace biolm::tasks {
namespace {

class StsTask : public Task {
 public:
  using Task::Task;
  std::string name() const override { return "sts"; }
  models::TaskKind head_kind() const override { return models::TaskKind::Regression; }
  std::string primary_metric() const override { return "pearson"; }
  std::vector<std::string> secondary_metrics() const override { return {"spearman"}; }
  int64_t n_labels() const override { return 1; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    auto d = std::make_unique<ScoreData>();
    for (const auto& ex : data::read_sts(path)) {
      auto f = data::pair_features(ex.text_a, ex.text_b, tok, options_.max_length);
      f.has_score = true;
      f.score = ex.score;
      d->gold_scores.push_back(ex.score);
      f.example_index = static_cast<int64_t>(d->rows.size());
      d->rows.push_back(std::move(f));
    }
    return d;
  }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    auto p = std::make_unique<ScorePredictions>();
    detail::for_each_batch(model, tok, data.rows, options_.batch_size,
                           [&](const std::vector<data::Features>&, const torch::Tensor& logits) {
                             const auto v = logits.reshape({-1}).to(torch::kDouble);
                             for (int64_t r = 0; r < v.numel(); ++r) p->scores.push_back(v[r].item<double>());
                           });
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& gold = as<ScoreData>(data, name()).gold_scores;
    const auto& pred = as<ScorePredictions>(predictions, name()).scores;
    detail::MetricWriter m(n_boot, seed);
    for (const auto& [metric, fn] : {std::pair{"pearson", &eval::pearson}, std::pair{"spearman", &eval::spearman}}) {
      m.put(metric, static_cast<int64_t>(pred.size()), [&, fn = fn](const std::vector<int64_t>& idx) {
        std::vector<double> x, y;
        for (auto i : idx) {
          x.push_back(pred[static_cast<size_t>(i)]);
          y.push_back(gold[static_cast<size_t>(i)]);
        }
        return fn(x, y);
      });
    }
    return m.take();
  }

  void write_predictions(const TaskData&, const Predictions& predictions, const std::string& path) const override {
    auto f = detail::open_output(path);
    f.precision(17);
    for (auto s : as<ScorePredictions>(predictions, name()).scores) f << s << '\n';
  }
};

}  // namespace

std::unique_ptr<Task> make_sts(const TaskOptions& o) { return std::make_unique<StsTask>(o); }

}  // namespace biolm::tasks

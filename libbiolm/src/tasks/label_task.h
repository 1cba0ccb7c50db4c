// Internal to libbiolm/src/tasks: the shared part of the families that predict one class name
// per example with a SequenceClassification head (re, nli, pubmedqa): argmax prediction,
// accuracy, one predicted label per line as the predictions file.
#pragma once

#include "biolm/tasks/classification.h"
#include "common.h"

namespace biolm::tasks::detail {

class LabelTask : public Task {
 public:
  using Task::Task;
  models::TaskKind head_kind() const override { return models::TaskKind::SequenceClassification; }
  std::string primary_metric() const override { return "accuracy"; }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    auto p = std::make_unique<ClassPredictions>();
    for_each_batch(model, tok, data.rows, options_.batch_size,
                   [&](const std::vector<data::Features>&, const torch::Tensor& logits) {
                     append_argmax(logits, p->classes);
                   });
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& gold = as<LabelData>(data, name()).gold_labels;
    const auto pred = predicted_labels(predictions);
    MetricWriter m(n_boot, seed);
    m.put("accuracy", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
      double ok = 0;
      for (auto i : idx) ok += pred[static_cast<size_t>(i)] == gold[static_cast<size_t>(i)];
      return idx.empty() ? 0.0 : ok / static_cast<double>(idx.size());
    });
    add_metrics(gold, pred, m);
    return m.take();
  }

  void write_predictions(const TaskData&, const Predictions& predictions, const std::string& path) const override {
    auto f = open_output(path);
    for (const auto& l : predicted_labels(predictions)) f << l << '\n';
  }

 protected:
  /// Family metrics after accuracy.
  virtual void add_metrics(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                           MetricWriter& m) const = 0;

  /// One pair_features row per example with its label id; gold label kept for scoring.
  void add_example(LabelData& d, data::Features f, const std::string& label, const data::Origin& origin,
                   const std::string& field) const {
    f.label = label_id(labels_, label, origin, field);
    f.example_index = static_cast<int64_t>(d.rows.size());
    d.gold_labels.push_back(label);
    d.rows.push_back(std::move(f));
  }

 private:
  std::vector<std::string> predicted_labels(const Predictions& predictions) const {
    std::vector<std::string> out;
    for (auto c : as<ClassPredictions>(predictions, name()).classes) out.push_back(labels_.name(c));
    return out;
  }
};


}  // namespace biolm::tasks::detail

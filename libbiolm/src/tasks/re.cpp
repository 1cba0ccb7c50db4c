// The re family: ChemProt-style relation classification over entity-marked text -> a
// SequenceClassification head over the relation labels of the training file (sorted).
// Metrics as SciBERT scores ChemProt: accuracy, micro-F1 over the labels (with no negative
// class it equals accuracy) and macro-F1 over the labels of the gold file; with
// eval.negative_label both leave that class out (BLURB's ChemProt / DDI convention).
#include <algorithm>
#include <set>

#include "biolm/data/tasks.h"
#include "biolm/eval/classification.h"
#include "label_task.h"

namespace biolm::tasks {
namespace {

class ReTask : public detail::LabelTask {
 public:
  using LabelTask::LabelTask;
  std::string name() const override { return "re"; }
  std::vector<std::string> secondary_metrics() const override { return {"micro_f1", "macro_f1"}; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    return featurize_examples(tok, data::read_chemprot(path));
  }

  std::unique_ptr<TaskData> featurize_train(const tokenize::Tokenizer& tok, const std::string& path) override {
    const auto examples = data::read_chemprot(path);
    std::set<std::string> seen;
    for (const auto& ex : examples) seen.insert(ex.label);
    BIOLM_CHECK(!options_.negative_label || seen.count(*options_.negative_label) != 0, ConfigError,
                "eval.negative_label", "\"" + options_.negative_label.value_or("") + "\" is not a label of " + path);
    labels_ = data::LabelMap::from_names({seen.begin(), seen.end()});
    return featurize_examples(tok, examples);
  }

 protected:
  void add_metrics(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                   detail::MetricWriter& m) const override {
    std::vector<std::string> label_set(gold.begin(), gold.end());
    std::sort(label_set.begin(), label_set.end());
    label_set.erase(std::unique(label_set.begin(), label_set.end()), label_set.end());
    if (options_.negative_label)
      label_set.erase(std::remove(label_set.begin(), label_set.end(), *options_.negative_label), label_set.end());
    const auto report_of = [&](const std::vector<int64_t>& idx) {
      std::vector<std::string> g, q;
      for (auto i : idx) {
        g.push_back(gold[static_cast<size_t>(i)]);
        q.push_back(pred[static_cast<size_t>(i)]);
      }
      eval::ClassificationOptions co;
      co.labels = label_set;
      return eval::classification_report(g, q, co);
    };
    const auto n = static_cast<int64_t>(pred.size());
    m.put("micro_f1", n, [&](const std::vector<int64_t>& idx) { return idx.empty() ? 0.0 : report_of(idx).prf.micro.f1; });
    m.put("macro_f1", n, [&](const std::vector<int64_t>& idx) { return idx.empty() ? 0.0 : report_of(idx).prf.macro.f1; });
  }

 private:
  std::unique_ptr<TaskData> featurize_examples(const tokenize::Tokenizer& tok,
                                               const std::vector<data::RelationExample>& examples) const {
    auto d = std::make_unique<LabelData>();
    for (const auto& ex : examples)
      add_example(*d, data::pair_features(ex.marked_text, "", tok, options_.max_length), ex.label, ex.origin, "label");
    return d;
  }
};

}  // namespace

std::unique_ptr<Task> make_re(const TaskOptions& o) { return std::make_unique<ReTask>(o); }

}  // namespace biolm::tasks

// The nli family: MedNLI sentence pairs -> SequenceClassification over entailment / neutral /
// contradiction; accuracy.
#include "biolm/data/tasks.h"
#include "label_task.h"

namespace biolm::tasks {
namespace {

class NliTask : public detail::LabelTask {
 public:
  explicit NliTask(const TaskOptions& o) : LabelTask(o) {
    labels_ = data::LabelMap::from_names({"entailment", "neutral", "contradiction"});
  }
  std::string name() const override { return "nli"; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    auto d = std::make_unique<LabelData>();
    for (const auto& ex : data::read_mednli(path))
      add_example(*d, data::pair_features(ex.text_a, ex.text_b, tok, options_.max_length), ex.label, ex.origin,
                  "gold_label");
    return d;
  }

 protected:
  void add_metrics(const std::vector<std::string>&, const std::vector<std::string>&,
                   detail::MetricWriter&) const override {}
};

}  // namespace

std::unique_ptr<Task> make_nli(const TaskOptions& o) { return std::make_unique<NliTask>(o); }

}  // namespace biolm::tasks

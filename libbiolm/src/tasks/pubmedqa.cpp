// The pubmedqa family: PubMedQA question + CONTEXTS joined by " " (reasoning-required, the default)
// or question + LONG_ANSWER (reasoning-free; TaskOptions::pubmedqa_setting) -> SequenceClassification
// over yes / no / maybe; accuracy and macro-F1 (the PubMedQA paper's metrics).
#include "biolm/core/error.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/classification.h"
#include "label_task.h"

namespace biolm::tasks {
namespace {

class PubmedqaTask : public detail::LabelTask {
 public:
  explicit PubmedqaTask(const TaskOptions& o) : LabelTask(o) {
    labels_ = data::LabelMap::from_names({"yes", "no", "maybe"});
    if (o.pubmedqa_setting != "reasoning-required" && o.pubmedqa_setting != "reasoning-free")
      throw ConfigError("data.pubmedqa_setting",
                        "reasoning-required | reasoning-free, got \"" + o.pubmedqa_setting + "\"");
  }
  std::string name() const override { return "pubmedqa"; }
  std::vector<std::string> secondary_metrics() const override { return {"macro_f1"}; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    auto d = std::make_unique<LabelData>();
    const bool free = options_.pubmedqa_setting == "reasoning-free";
    for (const auto& ex : data::read_pubmedqa(path)) {
      std::string ctx;
      if (free) {
        if (ex.long_answer.empty())
          throw DataError::at_record(path, ex.origin.record, "LONG_ANSWER",
                                     "PMID " + ex.id + " has no LONG_ANSWER, which the reasoning-free setting reads");
        ctx = ex.long_answer;
      } else {
        for (const auto& c : ex.contexts) ctx += (ctx.empty() ? "" : " ") + c;
      }
      add_example(*d, data::pair_features(ex.question, ctx, tok, options_.max_length), ex.label, ex.origin,
                  "final_decision");
    }
    return d;
  }

 protected:
  void add_metrics(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                   detail::MetricWriter& m) const override {
    m.put("macro_f1", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
      std::vector<std::string> g, q;
      for (auto i : idx) {
        g.push_back(gold[static_cast<size_t>(i)]);
        q.push_back(pred[static_cast<size_t>(i)]);
      }
      return g.empty() ? 0.0 : eval::classification_report(g, q).prf.macro.f1;
    });
  }
};

}  // namespace

std::unique_ptr<Task> make_pubmedqa(const TaskOptions& o) { return std::make_unique<PubmedqaTask>(o); }

}  // namespace biolm::tasks

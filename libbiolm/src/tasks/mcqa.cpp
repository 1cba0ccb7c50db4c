// The mcqa family: MedQA / MedMCQA questions with options -> a MultipleChoice head scoring
// [CLS] question [SEP] option [SEP] per option; accuracy. Predictions file: one choice letter
// (A, B, ...) per line. Rows may have different numbers of options (MedQA's 4- and 5-option
// files): collate pads them and the head never predicts a padding option (data/batch.h).
#include "biolm/data/tasks.h"
#include "biolm/eval/classification.h"
#include "biolm/tasks/classification.h"
#include "common.h"

namespace biolm::tasks {
namespace {

class McqaTask : public Task {
 public:
  using Task::Task;
  std::string name() const override { return "mcqa"; }
  models::TaskKind head_kind() const override { return models::TaskKind::MultipleChoice; }
  std::string primary_metric() const override { return "accuracy"; }
  std::vector<std::string> secondary_metrics() const override { return {"macro_f1"}; }
  std::vector<std::string> formats() const override { return {"medqa", "medmcqa"}; }
  int64_t n_labels() const override { return 2; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    auto d = std::make_unique<ChoiceData>();
    for (const auto& ex : read(path)) {
      if (ex.answer < 0)
        throw detail::origin_error(ex.origin, "answer", "the example has no answer; training and evaluation need one");
      auto f = data::choice_features(ex, tok, options_.max_length);
      f.example_index = static_cast<int64_t>(d->rows.size());
      d->gold_choices.push_back(ex.answer);
      d->rows.push_back(std::move(f));
    }
    return d;
  }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    auto p = std::make_unique<ClassPredictions>();
    detail::for_each_batch(model, tok, data.rows, options_.batch_size,
                           [&](const std::vector<data::Features>&, const torch::Tensor& logits) {
                             detail::append_argmax(logits, p->classes);
                           });
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& gold = as<ChoiceData>(data, name()).gold_choices;
    const auto& pred = as<ClassPredictions>(predictions, name()).classes;
    std::vector<double> ok;
    for (size_t i = 0; i < pred.size(); ++i) ok.push_back(pred[i] == gold[i] ? 1.0 : 0.0);
    detail::MetricWriter m(n_boot, seed);
    m.put_mean("accuracy", ok);
    // Macro-F1 over the choice positions (A, B, ...), as for the harness's decoders.
    m.put("macro_f1", static_cast<int64_t>(pred.size()), [&](const std::vector<int64_t>& idx) {
      std::vector<std::string> g, q;
      for (auto i : idx) {
        g.push_back(std::string(1, static_cast<char>('A' + gold[static_cast<size_t>(i)])));
        q.push_back(std::string(1, static_cast<char>('A' + pred[static_cast<size_t>(i)])));
      }
      return g.empty() ? 0.0 : eval::classification_report(g, q).prf.macro.f1;
    });
    return m.take();
  }

  void write_predictions(const TaskData&, const Predictions& predictions, const std::string& path) const override {
    auto f = detail::open_output(path);
    for (auto c : as<ClassPredictions>(predictions, name()).classes) f << static_cast<char>('A' + c) << '\n';
  }

 private:
  std::vector<data::ChoiceExample> read(const std::string& path) const {
    if (options_.format.empty() || options_.format == "medqa") return data::read_medqa(path);
    if (options_.format == "medmcqa") {
      data::MedmcqaOptions o;
      o.cop_zero_based = options_.cop_zero_based;
      return data::read_medmcqa(path, o);
    }
    throw ConfigError("data.format", "mcqa reads medqa | medmcqa, got \"" + options_.format + "\"");
  }
};

}  // namespace

std::unique_ptr<Task> make_mcqa(const TaskOptions& o) { return std::make_unique<McqaTask>(o); }

}  // namespace biolm::tasks

// The hoc family: multi-label document classification as BLURB's HoC (hallmarks of cancer:
// several labels per abstract). A SequenceClassification head over the labels of the training
// file (sorted) trained with a sigmoid per label and binary cross entropy (multi-hot "targets",
// as transformers' problem_type="multi_label_classification"); a label is predicted where its
// logit > 0 (probability > 0.5). Metrics as scikit-learn's f1_score on the (examples x labels)
// indicator matrices: micro_f1 (primary), macro_f1 and f1_<label> per label.
//
// File format (JSONL, one document per line; data/hoc_demo/ holds a synthetic set):
//   {"id": "doc-1", "text": "...", "labels": ["inducing angiogenesis", "resisting cell death"]}
// "id" optional, "labels" a list of strings, possibly empty. Predictions file: JSONL
// {"id", "labels": [...]} per document.
//
// The whole family is this file plus its line in registry.cpp.
#include <fstream>
#include <set>

#include "biolm/eval/classification.h"
#include "common.h"

namespace biolm::tasks {
namespace {

struct Document {
  std::string id, text;
  std::vector<std::string> labels;
  data::Origin origin;
};

/// Reads the JSONL format above; DataError naming file:line and field on a bad record.
std::vector<Document> read_documents(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw IoError::from_errno(path, "cannot open");
  std::vector<Document> out;
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(path, n, "", std::string("not a JSON object: ") + e.what());
    }
    Document d;
    d.origin.source = path;
    d.origin.line = n;
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw DataError(path, n, "text", "expected a string");
    d.text = j["text"].get<std::string>();
    d.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : std::to_string(out.size());
    if (!j.contains("labels") || !j["labels"].is_array()) throw DataError(path, n, "labels", "expected a list of strings");
    for (const auto& l : j["labels"]) {
      if (!l.is_string()) throw DataError(path, n, "labels", "expected a list of strings, found " + l.dump());
      d.labels.push_back(l.get<std::string>());
    }
    out.push_back(std::move(d));
  }
  return out;
}

struct HocData : TaskData {
  std::vector<Document> documents;
};

struct MultiLabelPredictions : Predictions {
  std::vector<std::vector<int64_t>> label_ids;  ///< per document, the labels with logit > 0 (ascending)
};

class HocTask : public Task {
 public:
  using Task::Task;
  std::string name() const override { return "hoc"; }
  models::TaskKind head_kind() const override { return models::TaskKind::SequenceClassification; }
  std::string primary_metric() const override { return "micro_f1"; }
  std::vector<std::string> secondary_metrics() const override { return {"macro_f1"}; }
  std::string predictions_file() const override { return "predictions.jsonl"; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    return featurize_documents(tok, read_documents(path));
  }

  std::unique_ptr<TaskData> featurize_train(const tokenize::Tokenizer& tok, const std::string& path) override {
    auto docs = read_documents(path);
    std::set<std::string> seen;
    for (const auto& d : docs) seen.insert(d.labels.begin(), d.labels.end());
    BIOLM_CHECK(seen.size() >= 2, DataError, path, 0, "labels", "hoc needs at least two distinct labels in the training file");
    labels_ = data::LabelMap::from_names({seen.begin(), seen.end()});
    return featurize_documents(tok, std::move(docs));
  }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    auto p = std::make_unique<MultiLabelPredictions>();
    detail::for_each_batch(model, tok, data.rows, options_.batch_size,
                           [&](const std::vector<data::Features>&, const torch::Tensor& logits) {
                             const auto on = logits.gt(0).contiguous();  // (B, n_labels)
                             for (int64_t b = 0; b < on.size(0); ++b) {
                               std::vector<int64_t> ids;
                               for (int64_t l = 0; l < on.size(1); ++l)
                                 if (on[b][l].item<bool>()) ids.push_back(l);
                               p->label_ids.push_back(std::move(ids));
                             }
                           });
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& d = as<HocData>(data, name());
    const auto& p = as<MultiLabelPredictions>(predictions, name());
    const auto L = static_cast<size_t>(labels_.size());
    // Per document and label: (gold, predicted) indicators, tallied like sklearn's multilabel
    // confusion matrix.
    std::vector<std::vector<eval::Tally>> per_doc(d.documents.size(), std::vector<eval::Tally>(L));
    for (size_t e = 0; e < d.documents.size(); ++e) {
      std::vector<bool> gold(L, false), pred(L, false);
      for (const auto& l : d.documents[e].labels) gold[static_cast<size_t>(labels_.id(l))] = true;
      for (auto l : p.label_ids[e]) pred[static_cast<size_t>(l)] = true;
      for (size_t l = 0; l < L; ++l) per_doc[e][l] = {gold[l] && pred[l] ? 1 : 0, pred[l] ? 1 : 0, gold[l] ? 1 : 0};
    }
    const auto table = [&](const std::vector<int64_t>& idx) {
      std::vector<eval::Tally> sum(L);
      for (auto i : idx)
        for (size_t l = 0; l < L; ++l) sum[l] += per_doc[static_cast<size_t>(i)][l];
      return eval::prf_from_tallies(labels_.names(), sum);
    };
    const auto n = static_cast<int64_t>(d.documents.size());
    detail::MetricWriter m(n_boot, seed);
    m.put("micro_f1", n, [&](const std::vector<int64_t>& idx) { return table(idx).micro.f1; });
    m.put("macro_f1", n, [&](const std::vector<int64_t>& idx) { return table(idx).macro.f1; });
    for (size_t l = 0; l < L; ++l)
      m.put("f1_" + labels_.name(static_cast<int64_t>(l)), n,
            [&, l](const std::vector<int64_t>& idx) { return table(idx).per_label[l].f1; });
    return m.take();
  }

  void write_predictions(const TaskData& data, const Predictions& predictions,
                         const std::string& path) const override {
    const auto& d = as<HocData>(data, name());
    const auto& p = as<MultiLabelPredictions>(predictions, name());
    auto f = detail::open_output(path);
    for (size_t e = 0; e < d.documents.size(); ++e) {
      std::vector<std::string> names;
      for (auto l : p.label_ids[e]) names.push_back(labels_.name(l));
      f << nlohmann::json{{"id", d.documents[e].id}, {"labels", names}}.dump() << '\n';
    }
  }

 private:
  std::unique_ptr<HocData> featurize_documents(const tokenize::Tokenizer& tok, std::vector<Document> docs) const {
    auto d = std::make_unique<HocData>();
    d->documents = std::move(docs);
    for (const auto& doc : d->documents) {
      auto f = data::pair_features(doc.text, "", tok, options_.max_length);
      f.targets.assign(static_cast<size_t>(labels_.size()), 0.0f);
      for (const auto& l : doc.labels)
        f.targets[static_cast<size_t>(detail::label_id(labels_, l, doc.origin, "labels"))] = 1.0f;
      f.example_index = static_cast<int64_t>(d->rows.size());
      d->rows.push_back(std::move(f));
    }
    return d;
  }
};

}  // namespace

std::unique_ptr<Task> make_hoc(const TaskOptions& o) { return std::make_unique<HocTask>(o); }

}  // namespace biolm::tasks

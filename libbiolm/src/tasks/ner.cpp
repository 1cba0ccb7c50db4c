// The ner family: CoNLL/BIO sentences (data.format conll, the default), BRAT standoff (brat: a
// directory of .ann/.txt or one .ann) or PubTator (pubtator) documents cut into IOB2 sentences
// one per text line (data::document_to_sentences; overlapping mentions keep the longer and are
// logged as warnings) -> windows of word pieces (first piece labelled) ->
// TokenClassification head -> word tags -> entity-level micro F1 as seqeval (default mode and
// mode="strict" IOB2), per-type F1 when the corpus has several types (BC5CDR: Chemical,
// Disease). Predictions file: CoNLL columns "token gold pred", a blank line between sentences
// (seqeval / conlleval read it). See biolm/tasks/ner.h.
#include "biolm/tasks/ner.h"

#include <set>

#include "biolm/core/log.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/ner.h"
#include "common.h"

namespace biolm::tasks {
namespace {

class NerTask : public Task {
 public:
  using Task::Task;
  std::string name() const override { return "ner"; }
  models::TaskKind head_kind() const override { return models::TaskKind::TokenClassification; }
  std::string predictions_file() const override { return "predictions.conll"; }
  std::string primary_metric() const override { return "f1"; }
  std::vector<std::string> secondary_metrics() const override { return {"f1_strict"}; }
  std::vector<std::string> formats() const override { return {"conll", "brat", "pubtator"}; }

  std::unique_ptr<TaskData> featurize(const tokenize::Tokenizer& tok, const std::string& path) const override {
    return featurize_sentences(tok, read(path));
  }

  std::unique_ptr<TaskData> featurize_train(const tokenize::Tokenizer& tok, const std::string& path) override {
    auto sentences = read(path);
    std::set<std::string> types;
    for (const auto& s : sentences)
      for (const auto& t : s.tags)
        if (t.size() > 2) types.insert(t.substr(2));
    labels_ = data::LabelMap::from_types({types.begin(), types.end()});
    return featurize_sentences(tok, std::move(sentences));
  }

  std::unique_ptr<Predictions> predict(models::TaskModelImpl& model, const tokenize::Tokenizer& tok,
                                       const TaskData& data) const override {
    auto p = std::make_unique<TokenPredictions>();
    detail::for_each_batch(model, tok, data.rows, options_.batch_size,
                           [&](const std::vector<data::Features>& rows, const torch::Tensor& logits) {
                             const auto am = logits.argmax(-1);
                             for (size_t r = 0; r < rows.size(); ++r) {
                               const auto row = am[static_cast<int64_t>(r)].contiguous();
                               p->token_preds.emplace_back(row.data_ptr<int64_t>(),
                                                           row.data_ptr<int64_t>() + row.numel());
                             }
                           });
    return p;
  }

  nlohmann::json score(const TaskData& data, const Predictions& predictions, int64_t n_boot,
                       uint64_t seed) const override {
    const auto& d = as<NerData>(data, name());
    const auto pred = ner_word_tags(*this, d, as<TokenPredictions>(predictions, name()));
    std::vector<std::vector<std::string>> gold;
    for (const auto& s : d.sentences) gold.push_back(s.tags);
    const auto n = static_cast<int64_t>(gold.size());
    detail::MetricWriter m(n_boot, seed);
    m.put("f1", n, [&](const std::vector<int64_t>& idx) {
      std::vector<std::vector<std::string>> g, q;
      for (auto i : idx) {
        g.push_back(gold[static_cast<size_t>(i)]);
        q.push_back(pred[static_cast<size_t>(i)]);
      }
      return eval::ner_report(g, q).micro.f1;
    });
    eval::NerOptions strict;
    strict.mode = eval::NerMode::Strict;
    const auto strict_tallies = eval::ner_sentence_tallies(gold, pred, strict);
    const auto types = eval::ner_types(strict_tallies);
    m.put("f1_strict", n, [&](const std::vector<int64_t>& idx) {
      return eval::ner_table(strict_tallies, idx, types).micro.f1;
    });
    const auto tallies = eval::ner_sentence_tallies(gold, pred, eval::NerOptions{});
    const auto all_types = eval::ner_types(tallies);
    if (all_types.size() > 1) {
      for (size_t t = 0; t < all_types.size(); ++t) {
        m.put("f1_" + all_types[t], n, [&, t](const std::vector<int64_t>& idx) {
          return eval::ner_table(tallies, idx, all_types).per_label[t].f1;
        });
      }
    }
    return m.take();
  }

  void write_predictions(const TaskData& data, const Predictions& predictions,
                         const std::string& path) const override {
    const auto& d = as<NerData>(data, name());
    const auto pred = ner_word_tags(*this, d, as<TokenPredictions>(predictions, name()));
    auto f = detail::open_output(path);
    for (size_t e = 0; e < d.sentences.size(); ++e) {
      for (size_t w = 0; w < d.sentences[e].words.size(); ++w)
        f << d.sentences[e].words[w] << ' ' << d.sentences[e].tags[w] << ' ' << pred[e][w] << '\n';
      f << '\n';
    }
  }

 private:
  std::vector<data::NerSentence> read(const std::string& path) const {
    const auto& f = options_.format;
    if (f.empty() || f == "conll") return data::read_conll(path);
    if (f != "brat" && f != "pubtator")
      throw ConfigError("data.format", "ner reads conll | brat | pubtator, got \"" + f + "\"");
    data::ReadReport report;
    const auto docs = f == "brat" ? data::read_brat(path, {}, &report) : data::read_pubtator(path, {}, &report);
    std::vector<data::NerSentence> out;
    for (const auto& d : docs)
      for (auto& s : data::document_to_sentences(d, {}, &report)) out.push_back(std::move(s));
    if (report.warnings > 0)
      log::warn("{}: {} mention(s) changed or dropped on the way to IOB2 (overlaps, discontinuous spans)", path,
                report.warnings);
    return out;
  }

  std::unique_ptr<NerData> featurize_sentences(const tokenize::Tokenizer& tok,
                                               std::vector<data::NerSentence> sentences) const {
    auto d = std::make_unique<NerData>();
    d->sentences = std::move(sentences);
    data::NerFeatureOptions o;
    o.max_length = options_.max_length;
    o.overlap = detail::doc_stride(options_);
    for (size_t i = 0; i < d->sentences.size(); ++i)
      for (auto& f : data::ner_features(d->sentences[i], static_cast<int64_t>(i), tok, labels_, o))
        d->rows.push_back(std::move(f));
    return d;
  }
};

}  // namespace

std::vector<std::vector<std::string>> ner_word_tags(const Task& task, const NerData& d, const TokenPredictions& p) {
  // Windows back to words, ids back to tags (sentence level).
  std::vector<std::vector<data::Features>> windows(d.sentences.size());
  std::vector<std::vector<std::vector<int64_t>>> preds(d.sentences.size());
  for (size_t r = 0; r < d.rows.size(); ++r) {
    const auto e = static_cast<size_t>(d.rows[r].example_index);
    windows[e].push_back(d.rows[r]);
    preds[e].push_back(p.token_preds[r]);
  }
  std::vector<std::vector<std::string>> out;
  for (size_t e = 0; e < d.sentences.size(); ++e) {
    const auto words =
        data::ner_word_predictions(windows[e], preds[e], static_cast<int64_t>(d.sentences[e].words.size()));
    std::vector<std::string> tags;
    for (auto w : words) tags.push_back(w < 0 ? "O" : task.labels().name(w));
    out.push_back(std::move(tags));
  }
  return out;
}

std::unique_ptr<Task> make_ner(const TaskOptions& o) { return std::make_unique<NerTask>(o); }

}  // namespace biolm::tasks

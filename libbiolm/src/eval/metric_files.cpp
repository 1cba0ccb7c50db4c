// Metrics from gold / prediction files, with optional bootstrap intervals (biolm metrics).
#include "biolm/eval/metric_files.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "biolm/core/error.h"
#include "biolm/eval/correlation.h"
#include "biolm/eval/text.h"

namespace biolm::eval {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string t;
  while (in >> t) out.push_back(t);
  return out;
}

std::vector<int64_t> all_indices(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

json prf_json(const PRF& p, bool with_support) {
  json j = {{"precision", p.precision}, {"recall", p.recall}, {"f1", p.f1}};
  if (with_support) j["support"] = p.support;
  return j;
}

void check_same_count(const fs::path& gold, size_t n_gold, const fs::path& pred, size_t n_pred,
                      const char* what) {
  if (n_gold != n_pred) {
    throw DataError(pred.string(), 0, what,
                    fmt::format("has {} {} but gold file {} has {}", n_pred, what, gold.string(), n_gold));
  }
  if (n_gold == 0) throw DataError(gold.string(), 0, what, fmt::format("no {} to score", what));
}

struct LinePair {
  std::vector<std::string> gold, pred;
};
LinePair read_pair(const fs::path& gold, const fs::path& pred) {
  LinePair p{read_lines(gold), read_lines(pred)};
  check_same_count(gold, p.gold.size(), pred, p.pred.size(), "lines");
  return p;
}

std::vector<std::string> read_labels(const fs::path& path, std::vector<std::string> lines) {
  for (size_t i = 0; i < lines.size(); ++i) {
    lines[i] = trim(lines[i]);
    if (lines[i].empty()) throw DataError(path.string(), static_cast<int64_t>(i + 1), "label", "empty label");
  }
  return lines;
}

std::vector<double> read_numbers(const fs::path& path, const std::vector<std::string>& lines) {
  std::vector<double> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string t = trim(lines[i]);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || errno == ERANGE || !std::isfinite(v)) {
      throw DataError(path.string(), static_cast<int64_t>(i + 1), "value",
                      fmt::format("expected a finite number, found \"{}\"", t));
    }
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> split_answers(const std::string& line) {
  static const std::string kSep = " ||| ";
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = line.find(kSep, start);
    if (pos == std::string::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, pos - start));
    start = pos + kSep.size();
  }
}

json table_json(const PrfTable& t, const char* per_key, bool micro_at_top) {
  json j;
  if (micro_at_top) {
    j["precision"] = t.micro.precision;
    j["recall"] = t.micro.recall;
    j["f1"] = t.micro.f1;
  } else {
    j["micro"] = prf_json(t.micro, false);
  }
  j["macro"] = prf_json(t.macro, false);
  j["weighted"] = prf_json(t.weighted, false);
  json per = json::object();
  for (size_t i = 0; i < t.labels.size(); ++i) per[t.labels[i]] = prf_json(t.per_label[i], true);
  j[per_key] = per;
  return j;
}

// --- tasks: each returns (n units, compute(indices)) ----------------------------------------
using Compute = std::function<json(const std::vector<int64_t>&)>;
struct Prepared {
  int64_t n = 0;
  Compute compute;
  json header;  // fixed keys (task, options, counts)
};

template <class T>
std::vector<T> pick(const std::vector<T>& v, const std::vector<int64_t>& idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (int64_t i : idx) out.push_back(v[static_cast<size_t>(i)]);
  return out;
}

// Re-throws a token-level tag error with the file and line it came from.
std::vector<std::vector<std::string>> checked_labels(const fs::path& path, const ConllFile& f,
                                                     const NerOptions& options) {
  for (size_t s = 0; s < f.labels.size(); ++s) {
    try {
      extract_entities(f.labels[s], options);
    } catch (const DataError& e) {
      throw DataError(path.string(), f.lines[s].at(static_cast<size_t>(e.record())), "label", e.message());
    }
  }
  return f.labels;
}

Prepared prepare_ner(const std::vector<std::vector<std::string>>& gold,
                     const std::vector<std::vector<std::string>>& pred, const NerOptions& o) {
  const auto sentences = std::make_shared<std::vector<NerSentenceTallies>>(ner_sentence_tallies(gold, pred, o));
  const auto types = ner_types(*sentences);
  Prepared out;
  out.n = static_cast<int64_t>(sentences->size());
  out.header = {{"task", "ner"},
                {"mode", o.mode == NerMode::Default ? "default" : "strict"},
                {"n_sentences", out.n}};
  if (o.mode == NerMode::Strict) out.header["scheme"] = o.scheme == NerScheme::IOB2 ? "IOB2" : "IOBES";
  const ZeroDivision zd = o.zero_division;
  out.compute = [sentences, types, zd](const std::vector<int64_t>& idx) {
    return table_json(ner_table(*sentences, idx, types, zd), "per_type", true);
  };
  return out;
}

Prepared prepare_ner_files(const fs::path& gold, const fs::path& pred, const FileMetricOptions& o) {
  const ConllFile g = read_conll(gold);
  const ConllFile p = read_conll(pred);
  check_same_count(gold, g.labels.size(), pred, p.labels.size(), "sentences");
  for (size_t s = 0; s < g.labels.size(); ++s) {
    if (g.labels[s].size() != p.labels[s].size()) {
      throw DataError(pred.string(), p.lines[s].front(), "tokens",
                      fmt::format("sentence {} has {} tokens but {}:{} has {}", s + 1, p.labels[s].size(),
                                  gold.string(), g.lines[s].front(), g.labels[s].size()));
    }
    if (g.has_tokens && p.has_tokens) {
      for (size_t t = 0; t < g.tokens[s].size(); ++t) {
        if (g.tokens[s][t] != p.tokens[s][t]) {
          throw DataError(pred.string(), p.lines[s][t], "token",
                          fmt::format("\"{}\" but {}:{} has \"{}\"", p.tokens[s][t], gold.string(),
                                      g.lines[s][t], g.tokens[s][t]));
        }
      }
    }
  }
  return prepare_ner(checked_labels(gold, g, o.ner), checked_labels(pred, p, o.ner), o.ner);
}

Prepared prepare_cls(std::vector<std::string> gold, std::vector<std::string> pred, const FileMetricOptions& o) {
  auto g = std::make_shared<std::vector<std::string>>(std::move(gold));
  auto p = std::make_shared<std::vector<std::string>>(std::move(pred));
  const auto labels = o.labels.empty() ? sorted_labels(*g, *p) : o.labels;
  Prepared out;
  out.n = static_cast<int64_t>(g->size());
  out.header = {{"task", "cls"}, {"n", out.n}};
  const ZeroDivision zd = o.zero_division;
  out.compute = [g, p, labels, zd](const std::vector<int64_t>& idx) {
    const auto report = classification_report(pick(*g, idx), pick(*p, idx), {labels, zd});
    json j = table_json(report.prf, "per_class", false);
    j["accuracy"] = report.accuracy;
    return j;
  };
  return out;
}

Prepared prepare_re(std::vector<std::string> gold, std::vector<std::string> pred, const FileMetricOptions& o) {
  auto g = std::make_shared<std::vector<std::string>>(std::move(gold));
  auto p = std::make_shared<std::vector<std::string>>(std::move(pred));
  Prepared out;
  out.n = static_cast<int64_t>(g->size());
  out.header = {{"task", "re"}, {"n", out.n}, {"negative_label", o.negative_label}};
  const std::string neg = o.negative_label;
  const ZeroDivision zd = o.zero_division;
  out.compute = [g, p, neg, zd](const std::vector<int64_t>& idx) {
    return prf_json(relation_micro_f1(pick(*g, idx), pick(*p, idx), neg, zd), false);
  };
  return out;
}

Prepared prepare_corr(std::vector<double> gold, std::vector<double> pred) {
  auto g = std::make_shared<std::vector<double>>(std::move(gold));
  auto p = std::make_shared<std::vector<double>>(std::move(pred));
  Prepared out;
  out.n = static_cast<int64_t>(g->size());
  out.header = {{"task", "corr"}, {"n", out.n}};
  out.compute = [g, p](const std::vector<int64_t>& idx) {
    const auto gs = pick(*g, idx), ps = pick(*p, idx);
    return json{{"pearson", pearson(gs, ps)}, {"spearman", spearman(gs, ps)}};
  };
  return out;
}

// golds[i]: the references of hypothesis i (one or more).
Prepared prepare_text(const std::vector<std::vector<std::string>>& golds, const std::vector<std::string>& preds,
                      const FileMetricOptions& o) {
  // Per-line sufficient statistics: corpus BLEU of a resample is the BLEU of summed stats.
  auto stats = std::make_shared<std::vector<BleuStats>>();
  auto sacre = std::make_shared<std::vector<SacreBleuStats>>();
  auto rouge = std::make_shared<std::vector<double>>();
  for (size_t i = 0; i < golds.size(); ++i) {
    std::vector<std::vector<std::string>> refs;
    for (const auto& r : golds[i]) refs.push_back(whitespace_tokens(r));
    stats->push_back(bleu_stats(whitespace_tokens(preds[i]), refs));
    sacre->push_back(sacrebleu_stats(preds[i], golds[i]));
    rouge->push_back(rouge_l_multi(golds[i], preds[i], o.rouge_stemmer).fmeasure);
  }
  Prepared out;
  out.n = static_cast<int64_t>(stats->size());
  out.header = {{"task", "text"},
                {"n", out.n},
                {"bleu_tokenizer", "whitespace"},
                {"bleu_smoothing", "none"},
                {"sacrebleu_tokenizer", "13a"},
                {"sacrebleu_smoothing", "exp"},
                {"rouge_tokenizer", "rouge-score default"},
                {"rouge_stemmer", o.rouge_stemmer}};
  out.compute = [stats, sacre, rouge](const std::vector<int64_t>& idx) {
    BleuStats total;
    SacreBleuStats sacre_total;
    double r = 0.0;
    for (int64_t i : idx) {
      total += (*stats)[static_cast<size_t>(i)];
      sacre_total += (*sacre)[static_cast<size_t>(i)];
      r += (*rouge)[static_cast<size_t>(i)];
    }
    return json{{"bleu1", bleu_from_stats(total, {1, BleuSmoothing::None, false})},
                {"bleu4", bleu_from_stats(total, {4, BleuSmoothing::None, false})},
                {"sacrebleu", sacrebleu_from_stats(sacre_total)},
                {"rougeL", r / static_cast<double>(idx.size())}};
  };
  return out;
}

json qa_split_json(const QaSplit& s) { return {{"exact_match", s.exact}, {"f1", s.f1}, {"n", s.total}}; }

Prepared prepare_qa(std::vector<std::vector<std::string>> golds, std::vector<std::string> preds,
                    std::vector<double> na_probs, const FileMetricOptions& o) {
  Prepared out;
  out.n = static_cast<int64_t>(golds.size());
  if (o.squad_version == SquadVersion::V1_1) {
    auto scores = std::make_shared<std::vector<QaScore>>();
    for (size_t i = 0; i < golds.size(); ++i) scores->push_back(squad_score(preds[i], golds[i]));
    out.header = {{"task", "qa"}, {"squad_version", "1.1"}, {"n", out.n}};
    out.compute = [scores](const std::vector<int64_t>& idx) {
      double em = 0.0, f1 = 0.0;
      for (int64_t i : idx) {
        em += (*scores)[static_cast<size_t>(i)].exact_match;
        f1 += (*scores)[static_cast<size_t>(i)].f1;
      }
      const double n = static_cast<double>(idx.size());
      return json{{"exact_match", em / n}, {"f1", f1 / n}};
    };
    return out;
  }
  out.header = {{"task", "qa"}, {"squad_version", "2.0"}, {"n", out.n}, {"na_prob_thresh", o.na_prob_thresh}};
  auto g = std::make_shared<std::vector<std::vector<std::string>>>(std::move(golds));
  auto p = std::make_shared<std::vector<std::string>>(std::move(preds));
  auto na = std::make_shared<std::vector<double>>(std::move(na_probs));
  const double thresh = o.na_prob_thresh;
  // The splits present in the whole set stay in every bootstrap resample (NaN where a resample
  // holds no such question: bootstrap_intervals leaves non-finite values out and counts them).
  const bool with_has = std::any_of(g->begin(), g->end(), [](const auto& a) { return !a.empty(); });
  const bool with_no = std::any_of(g->begin(), g->end(), [](const auto& a) { return a.empty(); });
  out.compute = [g, p, na, thresh, with_has, with_no](const std::vector<int64_t>& idx) {
    const Squad2Result r = squad2_evaluate(pick(*p, idx), pick(*g, idx), na->empty() ? *na : pick(*na, idx), thresh);
    json j = {{"exact_match", r.all.exact}, {"f1", r.all.f1}};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const QaSplit missing{nan, nan, 0};
    if (with_has) j["has_ans"] = qa_split_json(r.has_ans.value_or(missing));
    if (with_no) j["no_ans"] = qa_split_json(r.no_ans.value_or(missing));
    if (r.best_exact) {
      j["best_exact_match"] = *r.best_exact;
      j["best_exact_match_thresh"] = *r.best_exact_thresh;
      j["best_f1"] = *r.best_f1;
      j["best_f1_thresh"] = *r.best_f1_thresh;
    }
    return j;
  };
  return out;
}

bool is_count_key(const std::string& key) { return key == "support" || key == "n" || key == "n_sentences"; }

void collect(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_object()) {
      collect(it.value(), at / it.key(), out);
    } else if (it.value().is_number() && !is_count_key(it.key())) {
      out.push_back(at / it.key());
    }
  }
}

}  // namespace

MetricTask parse_metric_task(std::string_view name) {
  static const std::map<std::string, MetricTask> kTasks = {
      {"ner", MetricTask::Ner}, {"cls", MetricTask::Cls}, {"corr", MetricTask::Corr},
      {"text", MetricTask::Text}, {"qa", MetricTask::Qa}, {"re", MetricTask::Re}};
  const auto it = kTasks.find(std::string(name));
  if (it == kTasks.end()) {
    throw ConfigError("metrics.task", fmt::format("expected ner|cls|corr|text|qa|re, found \"{}\"", name));
  }
  return it->second;
}

NerMode parse_ner_mode(std::string_view name) {
  const std::string n = lower_ascii(name);
  if (n == "default") return NerMode::Default;
  if (n == "strict") return NerMode::Strict;
  throw ConfigError("metrics.mode", fmt::format("expected default|strict, found \"{}\"", name));
}

NerScheme parse_ner_scheme(std::string_view name) {
  const std::string n = lower_ascii(name);
  if (n == "iob2") return NerScheme::IOB2;
  if (n == "iobes") return NerScheme::IOBES;
  throw ConfigError("metrics.scheme", fmt::format("expected IOB2|IOBES, found \"{}\"", name));
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError::from_errno(path.string(), "cannot open for reading");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) throw IoError::from_errno(path.string(), "read failed");
  return lines;
}

ConllFile read_conll(const fs::path& path) {
  const auto lines = read_lines(path);
  ConllFile f;
  bool open = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto cols = split_ws(lines[i]);
    if (cols.empty() || cols[0] == "-DOCSTART-") {
      open = false;
      continue;
    }
    if (!open) {
      f.tokens.emplace_back();
      f.labels.emplace_back();
      f.lines.emplace_back();
      open = true;
    }
    f.has_tokens = f.has_tokens && cols.size() >= 2;
    f.tokens.back().push_back(cols.size() >= 2 ? cols.front() : std::string());
    f.labels.back().push_back(cols.back());
    f.lines.back().push_back(static_cast<int64_t>(i + 1));
  }
  return f;
}

void add_bootstrap_intervals(json& result, int64_t n,
                             const std::function<json(const std::vector<int64_t>&)>& compute,
                             const BootstrapOptions& options) {
  std::vector<json::json_pointer> keys;
  collect(result, json::json_pointer(), keys);
  auto values_of = [&keys](const json& j) {
    std::vector<double> v;
    v.reserve(keys.size());
    for (const auto& k : keys) v.push_back(j.at(k).get<double>());
    return v;
  };
  // A NaN point estimate is stored by nlohmann as a float NaN; values_of reads it back as NaN.
  const auto intervals = bootstrap_intervals(
      n, [&](const std::vector<int64_t>& idx) { return values_of(compute(idx)); }, options);
  for (size_t i = 0; i < keys.size(); ++i) {
    const json::json_pointer parent = keys[i].parent_pointer();
    const std::string key = keys[i].back();
    result[parent][key + "_ci"] = json::array({intervals[i].lower, intervals[i].upper});
  }
  result["bootstrap"] = {{"n_resamples", options.n_resamples},
                         {"seed", options.seed},
                         {"confidence", options.confidence},
                         {"method", "percentile"}};
}

namespace {

json finish(const Prepared& prep, const std::optional<BootstrapOptions>& bootstrap) {
  json result = prep.compute(all_indices(static_cast<size_t>(prep.n)));
  if (bootstrap) add_bootstrap_intervals(result, prep.n, prep.compute, *bootstrap);
  json out = prep.header;
  out.update(result);
  return out;
}

std::vector<std::vector<std::string>> answer_lists(const std::vector<std::string>& lines, SquadVersion v) {
  std::vector<std::vector<std::string>> out;
  for (const auto& line : lines) {
    // v2.0: an empty gold line is a question without answer.
    out.push_back(v == SquadVersion::V2_0 && line.empty() ? std::vector<std::string>{} : split_answers(line));
  }
  return out;
}

}  // namespace

json file_metrics(MetricTask task, const fs::path& gold, const fs::path& pred,
                  const FileMetricOptions& options) {
  if (task == MetricTask::Ner) return finish(prepare_ner_files(gold, pred, options), options.bootstrap);
  const LinePair lp = read_pair(gold, pred);
  Prepared prep;
  switch (task) {
    case MetricTask::Ner:
      break;
    case MetricTask::Cls:
      prep = prepare_cls(read_labels(gold, lp.gold), read_labels(pred, lp.pred), options);
      break;
    case MetricTask::Re:
      prep = prepare_re(read_labels(gold, lp.gold), read_labels(pred, lp.pred), options);
      break;
    case MetricTask::Corr:
      if (lp.gold.size() < 2) throw DataError(gold.string(), 0, "lines", "correlation needs at least 2 lines");
      prep = prepare_corr(read_numbers(gold, lp.gold), read_numbers(pred, lp.pred));
      break;
    case MetricTask::Text: {
      std::vector<std::vector<std::string>> refs;
      for (const auto& line : lp.gold) refs.push_back({line});
      prep = prepare_text(refs, lp.pred, options);
      break;
    }
    case MetricTask::Qa: {
      std::vector<double> na;
      if (options.na_probs) {
        const auto lines = read_lines(*options.na_probs);
        check_same_count(gold, lp.gold.size(), *options.na_probs, lines.size(), "lines");
        na = read_numbers(*options.na_probs, lines);
      }
      prep = prepare_qa(answer_lists(lp.gold, options.squad_version), lp.pred, na, options);
      break;
    }
  }
  return finish(prep, options.bootstrap);
}

// --- batches of cases (biolm metrics --cases) --------------------------------------------------
namespace {

std::vector<std::string> json_strings(const json& j, const char* key) {
  BIOLM_CHECK(j.is_array(), ConfigError, std::string("case.") + key, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& v : j) {
    BIOLM_CHECK(v.is_string(), ConfigError, std::string("case.") + key,
                fmt::format("expected a string, found {}", v.dump()));
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<double> json_numbers(const json& j, const char* key) {
  BIOLM_CHECK(j.is_array(), ConfigError, std::string("case.") + key, "expected an array of numbers");
  std::vector<double> out;
  for (const auto& v : j) {
    BIOLM_CHECK(v.is_number(), ConfigError, std::string("case.") + key,
                fmt::format("expected a number, found {}", v.dump()));
    out.push_back(v.get<double>());
  }
  return out;
}

// A string is one item, an array several (references of a text, answers of a question).
std::vector<std::vector<std::string>> json_string_lists(const json& j, const char* key) {
  BIOLM_CHECK(j.is_array(), ConfigError, std::string("case.") + key, "expected an array");
  std::vector<std::vector<std::string>> out;
  for (const auto& v : j) {
    if (v.is_string()) {
      out.push_back({v.get<std::string>()});
    } else {
      out.push_back(json_strings(v, key));
    }
  }
  return out;
}

std::string json_string(const json& c, const char* key, const std::string& fallback) {
  if (!c.contains(key)) return fallback;
  BIOLM_CHECK(c[key].is_string(), ConfigError, std::string("case.") + key, "expected a string");
  return c[key].get<std::string>();
}

void check_pair_sizes(size_t n_gold, size_t n_pred) {
  BIOLM_CHECK(n_gold == n_pred, ConfigError, "case.pred",
              fmt::format("{} predictions for {} gold items", n_pred, n_gold));
  BIOLM_CHECK(n_gold > 0, ConfigError, "case.gold", "no items to score");
}

}  // namespace

ZeroDivision parse_zero_division(std::string_view name) {
  if (name == "0" || name == "warn") return ZeroDivision::Zero;
  if (name == "1") return ZeroDivision::One;
  if (name == "nan") return ZeroDivision::NaN;
  throw ConfigError("metrics.zero_division", fmt::format("expected 0|1|nan|warn, found \"{}\"", name));
}

SquadVersion parse_squad_version(std::string_view name) {
  if (name == "1.1" || name == "1") return SquadVersion::V1_1;
  if (name == "2.0" || name == "2") return SquadVersion::V2_0;
  throw ConfigError("metrics.squad_version", fmt::format("expected 1.1|2.0, found \"{}\"", name));
}

json case_metrics(const json& c) {
  static const std::set<std::string> kKeys = {
      "id", "task", "gold", "pred", "mode", "scheme", "zero_division", "labels", "negative_label",
      "rouge_stemmer", "squad_version", "na_probs", "na_prob_thresh", "bootstrap", "seed"};
  BIOLM_CHECK(c.is_object(), ConfigError, "case", "expected a JSON object");
  for (auto it = c.begin(); it != c.end(); ++it) {
    BIOLM_CHECK(kKeys.count(it.key()) > 0, ConfigError, "case." + it.key(), "unknown key");
  }
  BIOLM_CHECK(c.contains("task") && c.contains("gold") && c.contains("pred"), ConfigError, "case",
              "needs \"task\", \"gold\" and \"pred\"");
  const MetricTask task = parse_metric_task(json_string(c, "task", ""));
  FileMetricOptions o;
  o.ner.mode = parse_ner_mode(json_string(c, "mode", "default"));
  o.ner.scheme = parse_ner_scheme(json_string(c, "scheme", "IOB2"));
  if (c.contains("zero_division")) {
    const json& z = c["zero_division"];
    o.zero_division = parse_zero_division(z.is_number() ? fmt::format("{}", z.get<int>()) : json_string(c, "zero_division", ""));
  }
  o.ner.zero_division = o.zero_division;
  if (c.contains("labels")) o.labels = json_strings(c["labels"], "labels");
  o.negative_label = json_string(c, "negative_label", o.negative_label);
  if (c.contains("rouge_stemmer")) {
    BIOLM_CHECK(c["rouge_stemmer"].is_boolean(), ConfigError, "case.rouge_stemmer", "expected true or false");
    o.rouge_stemmer = c["rouge_stemmer"].get<bool>();
  }
  o.squad_version = parse_squad_version(json_string(c, "squad_version", "1.1"));
  if (c.contains("na_prob_thresh")) {
    BIOLM_CHECK(c["na_prob_thresh"].is_number(), ConfigError, "case.na_prob_thresh", "expected a number");
    o.na_prob_thresh = c["na_prob_thresh"].get<double>();
  }
  if (c.contains("bootstrap")) {
    BIOLM_CHECK(c["bootstrap"].is_number_integer(), ConfigError, "case.bootstrap", "expected an integer");
    const int64_t n = c["bootstrap"].get<int64_t>();
    const uint64_t seed = c.contains("seed") ? c["seed"].get<uint64_t>() : 0;
    if (n > 0) o.bootstrap = BootstrapOptions{n, seed, 0.95};
  }
  const json& gold = c["gold"];
  const json& pred = c["pred"];
  Prepared prep;
  switch (task) {
    case MetricTask::Ner: {
      BIOLM_CHECK(gold.is_array() && pred.is_array(), ConfigError, "case.gold", "expected arrays of sentences");
      std::vector<std::vector<std::string>> g, p;
      for (const auto& s : gold) g.push_back(json_strings(s, "gold"));
      for (const auto& s : pred) p.push_back(json_strings(s, "pred"));
      check_pair_sizes(g.size(), p.size());
      prep = prepare_ner(g, p, o.ner);
      break;
    }
    case MetricTask::Cls:
    case MetricTask::Re: {
      auto g = json_strings(gold, "gold");
      auto p = json_strings(pred, "pred");
      check_pair_sizes(g.size(), p.size());
      prep = task == MetricTask::Cls ? prepare_cls(g, p, o) : prepare_re(g, p, o);
      break;
    }
    case MetricTask::Corr: {
      auto g = json_numbers(gold, "gold");
      auto p = json_numbers(pred, "pred");
      check_pair_sizes(g.size(), p.size());
      BIOLM_CHECK(g.size() >= 2, ConfigError, "case.gold", "correlation needs at least 2 pairs");
      prep = prepare_corr(g, p);
      break;
    }
    case MetricTask::Text: {
      const auto g = json_string_lists(gold, "gold");
      const auto p = json_strings(pred, "pred");
      check_pair_sizes(g.size(), p.size());
      for (const auto& refs : g) BIOLM_CHECK(!refs.empty(), ConfigError, "case.gold", "a text has no reference");
      prep = prepare_text(g, p, o);
      break;
    }
    case MetricTask::Qa: {
      auto g = json_string_lists(gold, "gold");
      auto p = json_strings(pred, "pred");
      check_pair_sizes(g.size(), p.size());
      std::vector<double> na;
      if (c.contains("na_probs")) {
        na = json_numbers(c["na_probs"], "na_probs");
        BIOLM_CHECK(na.size() == g.size(), ConfigError, "case.na_probs",
                    fmt::format("{} probabilities for {} questions", na.size(), g.size()));
        BIOLM_CHECK(o.squad_version == SquadVersion::V2_0, ConfigError, "case.na_probs", "needs squad_version 2.0");
      }
      if (o.squad_version == SquadVersion::V1_1) {
        for (const auto& a : g) BIOLM_CHECK(!a.empty(), ConfigError, "case.gold", "a question has no answer (SQuAD v1.1)");
      }
      prep = prepare_qa(std::move(g), std::move(p), std::move(na), o);
      break;
    }
  }
  json out = json::object();
  if (c.contains("id")) out["id"] = c["id"];
  out.update(finish(prep, o.bootstrap));
  return out;
}

std::vector<json> metrics_for_cases(const fs::path& path) {
  const auto lines = read_lines(path);
  std::vector<json> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    json c;
    try {
      c = json::parse(lines[i]);
    } catch (const json::exception& e) {
      throw DataError(path.string(), static_cast<int64_t>(i + 1), "case", fmt::format("not JSON: {}", e.what()));
    }
    try {
      out.push_back(case_metrics(c));
    } catch (const std::exception& e) {  // biolm::Error, or a JSON value of the wrong type
      json err = {{"line", i + 1}, {"error", e.what()}};
      if (c.is_object() && c.contains("id")) err["id"] = c["id"];
      out.push_back(err);
    }
  }
  return out;
}

}  // namespace biolm::eval

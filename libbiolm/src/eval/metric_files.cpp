// Metrics from gold / prediction files, with optional bootstrap intervals (biolm metrics).
#include "biolm/eval/metric_files.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
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

Prepared prepare_ner(const fs::path& gold, const fs::path& pred, const FileMetricOptions& o) {
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
  const auto sentences =
      std::make_shared<std::vector<NerSentenceTallies>>(ner_sentence_tallies(
          checked_labels(gold, g, o.ner), checked_labels(pred, p, o.ner), o.ner));
  const auto types = ner_types(*sentences);
  Prepared out;
  out.n = static_cast<int64_t>(sentences->size());
  out.header = {{"task", "ner"},
                {"mode", o.ner.mode == NerMode::Default ? "default" : "strict"},
                {"n_sentences", out.n}};
  if (o.ner.mode == NerMode::Strict) out.header["scheme"] = o.ner.scheme == NerScheme::IOB2 ? "IOB2" : "IOBES";
  const ZeroDivision zd = o.ner.zero_division;
  out.compute = [sentences, types, zd](const std::vector<int64_t>& idx) {
    return table_json(ner_table(*sentences, idx, types, zd), "per_type", true);
  };
  return out;
}

Prepared prepare_cls(const fs::path& gold, const fs::path& pred, const FileMetricOptions& o) {
  const LinePair lp = read_pair(gold, pred);
  auto g = std::make_shared<std::vector<std::string>>(read_labels(gold, lp.gold));
  auto p = std::make_shared<std::vector<std::string>>(read_labels(pred, lp.pred));
  const auto labels = sorted_labels(*g, *p);
  Prepared out;
  out.n = static_cast<int64_t>(g->size());
  out.header = {{"task", "cls"}, {"n", out.n}};
  const ZeroDivision zd = o.zero_division;
  out.compute = [g, p, labels, zd](const std::vector<int64_t>& idx) {
    std::vector<std::string> gs, ps;
    for (int64_t i : idx) {
      gs.push_back((*g)[static_cast<size_t>(i)]);
      ps.push_back((*p)[static_cast<size_t>(i)]);
    }
    const auto report = classification_report(gs, ps, {labels, zd});
    json j = table_json(report.prf, "per_class", false);
    j["accuracy"] = report.accuracy;
    return j;
  };
  return out;
}

Prepared prepare_re(const fs::path& gold, const fs::path& pred, const FileMetricOptions& o) {
  const LinePair lp = read_pair(gold, pred);
  auto g = std::make_shared<std::vector<std::string>>(read_labels(gold, lp.gold));
  auto p = std::make_shared<std::vector<std::string>>(read_labels(pred, lp.pred));
  Prepared out;
  out.n = static_cast<int64_t>(g->size());
  out.header = {{"task", "re"}, {"n", out.n}, {"negative_label", o.negative_label}};
  const std::string neg = o.negative_label;
  const ZeroDivision zd = o.zero_division;
  out.compute = [g, p, neg, zd](const std::vector<int64_t>& idx) {
    std::vector<std::string> gs, ps;
    for (int64_t i : idx) {
      gs.push_back((*g)[static_cast<size_t>(i)]);
      ps.push_back((*p)[static_cast<size_t>(i)]);
    }
    return prf_json(relation_micro_f1(gs, ps, neg, zd), false);
  };
  return out;
}

Prepared prepare_corr(const fs::path& gold, const fs::path& pred) {
  const LinePair lp = read_pair(gold, pred);
  auto g = std::make_shared<std::vector<double>>(read_numbers(gold, lp.gold));
  auto p = std::make_shared<std::vector<double>>(read_numbers(pred, lp.pred));
  if (g->size() < 2) throw DataError(gold.string(), 0, "lines", "correlation needs at least 2 lines");
  Prepared out;
  out.n = static_cast<int64_t>(g->size());
  out.header = {{"task", "corr"}, {"n", out.n}};
  out.compute = [g, p](const std::vector<int64_t>& idx) {
    std::vector<double> gs, ps;
    for (int64_t i : idx) {
      gs.push_back((*g)[static_cast<size_t>(i)]);
      ps.push_back((*p)[static_cast<size_t>(i)]);
    }
    return json{{"pearson", pearson(gs, ps)}, {"spearman", spearman(gs, ps)}};
  };
  return out;
}

Prepared prepare_text(const fs::path& gold, const fs::path& pred) {
  const LinePair lp = read_pair(gold, pred);
  // Per-line sufficient statistics: corpus BLEU of a resample is the BLEU of summed stats.
  auto stats = std::make_shared<std::vector<BleuStats>>();
  auto rouge = std::make_shared<std::vector<double>>();
  for (size_t i = 0; i < lp.gold.size(); ++i) {
    stats->push_back(bleu_stats(whitespace_tokens(lp.pred[i]), {whitespace_tokens(lp.gold[i])}));
    rouge->push_back(rouge_l(lp.gold[i], lp.pred[i]).fmeasure);
  }
  Prepared out;
  out.n = static_cast<int64_t>(stats->size());
  out.header = {{"task", "text"},
                {"n", out.n},
                {"bleu_tokenizer", "whitespace"},
                {"bleu_smoothing", "none"},
                {"rouge_tokenizer", "rouge-score default"}};
  out.compute = [stats, rouge](const std::vector<int64_t>& idx) {
    BleuStats total;
    double r = 0.0;
    for (int64_t i : idx) {
      total += (*stats)[static_cast<size_t>(i)];
      r += (*rouge)[static_cast<size_t>(i)];
    }
    return json{{"bleu1", bleu_from_stats(total, {1, BleuSmoothing::None, false})},
                {"bleu4", bleu_from_stats(total, {4, BleuSmoothing::None, false})},
                {"rougeL", r / static_cast<double>(idx.size())}};
  };
  return out;
}

Prepared prepare_qa(const fs::path& gold, const fs::path& pred) {
  const LinePair lp = read_pair(gold, pred);
  auto scores = std::make_shared<std::vector<QaScore>>();
  for (size_t i = 0; i < lp.gold.size(); ++i) scores->push_back(squad_score(lp.pred[i], split_answers(lp.gold[i])));
  Prepared out;
  out.n = static_cast<int64_t>(scores->size());
  out.header = {{"task", "qa"}, {"n", out.n}};
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

json file_metrics(MetricTask task, const fs::path& gold, const fs::path& pred,
                  const FileMetricOptions& options) {
  Prepared prep;
  switch (task) {
    case MetricTask::Ner:
      prep = prepare_ner(gold, pred, options);
      break;
    case MetricTask::Cls:
      prep = prepare_cls(gold, pred, options);
      break;
    case MetricTask::Re:
      prep = prepare_re(gold, pred, options);
      break;
    case MetricTask::Corr:
      prep = prepare_corr(gold, pred);
      break;
    case MetricTask::Text:
      prep = prepare_text(gold, pred);
      break;
    case MetricTask::Qa:
      prep = prepare_qa(gold, pred);
      break;
  }
  json result = prep.compute(all_indices(static_cast<size_t>(prep.n)));
  if (options.bootstrap) add_bootstrap_intervals(result, prep.n, prep.compute, *options.bootstrap);
  json out = prep.header;
  out.update(result);
  return out;
}

}  // namespace biolm::eval

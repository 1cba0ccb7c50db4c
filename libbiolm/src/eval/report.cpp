// Reports: results JSON, markdown comparison table, SVG curves (see biolm/eval/report.h).
#include "biolm/eval/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "biolm/core/error.h"
#include "biolm/eval/metric_files.h"

namespace biolm::eval {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

bool skipped_key(const std::string& k) {
  return k == "support" || k == "n" || k == "n_sentences" || k == "bootstrap" ||
         (k.size() > 3 && k.compare(k.size() - 3, 3, "_ci") == 0);
}

double number_or_nan(const json& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>();
}

void read_interval(const json& ci, MetricValue& v, const std::string& source, const std::string& key) {
  if (!ci.is_array() || ci.size() != 2 || !(ci[0].is_number() || ci[0].is_null()) ||
      !(ci[1].is_number() || ci[1].is_null())) {
    throw DataError(source, 0, key, "interval must be [lower, upper]");
  }
  if (ci[0].is_number() && ci[1].is_number()) {
    v.lower = ci[0].get<double>();
    v.upper = ci[1].get<double>();
  }
}

void flatten(const json& obj, const std::string& prefix, const std::string& source,
             std::vector<std::pair<std::string, MetricValue>>& out) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& key = it.key();
    if (skipped_key(key)) continue;
    const std::string name = prefix + key;
    const json& v = it.value();
    if (v.is_object() && v.contains("value")) {
      if (!(v["value"].is_number() || v["value"].is_null())) {
        throw DataError(source, 0, name + ".value", "expected a number");
      }
      MetricValue m{number_or_nan(v["value"]), std::nullopt, std::nullopt};
      if (v.contains("ci")) read_interval(v["ci"], m, source, name + ".ci");
      out.emplace_back(name, m);
    } else if (v.is_object()) {
      flatten(v, name + ".", source, out);
    } else if (v.is_number() || v.is_null()) {
      MetricValue m{number_or_nan(v), std::nullopt, std::nullopt};
      if (obj.contains(key + "_ci")) read_interval(obj[key + "_ci"], m, source, name + "_ci");
      out.emplace_back(name, m);
    }
    // strings, booleans, arrays: descriptive fields (task, mode, scheme), not metrics
  }
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\";
    out.push_back(c);
  }
  return out;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw IoError::from_errno(path.string(), "cannot open for writing");
  out << text;
  if (!out) throw IoError::from_errno(path.string(), "write failed");
}

}  // namespace

void RunResult::set(const std::string& task, const std::string& metric, MetricValue value) {
  auto t = std::find_if(tasks.begin(), tasks.end(), [&](const auto& p) { return p.first == task; });
  if (t == tasks.end()) {
    tasks.push_back({task, {}});
    t = tasks.end() - 1;
  }
  auto m = std::find_if(t->second.begin(), t->second.end(), [&](const auto& p) { return p.first == metric; });
  if (m == t->second.end()) {
    t->second.emplace_back(metric, value);
  } else {
    m->second = value;
  }
}

const MetricValue* RunResult::find(const std::string& task, const std::string& metric) const {
  for (const auto& t : tasks) {
    if (t.first != task) continue;
    for (const auto& m : t.second) {
      if (m.first == metric) return &m.second;
    }
  }
  return nullptr;
}

std::vector<std::pair<std::string, MetricValue>> flatten_metrics(const json& metrics,
                                                                  const std::string& source) {
  if (!metrics.is_object()) throw DataError(source, 0, "tasks", "a task's metrics must be an object");
  std::vector<std::pair<std::string, MetricValue>> out;
  flatten(metrics, "", source, out);
  return out;
}

RunResult run_result_from_json(const json& j, const std::string& source) {
  // `biolm eval` writes one task as {"task": T, "metrics": {...}}; it reads as {"tasks": {T: {...}}}.
  const bool single = j.is_object() && !j.contains("tasks") && j.contains("task") && j["task"].is_string() &&
                      j.contains("metrics") && j["metrics"].is_object();
  if (!single && (!j.is_object() || !j.contains("tasks") || !j["tasks"].is_object())) {
    throw DataError(source, 0, "tasks",
                    "expected an object {\"tasks\": {TASK: {METRIC: ...}}} or {\"task\": TASK, \"metrics\": {...}}");
  }
  RunResult run;
  if (j.contains("name")) {
    if (!j["name"].is_string()) throw DataError(source, 0, "name", "expected a string");
    run.name = j["name"].get<std::string>();
  }
  if (single) {
    for (auto& kv : flatten_metrics(j["metrics"], source)) run.set(j["task"].get<std::string>(), kv.first, kv.second);
    return run;
  }
  for (auto it = j["tasks"].begin(); it != j["tasks"].end(); ++it) {
    for (auto& kv : flatten_metrics(it.value(), source)) run.set(it.key(), kv.first, kv.second);
  }
  return run;
}

json to_json(const RunResult& run) {
  json tasks = json::object();
  for (const auto& t : run.tasks) {
    json metrics = json::object();
    for (const auto& m : t.second) {
      json v = {{"value", m.second.value}};
      if (m.second.lower && m.second.upper) v["ci"] = {*m.second.lower, *m.second.upper};
      metrics[m.first] = v;
    }
    tasks[t.first] = metrics;
  }
  json out = {{"name", run.name}, {"tasks", tasks}};
  if (!run.curves.empty()) {
    json curves = json::object();
    for (const auto& c : run.curves) {
      json pts = json::array();
      for (const auto& p : c.second) pts.push_back({p.first, p.second});
      curves[c.first] = pts;
    }
    out["curves"] = curves;
  }
  return out;
}

std::map<std::string, std::vector<std::pair<double, double>>> read_metrics_jsonl(const fs::path& path) {
  const auto lines = read_lines(path);
  std::map<std::string, std::vector<std::pair<double, double>>> curves;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto line_no = static_cast<int64_t>(i + 1);
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(lines[i]);
    } catch (const json::parse_error& e) {
      throw DataError(path.string(), line_no, "", fmt::format("not JSON: {}", e.what()));
    }
    if (!j.is_object()) throw DataError(path.string(), line_no, "", "expected a JSON object");
    if (!j.contains("step") || !j["step"].is_number()) {
      throw DataError(path.string(), line_no, "step", "missing or not a number");
    }
    const double step = j["step"].get<double>();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "step" || !it.value().is_number()) continue;
      curves[it.key()].emplace_back(step, it.value().get<double>());
    }
  }
  return curves;
}

RunResult load_run(const fs::path& dir) {
  // A result file itself (`biolm eval --out FILE`) stands for a run holding only that file.
  const bool is_file = fs::is_regular_file(dir);
  const fs::path results = is_file ? dir : dir / "results.json";
  const fs::path metrics = dir / "metrics.jsonl";
  const bool has_results = fs::exists(results), has_metrics = !is_file && fs::exists(metrics);
  if (!has_results && !has_metrics) {
    throw IoError(dir.string(), "neither results.json nor metrics.jsonl in this run directory");
  }
  RunResult run;
  if (has_results) {
    std::ifstream in(results, std::ios::binary);
    if (!in) throw IoError::from_errno(results.string(), "cannot open for reading");
    json j;
    try {
      j = json::parse(in);
    } catch (const json::parse_error& e) {
      throw DataError(results.string(), 0, "", fmt::format("not JSON: {}", e.what()));
    }
    run = run_result_from_json(j, results.string());
  }
  if (run.name.empty() && is_file) run.name = dir.stem().string();
  if (run.name.empty()) run.name = fs::absolute(dir).lexically_normal().filename().string();
  if (run.name.empty()) run.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  if (has_metrics) run.curves = read_metrics_jsonl(metrics);
  return run;
}

std::string format_metric(const MetricValue& v, int digits) {
  std::string out = fmt::format("{:.{}f}", v.value, digits);
  if (v.lower && v.upper) out += fmt::format(" [{:.{}f}, {:.{}f}]", *v.lower, digits, *v.upper, digits);
  return out;
}

std::string markdown_table(const std::vector<RunResult>& runs, int digits) {
  std::vector<std::pair<std::string, std::string>> columns;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& run : runs) {
    for (const auto& t : run.tasks) {
      for (const auto& m : t.second) {
        if (seen.insert({t.first, m.first}).second) columns.emplace_back(t.first, m.first);
      }
    }
  }
  std::string out = "| run |";
  std::string rule = "|---|";
  for (const auto& c : columns) {
    out += " " + md_escape(c.first + "/" + c.second) + " |";
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  for (const auto& run : runs) {
    out += "| " + md_escape(run.name) + " |";
    for (const auto& c : columns) {
      const MetricValue* v = run.find(c.first, c.second);
      out += " " + (v ? format_metric(*v, digits) : std::string("–")) + " |";
    }
    out += "\n";
  }
  return out;
}

std::string curves_svg(const std::vector<RunResult>& runs) {
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  constexpr int kPanelW = 380, kPanelH = 250, kCols = 2, kLegendH = 30;
  constexpr int kLeft = 62, kRight = 14, kTop = 28, kBottom = 34;
  std::set<std::string> keys;
  for (const auto& run : runs) {
    for (const auto& c : run.curves) keys.insert(c.first);
  }
  const int n_panels = std::max<int>(1, static_cast<int>(keys.size()));
  const int rows = (n_panels + kCols - 1) / kCols;
  const int width = kPanelW * std::min(kCols, n_panels);
  const int height = kLegendH + rows * kPanelH;
  std::ostringstream svg;
  svg << fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height, width, height);
  for (size_t r = 0; r < runs.size(); ++r) {  // legend
    const int x = 10 + static_cast<int>(r) * 120;
    svg << fmt::format("<rect x=\"{}\" y=\"10\" width=\"14\" height=\"4\" fill=\"{}\"/>"
                       "<text x=\"{}\" y=\"16\">{}</text>\n",
                       x, kColors[r % 8], x + 18, xml_escape(runs[r].name));
  }
  if (keys.empty()) {
    svg << fmt::format("<text x=\"20\" y=\"{}\">no curves: no run has a metrics.jsonl</text>\n", kLegendH + 30);
  }
  int panel = 0;
  for (const auto& key : keys) {
    const int ox = (panel % kCols) * kPanelW, oy = kLegendH + (panel / kCols) * kPanelH;
    ++panel;
    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    for (const auto& run : runs) {
      const auto it = run.curves.find(key);
      if (it == run.curves.end()) continue;
      for (const auto& p : it->second) {
        if (!std::isfinite(p.second)) continue;
        x0 = std::min(x0, p.first);
        x1 = std::max(x1, p.first);
        y0 = std::min(y0, p.second);
        y1 = std::max(y1, p.second);
      }
    }
    if (!(x0 <= x1)) x0 = 0.0, x1 = 1.0, y0 = 0.0, y1 = 1.0;  // only non-finite values
    if (x1 == x0) x1 = x0 + 1.0;
    if (y1 == y0) y0 -= 0.5, y1 += 0.5;
    const double pw = kPanelW - kLeft - kRight, ph = kPanelH - kTop - kBottom;
    auto sx = [&](double x) { return ox + kLeft + (x - x0) / (x1 - x0) * pw; };
    auto sy = [&](double y) { return oy + kTop + (1.0 - (y - y0) / (y1 - y0)) * ph; };
    svg << fmt::format("<g><text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n", ox + kLeft, oy + 18,
                       xml_escape(key));
    svg << fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
                       ox + kLeft, oy + kTop, pw, ph);
    for (int t = 0; t <= 4; ++t) {  // y ticks
      const double y = y0 + (y1 - y0) * t / 4.0;
      svg << fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>"
                         "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n",
                         ox + kLeft - 4, sy(y) + 4, y, ox + kLeft, ox + kLeft + pw, sy(y), sy(y));
    }
    for (int t = 0; t <= 4; ++t) {  // x ticks
      const double x = x0 + (x1 - x0) * t / 4.0;
      svg << fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.6g}</text>\n", sx(x),
                         oy + kTop + ph + 14, x);
    }
    svg << fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">step</text>\n", ox + kLeft + pw / 2,
                       oy + kTop + ph + 28);
    for (size_t r = 0; r < runs.size(); ++r) {
      const auto it = runs[r].curves.find(key);
      if (it == runs[r].curves.end()) continue;
      std::string pts;
      for (const auto& p : it->second) {
        if (std::isfinite(p.second)) pts += fmt::format("{:.1f},{:.1f} ", sx(p.first), sy(p.second));
      }
      svg << fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                         kColors[r % 8], pts);
    }
    svg << "</g>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

void write_report(const std::vector<RunResult>& runs, const fs::path& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw IoError(out_dir.string(), "cannot create directory: " + ec.message());
  json report = {{"runs", json::array()}};
  for (const auto& run : runs) report["runs"].push_back(to_json(run));
  write_file(out_dir / "report.json", report.dump(2) + "\n");
  std::string md = "# Evaluation report\n\n";
  md += "Values are point estimates; brackets give 95% bootstrap intervals where known.\n\n";
  md += markdown_table(runs) + "\n![training and evaluation curves](curves.svg)\n";
  write_file(out_dir / "report.md", md);
  write_file(out_dir / "curves.svg", curves_svg(runs));
}

}  // namespace biolm::eval

// JSON/JSONL/TSV task readers (see biolm/data/tasks.h and docs/data_formats.md).
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

#include "biolm/core/error.h"
#include "biolm/data/tasks.h"

namespace biolm::data {
namespace {

using ojson = nlohmann::ordered_json;

ReadReport& sink(ReadReport* report, ReadReport& local) { return report != nullptr ? *report : local; }

// Where a JSON record sits, to build DataErrors.
struct Ctx {
  std::string path;
  int64_t line = 0;
  int64_t record = -1;
  DataError err(const std::string& field, const std::string& msg) const {
    return line > 0 ? DataError(path, line, field, msg) : DataError::at_record(path, record, field, msg);
  }
  Origin origin() const { return Origin{path, line, record}; }
  /// "line N" for JSONL records, "record N" for records of one JSON document (default ids).
  std::string where() const { return line > 0 ? "line " + std::to_string(line) : "record " + std::to_string(record); }
};

const ojson& field(const ojson& j, const std::string& key, const Ctx& c) {
  if (!j.is_object()) throw c.err(key, "record is not a JSON object");
  const auto it = j.find(key);
  if (it == j.end()) throw c.err(key, "missing");
  return *it;
}
std::string str(const ojson& j, const std::string& key, const Ctx& c) {
  const auto& v = field(j, key, c);
  if (!v.is_string()) throw c.err(key, "expected a string, found " + std::string(v.type_name()));
  return v.get<std::string>();
}
std::string opt_str(const ojson& j, const std::string& key, const Ctx& c) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return "";
  return str(j, key, c);
}
std::vector<std::string> str_list(const ojson& j, const std::string& key, const Ctx& c) {
  const auto& v = field(j, key, c);
  if (!v.is_array()) throw c.err(key, "expected a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) throw c.err(key, "expected a list of strings, found a " + std::string(e.type_name()));
    out.push_back(e.get<std::string>());
  }
  return out;
}
// The record's id field (a string, or any other JSON value as written), else c.where().
std::string id_of(const ojson& j, const std::string& key, const Ctx& c) {
  if (!j.is_object() || !j.contains(key)) return c.where();
  const auto& v = j.at(key);
  return v.is_string() ? v.get<std::string>() : v.dump();
}
// A string field that must be one of `allowed` ("expected <expected>, found "<value>"").
std::string one_of(const ojson& j, const std::string& key, const Ctx& c, const std::set<std::string>& allowed,
                   const std::string& expected) {
  std::string v = str(j, key, c);
  if (allowed.count(v) == 0) throw c.err(key, "expected " + expected + ", found \"" + v + "\"");
  return v;
}
// Appends make() to out and counts the record; a DataError goes to the report instead (thrown
// again unless the options skip bad records).
template <typename Example, typename Make>
void keep(std::vector<Example>& out, ReadReport& report, const ReaderOptions& opts, Make make) {
  try {
    Example ex = make();
    ++report.records;
    out.push_back(std::move(ex));
  } catch (const DataError& e) {
    report.fail(e, opts);
  }
}

ojson parse_document(const std::string& path, const std::string& text) {
  try {
    return ojson::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(path, line_of_offset(text, e.byte > 0 ? e.byte - 1 : 0), "json", e.what());
  }
}

// Calls fn(record, ctx) for every record of a JSON array file or a JSONL file.
template <typename Fn>
void for_each_record(const std::string& path, const ReaderOptions& opts, ReadReport& report, Fn fn) {
  const auto run = [&](const ojson& j, const Ctx& c) {
    try {
      fn(j, c);
      ++report.records;
    } catch (const DataError& e) {
      report.fail(e, opts);
    }
  };
  // Peek: a JSON array document or JSON Lines?
  const std::string text = read_file(path);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    const ojson doc = parse_document(path, text);
    int64_t i = 0;
    for (const auto& rec : doc) run(rec, Ctx{path, 0, i++});
    return;
  }
  size_t begin = 0;
  int64_t line_no = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (trim(line).empty()) continue;
    ojson j;
    try {
      j = ojson::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      report.fail(DataError(path, line_no, "json", e.what()), opts);
      continue;
    }
    run(j, Ctx{path, line_no, -1});
  }
}

// The readers of one-record-per-line / per-array-element formats: fill(ex, record, ctx) sets the
// fields, the origin is set here, a DataError goes to the report.
template <typename Example, typename Fill>
std::vector<Example> read_records(const std::string& path, const ReaderOptions& opts, ReadReport* report_out,
                                  Fill fill) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  std::vector<Example> out;
  for_each_record(path, opts, report, [&](const ojson& j, const Ctx& c) {
    Example ex;
    fill(ex, j, c);
    ex.origin = c.origin();
    out.push_back(std::move(ex));
  });
  return out;
}

// Byte offset of character `chars` in text, or -1 when beyond the end.
int64_t char_to_byte(const std::vector<int64_t>& starts, int64_t chars) {
  if (chars < 0 || chars >= static_cast<int64_t>(starts.size())) return -1;
  return starts[static_cast<size_t>(chars)];
}

}  // namespace

// --- ChemProt ------------------------------------------------------------------------------------
std::vector<RelationExample> read_chemprot(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  return read_records<RelationExample>(path, opts, report_out, [&](RelationExample& ex, const ojson& j, const Ctx& c) {
    ex.marked_text = str(j, "text", c);
    ex.label = str(j, "label", c);
    const std::string& s = ex.marked_text;
    struct Marker {
      const char* open;
      const char* close;
      size_t at_open = std::string::npos, at_close = std::string::npos;
    } m[2] = {{"<< ", " >>"}, {"[[ ", " ]]"}};
    for (auto& mk : m) {
      // The first opening marker and the first closing one after it: the text may contain a
      // literal " >>" ("potency: A > B >> C") after the argument.
      mk.at_open = s.find(mk.open);
      if (mk.at_open == std::string::npos) throw c.err("text", std::string("no \"") + mk.open + "\" marker");
      mk.at_close = s.find(mk.close, mk.at_open + 3);
      if (mk.at_close == std::string::npos) {
        throw c.err("text", std::string("no \"") + mk.close + "\" after \"" + mk.open + "\"");
      }
    }
    // Remove the four markers (3 bytes each), tracking where the arguments land.
    std::vector<std::pair<size_t, int>> cuts = {{m[0].at_open, 0}, {m[0].at_close, 1}, {m[1].at_open, 2}, {m[1].at_close, 3}};
    std::sort(cuts.begin(), cuts.end());
    int64_t pos[4] = {0, 0, 0, 0};
    size_t prev = 0;
    for (const auto& [at, which] : cuts) {
      if (at < prev) throw c.err("text", "entity markers overlap");
      ex.text.append(s, prev, at - prev);
      pos[which] = static_cast<int64_t>(ex.text.size());
      prev = at + 3;
    }
    ex.text.append(s, prev, std::string::npos);
    ex.e1 = Span{pos[0], pos[1], "e1"};
    ex.e2 = Span{pos[2], pos[3], "e2"};
  });
}

// --- STS TSV -------------------------------------------------------------------------------------
std::vector<PairExample> read_sts(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  std::vector<PairExample> out;
  LineReader lines(path);
  std::string line;
  int64_t ca = -3, cb = -2, cs = -1, n_header = -1;  // negative: from the end
  bool first = true;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    const auto cols = split(line, '\t');
    if (first) {
      first = false;
      int64_t a = -1, b = -1, s = -1;
      for (size_t i = 0; i < cols.size(); ++i) {
        const std::string name(trim(cols[i]));
        if (name == "sentence1") a = static_cast<int64_t>(i);
        if (name == "sentence2") b = static_cast<int64_t>(i);
        if (name == "score" || name == "similarity_score") s = static_cast<int64_t>(i);
      }
      if (a >= 0 && b >= 0 && s >= 0) {
        ca = a, cb = b, cs = s, n_header = static_cast<int64_t>(cols.size());
        continue;
      }
    }
    const auto n = static_cast<int64_t>(cols.size());
    if (n < 3 || (n_header > 0 && n != n_header)) {
      report.fail(DataError(path, lines.line_no(), "columns",
                            "expected " + (n_header > 0 ? std::to_string(n_header) : std::string("at least 3")) +
                                " tab-separated columns, found " + std::to_string(n)),
                  opts);
      continue;
    }
    const auto col = [&](int64_t c) { return cols[static_cast<size_t>(c < 0 ? n + c : c)]; };
    PairExample ex;
    ex.text_a = col(ca);
    ex.text_b = col(cb);
    const std::string score(trim(col(cs)));
    char* endp = nullptr;
    ex.score = std::strtod(score.c_str(), &endp);
    if (score.empty() || *endp != 0 || !std::isfinite(ex.score)) {
      report.fail(DataError(path, lines.line_no(), "score", "expected a number, found \"" + score + "\""), opts);
      continue;
    }
    ex.id = "line " + std::to_string(lines.line_no());
    ex.origin = Origin{path, lines.line_no(), -1};
    ++report.records;
    out.push_back(std::move(ex));
  }
  return out;
}

// --- MedNLI --------------------------------------------------------------------------------------
std::vector<PairExample> read_mednli(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  static const std::set<std::string> kLabels = {"entailment", "neutral", "contradiction"};
  return read_records<PairExample>(path, opts, report_out, [&](PairExample& ex, const ojson& j, const Ctx& c) {
    ex.text_a = str(j, "sentence1", c);
    ex.text_b = str(j, "sentence2", c);
    ex.label = one_of(j, "gold_label", c, kLabels, "entailment, neutral or contradiction");
    ex.id = id_of(j, "pairID", c);
  });
}

// --- PubMedQA ------------------------------------------------------------------------------------
std::vector<PubmedQaExample> read_pubmedqa(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  static const std::set<std::string> kLabels = {"yes", "no", "maybe"};
  const std::string text = read_file(path);
  const ojson doc = parse_document(path, text);
  if (!doc.is_object()) throw DataError(path, 1, "json", "expected one object keyed by PMID");
  std::vector<PubmedQaExample> out;
  int64_t i = 0;
  size_t search_from = 0;
  for (const auto& [pmid, rec] : doc.items()) {
    // The line of this record: where its key appears (keys are in file order).
    const size_t at = text.find("\"" + pmid + "\"", search_from);
    Ctx c{path, at == std::string::npos ? 0 : line_of_offset(text, at), i++};
    if (at != std::string::npos) search_from = at + 1;
    keep(out, report, opts, [&] {
      PubmedQaExample ex;
      ex.id = pmid;
      ex.question = str(rec, "QUESTION", c);
      ex.contexts = str_list(rec, "CONTEXTS", c);
      ex.context_labels = rec.contains("LABELS") ? str_list(rec, "LABELS", c) : std::vector<std::string>{};
      if (!ex.context_labels.empty() && ex.context_labels.size() != ex.contexts.size()) {
        throw c.err("LABELS", std::to_string(ex.context_labels.size()) + " labels for " + std::to_string(ex.contexts.size()) + " contexts");
      }
      ex.label = one_of(rec, "final_decision", c, kLabels, "yes, no or maybe");
      ex.long_answer = opt_str(rec, "LONG_ANSWER", c);
      ex.origin = c.origin();
      return ex;
    });
  }
  return out;
}

// --- multiple choice -----------------------------------------------------------------------------
std::vector<ChoiceExample> read_medqa(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  return read_records<ChoiceExample>(path, opts, report_out, [&](ChoiceExample& ex, const ojson& j, const Ctx& c) {
    ex.question = str(j, "question", c);
    const auto& options = field(j, "options", c);
    if (!options.is_object() || options.size() < 2) throw c.err("options", "expected an object of at least two lettered options");
    char expect = 'A';
    for (const auto& [letter, text] : options.items()) {
      if (letter.size() != 1 || letter[0] != expect || !text.is_string()) {
        throw c.err("options", "expected options A, B, C, ... in order with string values, found key \"" + letter + "\"");
      }
      ex.options.push_back(text.get<std::string>());
      ++expect;
    }
    const std::string idx = str(j, "answer_idx", c);
    if (idx.size() != 1 || idx[0] < 'A' || idx[0] >= expect) {
      throw c.err("answer_idx", "expected a letter A-" + std::string(1, static_cast<char>(expect - 1)) + ", found \"" + idx + "\"");
    }
    ex.answer = idx[0] - 'A';
    const std::string answer = opt_str(j, "answer", c);
    if (!answer.empty() && answer != ex.options[static_cast<size_t>(ex.answer)]) {
      throw c.err("answer", "\"" + answer + "\" is not option " + idx + " \"" + ex.options[static_cast<size_t>(ex.answer)] + "\"");
    }
    ex.subject = opt_str(j, "meta_info", c);
    ex.id = id_of(j, "id", c);
  });
}

std::vector<ChoiceExample> read_medmcqa(const std::string& path, const MedmcqaOptions& opts, ReadReport* report_out) {
  return read_records<ChoiceExample>(path, opts.reader, report_out, [&](ChoiceExample& ex, const ojson& j, const Ctx& c) {
    ex.question = str(j, "question", c);
    for (const char* k : {"opa", "opb", "opc", "opd"}) ex.options.push_back(str(j, k, c));
    if (j.contains("cop") && !j.at("cop").is_null()) {
      const auto& cop = j.at("cop");
      if (!cop.is_number_integer()) throw c.err("cop", "expected an integer");
      const int64_t v = cop.get<int64_t>();
      const int64_t lo = opts.cop_zero_based ? 0 : 1;
      if (v < lo || v > lo + 3) {
        throw c.err("cop", "expected " + std::to_string(lo) + ".." + std::to_string(lo + 3) + " (" +
                               (opts.cop_zero_based ? "0-based" : "1-based, the published format") + "), found " + std::to_string(v));
      }
      ex.answer = v - lo;
    }
    ex.explanation = opt_str(j, "exp", c);
    ex.subject = opt_str(j, "subject_name", c);
    ex.id = id_of(j, "id", c);
  });
}

// --- SQuAD-style span QA -------------------------------------------------------------------------
std::vector<SpanQaExample> read_squad(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  const std::string text = read_file(path);
  const ojson doc = parse_document(path, text);
  const Ctx top{path, 0, 0};
  const auto& data = field(doc, "data", top);
  if (!data.is_array()) throw top.err("data", "expected a list of articles");
  std::vector<SpanQaExample> out;
  int64_t q_index = 0;
  for (const auto& article : data) {
    const std::string title = article.is_object() && article.contains("title") && article["title"].is_string()
                                  ? article["title"].get<std::string>() : "";
    const Ctx actx{path, 0, q_index};
    const auto& paragraphs = field(article, "paragraphs", actx);
    for (const auto& para : paragraphs) {
      const std::string context = str(para, "context", actx);
      const auto starts = utf8_char_starts(context);
      for (const auto& qa : field(para, "qas", actx)) {
        const Ctx c{path, 0, q_index++};
        keep(out, report, opts, [&] {
          SpanQaExample ex;
          ex.title = title;
          ex.context = context;
          ex.question = str(qa, "question", c);
          ex.id = id_of(qa, "id", c);
          ex.impossible = qa.contains("is_impossible") && qa["is_impossible"].is_boolean() && qa["is_impossible"].get<bool>();
          for (const auto& a : field(qa, "answers", c)) {
            SpanAnswer ans;
            ans.text = str(a, "text", c);
            const auto& st = field(a, "answer_start", c);
            if (!st.is_number_integer()) throw c.err("answer_start", "expected an integer (question " + ex.id + ")");
            ans.begin = char_to_byte(starts, st.get<int64_t>());
            if (ans.begin < 0 || context.compare(static_cast<size_t>(ans.begin), ans.text.size(), ans.text) != 0) {
              throw c.err("answer_start", "answer \"" + ans.text + "\" is not at character " +
                                              std::to_string(st.get<int64_t>()) + " of the context (question " + ex.id + ")");
            }
            ex.answers.push_back(std::move(ans));
          }
          if (ex.answers.empty() && !ex.impossible) throw c.err("answers", "no answer and not is_impossible (question " + ex.id + ")");
          ex.origin = c.origin();
          return ex;
        });
      }
    }
  }
  return out;
}

// --- BioASQ --------------------------------------------------------------------------------------
std::vector<BioasqExample> read_bioasq(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  static const std::set<std::string> kTypes = {"yesno", "factoid", "list", "summary"};
  const ojson doc = parse_document(path, read_file(path));
  const auto& qs = field(doc, "questions", Ctx{path, 0, 0});
  if (!qs.is_array()) throw DataError::at_record(path, 0, "questions", "expected a list");
  std::vector<BioasqExample> out;
  int64_t i = 0;
  for (const auto& q : qs) {
    const Ctx c{path, 0, i++};
    keep(out, report, opts, [&] {
      BioasqExample ex;
      ex.id = id_of(q, "id", c);
      ex.body = str(q, "body", c);
      ex.type = one_of(q, "type", c, kTypes, "yesno, factoid, list or summary");
      if (q.contains("exact_answer")) {
        const auto& ea = q["exact_answer"];
        const std::function<void(const ojson&)> flatten = [&](const ojson& v) {
          if (v.is_string()) ex.exact_answer.push_back(v.get<std::string>());
          else if (v.is_array()) for (const auto& e : v) flatten(e);
          else throw c.err("exact_answer", "expected strings or lists of strings");
        };
        flatten(ea);
        if (ex.type == "yesno" && (ex.exact_answer.size() != 1 || (ex.exact_answer[0] != "yes" && ex.exact_answer[0] != "no"))) {
          throw c.err("exact_answer", "a yesno question needs \"yes\" or \"no\"");
        }
      } else if (ex.type != "summary") {
        throw c.err("exact_answer", "missing for a " + ex.type + " question");
      }
      if (q.contains("ideal_answer")) {
        const auto& ia = q["ideal_answer"];
        if (ia.is_string()) ex.ideal_answer.push_back(ia.get<std::string>());
        else ex.ideal_answer = str_list(q, "ideal_answer", c);
      }
      if (q.contains("snippets")) {
        for (const auto& s : q["snippets"]) ex.snippets.push_back(str(s, "text", c));
      }
      ex.origin = c.origin();
      return ex;
    });
  }
  return out;
}

// --- instructions --------------------------------------------------------------------------------
std::vector<InstructionExample> read_alpaca(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  return read_records<InstructionExample>(path, opts, report_out, [&](InstructionExample& ex, const ojson& j, const Ctx& c) {
    std::string prompt = str(j, "instruction", c);
    const std::string input = opt_str(j, "input", c);
    if (!input.empty()) prompt += "\n\n" + input;
    ex.turns.push_back({"user", prompt});
    ex.turns.push_back({"assistant", str(j, "output", c)});
    ex.id = id_of(j, "id", c);
  });
}

std::vector<InstructionExample> read_sharegpt(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  return read_records<InstructionExample>(path, opts, report_out, [&](InstructionExample& ex, const ojson& j, const Ctx& c) {
    const auto& conv = field(j, "conversations", c);
    if (!conv.is_array() || conv.empty()) throw c.err("conversations", "expected a non-empty list of turns");
    size_t t = 0;
    for (const auto& turn : conv) {
      const std::string from = str(turn, "from", c);
      const std::string role = from == "human" ? "user" : from == "gpt" ? "assistant" : from == "system" ? "system" : "";
      if (role.empty()) {
        throw c.err("conversations[" + std::to_string(t) + "].from", "expected human, gpt or system, found \"" + from + "\"");
      }
      ex.turns.push_back({role, str(turn, "value", c)});
      ++t;
    }
    ex.id = id_of(j, "id", c);
  });
}

}  // namespace biolm::data

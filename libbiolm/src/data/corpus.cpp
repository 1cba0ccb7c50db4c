// Streaming corpus readers (see biolm/data/corpus.h and docs/data_formats.md).
#include "biolm/data/corpus.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <unordered_map>

#include "biolm/core/error.h"
#include "data/xml_stream.h"

namespace biolm::data {

std::string Citation::text() const { return abstract.empty() ? title : title + "\n" + abstract; }

// --- PubMed / MEDLINE XML ---------------------------------------------------------------------
ReadReport read_pubmed_xml(const std::string& path, const std::function<void(Citation&&)>& on_citation,
                           const std::function<void(const std::string&)>& on_delete, const ReaderOptions& opts) {
  using detail::XmlEvent;
  detail::XmlTokenizer xml(path);
  ReadReport report;
  std::vector<std::string> stack;
  Citation cur;
  bool in_citation = false;
  // What the current character data belongs to.
  enum class Sink { None, Pmid, Title, Abstract, DeletePmid } sink = Sink::None;
  size_t sink_depth = 0;  // stack size when the capture element opened
  std::string part, label, delete_pmid;
  const auto parent = [&](size_t up) -> const std::string& {
    static const std::string none;
    return stack.size() > up ? stack[stack.size() - 1 - up] : none;
  };
  for (XmlEvent ev = xml.next(); ev.kind != XmlEvent::Eof; ev = xml.next()) {
    if (ev.kind == XmlEvent::Start) {
      if (stack.empty() && ev.name != "MedlineCitationSet" && ev.name != "PubmedArticleSet") {
        throw DataError(path, ev.line, "root", "expected <MedlineCitationSet> or <PubmedArticleSet>, found <" +
                                                   ev.name + ">");
      }
      stack.push_back(ev.name);
      if (sink != Sink::None) continue;  // nested markup (<i>, <sup>) inside a captured element
      const std::string& p = parent(1);
      if (ev.name == "MedlineCitation") {
        cur = Citation{};
        cur.source = path;
        cur.line = ev.line;
        in_citation = true;
      } else if (ev.name == "PMID" && p == "MedlineCitation" && in_citation && cur.pmid.empty()) {
        sink = Sink::Pmid;
      } else if (ev.name == "PMID" && p == "DeleteCitation") {
        sink = Sink::DeletePmid;
        delete_pmid.clear();
      } else if (ev.name == "ArticleTitle" && p == "Article" && in_citation) {
        sink = Sink::Title;
      } else if (ev.name == "AbstractText" && p == "Abstract" && parent(2) == "Article" && in_citation) {
        sink = Sink::Abstract;
        const auto it = ev.attrs.find("Label");
        label = it == ev.attrs.end() ? "" : it->second;
        part.clear();
      }
      if (sink != Sink::None) sink_depth = stack.size();
    } else if (ev.kind == XmlEvent::End) {
      if (stack.empty() || stack.back() != ev.name) {
        throw DataError(path, ev.line, "xml",
                        "found </" + ev.name + ">, expected " + (stack.empty() ? "end of file" : "</" + stack.back() + ">"));
      }
      if (sink != Sink::None && stack.size() == sink_depth) {
        const std::string text(trim(part));
        if (sink == Sink::Pmid) cur.pmid = text;
        else if (sink == Sink::Title) cur.title = text;
        else if (sink == Sink::DeletePmid) {
          if (text.empty()) {
            report.fail(DataError(path, ev.line, "DeleteCitation/PMID", "empty PMID"), opts);
          } else if (on_delete) {
            on_delete(text);
          }
        } else if (sink == Sink::Abstract && !text.empty()) {
          if (!cur.abstract.empty()) cur.abstract += "\n";
          cur.abstract += label.empty() ? text : label + ": " + text;
          ++cur.n_abstract_parts;
        }
        sink = Sink::None;
        part.clear();
      }
      stack.pop_back();
      if (ev.name == "MedlineCitation" && in_citation) {
        in_citation = false;
        if (cur.pmid.empty()) {
          report.fail(DataError(path, cur.line, "PMID", "MedlineCitation without a PMID"), opts);
        } else {
          ++report.records;
          on_citation(std::move(cur));
        }
      }
    } else if (ev.kind == XmlEvent::Text && sink != Sink::None) {
      part += ev.text;
    }
  }
  if (!stack.empty()) throw DataError(path, xml.line(), "xml", "file ends inside <" + stack.back() + ">");
  return report;
}

// --- PMC plain text ----------------------------------------------------------------------------
ReadReport read_pmc_text(const std::string& path, const RecordFn& on_record, const ReaderOptions& opts) {
  ReadReport report;
  TextRecord rec;
  rec.text = read_file(path);
  rec.id = std::filesystem::path(path).stem().string();
  rec.source = path;
  rec.line = 1;
  if (trim(rec.text).empty()) {
    report.fail(DataError(path, 1, "text", "empty article"), opts);
    return report;
  }
  ++report.records;
  on_record(std::move(rec));
  return report;
}

// --- CSV / MIMIC-III ---------------------------------------------------------------------------
CsvReader::CsvReader(const std::string& path, char sep) : lines_(path), sep_(sep) {}

bool CsvReader::next(std::vector<std::string>& fields) {
  fields.clear();
  std::string line;
  if (!lines_.next(line)) return false;
  record_line_ = lines_.line_no();
  std::string field;
  bool quoted = false, in_quotes = false;
  size_t i = 0;
  for (;;) {
    if (i >= line.size()) {
      if (in_quotes) {  // the quoted field continues on the next line
        if (!lines_.next(line)) {
          throw DataError(lines_.path(), record_line_, "csv", "quoted field opened here is never closed");
        }
        field += '\n';
        i = 0;
        continue;
      }
      fields.push_back(std::move(field));
      return true;
    }
    const char c = line[i++];
    if (in_quotes) {
      if (c == '"') {
        if (i < line.size() && line[i] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        field += c;
      }
    } else if (c == sep_) {
      fields.push_back(std::move(field));
      field.clear();
      quoted = false;
    } else if (c == '"') {
      if (quoted || !field.empty()) {
        throw DataError(lines_.path(), lines_.line_no(), "csv",
                        "stray '\"' in field " + std::to_string(fields.size() + 1) + " (quotes must enclose the whole field)");
      }
      quoted = in_quotes = true;
    } else {
      if (quoted) {
        throw DataError(lines_.path(), lines_.line_no(), "csv",
                        "text after the closing quote of field " + std::to_string(fields.size() + 1));
      }
      field += c;
    }
  }
}

ReadReport read_mimic_csv(const std::string& path, const RecordFn& on_record, const MimicOptions& mimic,
                          const ReaderOptions& opts) {
  ReadReport report;
  CsvReader csv(path);
  std::vector<std::string> header, row;
  if (!csv.next(header)) throw DataError(path, 1, "header", "empty file (expected a header row)");
  const auto column = [&](const std::string& name, bool required) -> int64_t {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return static_cast<int64_t>(i);
    }
    if (required) throw DataError(path, 1, "header", "no column named '" + name + "'");
    return -1;
  };
  const int64_t text_col = column(mimic.text_column, true);
  const int64_t id_col = column(mimic.id_column, false);
  const int64_t cat_col = column(mimic.category_column, !mimic.categories.empty());
  const int64_t err_col = mimic.drop_iserror ? column("ISERROR", false) : -1;
  int64_t filtered = 0, retracted = 0;
  for (;;) {
    bool more = false;
    try {
      more = csv.next(row);
    } catch (const DataError& e) {
      report.fail(e, opts);  // an unterminated quote swallows the rest of the file: nothing to resume
      break;
    }
    if (!more) break;
    if (row.size() != header.size()) {
      report.fail(DataError(path, csv.record_line(), "csv",
                            "expected " + std::to_string(header.size()) + " fields (header), found " +
                                std::to_string(row.size())),
                  opts);
      continue;
    }
    if (cat_col >= 0 && !mimic.categories.empty() && mimic.categories.count(std::string(trim(row[cat_col]))) == 0) {
      ++filtered;
      continue;
    }
    if (err_col >= 0 && trim(row[err_col]) == "1") {
      ++retracted;
      continue;
    }
    TextRecord rec;
    rec.id = id_col >= 0 ? row[id_col] : "line " + std::to_string(csv.record_line());
    rec.text = std::move(row[text_col]);
    rec.source = path;
    rec.line = csv.record_line();
    ++report.records;
    on_record(std::move(rec));
  }
  if (filtered > 0) report.notes.push_back(path + ": " + std::to_string(filtered) + " notes outside the category filter");
  if (retracted > 0) report.notes.push_back(path + ": " + std::to_string(retracted) + " notes with ISERROR=1 left out");
  return report;
}

// --- plain text and JSONL ----------------------------------------------------------------------
ReadReport read_plain_text(const std::string& path, const RecordFn& on_record, TextLayout layout,
                           const ReaderOptions&) {
  ReadReport report;
  LineReader lines(path);
  std::string line;
  TextRecord cur;
  const auto flush = [&] {
    if (cur.text.empty()) return;
    cur.source = path;
    cur.id = "line " + std::to_string(cur.line);
    ++report.records;
    on_record(std::move(cur));
    cur = TextRecord{};
  };
  while (lines.next(line)) {
    const bool blank = trim(line).empty();
    if (layout == TextLayout::LinePerDocument) {
      if (blank) continue;
      cur.text = line;
      cur.line = lines.line_no();
      flush();
    } else if (blank) {
      flush();
    } else {
      if (cur.text.empty()) cur.line = lines.line_no();
      else cur.text += '\n';
      cur.text += line;
    }
  }
  flush();
  return report;
}

ReadReport read_jsonl_text(const std::string& path, const RecordFn& on_record, const JsonlOptions& jsonl,
                           const ReaderOptions& opts) {
  ReadReport report;
  LineReader lines(path);
  std::string line;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      report.fail(DataError(path, lines.line_no(), "json", e.what()), opts);
      continue;
    }
    if (!j.is_object() || !j.contains(jsonl.text_field) || !j[jsonl.text_field].is_string()) {
      report.fail(DataError(path, lines.line_no(), jsonl.text_field, "missing or not a string"), opts);
      continue;
    }
    TextRecord rec;
    rec.text = j[jsonl.text_field].get<std::string>();
    if (j.contains(jsonl.id_field)) {
      const auto& id = j[jsonl.id_field];
      rec.id = id.is_string() ? id.get<std::string>() : id.dump();
    } else {
      rec.id = "line " + std::to_string(lines.line_no());
    }
    rec.source = path;
    rec.line = lines.line_no();
    ++report.records;
    on_record(std::move(rec));
  }
  return report;
}

CorpusFormat parse_corpus_format(const std::string& name) {
  static const std::unordered_map<std::string, CorpusFormat> kNames = {
      {"pubmed-xml", CorpusFormat::PubmedXml}, {"pmc-text", CorpusFormat::PmcText},
      {"mimic-csv", CorpusFormat::MimicCsv},   {"text", CorpusFormat::Text},
      {"text-blocks", CorpusFormat::TextBlocks}, {"jsonl", CorpusFormat::Jsonl}};
  const auto it = kNames.find(name);
  if (it == kNames.end()) {
    throw ConfigError("data.format", "unknown corpus format '" + name +
                                         "' (pubmed-xml, pmc-text, mimic-csv, text, text-blocks, jsonl)");
  }
  return it->second;
}

ReadReport read_corpus(CorpusFormat format, const std::string& path, const RecordFn& on_record,
                       const CorpusOptions& opts) {
  switch (format) {
    case CorpusFormat::PubmedXml: {
      int64_t no_abstract = 0;
      auto report = read_pubmed_xml(
          path,
          [&](Citation&& c) {
            if (opts.require_abstract && c.abstract.empty()) {
              ++no_abstract;
              return;
            }
            on_record(TextRecord{c.pmid, c.text(), c.source, c.line});
          },
          {}, opts.reader);
      if (no_abstract > 0) {
        report.notes.push_back(path + ": " + std::to_string(no_abstract) + " citations without abstract left out");
      }
      return report;
    }
    case CorpusFormat::PmcText: return read_pmc_text(path, on_record, opts.reader);
    case CorpusFormat::MimicCsv: return read_mimic_csv(path, on_record, opts.mimic, opts.reader);
    case CorpusFormat::Text: return read_plain_text(path, on_record, TextLayout::LinePerDocument, opts.reader);
    case CorpusFormat::TextBlocks:
      return read_plain_text(path, on_record, TextLayout::BlankLineSeparated, opts.reader);
    case CorpusFormat::Jsonl: return read_jsonl_text(path, on_record, opts.jsonl, opts.reader);
  }
  throw Error("read_corpus: unknown format");
}

}  // namespace biolm::data

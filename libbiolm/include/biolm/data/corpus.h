// biolm/data/corpus.h: streaming readers of pretraining corpora.
//
// Each reader calls `on_record` once per document, in file order, holding one document in memory
// at a time (plus a read buffer), and reads gzip transparently. Every record says where it came
// from (source file and the 1-based line where it starts).
//
// Formats (details in docs/data_formats.md):
//   PubMed/MEDLINE XML  <MedlineCitationSet> (legacy baseline) or <PubmedArticleSet> (current
//                       baseline, efetch); one record per MedlineCitation: PMID, ArticleTitle,
//                       Abstract/AbstractText parts ("LABEL: text" for structured abstracts).
//                       DeleteCitation PMIDs go to `on_delete`.
//   PMC plain text      one article per file; the id is the file name without extension.
//   MIMIC-III CSV       NOTEEVENTS.csv: RFC 4180, quoted fields spanning lines, header names.
//   plain text          one document per line, or documents separated by blank lines.
//   JSONL               one JSON object per line with a text field (and optional id field).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "biolm/data/io.h"

namespace biolm::data {

/// One document of a corpus.
struct TextRecord {
  std::string id;      ///< PMID, ROW_ID, JSON id field, file stem, or "line N"
  std::string text;    ///< what a tokenizer sees (PubMed: title + "\n" + abstract)
  std::string source;  ///< file it came from
  int64_t line = 0;    ///< 1-based line where the record starts
};

/// One MEDLINE citation, fields kept apart.
struct Citation {
  std::string pmid;
  std::string title;
  std::string abstract;          ///< parts joined by "\n"; "" when the citation has none
  int64_t n_abstract_parts = 0;  ///< AbstractText elements (> 1 for structured abstracts)
  std::string source;
  int64_t line = 0;
  /// title, then "\n" + abstract when there is one.
  std::string text() const;
};

using RecordFn = std::function<void(TextRecord&&)>;

/// PubMed/MEDLINE XML (plain or .gz). Returns a report; deleted PMIDs go to on_delete.
ReadReport read_pubmed_xml(const std::string& path, const std::function<void(Citation&&)>& on_citation,
                           const std::function<void(const std::string& pmid)>& on_delete = {},
                           const ReaderOptions& opts = {});

/// One PMC plain-text article per file.
ReadReport read_pmc_text(const std::string& path, const RecordFn& on_record, const ReaderOptions& opts = {});

struct MimicOptions {
  std::string text_column = "TEXT";
  std::string id_column = "ROW_ID";
  std::string category_column = "CATEGORY";
  /// Keep only notes of these categories ("Discharge summary", "Radiology", ...); empty = all.
  std::set<std::string> categories;
  /// Skip rows whose ISERROR column is "1" (MIMIC-III marks retracted notes so); counted.
  bool drop_iserror = true;
};
/// MIMIC-III NOTEEVENTS.csv (or any RFC 4180 CSV with a header row).
ReadReport read_mimic_csv(const std::string& path, const RecordFn& on_record, const MimicOptions& mimic = {},
                          const ReaderOptions& opts = {});

enum class TextLayout {
  LinePerDocument,  ///< every non-empty line is a document
  BlankLineSeparated,  ///< paragraphs separated by one or more blank lines
};
ReadReport read_plain_text(const std::string& path, const RecordFn& on_record,
                           TextLayout layout = TextLayout::LinePerDocument, const ReaderOptions& opts = {});

struct JsonlOptions {
  std::string text_field = "text";
  std::string id_field = "id";  ///< used when present; else the id is "line N"
};
ReadReport read_jsonl_text(const std::string& path, const RecordFn& on_record, const JsonlOptions& jsonl = {},
                           const ReaderOptions& opts = {});

/// RFC 4180 CSV record reader (fields quoted with "", "" inside quotes is a quote, quoted fields
/// may span lines). Used by the MIMIC reader; public for other CSV-shaped inputs.
class CsvReader {
 public:
  explicit CsvReader(const std::string& path, char sep = ',');
  /// Next record; false at end. Throws DataError on an unterminated quote or a stray quote.
  bool next(std::vector<std::string>& fields);
  /// Line where the last record returned started.
  int64_t record_line() const { return record_line_; }
  const std::string& path() const { return lines_.path(); }

 private:
  LineReader lines_;
  char sep_;
  int64_t record_line_ = 0;
};

/// The corpus formats `biolm data prepare` reads.
enum class CorpusFormat { PubmedXml, PmcText, MimicCsv, Text, TextBlocks, Jsonl };
/// "pubmed-xml" | "pmc-text" | "mimic-csv" | "text" | "text-blocks" | "jsonl"; ConfigError otherwise.
CorpusFormat parse_corpus_format(const std::string& name);

struct CorpusOptions {
  MimicOptions mimic;
  JsonlOptions jsonl;
  ReaderOptions reader;
  /// PubMed: skip citations without an abstract (title-only records are short and noisy).
  bool require_abstract = false;
};
/// Any corpus format as TextRecords (PubMed: text = title + "\n" + abstract, id = PMID).
ReadReport read_corpus(CorpusFormat format, const std::string& path, const RecordFn& on_record,
                       const CorpusOptions& opts = {});

}  // namespace biolm::data

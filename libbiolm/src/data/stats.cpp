#include "biolm/data/stats.h"

#include <map>

#include "biolm/core/error.h"
#include "biolm/data/corpus.h"
#include "biolm/data/tasks.h"

namespace biolm::data {

const std::vector<std::string>& stats_formats() {
  static const std::vector<std::string> k = {"conll",    "brat",  "pubtator", "chemprot", "pubmed-xml", "mimic-csv",
                                             "text",     "jsonl", "pubmedqa", "medqa",    "medmcqa",    "squad",
                                             "bioasq",   "alpaca", "sharegpt", "sts",     "mednli"};
  return k;
}

namespace {
using Counts = std::map<std::string, int64_t>;
nlohmann::ordered_json to_json(const Counts& c) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : c) j[k] = v;
  return j;
}
void count_ner(const std::vector<NerSentence>& ss, nlohmann::ordered_json& out, int64_t& sentences, int64_t& tokens,
               Counts& entities) {
  for (const auto& s : ss) {
    ++sentences;
    tokens += static_cast<int64_t>(s.words.size());
    for (const auto& sp : tags_to_spans(s.tags, TagScheme::IOB2)) ++entities[sp.type];
  }
  (void)out;
}
}  // namespace

nlohmann::ordered_json dataset_stats(const std::string& format, const std::vector<std::string>& paths,
                                     const ReaderOptions& opts) {
  bool known = false;
  for (const auto& f : stats_formats()) known |= f == format;
  if (!known) {
    std::string all;
    for (const auto& f : stats_formats()) all += (all.empty() ? "" : ", ") + f;
    throw ConfigError("data.format", "unknown format '" + format + "' (" + all + ")");
  }
  nlohmann::ordered_json out;
  out["format"] = format;
  out["files"] = static_cast<int64_t>(paths.size());
  ReadReport report;
  int64_t n = 0, sentences = 0, tokens = 0, documents = 0, total = 0;
  Counts entities, relations, labels, extra;
  for (const auto& path : paths) {
    if (format == "conll") {
      ConllOptions o;
      o.reader = opts;
      const auto ss = read_conll(path, o, &report);
      count_ner(ss, out, sentences, tokens, entities);
      std::map<std::string, bool> docs;
      for (const auto& s : ss) if (!s.doc_id.empty()) docs[s.doc_id] = true;
      documents += static_cast<int64_t>(docs.size());
    } else if (format == "brat" || format == "pubtator") {
      const auto docs = format == "brat" ? read_brat(path, opts, &report) : read_pubtator(path, opts, &report);
      for (const auto& d : docs) {
        ++documents;
        for (const auto& m : d.mentions) ++entities[m.type];
        for (const auto& r : d.relations) ++relations[r.type];
        for (const auto& m : d.mentions) extra["discontinuous"] += m.fragments.size() > 1;
        for (const auto& m : d.mentions) extra["normalizations"] += static_cast<int64_t>(m.norm_ids.size());
        count_ner(document_to_sentences(d, opts, &report), out, sentences, tokens, extra);
      }
    } else if (format == "chemprot") {
      for (const auto& e : read_chemprot(path, opts, &report)) ++n, ++labels[e.label];
    } else if (format == "sts") {
      for (const auto& e : read_sts(path, opts, &report)) ++n, ++labels[std::to_string(static_cast<int>(e.score + 0.5))];
    } else if (format == "mednli") {
      for (const auto& e : read_mednli(path, opts, &report)) ++n, ++labels[e.label];
    } else if (format == "pubmedqa") {
      for (const auto& e : read_pubmedqa(path, opts, &report)) {
        ++n;
        ++labels[e.label];
        total += static_cast<int64_t>(e.contexts.size());
      }
      out["contexts"] = total;
    } else if (format == "medqa" || format == "medmcqa") {
      MedmcqaOptions mo;
      mo.reader = opts;
      const auto ex = format == "medqa" ? read_medqa(path, opts, &report) : read_medmcqa(path, mo, &report);
      for (const auto& e : ex) {
        ++n;
        ++labels[e.answer < 0 ? std::string("none") : std::string(1, static_cast<char>('A' + e.answer))];
        ++extra[std::to_string(e.options.size())];
      }
    } else if (format == "squad") {
      for (const auto& e : read_squad(path, opts, &report)) {
        ++n;
        ++labels[e.impossible ? "impossible" : "answerable"];
        total += static_cast<int64_t>(e.answers.size());
      }
      out["answers"] = total;
    } else if (format == "bioasq") {
      for (const auto& e : read_bioasq(path, opts, &report)) {
        ++n;
        ++labels[e.type];
        total += static_cast<int64_t>(e.snippets.size());
      }
      out["snippets"] = total;
    } else if (format == "alpaca" || format == "sharegpt") {
      const auto ex = format == "alpaca" ? read_alpaca(path, opts, &report) : read_sharegpt(path, opts, &report);
      for (const auto& e : ex) {
        ++n;
        for (const auto& t : e.turns) ++labels[t.role];
      }
    } else {  // corpora
      const CorpusFormat cf = format == "pubmed-xml" ? CorpusFormat::PubmedXml
                              : format == "mimic-csv" ? CorpusFormat::MimicCsv
                              : format == "text"      ? CorpusFormat::Text
                                                      : CorpusFormat::Jsonl;
      CorpusOptions co;
      co.reader = opts;
      if (cf == CorpusFormat::PubmedXml) {
        report.merge(read_pubmed_xml(
            path,
            [&](Citation&& c) {
              ++documents;
              extra["with_abstract"] += !c.abstract.empty();
              extra["structured_abstracts"] += c.n_abstract_parts > 1;
              total += static_cast<int64_t>(c.text().size());
            },
            [&](const std::string&) { ++extra["deleted"]; }, opts));
      } else {
        report.merge(read_corpus(cf, path, [&](TextRecord&& r) {
          ++documents;
          total += static_cast<int64_t>(r.text.size());
        }, co));
      }
    }
  }
  const bool is_ner = format == "conll" || format == "brat" || format == "pubtator";
  const bool is_corpus = format == "pubmed-xml" || format == "mimic-csv" || format == "text" || format == "jsonl";
  if (is_ner) {
    out["documents"] = documents;
    out["sentences"] = sentences;
    out["tokens"] = tokens;
    int64_t sum = 0;
    for (const auto& [k, v] : entities) sum += v;
    out["entities"] = sum;
    out["entities_by_type"] = to_json(entities);
    if (format != "conll") {
      int64_t rsum = 0;
      for (const auto& [k, v] : relations) rsum += v;
      out["relations"] = rsum;
      out["relations_by_type"] = to_json(relations);
      out["discontinuous_mentions"] = extra["discontinuous"];
      out["normalizations"] = extra["normalizations"];
    }
  } else if (is_corpus) {
    out["documents"] = documents;
    out["text_bytes"] = total;
    if (format == "pubmed-xml") {
      out["with_abstract"] = extra["with_abstract"];
      out["structured_abstracts"] = extra["structured_abstracts"];
      out["deleted_citations"] = extra["deleted"];
    }
  } else {
    out["examples"] = n;
    out[format == "alpaca" || format == "sharegpt" ? "turns_by_role" : format == "sts" ? "scores_rounded" : "labels"] = to_json(labels);
    if (format == "medqa" || format == "medmcqa") out["options_per_question"] = to_json(extra);
  }
  out["skipped"] = report.skipped;
  if (!report.errors.empty()) out["skipped_where"] = report.errors;
  out["warnings"] = report.warnings;
  return out;
}

}  // namespace biolm::data

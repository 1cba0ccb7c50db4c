// NER readers: CoNLL columns, BRAT standoff, PubTator (see biolm/data/tasks.h).
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "biolm/core/error.h"
#include "biolm/data/tasks.h"

namespace biolm::data {
namespace {

ReadReport& sink(ReadReport* report, ReadReport& local) { return report != nullptr ? *report : local; }

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t i = 0;
  out = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || i > 17) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > b) out.push_back(line.substr(b, i - b));
  }
  return out;
}

// Length in bytes of a Unicode space at text[i], 0 if none.
size_t unicode_space(const std::string& t, size_t i) {
  const auto b = [&](size_t k) { return i + k < t.size() ? static_cast<unsigned char>(t[i + k]) : 0; };
  if (b(0) == 0xC2 && b(1) == 0xA0) return 2;                                             // U+00A0
  if (b(0) == 0xE2 && b(1) == 0x80 && ((b(2) >= 0x80 && b(2) <= 0x8B) || b(2) == 0xAF)) return 3;  // U+2000-200B, U+202F
  if (b(0) == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) return 3;                             // U+205F
  if (b(0) == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;                             // U+3000
  return 0;
}

}  // namespace

// --- CoNLL ---------------------------------------------------------------------------------------
std::vector<NerSentence> read_conll(const std::string& path, const ConllOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  std::vector<NerSentence> out;
  LineReader lines(path);
  std::string line, doc_id;
  NerSentence cur;
  std::vector<int64_t> word_lines;
  bool bad = false;  // the current sentence already failed (Skip mode)
  const auto flush = [&] {
    if (!cur.words.empty() && !bad) {
      try {
        cur.tags = to_iob2(cur.tags, opts.scheme);
        cur.doc_id = doc_id;
        ++report.records;
        out.push_back(std::move(cur));
      } catch (const TagError& e) {
        report.fail(DataError(path, word_lines[static_cast<size_t>(e.index())], "tag", e.what()), opts.reader);
      }
    }
    cur = NerSentence{};
    word_lines.clear();
    bad = false;
  };
  while (lines.next(line)) {
    if (trim(line).empty()) {
      flush();
      continue;
    }
    if (line.rfind("-DOCSTART-", 0) == 0) {
      flush();
      const size_t lp = line.find('('), rp = line.rfind(')');
      doc_id = lp != std::string::npos && rp != std::string::npos && rp > lp ? line.substr(lp + 1, rp - lp - 1) : "";
      continue;
    }
    if (bad) continue;
    const auto cols = line.find('\t') != std::string::npos ? split(line, '\t') : split_ws(line);
    const auto n = static_cast<int64_t>(cols.size());
    const int64_t wc = opts.word_column < 0 ? n + opts.word_column : opts.word_column;
    const int64_t tc = opts.tag_column < 0 ? n + opts.tag_column : opts.tag_column;
    if (n < 2 || wc < 0 || wc >= n || tc < 0 || tc >= n || wc == tc) {
      report.fail(DataError(path, lines.line_no(), "columns",
                            "expected word column " + std::to_string(opts.word_column) + " and tag column " +
                                std::to_string(opts.tag_column) + ", found " + std::to_string(n) + " column(s)"),
                  opts.reader);
      bad = true;
      continue;
    }
    if (cur.words.empty()) cur.origin = Origin{path, lines.line_no(), -1};
    cur.words.push_back(cols[static_cast<size_t>(wc)]);
    cur.tags.emplace_back(trim(cols[static_cast<size_t>(tc)]));
    word_lines.push_back(lines.line_no());
  }
  flush();
  return out;
}

// --- words ---------------------------------------------------------------------------------------
std::vector<std::pair<int64_t, int64_t>> split_words(const std::string& text, const std::vector<int64_t>& cuts) {
  const std::set<int64_t> cut(cuts.begin(), cuts.end());
  std::vector<std::pair<int64_t, int64_t>> words;
  int64_t start = -1;
  const auto close = [&](int64_t at) {
    if (start >= 0 && at > start) words.emplace_back(start, at);
    start = -1;
  };
  size_t i = 0;
  while (i < text.size()) {
    const auto at = static_cast<int64_t>(i);
    if (cut.count(at) != 0) close(at);
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t sp = (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') ? 1 : unicode_space(text, i);
    if (sp > 0) {
      close(at);
      i += sp;
      continue;
    }
    if (c < 0x80 && std::ispunct(c)) {
      close(at);
      words.emplace_back(at, at + 1);
      ++i;
      continue;
    }
    if (start < 0) start = at;
    ++i;
  }
  close(static_cast<int64_t>(text.size()));
  return words;
}

std::vector<NerSentence> document_to_sentences(const Document& doc, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  const std::string where = doc.origin.source + ": document " + doc.id;
  // Keep non-overlapping mentions: longer first, then earlier.
  std::vector<const Mention*> order;
  for (const auto& m : doc.mentions) order.push_back(&m);
  std::stable_sort(order.begin(), order.end(), [](const Mention* a, const Mention* b) {
    return (a->end - a->begin) != (b->end - b->begin) ? (a->end - a->begin) > (b->end - b->begin) : a->begin < b->begin;
  });
  std::vector<const Mention*> kept;
  for (const Mention* m : order) {
    const bool overlaps = std::any_of(kept.begin(), kept.end(), [&](const Mention* k) {
      return m->begin < k->end && k->begin < m->end;
    });
    const bool crosses_line = doc.text.substr(static_cast<size_t>(m->begin), static_cast<size_t>(m->end - m->begin)).find('\n') != std::string::npos;
    if (overlaps || crosses_line) {
      report.warn(where + ": mention " + m->id + " \"" + m->text + "\" [" + std::to_string(m->begin) + ", " +
                      std::to_string(m->end) + ") " + (overlaps ? "overlaps a longer one" : "crosses a line break") +
                      ": left out of the IOB2 tags",
                  opts);
      continue;
    }
    kept.push_back(m);
  }
  std::vector<NerSentence> out;
  size_t line_begin = 0;
  int64_t line_no = 1;
  while (line_begin <= doc.text.size()) {
    size_t line_end = doc.text.find('\n', line_begin);
    if (line_end == std::string::npos) line_end = doc.text.size();
    const std::string line = doc.text.substr(line_begin, line_end - line_begin);
    const auto lb = static_cast<int64_t>(line_begin), le = static_cast<int64_t>(line_end);
    std::vector<int64_t> cuts;
    std::vector<Span> spans_bytes;
    for (const Mention* m : kept) {
      if (m->begin >= lb && m->end <= le) {
        cuts.push_back(m->begin - lb);
        cuts.push_back(m->end - lb);
        spans_bytes.push_back({m->begin - lb, m->end - lb, m->type});
      }
    }
    const auto words = split_words(line, cuts);
    if (!words.empty()) {
      NerSentence s;
      s.doc_id = doc.id;
      s.origin = doc.origin;
      s.origin.line = doc.origin.line > 0 ? doc.origin.line : line_no;
      std::vector<Span> spans;
      for (const auto& sb : spans_bytes) {
        int64_t first = -1, last = -1;
        for (size_t w = 0; w < words.size(); ++w) {
          if (words[w].first >= sb.begin && words[w].second <= sb.end) {
            if (first < 0) first = static_cast<int64_t>(w);
            last = static_cast<int64_t>(w);
          }
        }
        if (first >= 0) spans.push_back({first, last + 1, sb.type});
      }
      std::sort(spans.begin(), spans.end());
      for (const auto& w : words) s.words.push_back(line.substr(static_cast<size_t>(w.first), static_cast<size_t>(w.second - w.first)));
      s.tags = spans_to_iob2(static_cast<int64_t>(words.size()), spans);
      out.push_back(std::move(s));
    }
    if (line_end == doc.text.size()) break;
    line_begin = line_end + 1;
    ++line_no;
  }
  return out;
}

// --- BRAT ----------------------------------------------------------------------------------------
namespace {

Document read_brat_pair(const std::string& ann_path, const ReaderOptions& opts, ReadReport& report) {
  const std::filesystem::path ann(ann_path);
  const std::string txt_path = std::filesystem::path(ann).replace_extension(".txt").string();
  Document doc;
  doc.id = ann.stem().string();
  doc.text = read_file(txt_path);
  doc.origin = Origin{ann_path, 0, -1};
  const auto starts = utf8_char_starts(doc.text);
  const auto n_chars = static_cast<int64_t>(starts.size()) - 1;
  std::map<std::string, size_t> by_id;
  struct Pending {
    int64_t line;
    std::string text;
  };
  std::vector<Pending> later;  // N and R lines, after every T is known
  std::map<char, int64_t> unused_kinds;
  LineReader lines(ann_path);
  std::string line;
  while (lines.next(line)) {
    if (trim(line).empty()) continue;
    const char kind = line[0];
    if (kind == 'N' || kind == 'R') {
      later.push_back({lines.line_no(), line});
      continue;
    }
    if (kind != 'T') {
      ++unused_kinds[kind];
      continue;
    }
    const auto cols = split(line, '\t');
    if (cols.size() < 3) {
      report.fail(DataError(ann_path, lines.line_no(), "T", "expected ID<TAB>Type offsets<TAB>text"), opts);
      continue;
    }
    const size_t sp = cols[1].find(' ');
    if (sp == std::string::npos) {
      report.fail(DataError(ann_path, lines.line_no(), "offsets", "expected \"Type start end\", found \"" + cols[1] + "\""), opts);
      continue;
    }
    Mention m;
    m.id = cols[0];
    m.type = cols[1].substr(0, sp);
    m.text = cols[2];
    bool ok = true;
    std::string joined;
    for (const auto& frag : split(cols[1].substr(sp + 1), ';')) {
      const auto be = split_ws(frag);
      int64_t b = 0, e = 0;
      if (be.size() != 2 || !parse_int(be[0], b) || !parse_int(be[1], e) || b > e || e > n_chars) {
        report.fail(DataError(ann_path, lines.line_no(), "offsets",
                              "bad fragment \"" + frag + "\" (text has " + std::to_string(n_chars) + " characters)"),
                    opts);
        ok = false;
        break;
      }
      const int64_t bb = starts[static_cast<size_t>(b)], eb = starts[static_cast<size_t>(e)];
      m.fragments.emplace_back(bb, eb);
      if (!joined.empty()) joined += ' ';
      joined += doc.text.substr(static_cast<size_t>(bb), static_cast<size_t>(eb - bb));
    }
    if (!ok) continue;
    if (joined != m.text) {
      report.fail(DataError(ann_path, lines.line_no(), "text",
                            "annotation text \"" + m.text + "\" differs from the .txt slice \"" + joined + "\""),
                  opts);
      continue;
    }
    m.begin = m.fragments.front().first;
    m.end = m.fragments.back().second;
    if (m.fragments.size() > 1) {
      report.warn(ann_path + ":" + std::to_string(lines.line_no()) + ": discontinuous span " + m.id + " (" +
                      std::to_string(m.fragments.size()) + " fragments) tagged over its covering span",
                  opts);
    }
    by_id[m.id] = doc.mentions.size();
    doc.mentions.push_back(std::move(m));
  }
  for (const auto& p : later) {
    const auto cols = split(p.text, '\t');
    const auto parts = cols.size() >= 2 ? split_ws(cols[1]) : std::vector<std::string>{};
    if (p.text[0] == 'N') {
      // N1<TAB>Reference T1 MeSH:D001260[<TAB>name]
      if (parts.size() != 3 || by_id.count(parts[1]) == 0) {
        report.fail(DataError(ann_path, p.line, "N", "expected \"Reference T<id> DB:ID\" naming a known T line"), opts);
        continue;
      }
      doc.mentions[by_id[parts[1]]].norm_ids.push_back(parts[2]);
    } else {
      // R1<TAB>Type Arg1:T1 Arg2:T2
      if (parts.size() != 3 || parts[1].find(':') == std::string::npos || parts[2].find(':') == std::string::npos) {
        report.fail(DataError(ann_path, p.line, "R", "expected \"Type Arg1:T<id> Arg2:T<id>\""), opts);
        continue;
      }
      Relation r{parts[0], parts[1].substr(parts[1].find(':') + 1), parts[2].substr(parts[2].find(':') + 1)};
      if (by_id.count(r.arg1) == 0 || by_id.count(r.arg2) == 0) {
        report.fail(DataError(ann_path, p.line, "R", "argument names an unknown T line"), opts);
        continue;
      }
      doc.relations.push_back(std::move(r));
    }
  }
  for (const auto& [kind, count] : unused_kinds) {
    report.notes.push_back(ann_path + ": " + std::to_string(count) + " '" + std::string(1, kind) +
                           "' line(s) not used (events, attributes, notes)");
  }
  return doc;
}

}  // namespace

std::vector<Document> read_brat(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  std::vector<std::string> anns;
  if (std::filesystem::is_directory(path)) {
    for (const auto& e : std::filesystem::directory_iterator(path)) {
      if (e.path().extension() == ".ann") anns.push_back(e.path().string());
    }
    std::sort(anns.begin(), anns.end());
    if (anns.empty()) throw DataError(path, 0, "ann", "no .ann files in this directory");
  } else {
    anns.push_back(std::filesystem::path(path).extension() == ".txt"
                       ? std::filesystem::path(path).replace_extension(".ann").string()
                       : path);
  }
  std::vector<Document> out;
  for (const auto& a : anns) {
    out.push_back(read_brat_pair(a, opts, report));
    ++report.records;
  }
  return out;
}

// --- PubTator ------------------------------------------------------------------------------------
std::vector<Document> read_pubtator(const std::string& path, const ReaderOptions& opts, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = sink(report_out, local);
  std::vector<Document> out;
  LineReader lines(path);
  std::string line;
  Document cur;
  bool have_title = false, have_abstract = false;
  std::vector<int64_t> starts;
  const auto flush = [&] {
    if (have_title || have_abstract) {
      if (!have_abstract || !have_title) {
        report.fail(DataError(path, cur.origin.line, have_title ? "a" : "t",
                              "document " + cur.id + " has no " + (have_title ? "abstract (|a|)" : "title (|t|)") + " line"),
                    opts);
      } else {
        ++report.records;
        out.push_back(std::move(cur));
      }
    }
    cur = Document{};
    have_title = have_abstract = false;
  };
  while (lines.next(line)) {
    if (trim(line).empty()) {
      flush();
      continue;
    }
    const size_t bar = line.find('|');
    const size_t tab = line.find('\t');
    if (bar != std::string::npos && (tab == std::string::npos || bar < tab) && line.size() >= bar + 3 &&
        line[bar + 2] == '|' && (line[bar + 1] == 't' || line[bar + 1] == 'a')) {
      const std::string pmid = line.substr(0, bar);
      const std::string body = line.substr(bar + 3);
      if (line[bar + 1] == 't') {
        flush();
        cur.id = pmid;
        cur.origin = Origin{path, lines.line_no(), -1};
        cur.title = body;
        have_title = true;
      } else {
        if (!have_title || pmid != cur.id || have_abstract) {
          report.fail(DataError(path, lines.line_no(), "a", "abstract line for " + pmid + " does not follow its title line"), opts);
          continue;
        }
        cur.text = cur.title + " " + body;
        starts = utf8_char_starts(cur.text);
        have_abstract = true;
      }
      continue;
    }
    const auto cols = split(line, '\t');
    if (!have_abstract || cols.empty() || cols[0] != cur.id) {
      report.fail(DataError(path, lines.line_no(), "pmid",
                            "annotation line outside its document (expected PMID " + cur.id + " after |t| and |a| lines)"),
                  opts);
      continue;
    }
    int64_t b = 0, e = 0;
    if (cols.size() == 4 && !parse_int(cols[1], b)) {  // relation: PMID CID id1 id2
      cur.relations.push_back({cols[1], cols[2], cols[3]});
      continue;
    }
    if (cols.size() < 6 || !parse_int(cols[1], b) || !parse_int(cols[2], e)) {
      report.fail(DataError(path, lines.line_no(), "mention",
                            "expected PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>id(s) or PMID<TAB>REL<TAB>id<TAB>id"),
                  opts);
      continue;
    }
    const auto n_chars = static_cast<int64_t>(starts.size()) - 1;
    if (b >= e || e > n_chars) {
      report.fail(DataError(path, lines.line_no(), "offsets",
                            "[" + cols[1] + ", " + cols[2] + ") outside title + abstract (" + std::to_string(n_chars) + " characters)"),
                  opts);
      continue;
    }
    Mention m;
    m.id = std::to_string(cur.mentions.size());
    m.begin = starts[static_cast<size_t>(b)];
    m.end = starts[static_cast<size_t>(e)];
    m.text = cols[3];
    m.type = cols[4];
    m.norm_ids = split(cols[5], '|');
    const std::string slice = cur.text.substr(static_cast<size_t>(m.begin), static_cast<size_t>(m.end - m.begin));
    if (slice != m.text) {
      report.fail(DataError(path, lines.line_no(), "text", "mention \"" + m.text + "\" differs from the text at its offsets \"" + slice + "\""), opts);
      continue;
    }
    cur.mentions.push_back(std::move(m));
  }
  flush();
  return out;
}

}  // namespace biolm::data

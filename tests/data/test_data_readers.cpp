// Readers: every format on a small file written here in the real format (exact records), on a
// broken file (error with the right line/record and field), and on the real samples in
// ../shared/data when present (counts from its SOURCES.md / MANIFEST.json).
#include <catch2/catch.hpp>
#include <zlib.h>

#include "biolm/core/error.h"
#include "biolm/data/corpus.h"
#include "biolm/data/stats.h"
#include "biolm/data/tasks.h"
#include "support/test_util.h"

using namespace biolm;
using namespace biolm::data;
namespace fs = std::filesystem;

namespace {

// Runs fn, requires a DataError at `line` (or record) naming `field`.
template <typename Fn>
void require_data_error(Fn fn, int64_t line, const std::string& field, int64_t record = -1) {
  try {
    fn();
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    INFO(e.what());
    CHECK(e.line() == line);
    CHECK(e.field() == field);
    if (record >= 0) CHECK(e.record() == record);
  }
}

void write_gz(const fs::path& p, const std::string& text) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  gzclose(f);
}

}  // namespace

TEST_CASE("LineReader reads plain and gzip files the same, CRLF or not", "[data][io]") {
  test::TempDir dir("io");
  const std::string text = "first\r\nsecond\n\nlast without newline";
  test::write_text(dir / "a.txt", text);
  write_gz(dir / "a.txt.gz", text);
  for (const char* name : {"a.txt", "a.txt.gz"}) {
    LineReader r((dir / name).string());
    std::vector<std::string> lines;
    for (std::string l; r.next(l);) lines.push_back(l);
    CHECK(lines == std::vector<std::string>{"first", "second", "", "last without newline"});
    CHECK(r.line_no() == 4);
  }
  const auto starts = utf8_char_starts("a\xC2\xB5" "b");  // a µ b
  CHECK(starts == std::vector<int64_t>{0, 1, 3, 4});
}

TEST_CASE("CoNLL reader: BIO, IOB1 (scibert 4 columns, -DOCSTART-), IOBES, column choice, errors", "[data][conll]") {
  test::TempDir dir("conll");
  SECTION("two-column IOB2") {
    test::write_text(dir / "a.tsv", "Identification\tO\nof\tO\nataxia\tB-Disease\n-\tI-Disease\ntelangiectasia\tI-Disease\n\nAPC\tB-Disease\n.\tO\n\n");
    ReadReport rep;
    const auto ss = read_conll((dir / "a.tsv").string(), {}, &rep);
    REQUIRE(ss.size() == 2);
    CHECK(ss[0].words == std::vector<std::string>{"Identification", "of", "ataxia", "-", "telangiectasia"});
    CHECK(ss[0].tags == std::vector<std::string>{"O", "O", "B-Disease", "I-Disease", "I-Disease"});
    CHECK(ss[0].origin.line == 1);
    CHECK(ss[1].origin.line == 7);
    CHECK(tags_to_spans(ss[0].tags) == std::vector<Span>{{2, 5, "Disease"}});
    CHECK(rep.records == 2);
  }
  SECTION("scibert IOB1 with -DOCSTART- and 4 columns") {
    test::write_text(dir / "b.txt",
                     "-DOCSTART- (8701013)\n\nFamotidine\tPROPN\tO\tI-Entity\n-\tPUNCT\tO\tO\nassociated\tVERB\tO\tO\n"
                     "delirium\tNOUN\tO\tI-Entity\nfever\tNOUN\tO\tB-Entity\n\n\n-DOCSTART- (42)\n\nx\tX\tO\tI-Entity\ny\tX\tO\tI-Entity\n\n");
    const auto ss = read_conll((dir / "b.txt").string());
    REQUIRE(ss.size() == 2);
    CHECK(ss[0].doc_id == "8701013");
    CHECK(ss[1].doc_id == "42");
    CHECK(ss[0].tags == std::vector<std::string>{"B-Entity", "O", "O", "B-Entity", "B-Entity"});
    CHECK(ss[1].tags == std::vector<std::string>{"B-Entity", "I-Entity"});
    ConllOptions o;
    o.tag_column = 1;  // the UPOS column is not a tag column: error on line 3
    require_data_error([&] { read_conll((dir / "b.txt").string(), o); }, 3, "tag");
  }
  SECTION("IOBES") {
    test::write_text(dir / "c.txt", "a S-Chem\nb B-Dis\nc I-Dis\nd E-Dis\ne O\n");
    const auto ss = read_conll((dir / "c.txt").string());
    REQUIRE(ss.size() == 1);
    CHECK(ss[0].tags == std::vector<std::string>{"B-Chem", "B-Dis", "I-Dis", "I-Dis", "O"});
    test::write_text(dir / "d.txt", "a S-Chem\nb B-Dis\nc O\n");  // B- not closed by E-
    require_data_error([&] { read_conll((dir / "d.txt").string()); }, 2, "tag");
  }
  SECTION("strict IOB2 and bad tags") {
    test::write_text(dir / "e.tsv", "a\tO\nb\tI-Disease\n");
    ConllOptions strict;
    strict.scheme = TagScheme::IOB2;
    require_data_error([&] { read_conll((dir / "e.tsv").string(), strict); }, 2, "tag");
    test::write_text(dir / "f.tsv", "a\tO\n\nb\tO\nc\tB_Disease\n\nd\tB-X\n");
    require_data_error([&] { read_conll((dir / "f.tsv").string()); }, 4, "tag");
    ConllOptions skip;
    skip.reader.on_error = OnError::Skip;
    ReadReport rep;
    const auto ss = read_conll((dir / "f.tsv").string(), skip, &rep);
    CHECK(ss.size() == 2);
    CHECK(rep.skipped == 1);
    REQUIRE(rep.errors.size() == 1);
    CHECK(rep.errors[0].find("f.tsv:4:") != std::string::npos);
    test::write_text(dir / "g.tsv", "a\tO\nlonely\n");
    require_data_error([&] { read_conll((dir / "g.tsv").string()); }, 2, "columns");
  }
}

TEST_CASE("PubMed XML reader: both roots, structured abstracts, entities, DeleteCitation, gzip", "[data][pubmed]") {
  test::TempDir dir("pubmed");
  const std::string medline =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!DOCTYPE MedlineCitationSet PUBLIC \"-//NLM//DTD Medline Citation, 1st January, 2016//EN\"\n"
      "  \"https://www.nlm.nih.gov/databases/dtd/nlmmedlinecitationset_160101.dtd\">\n"
      "<MedlineCitationSet>\n"
      "<MedlineCitation Owner=\"NLM\" Status=\"MEDLINE\">\n"
      "<PMID Version=\"1\">111</PMID>\n"
      "<Article><ArticleTitle>Dose&#x2013;response of <i>p53</i> &amp; MDM2.</ArticleTitle>\n"
      "<Abstract><AbstractText Label=\"BACKGROUND\" NlmCategory=\"BACKGROUND\">Cells die.</AbstractText>\n"
      "<AbstractText Label=\"RESULTS\">It works &lt;5%&gt;.</AbstractText></Abstract></Article>\n"
      "<CommentsCorrectionsList><CommentsCorrections><PMID Version=\"1\">999</PMID></CommentsCorrections></CommentsCorrectionsList>\n"
      "</MedlineCitation>\n"
      "<MedlineCitation><PMID>222</PMID><Article><ArticleTitle>No abstract here</ArticleTitle></Article></MedlineCitation>\n"
      "<DeleteCitation>\n<PMID Version=\"1\">333</PMID>\n<PMID Version=\"1\">444</PMID>\n</DeleteCitation>\n"
      "</MedlineCitationSet>";
  write_gz(dir / "m.xml.gz", medline);
  std::vector<Citation> cs;
  std::vector<std::string> deleted;
  read_pubmed_xml((dir / "m.xml.gz").string(), [&](Citation&& c) { cs.push_back(std::move(c)); },
                  [&](const std::string& p) { deleted.push_back(p); });
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].pmid == "111");
  CHECK(cs[0].title == "Dose\xE2\x80\x93response of p53 & MDM2.");
  CHECK(cs[0].abstract == "BACKGROUND: Cells die.\nRESULTS: It works <5%>.");
  CHECK(cs[0].n_abstract_parts == 2);
  CHECK(cs[0].line == 5);
  CHECK(cs[1].pmid == "222");
  CHECK(cs[1].abstract.empty());
  CHECK(cs[1].text() == "No abstract here");
  CHECK(deleted == std::vector<std::string>{"333", "444"});

  test::write_text(dir / "p.xml",
                   "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>5</PMID><Article><ArticleTitle>T"
                   "</ArticleTitle><Abstract><AbstractText>A.</AbstractText></Abstract></Article></MedlineCitation>"
                   "<PubmedData><ArticleIdList><ArticleId IdType=\"pubmed\">5</ArticleId></ArticleIdList></PubmedData>"
                   "</PubmedArticle></PubmedArticleSet>");
  std::vector<TextRecord> recs;
  read_corpus(CorpusFormat::PubmedXml, (dir / "p.xml").string(), [&](TextRecord&& r) { recs.push_back(r); });
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].id == "5");
  CHECK(recs[0].text == "T\nA.");

  test::write_text(dir / "bad1.xml", "<PubmedArticleSet>\n<PubmedArticle>\n<MedlineCitation><PMID>1</PMID>\n</Article>\n");
  require_data_error([&] { read_pubmed_xml((dir / "bad1.xml").string(), [](Citation&&) {}); }, 4, "xml");
  test::write_text(dir / "bad2.xml", "<PubmedArticleSet>\n<PubmedArticle><MedlineCitation><PMID>1</PMID>\n<Article><ArticleTitle>a &nbsp; b</ArticleTitle>");
  require_data_error([&] { read_pubmed_xml((dir / "bad2.xml").string(), [](Citation&&) {}); }, 3, "xml");
  test::write_text(dir / "bad3.xml", "<PubmedArticleSet>\n<PubmedArticle>\n<MedlineCitation>\n<Article/></MedlineCitation></PubmedArticle></PubmedArticleSet>");
  require_data_error([&] { read_pubmed_xml((dir / "bad3.xml").string(), [](Citation&&) {}); }, 3, "PMID");
  ReaderOptions skip{OnError::Skip};
  const auto rep = read_pubmed_xml((dir / "bad3.xml").string(), [](Citation&&) {}, {}, skip);
  CHECK(rep.skipped == 1);
}

TEST_CASE("MIMIC-III NOTEEVENTS CSV: quoted multi-line fields, category filter, errors", "[data][mimic]") {
  test::TempDir dir("mimic");
  test::write_text(dir / "NOTEEVENTS.csv",
                   "\"ROW_ID\",\"SUBJECT_ID\",\"HADM_ID\",\"CHARTDATE\",\"CHARTTIME\",\"STORETIME\",\"CATEGORY\",\"DESCRIPTION\",\"CGID\",\"ISERROR\",\"TEXT\"\n"
                   "174,22532,167853,2151-08-04,,,\"Discharge summary\",\"Report\",,,\"Admission Date:  [**2151-7-16**]\n\nHe said \"\"no\"\", twice.\n\"\n"
                   "175,13702,107527,2118-06-14,,,\"Radiology\",\"CHEST\",,,\"CXR clear.\"\n"
                   "176,1,2,2118-06-14,,,\"Discharge summary\",\"Report\",,1,\"retracted\"\n");
  std::vector<TextRecord> recs;
  MimicOptions m;
  m.categories = {"Discharge summary"};
  const auto rep = read_mimic_csv((dir / "NOTEEVENTS.csv").string(), [&](TextRecord&& r) { recs.push_back(r); }, m);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].id == "174");
  CHECK(recs[0].line == 2);
  CHECK(recs[0].text == "Admission Date:  [**2151-7-16**]\n\nHe said \"no\", twice.\n");
  CHECK(rep.notes.size() == 2);  // one filtered by category, one ISERROR: both said
  recs.clear();
  read_mimic_csv((dir / "NOTEEVENTS.csv").string(), [&](TextRecord&& r) { recs.push_back(r); });
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].line == 6);
  CHECK(recs[1].text == "CXR clear.");

  test::write_text(dir / "bad.csv", "ROW_ID,TEXT\n1,\"ok\"\n2,\"never closed\nmore\n");
  require_data_error([&] { read_mimic_csv((dir / "bad.csv").string(), [](TextRecord&&) {}); }, 3, "csv");
  test::write_text(dir / "bad2.csv", "ROW_ID,TEXT\n1,ok\n2,too,many\n");
  require_data_error([&] { read_mimic_csv((dir / "bad2.csv").string(), [](TextRecord&&) {}); }, 3, "csv");
  test::write_text(dir / "bad3.csv", "ROW_ID,TEXT\n1,o\"k\n");
  require_data_error([&] { read_mimic_csv((dir / "bad3.csv").string(), [](TextRecord&&) {}); }, 2, "csv");
}

TEST_CASE("plain text, PMC text and JSONL corpora", "[data][corpus]") {
  test::TempDir dir("text");
  test::write_text(dir / "t.txt", "doc one\n\ndoc two\nstill two\n\n\ndoc three");
  std::vector<TextRecord> a, b;
  read_plain_text((dir / "t.txt").string(), [&](TextRecord&& r) { a.push_back(r); });
  read_plain_text((dir / "t.txt").string(), [&](TextRecord&& r) { b.push_back(r); }, TextLayout::BlankLineSeparated);
  REQUIRE(a.size() == 4);
  CHECK(a[2].text == "still two");
  CHECK(a[2].line == 4);
  REQUIRE(b.size() == 3);
  CHECK(b[1].text == "doc two\nstill two");
  CHECK(b[1].line == 3);
  CHECK(b[2].line == 7);
  test::write_text(dir / "PMC123.txt", "Title\n\nBody text.\n");
  std::vector<TextRecord> p;
  read_pmc_text((dir / "PMC123.txt").string(), [&](TextRecord&& r) { p.push_back(r); });
  REQUIRE(p.size() == 1);
  CHECK(p[0].id == "PMC123");
  test::write_text(dir / "c.jsonl", "{\"id\": 7, \"text\": \"alpha\"}\n\n{\"text\": \"beta\"}\n{\"body\": \"gamma\"}\n");
  require_data_error([&] { read_jsonl_text((dir / "c.jsonl").string(), [](TextRecord&&) {}); }, 4, "text");
  std::vector<TextRecord> j;
  ReadReport rep = read_jsonl_text((dir / "c.jsonl").string(), [&](TextRecord&& r) { j.push_back(r); }, {}, {OnError::Skip});
  REQUIRE(j.size() == 2);
  CHECK(j[0].id == "7");
  CHECK(j[1].id == "line 3");
  CHECK(j[1].text == "beta");
  CHECK(rep.skipped == 1);
  test::write_text(dir / "d.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\",}\n");
  require_data_error([&] { read_jsonl_text((dir / "d.jsonl").string(), [](TextRecord&&) {}); }, 2, "json");
}

TEST_CASE("BRAT standoff to mentions and IOB2 sentences", "[data][brat]") {
  test::TempDir dir("brat");
  // "µ" is 2 bytes, 1 character: BRAT offsets count characters.
  test::write_text(dir / "d1.txt", "Ataxia-telangiectasia in µ mice.\nBreast cancer and ovarian cancer risk.\n");
  test::write_text(dir / "d1.ann",
                   "T1\tModifier 0 21\tAtaxia-telangiectasia\nN1\tReference T1 MeSH:D001260\n"
                   "T2\tSpecificDisease 33 46\tBreast cancer\nT3\tSpecificDisease 33 39;51 65\tBreast ovarian cancer\n"
                   "N2\tReference T2 OMIM:114480\nN3\tReference T2 MESH:D001943\nR1\tRel Arg1:T1 Arg2:T2\n#1\tAnnotatorNotes T1\tnote\n");
  ReadReport rep;
  const auto docs = read_brat(dir.path().string(), {}, &rep);
  REQUIRE(docs.size() == 1);
  const auto& d = docs[0];
  CHECK(d.id == "d1");
  REQUIRE(d.mentions.size() == 3);
  CHECK(d.mentions[1].begin == 34);  // character 33 is byte 34 (after µ)
  CHECK(d.mentions[1].norm_ids == std::vector<std::string>{"OMIM:114480", "MESH:D001943"});
  CHECK(d.mentions[2].fragments.size() == 2);
  CHECK(rep.warnings >= 1);  // the discontinuous span is reported
  REQUIRE(d.relations.size() == 1);
  CHECK(d.relations[0].arg2 == "T2");
  const auto ss = document_to_sentences(d, {}, &rep);
  REQUIRE(ss.size() == 2);
  CHECK(ss[0].words == std::vector<std::string>{"Ataxia", "-", "telangiectasia", "in", "\xC2\xB5", "mice", "."});
  CHECK(ss[0].tags == std::vector<std::string>{"B-Modifier", "I-Modifier", "I-Modifier", "O", "O", "O", "O"});
  // T3 covers "Breast cancer and ovarian cancer" and is longer than T2: T2 is dropped and reported.
  CHECK(ss[1].tags[0] == "B-SpecificDisease");
  CHECK(ss[1].tags[4] == "I-SpecificDisease");
  CHECK(ss[1].tags[5] == "O");
  CHECK(rep.warnings >= 2);

  test::write_text(dir / "d2.txt", "Some text.\n");
  test::write_text(dir / "d2.ann", "T1\tDisease 0 4\tSome\nT2\tDisease 5 9\ttext\nT3\tDisease 5 9\tnope\n");
  require_data_error([&] { read_brat((dir / "d2.ann").string()); }, 3, "text");
}

TEST_CASE("PubTator documents, mentions, relations and offsets", "[data][pubtator]") {
  test::TempDir dir("pubtator");
  test::write_text(dir / "p.txt",
                   "8701013|t|Famotidine-associated delirium.\n8701013|a|Famotidine is safe.\n"
                   "8701013\t0\t10\tFamotidine\tChemical\tD015738\n8701013\t22\t30\tdelirium\tDisease\tD003693\n"
                   "8701013\t32\t42\tFamotidine\tChemical\tD015738|D000001\tFamotidine|x\n"
                   "8701013\tCID\tD015738\tD003693\n\n"
                   "42|t|T\n42|a|A\n\n");
  const auto docs = read_pubtator((dir / "p.txt").string());
  REQUIRE(docs.size() == 2);
  CHECK(docs[0].text == "Famotidine-associated delirium. Famotidine is safe.");
  REQUIRE(docs[0].mentions.size() == 3);
  CHECK(docs[0].mentions[2].norm_ids == std::vector<std::string>{"D015738", "D000001"});
  REQUIRE(docs[0].relations.size() == 1);
  CHECK(docs[0].relations[0].type == "CID");
  CHECK(docs[0].relations[0].arg2 == "D003693");
  CHECK(docs[1].text == "T A");
  test::write_text(dir / "bad.txt", "1|t|Abc def\n1|a|Ghi\n1\t0\t3\tAbc\tChemical\tX\n1\t4\t7\tdeX\tChemical\tY\n");
  require_data_error([&] { read_pubtator((dir / "bad.txt").string()); }, 4, "text");
}

TEST_CASE("ChemProt markers, STS, MedNLI", "[data][pairs]") {
  test::TempDir dir("pairs");
  test::write_text(dir / "c.txt",
                   "{\"text\": \"<< EGFR >> inhibitors include [[ gefitinib ]].\", \"label\": \"INHIBITOR\", \"metadata\": []}\n"
                   "{\"text\": \"[[ 2-[[2-hydroxy ]] binds << ER\xCE\xB1 >>.\", \"label\": \"SUBSTRATE\", \"metadata\": []}\n"
                   "{\"text\": \"no markers\", \"label\": \"X\"}\n");
  require_data_error([&] { read_chemprot((dir / "c.txt").string()); }, 3, "text");
  ReadReport rep;
  const auto rel = read_chemprot((dir / "c.txt").string(), {OnError::Skip}, &rep);
  REQUIRE(rel.size() == 2);
  CHECK(rep.skipped == 1);
  CHECK(rel[0].text == "EGFR inhibitors include gefitinib.");
  CHECK(rel[0].text.substr(rel[0].e1.begin, rel[0].e1.end - rel[0].e1.begin) == "EGFR");
  CHECK(rel[0].text.substr(rel[0].e2.begin, rel[0].e2.end - rel[0].e2.begin) == "gefitinib");
  CHECK(rel[1].text == "2-[[2-hydroxy binds ER\xCE\xB1.");
  CHECK(rel[1].text.substr(rel[1].e2.begin, rel[1].e2.end - rel[1].e2.begin) == "2-[[2-hydroxy");
  CHECK(rel[1].text.substr(rel[1].e1.begin, rel[1].e1.end - rel[1].e1.begin) == "ER\xCE\xB1");

  test::write_text(dir / "sts.tsv", "A man.\tA person.\t4.0\nX.\tY.\t0.25\nbad\tline\tfour\n");
  require_data_error([&] { read_sts((dir / "sts.tsv").string()); }, 3, "score");
  const auto sts = read_sts((dir / "sts.tsv").string(), {OnError::Skip});
  REQUIRE(sts.size() == 2);
  CHECK(sts[1].score == 0.25);
  CHECK(sts[0].text_b == "A person.");
  test::write_text(dir / "biosses.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\t2.2\n");
  const auto b = read_sts((dir / "biosses.tsv").string());
  REQUIRE(b.size() == 1);
  CHECK(b[0].text_a == "a");
  CHECK(b[0].score == 2.2);

  test::write_text(dir / "nli.jsonl",
                   "{\"sentence1\": \"No fever.\", \"sentence2\": \"Afebrile.\", \"gold_label\": \"entailment\", \"pairID\": \"p1\"}\n"
                   "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"gold_label\": \"yes\"}\n");
  require_data_error([&] { read_mednli((dir / "nli.jsonl").string()); }, 2, "gold_label");
  const auto nli = read_mednli((dir / "nli.jsonl").string(), {OnError::Skip});
  REQUIRE(nli.size() == 1);
  CHECK(nli[0].id == "p1");
  CHECK(nli[0].label == "entailment");
}

TEST_CASE("QA readers: PubMedQA, MedQA, MedMCQA, SQuAD/emrQA, BioASQ", "[data][qa]") {
  test::TempDir dir("qa");
  test::write_text(dir / "pqa.json",
                   "{\n    \"21645374\": {\n        \"QUESTION\": \"Q1?\",\n        \"CONTEXTS\": [\"c1\", \"c2\"],\n"
                   "        \"LABELS\": [\"BACKGROUND\", \"RESULTS\"],\n        \"final_decision\": \"yes\",\n"
                   "        \"LONG_ANSWER\": \"Yes.\"\n    },\n    \"100\": {\n        \"QUESTION\": \"Q2?\",\n"
                   "        \"CONTEXTS\": [\"c\"],\n        \"final_decision\": \"perhaps\"\n    }\n}");
  require_data_error([&] { read_pubmedqa((dir / "pqa.json").string()); }, 9, "final_decision");
  const auto pqa = read_pubmedqa((dir / "pqa.json").string(), {OnError::Skip});
  REQUIRE(pqa.size() == 1);
  CHECK(pqa[0].id == "21645374");
  CHECK(pqa[0].contexts == std::vector<std::string>{"c1", "c2"});
  CHECK(pqa[0].context_labels[1] == "RESULTS");
  CHECK(pqa[0].long_answer == "Yes.");
  test::write_text(dir / "broken.json", "{\n  \"1\": {\n    \"QUESTION\": \"x\",\n  }\n}");
  require_data_error([&] { read_pubmedqa((dir / "broken.json").string()); }, 4, "json");

  test::write_text(dir / "medqa.jsonl",
                   "{\"question\": \"Q?\", \"answer\": \"two\", \"options\": {\"A\": \"one\", \"B\": \"two\", \"C\": \"3\", \"D\": \"4\"}, \"meta_info\": \"step1\", \"answer_idx\": \"B\"}\n"
                   "{\"question\": \"Q?\", \"answer\": \"one\", \"options\": {\"A\": \"one\", \"B\": \"two\"}, \"answer_idx\": \"B\"}\n");
  require_data_error([&] { read_medqa((dir / "medqa.jsonl").string()); }, 2, "answer");
  const auto mq = read_medqa((dir / "medqa.jsonl").string(), {OnError::Skip});
  REQUIRE(mq.size() == 1);
  CHECK(mq[0].answer == 1);
  CHECK(mq[0].options.size() == 4);
  CHECK(mq[0].subject == "step1");

  test::write_text(dir / "medmcqa.jsonl",
                   "{\"id\": \"e9ad\", \"question\": \"Q?\", \"opa\": \"a\", \"opb\": \"b\", \"opc\": \"c\", \"opd\": \"d\", \"cop\": 3, \"choice_type\": \"single\", \"exp\": \"because\", \"subject_name\": \"Anatomy\", \"topic_name\": null}\n"
                   "{\"id\": \"t1\", \"question\": \"Q?\", \"opa\": \"a\", \"opb\": \"b\", \"opc\": \"c\", \"opd\": \"d\"}\n"
                   "{\"id\": \"x\", \"question\": \"Q?\", \"opa\": \"a\", \"opb\": \"b\", \"opc\": \"c\", \"opd\": \"d\", \"cop\": 0}\n");
  require_data_error([&] { read_medmcqa((dir / "medmcqa.jsonl").string()); }, 3, "cop");
  MedmcqaOptions mo;
  mo.reader.on_error = OnError::Skip;
  const auto mm = read_medmcqa((dir / "medmcqa.jsonl").string(), mo);
  REQUIRE(mm.size() == 2);
  CHECK(mm[0].answer == 2);  // cop 3 = opc
  CHECK(mm[0].explanation == "because");
  CHECK(mm[0].subject == "Anatomy");
  CHECK(mm[1].answer == -1);
  mo.cop_zero_based = true;
  CHECK(read_medmcqa((dir / "medmcqa.jsonl").string(), mo)[2].answer == 0);

  test::write_text(dir / "squad.json",
                   "{\"data\": [{\"title\": \"t\", \"paragraphs\": [{\"context\": \"Dose 5 \xC2\xB5g daily.\", \"qas\": ["
                   "{\"id\": \"q1\", \"question\": \"How often?\", \"answers\": [{\"text\": \"daily\", \"answer_start\": 10}]},"
                   "{\"id\": \"q2\", \"question\": \"Unit?\", \"answers\": [{\"text\": \"mg\", \"answer_start\": 7}]}]}]}]}");
  require_data_error([&] { read_squad((dir / "squad.json").string()); }, 0, "answer_start", 1);
  const auto sq = read_squad((dir / "squad.json").string(), {OnError::Skip});
  REQUIRE(sq.size() == 1);
  CHECK(sq[0].answers[0].begin == 11);  // character 10 = byte 11 (µ is two bytes)

  test::write_text(dir / "bioasq.json",
                   "{\"questions\": [{\"id\": \"a\", \"body\": \"Is X Y?\", \"type\": \"yesno\", \"exact_answer\": \"yes\", "
                   "\"ideal_answer\": [\"Yes.\"], \"snippets\": [{\"text\": \"s1\"}, {\"text\": \"s2\"}]},"
                   "{\"id\": \"b\", \"body\": \"Which?\", \"type\": \"list\", \"exact_answer\": [[\"p\", \"P\"], [\"q\"]], \"ideal_answer\": \"p and q\"},"
                   "{\"id\": \"c\", \"body\": \"?\", \"type\": \"essay\"}]}");
  require_data_error([&] { read_bioasq((dir / "bioasq.json").string()); }, 0, "type", 2);
  const auto bq = read_bioasq((dir / "bioasq.json").string(), {OnError::Skip});
  REQUIRE(bq.size() == 2);
  CHECK(bq[0].snippets.size() == 2);
  CHECK(bq[1].exact_answer == std::vector<std::string>{"p", "P", "q"});
  CHECK(bq[1].ideal_answer == std::vector<std::string>{"p and q"});
}

TEST_CASE("instruction readers: Alpaca JSON and JSONL, ShareGPT", "[data][instructions]") {
  test::TempDir dir("inst");
  test::write_text(dir / "a.json", "[\n {\"instruction\": \"Summarize.\", \"input\": \"Long text\", \"output\": \"Short.\"},\n {\"instruction\": \"Hi\", \"input\": \"\", \"output\": \"Hello\"}\n]");
  const auto a = read_alpaca((dir / "a.json").string());
  REQUIRE(a.size() == 2);
  CHECK(a[0].turns[0].content == "Summarize.\n\nLong text");
  CHECK(a[1].turns[0].content == "Hi");
  CHECK(a[1].turns[1].role == "assistant");
  test::write_text(dir / "a.jsonl", "{\"instruction\": \"x\", \"output\": \"y\"}\n{\"instruction\": \"x\"}\n");
  require_data_error([&] { read_alpaca((dir / "a.jsonl").string()); }, 2, "output");
  test::write_text(dir / "s.json",
                   "[{\"id\": \"c1\", \"conversations\": [{\"from\": \"system\", \"value\": \"Be brief.\"}, {\"from\": \"human\", \"value\": \"Q\"}, {\"from\": \"gpt\", \"value\": \"A\"}]},"
                   " {\"id\": \"c2\", \"conversations\": [{\"from\": \"bing\", \"value\": \"?\"}]}]");
  require_data_error([&] { read_sharegpt((dir / "s.json").string()); }, 0, "conversations[0].from", 1);
  const auto s = read_sharegpt((dir / "s.json").string(), {OnError::Skip});
  REQUIRE(s.size() == 1);
  CHECK(s[0].id == "c1");
  REQUIRE(s[0].turns.size() == 3);
  CHECK(s[0].turns[0].role == "system");
  CHECK(s[0].turns[1].role == "user");
  CHECK(s[0].turns[2].content == "A");
}

// --- real samples ------------------------------------------------------------------------------
TEST_CASE("real NCBI-disease and BC5CDR CoNLL files give the published counts", "[data][real]") {
  BIOLM_SHARED_DATA_OR_SKIP(ncbi, "ncbi_disease_conll/train.tsv");
  struct Expect {
    std::string file;
    int64_t sentences, tokens;
    std::map<std::string, int64_t> entities;
  };
  const fs::path root = ncbi.parent_path().parent_path();
  for (const Expect& e : std::vector<Expect>{
           {"ncbi_disease_conll/train.tsv", 5424, 135701, {{"Disease", 5134}}},
           {"ncbi_disease_conll/devel.tsv", 923, 23969, {{"Disease", 787}}},
           {"ncbi_disease_conll/test.tsv", 940, 24497, {{"Disease", 960}}},
           {"bc5cdr_conll/train.tsv", 4560, 118170, {{"Chemical", 5203}, {"Disease", 4182}}},
           {"bc5cdr_conll/test.tsv", 4797, 124750, {{"Chemical", 5385}, {"Disease", 4424}}},
           {"bc5cdr_conll/scibert/test.txt", 4139, 98691, {{"Entity", 9662}}}}) {
    INFO(e.file);
    const auto j = dataset_stats("conll", {(root / e.file).string()});
    CHECK(j["sentences"] == e.sentences);
    CHECK(j["tokens"] == e.tokens);
    for (const auto& [type, n] : e.entities) CHECK(j["entities_by_type"][type] == n);
  }
  const auto sci = dataset_stats("conll", {(root / "bc5cdr_conll/scibert/test.txt").string()});
  CHECK(sci["documents"] == 500);
}

TEST_CASE("real BRAT, PubTator, ChemProt, PubMedQA, MedQA and MEDLINE samples", "[data][real]") {
  BIOLM_SHARED_DATA_OR_SKIP(brat, "brat_ncbi_disease/test");
  const fs::path root = brat.parent_path().parent_path();
  const auto b = dataset_stats("brat", {brat.string()});
  CHECK(b["documents"] == 100);
  CHECK(b["entities"] == 960);
  CHECK(b["entities_by_type"]["SpecificDisease"] == 555);
  CHECK(b["entities_by_type"]["Modifier"] == 264);
  CHECK(b["entities_by_type"]["DiseaseClass"] == 121);
  CHECK(b["entities_by_type"]["CompositeMention"] == 20);
  CHECK(b["normalizations"] == 979);
  CHECK(b["tokens"] == 24497);  // the same words as ncbi_disease_conll/test.tsv
  for (const auto& [file, chem, dis, cid] :
       std::vector<std::tuple<std::string, int, int, int>>{{"CDR_DevelopmentSet.PubTator.txt", 5347, 4244, 1012},
                                                            {"CDR_TestSet.PubTator.txt", 5385, 4424, 1066}}) {
    const auto p = dataset_stats("pubtator", {(root / "bc5cdr_pubtator" / file).string()});
    CHECK(p["documents"] == 500);
    CHECK(p["entities_by_type"]["Chemical"] == chem);
    CHECK(p["entities_by_type"]["Disease"] == dis);
    CHECK(p["relations_by_type"]["CID"] == cid);
  }
  for (const auto& [file, n] : std::vector<std::pair<std::string, int>>{{"train.txt", 4169}, {"dev.txt", 2427}, {"test.txt", 3469}}) {
    const auto c = dataset_stats("chemprot", {(root / "chemprot" / file).string()});
    CHECK(c["examples"] == n);
  }
  const auto ct = dataset_stats("chemprot", {(root / "chemprot/train.txt").string()});
  CHECK(ct["labels"]["INHIBITOR"] == 1642);
  CHECK(ct["labels"]["SUBSTRATE_PRODUCT-OF"] == 14);
  const auto q = dataset_stats("pubmedqa", {(root / "pubmedqa/ori_pqal.json").string()});
  CHECK(q["examples"] == 1000);
  CHECK(q["labels"]["yes"] == 552);
  CHECK(q["labels"]["no"] == 338);
  CHECK(q["labels"]["maybe"] == 110);
  CHECK(q["contexts"] == 3358);
  const auto m = dataset_stats("medqa", {(root / "medqa_usmle/phrases_no_exclude_test.jsonl").string()});
  CHECK(m["examples"] == 1273);
  CHECK(m["labels"]["A"] == 353);
  CHECK(m["labels"]["D"] == 265);
  const auto x = dataset_stats("pubmed-xml", {(root / "pubmed_medline_xml/medline16n0902.xml.gz").string()});
  CHECK(x["documents"] == 604);
  CHECK(x["with_abstract"] == 526);
  CHECK(x["deleted_citations"] == 1);
  const auto cur = dataset_stats("pubmed-xml", {(root / "pubmed_medline_xml/test_current_medline.xml.gz").string()});
  CHECK(cur["documents"] == 4);
  CHECK(cur["with_abstract"] == 3);
  const auto empty = dataset_stats("pubmed-xml", {(root / "pubmed_medline_xml/metapub_efetch/37909814.xml").string()});
  CHECK(empty["documents"] == 0);
  std::vector<Citation> cs;
  read_pubmed_xml((root / "pubmed_medline_xml/metapub_efetch/23657305.xml").string(), [&](Citation&& c) { cs.push_back(c); });
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].pmid == "23657305");
  CHECK(cs[0].n_abstract_parts > 1);
}

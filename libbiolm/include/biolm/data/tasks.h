// biolm/data/tasks.h: readers of fine-tuning task files, one example schema per family
// (examples.h). Formats and accepted variants: docs/data_formats.md.
//
// Every reader throws DataError naming file:line (line formats) or file: record N (JSON
// documents) and the field on a malformed record; with ReaderOptions{OnError::Skip} it skips the
// record instead, and `report` (when given) says how many and where. Files may be gzipped.
#pragma once

#include <string>
#include <vector>

#include "biolm/data/examples.h"
#include "biolm/data/io.h"
#include "biolm/data/tags.h"

namespace biolm::data {

// --- NER -------------------------------------------------------------------------------------
struct ConllOptions {
  int64_t word_column = 0;   ///< 0-based; negative counts from the end
  int64_t tag_column = -1;   ///< 0-based; -1 = last column (the scibert 4-column files too)
  TagScheme scheme = TagScheme::Auto;
  ReaderOptions reader;
};
/// CoNLL-style columns: one word per line, blank line between sentences, `-DOCSTART-` lines start
/// a document ("-DOCSTART- (PMID)" sets doc_id). Columns split on tabs when the line has one,
/// else on spaces. Tags come out as IOB2.
std::vector<NerSentence> read_conll(const std::string& path, const ConllOptions& opts = {},
                                    ReadReport* report = nullptr);

/// BRAT standoff: `path` is a directory (every *.ann with its *.txt, sorted by name) or one .ann
/// file. T lines become mentions (byte offsets; BRAT counts characters), N lines add norm_ids, R
/// lines relations. A discontinuous span ("0 5;9 14") is kept with its fragments and reported.
/// Every mention's text must equal the .txt slice.
std::vector<Document> read_brat(const std::string& path, const ReaderOptions& opts = {},
                                ReadReport* report = nullptr);

/// PubTator: "PMID|t|title", "PMID|a|abstract", mention lines
/// "PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>ids[<TAB>composite mentions]" and relation lines
/// "PMID<TAB>CID<TAB>id1<TAB>id2"; documents separated by blank lines. Document::text is
/// title + " " + abstract (the string PubTator offsets index).
std::vector<Document> read_pubtator(const std::string& path, const ReaderOptions& opts = {},
                                    ReadReport* report = nullptr);

/// Words of `text` as byte spans: split on whitespace (ASCII and Unicode spaces such as U+00A0,
/// U+2009) and around ASCII punctuation, plus at every offset in `cuts` (entity boundaries).
std::vector<std::pair<int64_t, int64_t>> split_words(const std::string& text, const std::vector<int64_t>& cuts = {});

/// A standoff document as IOB2 sentences, one per text line. Overlapping mentions cannot be one
/// IOB2 sequence: the longer one (first on a tie) is kept and each dropped one is reported.
/// Discontinuous mentions are tagged over their covering span (and reported by read_brat).
std::vector<NerSentence> document_to_sentences(const Document& doc, const ReaderOptions& opts = {},
                                               ReadReport* report = nullptr);

// --- relation classification, pairs ----------------------------------------------------------
/// ChemProt JSONL ({"text", "label"}): markers found as "<< "/" >>" and "[[ "/" ]]" (chemical
/// names may contain a literal "[[", and the text a literal " >>"): the first opening marker of
/// each kind and the first matching closing marker after it.
std::vector<RelationExample> read_chemprot(const std::string& path, const ReaderOptions& opts = {},
                                           ReadReport* report = nullptr);
/// STS TSV (BIOSSES, n2c2-2019 clinical STS). With a header naming sentence1, sentence2 and
/// score, those columns; without one, the last three columns are sentence1, sentence2, score.
std::vector<PairExample> read_sts(const std::string& path, const ReaderOptions& opts = {},
                                  ReadReport* report = nullptr);
/// MedNLI JSONL: sentence1, sentence2, gold_label in {entailment, neutral, contradiction}.
std::vector<PairExample> read_mednli(const std::string& path, const ReaderOptions& opts = {},
                                     ReadReport* report = nullptr);

// --- QA -----------------------------------------------------------------------------------------
/// PubMedQA: one JSON object keyed by PMID (ori_pqal.json); file order kept.
std::vector<PubmedQaExample> read_pubmedqa(const std::string& path, const ReaderOptions& opts = {},
                                           ReadReport* report = nullptr);
/// MedQA-USMLE JSONL: question, options {A: .., B: .., ...}, answer_idx (letter); answer (text),
/// when present, must equal the option it points at.
std::vector<ChoiceExample> read_medqa(const std::string& path, const ReaderOptions& opts = {},
                                      ReadReport* report = nullptr);
struct MedmcqaOptions {
  /// The published MedMCQA files number the correct option cop = 1..4 (opa..opd); some
  /// re-releases (Hugging Face) use 0..3. Default: 1-based.
  bool cop_zero_based = false;
  ReaderOptions reader;
};
/// MedMCQA JSONL: id, question, opa, opb, opc, opd, cop, exp, subject_name. A record without
/// cop (the unlabelled test split) gets answer -1.
std::vector<ChoiceExample> read_medmcqa(const std::string& path, const MedmcqaOptions& opts = {},
                                        ReadReport* report = nullptr);
/// SQuAD-style JSON (emrQA, SQuAD 1.1/2.0): data[].paragraphs[].qas[].answers[]{text,
/// answer_start}; answer_start counts characters and is checked against the context.
std::vector<SpanQaExample> read_squad(const std::string& path, const ReaderOptions& opts = {},
                                      ReadReport* report = nullptr);
/// BioASQ JSON: {"questions": [{id, body, type, exact_answer, ideal_answer, snippets}]}.
std::vector<BioasqExample> read_bioasq(const std::string& path, const ReaderOptions& opts = {},
                                       ReadReport* report = nullptr);

// --- instructions -------------------------------------------------------------------------------
/// Alpaca: a JSON array or JSONL of {instruction, input (optional), output}.
std::vector<InstructionExample> read_alpaca(const std::string& path, const ReaderOptions& opts = {},
                                            ReadReport* report = nullptr);
/// ShareGPT: a JSON array or JSONL of {id?, conversations: [{from: human|gpt|system, value}]}.
std::vector<InstructionExample> read_sharegpt(const std::string& path, const ReaderOptions& opts = {},
                                              ReadReport* report = nullptr);

}  // namespace biolm::data

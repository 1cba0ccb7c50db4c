// biolm/data/examples.h: one example schema per task family.
//
// Task readers (tasks.h) turn every supported file format into these structs; featurizers
// (features.h) turn them into token ids; collators (collate.h) into batches. Every example keeps
// where it came from (source file, 1-based line or 0-based record) for error messages.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace biolm::data {

/// Where an example came from: line > 0 for line formats, record >= 0 for JSON documents.
struct Origin {
  std::string source;
  int64_t line = 0;
  int64_t record = -1;
};

/// A labelled span [begin, end) over words (NER) or bytes (documents), with its type.
struct Span {
  int64_t begin = 0;
  int64_t end = 0;
  std::string type;
  bool operator==(const Span& o) const { return begin == o.begin && end == o.end && type == o.type; }
  bool operator<(const Span& o) const {
    return begin != o.begin ? begin < o.begin : end != o.end ? end < o.end : type < o.type;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Span& s) {
  return os << "[" << s.begin << ", " << s.end << ") " << s.type;
}

/// Token classification (NER): words with IOB2 ("BIO") tags, whatever scheme the file used.
struct NerSentence {
  std::vector<std::string> words;
  std::vector<std::string> tags;  ///< "O", "B-Type", "I-Type"
  std::string doc_id;             ///< from -DOCSTART- (PMID) or the BRAT/PubTator document
  Origin origin;
};

/// An entity mention in a document; offsets are BYTES into Document::text.
struct Mention {
  std::string id;  ///< BRAT "T3"; PubTator: its index in the document
  std::string type;
  int64_t begin = 0, end = 0;
  std::string text;
  std::vector<std::string> norm_ids;  ///< BRAT N lines, PubTator concept ids ("-1" kept as is)
  /// Discontinuous BRAT spans: every fragment (begin/end above cover them all).
  std::vector<std::pair<int64_t, int64_t>> fragments;
};

/// A relation between two mentions (BRAT R lines) or two concepts (PubTator CID lines).
struct Relation {
  std::string type;
  std::string arg1, arg2;  ///< mention ids (BRAT) or concept ids (PubTator)
};

/// A document with standoff annotations (BRAT, PubTator).
struct Document {
  std::string id;
  std::string text;
  std::string title;  ///< PubTator only
  std::vector<Mention> mentions;
  std::vector<Relation> relations;
  Origin origin;
};

/// Relation classification with entity markers (ChemProt): `text` has the markers removed;
/// e1 is the `<< >>` argument, e2 the `[[ ]]` one, as byte spans into `text`.
struct RelationExample {
  std::string text;
  std::string marked_text;  ///< the original sentence with markers
  Span e1, e2;
  std::string label;
  Origin origin;
};

/// A sentence pair with a similarity score (STS) or a class label (NLI).
struct PairExample {
  std::string id;
  std::string text_a, text_b;
  double score = 0.0;  ///< STS
  std::string label;   ///< NLI: entailment | neutral | contradiction
  Origin origin;
};

/// PubMedQA: question + abstract contexts, yes/no/maybe.
struct PubmedQaExample {
  std::string id;  ///< PMID
  std::string question;
  std::vector<std::string> contexts;
  std::vector<std::string> context_labels;  ///< BACKGROUND, METHODS, ... parallel to contexts
  std::string label;                        ///< final_decision
  std::string long_answer;
  Origin origin;
};

/// Multiple choice (MedQA, MedMCQA). answer is 0-based, -1 when the file has no answer.
struct ChoiceExample {
  std::string id;
  std::string question;
  std::vector<std::string> options;
  int64_t answer = -1;
  std::string explanation;  ///< MedMCQA exp
  std::string subject;      ///< MedMCQA subject_name, MedQA meta_info
  Origin origin;
};

/// Extractive QA (SQuAD, emrQA). Answer offsets are BYTES into context.
struct SpanAnswer {
  std::string text;
  int64_t begin = 0;
};
struct SpanQaExample {
  std::string id;
  std::string title;
  std::string question;
  std::string context;
  std::vector<SpanAnswer> answers;
  bool impossible = false;
  Origin origin;
};

/// BioASQ task B question.
struct BioasqExample {
  std::string id;
  std::string body;
  std::string type;  ///< yesno | factoid | list | summary
  /// yesno: {"yes"} or {"no"}; factoid/list: every answer string (synonyms flattened); summary: {}.
  std::vector<std::string> exact_answer;
  std::vector<std::string> ideal_answer;
  std::vector<std::string> snippets;
  Origin origin;
};

/// Instruction / chat data: Alpaca becomes one user turn (instruction + "\n\n" + input) and
/// one assistant turn; ShareGPT maps human -> user, gpt -> assistant, system -> system.
struct Turn {
  std::string role;  ///< system | user | assistant
  std::string content;
};
struct InstructionExample {
  std::string id;
  std::vector<Turn> turns;
  Origin origin;
};

}  // namespace biolm::data

// Evaluation datasets for the harness and fine-tuned encoder heads on them (see biolm/eval/tasks.h).
#include "biolm/eval/tasks.h"


#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "biolm/core/error.h"
#include "biolm/data/features.h"
#include "biolm/data/io.h"
#include "biolm/data/tasks.h"
#include "biolm/eval/classification.h"

namespace biolm::eval {
namespace {

DataError origin_error(const data::Origin& o, const std::string& field, const std::string& msg) {
  return o.line > 0 ? DataError(o.source, o.line, field, msg)
                    : DataError::at_record(o.source, std::max<int64_t>(o.record, 0), field, msg);
}

// A JSON string, or DataError naming file:line and field.
std::string string_field(const nlohmann::json& j, const char* key, const std::string& path, int64_t line) {
  if (!j[key].is_string()) throw DataError(path, line, key, "expected a string");
  return j[key].get<std::string>();
}

bool looks_like_alpaca(const std::string& path) {
  data::LineReader reader(path);
  std::string line;
  while (reader.next(line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (line[first] == '[') return true;  // a JSON array: Alpaca's own layout
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    return j.is_object() && j.contains("instruction");
  }
  return false;
}

}  // namespace

std::vector<McqaExample> pubmedqa_examples(const std::vector<data::PubmedQaExample>& records,
                                           const std::string& context_separator) {
  std::vector<McqaExample> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    std::string abstract;
    for (size_t i = 0; i < r.contexts.size(); ++i) abstract += (i == 0 ? "" : context_separator) + r.contexts[i];
    if (r.label != "yes" && r.label != "no" && r.label != "maybe") {
      throw origin_error(r.origin, "final_decision", fmt::format("expected yes|no|maybe, found \"{}\"", r.label));
    }
    McqaExample ex = pubmedqa_example(abstract, r.question, r.label);
    ex.rationale = r.long_answer;
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<McqaExample> mcqa_examples(const std::vector<data::ChoiceExample>& records) {
  std::vector<McqaExample> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    if (r.options.size() < 2) {
      throw origin_error(r.origin, "options", fmt::format("expected at least two options, found {}", r.options.size()));
    }
    if (r.answer < 0 || r.answer >= static_cast<int64_t>(r.options.size())) {
      throw origin_error(r.origin, "answer", "the record has no gold answer (an unlabelled split cannot be scored)");
    }
    McqaExample ex;
    ex.question = r.question;
    ex.choices = r.options;
    ex.answer = r.answer;
    ex.rationale = r.explanation;
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<QaExample> qa_examples(const std::vector<data::InstructionExample>& records) {
  std::vector<QaExample> out;
  for (const auto& r : records) {
    QaExample ex;
    std::string system;
    size_t t = 0;
    for (; t < r.turns.size() && r.turns[t].role != "user"; ++t) {
      if (r.turns[t].role == "system") system += r.turns[t].content + "\n\n";
    }
    if (t == r.turns.size()) throw origin_error(r.origin, "turns", "no user turn");
    ex.question = system + r.turns[t].content;
    for (++t; t < r.turns.size() && r.turns[t].role != "assistant"; ++t) {
    }
    if (t == r.turns.size()) throw origin_error(r.origin, "turns", "no assistant turn after the first user turn");
    ex.answers.push_back(r.turns[t].content);
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<QaExample> read_qa_examples(const std::string& path) {
  if (looks_like_alpaca(path)) return qa_examples(data::read_alpaca(path));
  std::vector<QaExample> out;
  data::LineReader reader(path);
  std::string line;
  while (reader.next(line)) {
    const int64_t ln = reader.line_no();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw DataError(path, ln, "", fmt::format("not JSON: {}", e.what()));
    }
    if (!j.is_object()) throw DataError(path, ln, "", "expected a JSON object per line");
    QaExample ex;
    if (j.contains("prompt")) {
      ex.question = string_field(j, "prompt", path, ln);
    } else if (j.contains("question")) {
      ex.question = string_field(j, "question", path, ln);
    } else {
      throw DataError(path, ln, "prompt", "missing (give \"prompt\" or \"question\")");
    }
    if (j.contains("context")) ex.context = string_field(j, "context", path, ln);
    if (j.contains("answer")) {
      ex.answers.push_back(string_field(j, "answer", path, ln));
    } else if (j.contains("answers")) {
      if (!j["answers"].is_array() || j["answers"].empty()) {
        throw DataError(path, ln, "answers", "expected a non-empty list of strings");
      }
      for (const auto& a : j["answers"]) {
        if (!a.is_string()) throw DataError(path, ln, "answers", "expected a non-empty list of strings");
        ex.answers.push_back(a.get<std::string>());
      }
    } else {
      throw DataError(path, ln, "answer", "missing (give \"answer\" or \"answers\")");
    }
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace biolm::eval

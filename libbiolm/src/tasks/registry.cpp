// The task registry: family name -> factory. A new family is one file in src/tasks/ defining
// its make_<family> plus ONE line in the table below (its declaration beside it).
#include "biolm/core/error.h"
#include "biolm/tasks/task.h"

namespace biolm::tasks {

std::unique_ptr<Task> make_ner(const TaskOptions&);
std::unique_ptr<Task> make_re(const TaskOptions&);
std::unique_ptr<Task> make_nli(const TaskOptions&);
std::unique_ptr<Task> make_sts(const TaskOptions&);
std::unique_ptr<Task> make_qa_span(const TaskOptions&);
std::unique_ptr<Task> make_mcqa(const TaskOptions&);
std::unique_ptr<Task> make_pubmedqa(const TaskOptions&);
std::unique_ptr<Task> make_instruct(const TaskOptions&);
std::unique_ptr<Task> make_hoc(const TaskOptions&);

namespace {

using Factory = std::unique_ptr<Task> (*)(const TaskOptions&);

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> table = {
      {"ner", make_ner},
      {"re", make_re},
      {"nli", make_nli},
      {"sts", make_sts},
      {"qa-span", make_qa_span},
      {"mcqa", make_mcqa},
      {"pubmedqa", make_pubmedqa},
      {"instruct", make_instruct},
      {"hoc", make_hoc},
  };
  return table;
}

}  // namespace

std::vector<std::string> task_names() {
  std::vector<std::string> out;
  for (const auto& [name, f] : registry()) out.push_back(name);
  return out;
}

std::unique_ptr<Task> make_task(const std::string& name, const TaskOptions& options, const std::string& key) {
  std::string valid;
  for (const auto& [n, factory] : registry()) {
    if (n == name) return factory(options);
    valid += (valid.empty() ? "" : "|") + n;
  }
  throw ConfigError(key, "expected " + valid + ", got \"" + name + "\"");
}

}  // namespace biolm::tasks

// biolm generate --model DIR (--prompt TEXT | --prompts FILE.jsonl) [sampling options]: text from a
// causal-LM model directory (io::load_model_dir), one JSON line per prompt:
//   {"prompt", "completion", "tokens", "stop_reason": "eos" | "stop_string" | "max_new_tokens"}
// Sampling is seeded (prompt i uses seed + i), so the same command prints the same lines.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/io/model_dir.h"
#include "biolm/models/generate.h"
#include "command.h"

namespace biolm::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct GenerateArgs {
  std::string model_dir;
  std::string prompt;
  std::string prompts_file;
  int64_t max_new_tokens = 32;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  int64_t seed = 0;
  std::string stop;
  std::string device = "cpu";
};

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw IoError(path, "cannot open the prompts file");
  std::vector<std::string> out;
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      throw DataError(path, n, "json", e.what());
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw DataError(path, n, "prompt", "expected an object with a string field \"prompt\"");
    out.push_back(j["prompt"].get<std::string>());
  }
  if (out.empty()) throw DataError(path, 0, "prompt", "the file holds no prompts");
  return out;
}

void run_generate(const GenerateArgs& a) {
  BIOLM_CHECK(a.prompt.empty() != a.prompts_file.empty(), ConfigError, "--prompt", "give exactly one of --prompt and --prompts");
  const auto prompts = a.prompts_file.empty() ? std::vector<std::string>{a.prompt} : read_prompts(a.prompts_file);
  const auto kind = io::read_model_dir_info(a.model_dir).task;
  if (kind != models::TaskKind::CausalLM) {
    throw ConfigError("--model", fmt::format("{} holds a {} model; generate needs a causal_lm model (a decoder "
                                             "pretrained with objective: clm or instruction-tuned)",
                                             a.model_dir, models::to_string(kind)));
  }
  auto loaded = io::load_model_dir(a.model_dir);
  auto lm = std::dynamic_pointer_cast<models::CausalLMModelImpl>(loaded.model);
  BIOLM_CHECK(lm != nullptr, ConfigError, "--model", a.model_dir + ": the model is not a causal LM");
  BIOLM_CHECK(loaded.tokenizer != nullptr, ConfigError, "--model", a.model_dir + ": the directory has no tokenizer/");
  const auto& tok = *loaded.tokenizer;
  const auto device = core::parse_device(a.device);
  lm->to(device);

  models::GenerationOptions go;
  go.max_new_tokens = a.max_new_tokens;
  go.temperature = a.temperature;
  go.top_k = a.top_k;
  go.top_p = a.top_p;
  const auto& sp = tok.special();
  std::optional<int64_t> end_id = sp.eos ? sp.eos : sp.sep;
  if (end_id) go.stop_tokens.push_back(*end_id);
  models::validate(go);

  for (size_t i = 0; i < prompts.size(); ++i) {
    auto ids = tok.encode(prompts[i], true).ids;
    // The prompt continues: drop an end marker the tokenizer appends ([SEP], </s>).
    if (end_id && !ids.empty() && ids.back() == *end_id) ids.pop_back();
    BIOLM_CHECK(!ids.empty(), ConfigError, "--prompt", "the prompt encodes to no tokens");
    go.seed = static_cast<uint64_t>(a.seed) + i;
    const auto input = torch::tensor(ids, torch::kLong).unsqueeze(0).to(device);
    const auto res = models::generate(*lm, input, torch::Tensor(), go);
    const auto n_new = res.n_new[0].item<int64_t>();
    const auto row = res.new_tokens[0].to(torch::kCPU);
    std::vector<int64_t> gen(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + n_new);
    std::string reason = "max_new_tokens";
    if (!gen.empty() && end_id && gen.back() == *end_id) {
      reason = "eos";
      gen.pop_back();
    }
    // The completion is the text the new tokens add to the decoded prompt (keeps SentencePiece's
    // leading spaces, which decoding the new tokens alone would drop).
    const auto text_of = [&](size_t n) {
      std::vector<int64_t> all = ids;
      all.insert(all.end(), gen.begin(), gen.begin() + static_cast<long>(n));
      const std::string full = tok.decode(all, true), head = tok.decode(ids, true);
      if (full.compare(0, head.size(), head) == 0) return full.substr(head.size());
      return tok.decode(std::vector<int64_t>(gen.begin(), gen.begin() + static_cast<long>(n)), true);
    };
    std::string completion = text_of(gen.size());
    int64_t n_tokens = static_cast<int64_t>(gen.size()) + (reason == "eos" ? 1 : 0);
    if (!a.stop.empty()) {
      const auto at = completion.find(a.stop);
      if (at != std::string::npos) {
        completion = completion.substr(0, at);
        reason = "stop_string";
        // Tokens up to the first one whose text reaches the stop string.
        size_t k = 1;
        while (k < gen.size() && text_of(k).find(a.stop) == std::string::npos) ++k;
        n_tokens = static_cast<int64_t>(k);
      }
    }
    json out = {{"prompt", prompts[i]}, {"completion", completion}, {"tokens", n_tokens}, {"stop_reason", reason}};
    std::cout << out.dump() << "\n" << std::flush;
  }
}

const bool registered = register_command({"generate", "generate text with a causal-LM model directory",
  [](CLI::App& sub) {
    auto a = std::make_shared<GenerateArgs>();
    sub.add_option("--model", a->model_dir, "biolm model directory holding a causal_lm model")->required()->check(CLI::ExistingDirectory);
    sub.add_option("--prompt", a->prompt, "one prompt");
    sub.add_option("--prompts", a->prompts_file, "JSONL file, one {\"prompt\": ...} per line")->check(CLI::ExistingFile);
    sub.add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate at most")->capture_default_str();
    sub.add_option("--temperature", a->temperature, "0 = greedy; > 0 samples")->capture_default_str();
    sub.add_option("--top-k", a->top_k, "sample from the k most likely tokens (0 = all)")->capture_default_str();
    sub.add_option("--top-p", a->top_p, "nucleus sampling mass (1 = all)")->capture_default_str();
    sub.add_option("--seed", a->seed, "sampling seed (prompt i uses seed + i)")->capture_default_str();
    sub.add_option("--stop", a->stop, "cut the completion before this string");
    sub.add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
    sub.callback([a] { run_generate(*a); });
  }});

}  // namespace
}  // namespace biolm::cli

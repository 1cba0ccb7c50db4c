// The fine-tuning example of docs/recipes.md, compiled against the installed package (the
// consumer test builds it; keep the two in sync).
#include <biolm/core/config.h>
#include <biolm/recipes/finetune.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: recipe_example CONFIG.yaml [key.path=value ...]\n";
    return 2;
  }
  try {
    // The YAML tree, with command-line style overrides, read and checked whole before any work.
    auto tree = biolm::core::load_config_file(argv[1]);
    biolm::core::apply_overrides(tree, std::vector<std::string>(argv + 2, argv + argc));
    const auto cfg = biolm::recipes::finetune_config_from_json(tree);

    // Callbacks: the dev metrics after each evaluation, and every step.
    biolm::recipes::FinetuneHooks hooks;
    hooks.eval = [](int64_t step, const biolm::train::Metrics& dev) {
      for (const auto& [name, value] : dev) std::cout << "step " << step << " dev " << name << " " << value << "\n";
    };
    const auto result = biolm::recipes::finetune(cfg, hooks);

    // results.json as a JSON value; the model directory loads with io::load_model_dir.
    std::cout << result.results["tasks"].dump() << "\nmodel: " << result.model_dir << "\n";
    return 0;
  } catch (const biolm::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}

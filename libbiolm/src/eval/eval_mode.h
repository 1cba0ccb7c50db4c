// Internal to libbiolm/src/eval: puts a module in eval mode for one scope (also when the scope
// throws) and gives its previous train/eval mode back, so evaluating never changes a model that
// is being trained.
#pragma once

#include <torch/nn/module.h>

namespace biolm::eval::detail {

class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) {
    module_.eval();
  }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace biolm::eval::detail

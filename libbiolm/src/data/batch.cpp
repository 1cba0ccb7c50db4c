#include "biolm/data/batch.h"

#include "biolm/core/error.h"

namespace biolm::data {

const torch::Tensor& Batch::at(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it == tensors.end()) {
    std::string have;
    for (const auto& kv : tensors) have += (have.empty() ? "" : ", ") + kv.first;
    throw Error("Batch: no tensor named '" + name + "' (has: " + have + ")");
  }
  return it->second;
}

Batch Batch::to(const torch::Device& device) const {
  Batch out;
  out.n_examples = n_examples;
  out.n_target_tokens = n_target_tokens;
  for (const auto& kv : tensors) {
    out.tensors[kv.first] = kv.second.defined() ? kv.second.to(device, /*non_blocking=*/kv.second.is_pinned()) : kv.second;
  }
  return out;
}

}  // namespace biolm::data

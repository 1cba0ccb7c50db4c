// biolm/nn/checkpoint.h: activation (gradient) checkpointing for LibTorch C++, which has no
// torch.utils.checkpoint. The function runs once without recording a graph; in backward it runs
// again with grad enabled on detached copies of the inputs and back-propagates through that
// recomputation (the "reentrant" scheme of PyTorch's checkpoint). Parameter gradients accumulate
// into .grad exactly as without checkpointing. The default CPU generator (and the CUDA generator
// of the inputs' device) is saved before the first run and restored for the recomputation, so
// dropout masks are identical.
#pragma once

#include <torch/types.h>

#include <functional>
#include <vector>

namespace biolm::nn {

using CheckpointFn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

/// outputs = fn(inputs), with fn's activations recomputed in backward instead of stored.
/// Every output must be a defined floating-point tensor. Runs fn directly (no checkpointing) when
/// grad mode is off.
std::vector<torch::Tensor> checkpoint(const CheckpointFn& fn, const std::vector<torch::Tensor>& inputs);

}  // namespace biolm::nn

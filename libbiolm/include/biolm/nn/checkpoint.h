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
/// grad mode is off. `params` are the parameters fn uses: when some of them train but no input
/// requires grad (LoRA / QLoRA on a frozen body: the embeddings' output carries no graph), the
/// outputs still get a backward, through an anchor input, so those parameters receive their
/// gradients. Without it the reentrant scheme would cut them off (PyTorch's use_reentrant=True has
/// the same trap; transformers works around it with enable_input_require_grads()).
std::vector<torch::Tensor> checkpoint(const CheckpointFn& fn, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& params = {});

}  // namespace biolm::nn

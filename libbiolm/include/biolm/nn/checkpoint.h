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
#include <memory>
#include <vector>

namespace torch::nn {
class Module;
}

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

/// What a block loop calls around each block when the blocks' trainable parameters are sharded
/// between ranks (ZeRO-3 per block, dist::DataParallel): the FSDP unit is the block. The block's
/// parameters are gathered before its forward and again before its recomputation in backward,
/// released after each, and its gradients are handed over (reduce-scattered) as soon as the
/// recomputed backward has produced them.
class BlockGather {
 public:
  virtual ~BlockGather() = default;
  virtual void gather(size_t block) = 0;
  virtual void release(size_t block) = 0;
  virtual void gradients_ready(size_t block) = 0;
};

/// A model whose body runs as a sequence of blocks and lets a BlockGather wrap each of them (the
/// Transformer body; test models). Parameters outside the blocks (embeddings, final norm, heads)
/// are the root: gathered for the whole step.
class BlockSequence {
 public:
  virtual ~BlockSequence() = default;
  /// The blocks, in the order the forward runs them.
  virtual std::vector<std::shared_ptr<torch::nn::Module>> sharding_blocks() = 0;
  /// nullptr: no gathering (the default).
  virtual void set_block_gather(std::shared_ptr<BlockGather> gather) = 0;
};

/// Runs block `index` of a BlockSequence: outputs = fn(inputs). Without a gather it is
/// checkpoint() when `recompute` and grad mode is on, else fn itself. With a gather, the block is
/// gathered around fn, and in grad mode it is always recomputed in backward: its parameters are
/// released after the forward, so no activation may keep them for backward (FSDP frees the
/// storage under autograd's saved tensors and re-gathers it; the C++ frontend has no hooks for
/// that, recomputation needs none).
std::vector<torch::Tensor> run_block(const std::shared_ptr<BlockGather>& gather, size_t index, const CheckpointFn& fn,
                                     const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& params,
                                     bool recompute);

}  // namespace biolm::nn

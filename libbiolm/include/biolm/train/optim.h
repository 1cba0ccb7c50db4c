// biolm/train/optim.h: optimizers with parameter groups, and learning-rate schedules.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "biolm/train/config.h"

namespace biolm::train {

/// No weight decay for a parameter that is a bias or a norm weight, decided by shape and name:
/// fewer than 2 dimensions (biases, LayerNorm/RMSNorm weights, IA3 vectors), or a name ending in
/// ".bias", or a last-but-one component containing "norm" ("ln_f.weight" is 1-D, so covered).
bool decays(const std::string& name, const torch::Tensor& param);

/// An optimizer over the trainable (requires_grad) parameters of `model` only, grouped by
/// (lr scale, decay). Frozen parameters get no group and hence no state.
struct OptimizerSetup {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> base_lrs;  ///< per group: config.lr · scale
  std::vector<std::vector<std::string>> group_names;  ///< parameter names per group
};
OptimizerSetup build_optimizer(torch::nn::Module& model, const TrainConfig& config,
                               const std::map<std::string, double>& lr_scales = {});
/// The same grouping over explicit tensors: `tensor` is optimized, its group (lr scale, decay) is
/// decided by the parameter `name` and its full shape `like` (a ZeRO shard piece of a matrix still
/// decays). Pieces of one parameter share its group.
struct OptimizerParam {
  std::string name;
  torch::Tensor like;
  torch::Tensor tensor;
};
OptimizerSetup build_optimizer(const std::vector<OptimizerParam>& params, const TrainConfig& config,
                               const std::map<std::string, double>& lr_scales = {});

/// Multiplier of the base lr for the optimizer step taken after `step` completed steps
/// (step = 0 is the first update):
///   warmup (step < W):   (step + 1) / W
///   constant:            1
///   linear:              m + (1 - m) · (1 - p)
///   cosine:              m + (1 - m) · (1 + cos(pi · p)) / 2
/// with p = (step - W) / max(1, max_steps - W) clamped to [0, 1] and m = min_lr_ratio.
double lr_factor(const TrainConfig& config, int64_t step);
/// Sets every group's lr to base_lrs[g] · lr_factor(config, step).
void apply_lr(OptimizerSetup& setup, const TrainConfig& config, int64_t step);

/// Scales the gradients of `params` so their global L2 norm is at most max_norm, as
/// torch.nn.utils.clip_grad_norm_ (coefficient max_norm / (norm + 1e-6), clamped to 1, applied
/// always, so an unclipped step multiplies by exactly 1). Returns the norm before clipping as a
/// 0-dim float tensor on the gradients' device: no device->host synchronisation, unlike
/// LibTorch's C++ clip_grad_norm_, which returns a double. Undefined grads are ignored; with none
/// the result is a 0 on the CPU.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

/// Sum over the optimizer state of exp_avg + exp_avg_sq (AdamW) or momentum buffers (SGD)
/// elements: 2 × trainable elements for AdamW after one step.
int64_t optimizer_state_numel(const torch::optim::Optimizer& optimizer);

}  // namespace biolm::train

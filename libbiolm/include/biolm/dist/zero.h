// biolm/dist/zero.h: data parallelism with ZeRO sharding (Rajbhandari et al. 2020, "ZeRO:
// Memory Optimizations Toward Training Trillion Parameter Models", §5) on c10d collectives.
//
// The trainable parameters (frozen ones are neither sharded nor communicated: with adapters only
// the adapter and head travel) are laid out, in named_parameters order, in one flat fp32 vector of
// S elements, padded to W·s and cut into W contiguous shards of s = ceil(S/W); rank r owns
// [r·s, (r+1)·s). Per stage, after the step's last backward:
//   0  replicated:  gradients all-reduced in buckets; every rank steps the whole optimizer.
//   1  optimizer:   gradients all-reduced; each rank steps only its shard (optimizer state 1/W),
//                   then the updated shards are all-gathered into the parameters.
//   2  + gradients: gradients reduced to their owner bucket by bucket (a reduce-scatter), the full
//                   gradients freed; only the shard's gradient is kept and stepped.
//   3  + parameters: between steps a rank holds only its shard of the trainable parameters (the
//                   module's tensors are emptied); gather_parameters() all-gathers them before the
//                   step's forward (and for evaluation, checkpoints and the end of training), and
//                   the step frees them again. The gathering unit is the whole set of trainable
//                   parameters, not a block: LibTorch C++ modules have no forward pre-hooks, see
//                   docs/distributed.md for what that leaves.
// Every stage divides the summed gradients by the global target count and clips by the global
// norm, so all of them equal the single-process step up to float summation order (tested at
// 1e-6 on weights: tests/dist/test_zero.cpp).
//
// Reduce-scatter is built from reduce-to-owner calls (Gloo in LibTorch 1.13 has no
// reduce_scatter); collectives of one bucket pass are issued asynchronously and waited together.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/train/config.h"
#include "biolm/train/optim.h"

namespace biolm::train {
class ProcessGroup;
}

namespace biolm::dist {

enum class ZeroStage { Replicated = 0, OptimizerState = 1, Gradients = 2, Parameters = 3 };

/// One trainable parameter's place in the flat vector (named_parameters order, frozen ones out).
struct FlatEntry {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t numel = 0;
};
/// The flat layout of `model`'s trainable parameters (what DataParallel shards).
std::vector<FlatEntry> flat_layout(torch::nn::Module& model);

/// Elements [begin, begin + numel) of the flat state `key` ("exp_avg", "param", ...), as a CPU
/// tensor: how a loader hands a checkpoint's state over without holding all of it.
using FlatReader = std::function<torch::Tensor(const std::string& key, int64_t begin, int64_t numel)>;

/// A single process (no process group, the optimizer of train::build_optimizer(model, ...)) takes
/// the whole flat optimizer state: `steps` per trainable parameter, 0 = no state. `where` names
/// the file in errors.
void load_flat_optimizer_state(torch::optim::Optimizer& optimizer, torch::nn::Module& model, const FlatReader& read,
                               const std::vector<int64_t>& steps, const std::string& where);

/// Elements this rank holds between steps (what ZeRO divides by W).
struct ShardMemory {
  int64_t trainable_numel = 0;   ///< S: all trainable elements of the model
  int64_t parameter_numel = 0;   ///< trainable parameter elements held (S, or s under stage 3)
  int64_t optimizer_numel = 0;   ///< optimizer state elements (2 per element stepped for AdamW)
};

class DataParallel {
 public:
  /// Lays out the trainable parameters and, at stage 3, releases all but this rank's shard. The
  /// model must already be identical on every rank (train::broadcast_module).
  DataParallel(std::shared_ptr<train::ProcessGroup> group, torch::nn::Module& model, const train::TrainConfig& config);
  ~DataParallel();

  ZeroStage stage() const { return stage_; }
  /// The optimizer over what this rank steps: every trainable parameter at stage 0, its pieces of
  /// its shard otherwise (grouped by lr scale and decay as train::build_optimizer).
  train::OptimizerSetup build_optimizer(const train::TrainConfig& config,
                                        const std::map<std::string, double>& lr_scales) const;

  /// Stage 3: all-gathers the trainable parameters into the module (a no-op when they are
  /// already gathered or at stages 0-2). Collective.
  void gather_parameters();
  /// The module's trainable parameters were overwritten (a checkpoint loaded, after
  /// gather_parameters): refreshes this rank's master pieces from them (stage 3 releases again).
  void parameters_loaded();
  /// After the step's backward passes: sums the gradients over ranks, multiplies them by
  /// grad_scale (1 / global target count), clips to clip_norm (global L2 norm, as
  /// train::clip_grad_norm), steps and brings the parameters back in line (all-gather; stage 3
  /// releases them instead). Returns the pre-clip norm (undefined without clipping). Collective.
  torch::Tensor step(torch::optim::Optimizer& optimizer, double grad_scale, const std::optional<double>& clip_norm);

  /// The optimizer state of the whole model in flat, world-size independent coordinates
  /// ("exp_avg", "exp_avg_sq" (AdamW) or "momentum_buffer" (SGD): S elements each; "step": one
  /// per trainable parameter, 0 = no state yet), on every rank. Collective (all-gather).
  std::map<std::string, torch::Tensor> gather_optimizer_state(torch::optim::Optimizer& optimizer);
  /// Sets this rank's share of a state from gather_optimizer_state at any world size and stage;
  /// `where` names the file in errors.
  void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::map<std::string, torch::Tensor>& flat,
                            const std::string& where);
  /// The same from a reader: only this rank's pieces are read.
  void load_optimizer_state(torch::optim::Optimizer& optimizer, const FlatReader& read,
                            const std::vector<int64_t>& steps, const std::string& where);

  // --- sharded checkpoints (dist/sharded_checkpoint.h): every rank saves its own range ---------
  /// [begin, end) of the flat vector this rank writes: its shard without the padding (the whole
  /// vector at stage 0).
  std::pair<int64_t, int64_t> own_range() const;
  /// This rank's optimizer state over own_range() ("exp_avg", "exp_avg_sq" or "momentum_buffer";
  /// zeros where a parameter has no state yet). Not collective: nothing else is gathered.
  std::map<std::string, torch::Tensor> local_optimizer_state(torch::optim::Optimizer& optimizer) const;
  /// Steps per trainable parameter (0 = no state), max over ranks. Collective (small all-gather).
  std::vector<int64_t> optimizer_steps(torch::optim::Optimizer& optimizer);
  /// This rank's master parameters over own_range() (stage 1-3).
  torch::Tensor local_parameters() const;
  /// Stage 3, parameters released: sets this rank's master pieces from `read("param", ...)`.
  void load_local_parameters(const FlatReader& read);
  std::vector<FlatEntry> layout() const;
  int world_size() const { return world_; }
  int rank() const { return rank_; }
  bool parameters_gathered() const { return gathered_; }

  ShardMemory memory(const torch::optim::Optimizer& optimizer) const;

 private:
  struct Slot {
    std::string name;
    torch::Tensor param;
    std::vector<int64_t> shape;
    int64_t offset = 0;  ///< in the flat vector
    int64_t numel = 0;
  };
  struct Piece {  ///< what this rank steps of one slot: an optimizer parameter
    size_t slot = 0;
    int64_t begin = 0;  ///< flat offset
    int64_t numel = 0;
    torch::Tensor tensor;
  };
  /// First flat element this rank's optimizer covers (0 at stage 0) and how many.
  int64_t own_begin() const;
  int64_t own_size() const;
  torch::Tensor flat_gradients() const;
  std::vector<bool> gradient_defined_anywhere();
  /// Every rank's pieces (length own_size, zeros where a rank has nothing) -> the flat vector (S).
  torch::Tensor gather_flat(const std::function<torch::Tensor(const Piece&)>& get);
  void release_parameters();

  std::shared_ptr<train::ProcessGroup> group_;
  ZeroStage stage_;
  int64_t bucket_numel_;
  int world_ = 1, rank_ = 0;
  torch::TensorOptions options_;
  std::vector<Slot> slots_;
  std::vector<Piece> pieces_;
  int64_t total_ = 0, shard_ = 0;
  bool gathered_ = true;
};

}  // namespace biolm::dist

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
//                   module's tensors are emptied). With train.zero3_unit "block" (default) and a
//                   model whose body is an nn::BlockSequence, each block is an FSDP unit: the
//                   block loop gathers it before its forward and before its recomputation in
//                   backward and releases it after each, and its gradients are reduce-scattered to
//                   their owners as soon as its backward is done; the rest (embeddings, final
//                   norm, heads: the root) is gathered for the whole step. With "model" (or a
//                   model without blocks) the whole trainable set is gathered for the step.
//                   gather_parameters() gathers everything (evaluation, checkpoints, the end).
// Every stage divides the summed gradients by the global target count and clips by the global
// norm, so all of them equal the single-process step up to float summation order (tested at
// 1e-6 on weights: tests/dist/test_zero.cpp).
//
// Reduce-scatter is built from reduce-to-owner calls (Gloo in LibTorch 1.13 has no
// reduce_scatter); collectives of one bucket pass are issued asynchronously and waited together.
// A unit's gather is a broadcast of each owner's part of the unit's flat range (the layout stays
// the world-size independent flat vector, so checkpoints do not depend on the unit).
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/nn/checkpoint.h"
#include "biolm/train/config.h"
#include "biolm/train/distributed.h"
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
  /// The most trainable parameter elements gathered at once since construction (S when
  /// the whole set is gathered; root + the largest block under per-block ZeRO-3).
  int64_t peak_parameter_numel = 0;
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
  /// Before a training step's first forward. Stage 3 per block: gathers the root only (the blocks
  /// are gathered by the block loop); stage 3 whole: gather_parameters(). Collective.
  void begin_step();
  /// After every micro-batch of a step, on every rank: whether this rank ran the forward and the
  /// backward. After the last one, the gradient buckets not started during the backward pass
  /// start (stages 0-2), before any other collective. Under per-block ZeRO-3 a rank that ran neither (an empty slice of a small global
  /// batch) or no backward (no target token) takes part in the collectives it missed, in the
  /// order the others run them (the sequence of the last complete micro-batch). Collective then.
  void micro_batch_done(bool forward_ran, bool backward_ran);
  /// The step is not taken (non-finite loss, no target token anywhere): drops the gradients
  /// already reduced; the root stays gathered until the next step.
  void discard_step();
  /// Before each micro-batch of a step (the trainer): on the step's last one, stages 0-2 (and 3
  /// gathered whole) start each gradient bucket's collective as soon as the backward pass has
  /// filled it, overlapping communication with the rest of the backward pass.
  void begin_micro_batch(bool last);
  /// Turns that overlap off (then every bucket is reduced in step(); for comparisons). On by default.
  void set_overlap(bool on) { overlap_ = on; }
  /// Bucket size in elements (train.bucket_mb sets it; tests use buckets smaller than a MB).
  void set_bucket_numel(int64_t n);
  /// Whether stage 3 gathers block by block.
  bool per_block() const { return !units_.empty(); }
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
  /// A gathering unit of per-block ZeRO-3: some slots, as contiguous runs of the flat vector.
  struct Unit {
    std::vector<size_t> slots;
    std::vector<std::pair<int64_t, int64_t>> runs;  ///< [begin, end) flat ranges
    int64_t numel = 0;
    bool gathered = false;
  };
  struct Event {  ///< one block-loop call, for replaying a missed micro-batch
    enum Kind { Gather, Release, Reduce } kind;
    size_t unit;
    bool backward;
  };
  class Gather;  ///< the nn::BlockGather handed to each block sequence
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
  std::vector<bool> any_rank(const std::vector<bool>& local);
  void copy_own(int64_t lo, int64_t hi, torch::Tensor dst) const;  ///< my pieces' elements in [lo, hi)
  std::vector<Event> default_trace() const;
  torch::Tensor finish_step(torch::optim::Optimizer& optimizer, torch::Tensor shard, const std::vector<bool>& defined,
                            double grad_scale, const std::optional<double>& clip_norm);
  /// Every rank's pieces (length own_size, zeros where a rank has nothing) -> the flat vector (S).
  torch::Tensor gather_flat(const std::function<torch::Tensor(const Piece&)>& get);
  void release_parameters();
  // Per-block ZeRO-3.
  void find_units(torch::nn::Module& model, const train::TrainConfig& config);
  void gather_unit(Unit& u);
  void release_unit(Unit& u);
  /// Starts reducing u's gradients onto their owners (frees them), after finishing the previous
  /// unit's reduce: one unit in flight, overlapped with the next block's recompute and backward.
  void reduce_unit(const Unit& u);
  void finish_reduce();  ///< waits for the unit in flight and adds this rank's part to shard_grad_
  void on_event(const Event& e);
  void apply(const Event& e);  ///< gather, release or reduce one unit
  /// fn(r, lo, hi) for every rank r whose shard meets [begin, end), with the intersection.
  template <typename Fn>
  void for_each_owner(int64_t begin, int64_t end, Fn fn) const {
    for (int64_t r = begin / shard_; r * shard_ < end; ++r) {
      fn(static_cast<int>(r), std::max(begin, r * shard_), std::min(end, (r + 1) * shard_));
    }
  }
  void note_gathered(int64_t delta);

  std::shared_ptr<train::ProcessGroup> group_;
  ZeroStage stage_;
  int64_t bucket_numel_;
  int world_ = 1, rank_ = 0;
  torch::TensorOptions options_;
  std::vector<Slot> slots_;
  std::vector<Piece> pieces_;
  int64_t total_ = 0, shard_ = 0;
  bool gathered_ = true;
  std::vector<Unit> units_;        ///< per-block ZeRO-3: one per block with trainable slots
  Unit root_;                      ///< the slots of no block
  std::vector<nn::BlockSequence*> sequences_;  ///< given a Gather (taken back in ~DataParallel)
  bool in_step_ = false;           ///< between begin_step() and step()/discard_step()
  torch::Tensor shard_grad_;       ///< this rank's reduced gradient shard, accumulated over the step
  std::vector<bool> grad_seen_;    ///< per slot: a gradient was reduced on this rank this step
  std::vector<Event> events_, last_trace_;
  /// The last unit's reduce-to-owner, still running (overlapped with the next block's backward).
  struct InFlight {
    std::vector<train::ProcessGroup::Pending> pending;
    std::vector<std::pair<torch::Tensor, int64_t>> mine;  ///< this rank's segments, flat offsets
    torch::Tensor flat;                                   ///< what the collectives read and write
  };
  std::optional<InFlight> in_flight_;
  // Overlapped bucket reduction (stages 0-2 and 3 whole): a hook on every trainable parameter
  // copies its step gradient (.grad + the last backward's) into flat_ when the last micro-batch's
  // backward produces it; buckets cover flat_ from its end (the head's gradients come first) and
  // are launched in index order, the same on every rank, each once all of its elements are in.
  struct Bucket {
    int64_t begin = 0, end = 0;
    int64_t real = 0;     ///< elements of parameters (not padding) in it
    int64_t missing = 0;  ///< of those, not yet in flat_
  };
  void build_buckets();
  void register_hooks();
  void wait_buckets();
  void on_gradient(size_t slot, const torch::Tensor& grad);
  void fill_slot(size_t slot, const torch::Tensor& grad);  ///< flat_ <- .grad (+ grad), buckets updated
  void launch_ready();
  void launch_bucket(const Bucket& b);
  void launch_rest();     ///< fills what the backward pass did not and starts every bucket left, in order
  void finish_buckets();  ///< launch_rest(), then wait_buckets()
  bool overlap_ = true;
  bool collecting_ = false;       ///< the hooks write into flat_ (the last micro-batch, until launch_rest)
  bool overlapped_step_ = false;  ///< flat_ holds this step's gradients, reduced bucket by bucket
  std::vector<Bucket> buckets_;
  std::vector<bool> slot_in_;
  torch::Tensor flat_;
  size_t next_launch_ = 0;
  std::vector<train::ProcessGroup::Pending> bucket_pending_;
  std::vector<std::pair<size_t, unsigned>> hooks_;  ///< (slot, handle)
  int64_t gathered_numel_ = 0, peak_gathered_ = 0;
};

}  // namespace biolm::dist

// biolm/train/trainer.h: the training loop.
//
//   train::TrainConfig cfg;  cfg.max_steps = 1000; cfg.lr = 2e-4; cfg.run_dir = "runs/lora";
//   train::Trainer trainer(model, cfg);
//   trainer.set_lr_scales(summary.lr_scales);                  // from peft::apply (optional)
//   trainer.set_eval([&](models::TrainableModel& m, int64_t step) { return evaluate(m); });
//   train::TrainResult r = trainer.fit(train_loader);
//   return r.status == train::Status::Interrupted ? 130 : 0;
//
// One optimizer step = grad_accum micro-batches (per rank). The loss of each micro-batch is its
// SUM over target tokens; gradients are accumulated from those sums, summed across ranks, and
// divided by the total target-token count of the step (all micro-batches, all ranks), so the step
// equals one big batch regardless of how tokens fall into micro-batches.
//
// Host-device synchronisation: one per optimizer step. Micro-batch losses are summed on the
// device; after the last backward one small copy brings the step's loss sum and a fused
// "any non-finite" flag to the host, because the skip decision must precede the optimizer step
// (LibTorch optimizers count steps on the host; a zero-gradient AdamW step is not a no-op). The
// pre-clip gradient norm stays on the device and is copied, stacked, once per log step (every
// step only while a step callback is set, since it receives StepInfo::grad_norm).
//
// Run directory (rank 0 writes, others write nothing):
//   config.json       the resolved TrainConfig (seed actually used) plus set_run_info() (peft
//                     method, model config) and world_size, written before step 0
//   versions.json     biolm::build_info() (biolm, LibTorch, CUDA, compiler, git)
//   metrics.jsonl     {"step", "loss", "lr", "tokens", "tokens_per_s", "skipped_steps", "elapsed_s",
//                     "step_s" (seconds in training steps so far: tokens_per_s = tokens since the
//                     start / step_s; elapsed_s adds evaluations and checkpoints), "grad_norm"?, "epsilon"? (DP-SGD: spent so far at train.dp.delta)} per log step, {"step", "eval": {...}, "best"?} per evaluation,
//                     {"resumed_from": step} when a run resumes
//   checkpoints/step-N/ model.safetensors (all parameters and buffers, or adapter_state with
//                     save_adapter_only), optimizer.pt (LibTorch archive of the optimizer state),
//                     rng.safetensors (rank 0's RNG state as uint8 tensors "cpu", "cuda.<i>"),
//                     rank-<r>.safetensors for every other rank r of a data-parallel run (its RNG
//                     state plus "state_json": its loader position and epoch as UTF-8 bytes),
//                     trainer_state.json, manifest.json
//
// DP-SGD (config.dp set, train/dp.h): the source must be a train::PoissonLoader with
// micro_batches == grad_accum; each step clips per-example gradients, adds noise once, divides
// by the expected batch size and always steps (an empty or target-less logical batch too); the
// accountant's steps go into every checkpoint and TrainResult::privacy.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/data/batch.h"
#include "biolm/train/config.h"
#include "biolm/models/trainable.h"
#include "biolm/train/model.h"  // the deprecated train::TrainableModel / train::StepOutput spellings, one release
#include "biolm/train/progress.h"

namespace biolm::train {

class ProcessGroup;

enum class Status {
  Completed,     ///< max_steps reached
  EarlyStopped,  ///< patience exhausted
  Interrupted    ///< SIGINT/SIGTERM (or request_stop): checkpoint written; tools exit 130
};

struct StepInfo {
  int64_t step = 0;  ///< optimizer steps done, this one included
  double loss = 0.0; ///< loss_sum / n_target_tokens over the step (all ranks); NaN when skipped
  double lr = 0.0;
  int64_t n_target_tokens = 0;
  std::optional<double> grad_norm;
  bool skipped = false;  ///< non-finite loss: no update
};

struct TrainResult {
  Status status = Status::Completed;
  int64_t step = 0;
  std::vector<StepInfo> history;  ///< the steps run by this call
  std::optional<double> best_metric;
  std::optional<int64_t> best_step;
  int64_t nonfinite_steps = 0;
  std::filesystem::path last_checkpoint;
  /// DP-SGD only (null otherwise): train::privacy_report() after the last step.
  nlohmann::json privacy;
};

using Metrics = std::map<std::string, double>;
/// Called every eval_every steps with the model in eval mode and gradients off.
using EvalFn = std::function<Metrics(models::TrainableModel& model, int64_t step)>;

class Trainer {
 public:
  Trainer(models::TrainableModel& model, TrainConfig config);
  ~Trainer();

  /// lr multipliers by parameter name (peft::PeftSummary::lr_scales).
  void set_lr_scales(std::map<std::string, double> scales) { lr_scales_ = std::move(scales); }
  void set_eval(EvalFn fn) { eval_ = std::move(fn); }
  /// Rank 0, every log_every steps.
  void set_progress(std::function<void(const ProgressEvent&)> fn) { progress_ = std::move(fn); }
  /// Every rank, after every step (tests use it to inject signals).
  void set_step_callback(std::function<void(const StepInfo&)> fn) { on_step_ = std::move(fn); }
  /// Extra records for config.json and checkpoints (model config, peft method, data paths).
  void set_run_info(nlohmann::json info) { run_info_ = std::move(info); }
  /// Data parallelism; without it the run is single-process.
  void set_process_group(std::shared_ptr<ProcessGroup> group) { group_ = std::move(group); }

  /// Trains until max_steps, early stopping or a stop signal. Resumes first when config.resume
  /// is set. Throws Error after more than max_nonfinite_steps non-finite steps.
  TrainResult fit(data::BatchSource& train);

  /// Writes a checkpoint of the current state now and returns its directory (rank 0; other ranks
  /// return an empty path). Collective under data parallelism: every rank must call it, since
  /// each rank's loader position and RNG state are gathered into the checkpoint.
  std::filesystem::path save_checkpoint();
  /// Loads model, optimizer, schedule, RNG, loader position and counters from `dir` (verified
  /// first; CheckpointError when invalid or when it does not fit the model).
  void load_checkpoint(const std::filesystem::path& dir, data::BatchSource& train);

  const TrainConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  std::filesystem::path checkpoint_root() const;

 private:
  void setup();
  bool is_rank0() const;
  data::Batch next_batch(data::BatchSource& source);
  /// One optimizer step; `grad_norm` receives the pre-clip norm (device tensor) when clipping.
  StepInfo train_step(data::BatchSource& source, torch::Tensor& grad_norm);
  /// Forward and backward of one micro-batch (autocast per config); adds its loss to `loss_sum`
  /// on the device and returns its target count.
  int64_t forward_backward(const data::Batch& batch, torch::Tensor& loss_sum);
  /// The DP-SGD step (train/dp.h).
  StepInfo dp_train_step(data::BatchSource& source);
  void setup_dp(data::BatchSource& source);
  /// Counts a non-finite step; throws past max_nonfinite_steps.
  void note_nonfinite_step();
  void write_run_files();
  void append_metrics(const nlohmann::json& record);

  models::TrainableModel& model_;
  TrainConfig config_;
  std::map<std::string, double> lr_scales_;
  EvalFn eval_;
  std::function<void(const ProgressEvent&)> progress_;
  std::function<void(const StepInfo&)> on_step_;
  nlohmann::json run_info_ = nlohmann::json::object();
  std::shared_ptr<ProcessGroup> group_;

  struct State;
  std::unique_ptr<State> state_;
  int64_t step_ = 0;
};

}  // namespace biolm::train

// biolm/train/config.h: everything the trainer is told, as one plain struct read from JSON/YAML.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace biolm::core {
class ConfigReader;
}

namespace biolm::train {

enum class OptimizerKind { AdamW, Sgd };
enum class ScheduleKind { Constant, Linear, Cosine };
enum class MetricMode { Max, Min };
/// How train.zero >= 1 runs write the optimizer state (docs/distributed.md, "Checkpoints").
enum class CheckpointFormat {
  Sharded,       ///< every rank writes its flat range to shards/ in parallel, rank 0 the metadata
  Consolidated,  ///< gathered to rank 0, written as one optimizer.safetensors
};
/// What train.zero: 3 gathers at once (docs/distributed.md, "ZeRO stages").
enum class Zero3Unit {
  Block,  ///< one block at a time, released after its forward and after its recomputed backward (FSDP)
  Model,  ///< the whole trainable set, held through the step's forward and backward
};
/// How DP-SGD draws a logical batch. Only Poisson sampling (each example independently with
/// probability q, as Opacus' DPDataLoader) has the accounting the RDP accountant computes.
enum class DpSampling { Poisson };

/// train.dp: differentially private SGD (train/dp.h, docs/privacy.md). Exactly one of
/// noise_multiplier and target_epsilon.
struct DpConfig {
  std::optional<double> noise_multiplier;  ///< σ: noise std = σ · max_grad_norm on the summed gradient
  std::optional<double> target_epsilon;    ///< σ found so that max_steps steps spend at most this ε at delta
  double max_grad_norm = 1.0;              ///< C: every example's gradient is clipped to this L2 norm
  double delta = 1e-5;                     ///< δ of (ε, δ)-DP; choose below 1 / dataset size
  DpSampling sampling = DpSampling::Poisson;
};

struct TrainConfig {
  // --- steps and batches
  int64_t max_steps = 1000;  ///< optimizer steps
  int64_t grad_accum = 1;    ///< micro-batches per optimizer step
  // --- optimizer
  OptimizerKind optimizer = OptimizerKind::AdamW;
  double lr = 1e-4;
  double weight_decay = 0.0;  ///< decoupled (AdamW) / L2 (SGD); never on biases and norm weights
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double momentum = 0.0;  ///< SGD only
  /// AdamW through LibTorch's fused kernel where the build has it (2.1+ CUDA, 2.4+ CPU; see
  /// core/compat.h); elsewhere torch::optim::AdamW, with a log line. Same update either way.
  bool fused_optimizer = true;
  // --- schedule: lr(step) = lr · factor(step), see optim.h
  ScheduleKind schedule = ScheduleKind::Constant;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;  ///< linear/cosine decay ends at lr · min_lr_ratio
  // --- numerics
  std::optional<double> clip_grad_norm;  ///< global L2 norm over all trainable gradients
  bool bf16 = false;                     ///< bf16 autocast (CUDA and CPU); fp32 weights and state
  bool activation_checkpointing = false; ///< true: TrainableModel::set_activation_checkpointing(true); false leaves the model's own setting
  int64_t max_nonfinite_steps = 10;      ///< NaN/Inf steps skipped before the run stops with an error
  // --- evaluation
  int64_t eval_every = 0;                ///< 0: no periodic evaluation
  std::optional<std::string> best_metric;  ///< metric of the eval callback tracked for "best"
  MetricMode best_mode = MetricMode::Max;
  std::optional<int64_t> early_stopping_patience;  ///< evaluations without improvement
  // --- logging and checkpoints
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;  ///< 0: only at the end, on interruption and at new bests
  int64_t keep_last = 3;         ///< step checkpoints kept (the best one is kept besides)
  bool save_adapter_only = false;  ///< checkpoints hold trainable parameters only (peft)
  std::string run_dir = "run";
  /// "auto": newest valid checkpoint in run_dir/checkpoints (fresh start if there is none);
  /// a path: that checkpoint directory (refused with CheckpointError when invalid).
  std::optional<std::string> resume;
  std::string device = "cpu";
  std::optional<std::uint64_t> seed;  ///< null: drawn, then recorded in config.json
  int64_t bucket_mb = 25;             ///< data-parallel gradient bucket size
  /// Data-parallel sharding (dist/zero.h, docs/distributed.md): 0 replicated, 1 optimizer state
  /// sharded, 2 + gradients reduce-scattered, 3 + parameters sharded at rest.
  int zero = 0;
  /// train.zero >= 1 under data parallelism: "sharded" (default) or "consolidated". Ignored for
  /// train.zero: 0 and a single process (optimizer.pt).
  CheckpointFormat checkpoint_format = CheckpointFormat::Sharded;
  /// train.zero: 3: the gathering unit. "block" needs a model whose body is a block sequence
  /// (nn::BlockSequence: every Transformer); other models are gathered whole.
  Zero3Unit zero3_unit = Zero3Unit::Block;
  double dist_timeout_s = 300;        ///< a collective waiting longer for a dead/hung rank fails
  bool handle_signals = true;         ///< SIGINT/SIGTERM: finish the step, checkpoint, return Interrupted
  // --- differential privacy
  std::optional<DpConfig> dp;  ///< unset: ordinary training; set: DP-SGD (needs a train::PoissonLoader)

  /// Throws ConfigError("train.<field>") for out-of-range values (all of them at once).
  void validate() const;
  /// Records every out-of-range value in `r` (keys relative to r: "train.lr" under child "train").
  void validate(core::ConfigReader& r) const;
};

nlohmann::json to_json(const TrainConfig& config);
/// Reads the train section from `r` (the caller's child "train"): wrong types, bad choices and bad
/// ranges are recorded there with their key path; unknown keys are left to the caller's finish().
TrainConfig read_train_config(core::ConfigReader& r);
/// read_train_config on its own reader: throws ONE ConfigError listing every unknown key, wrong
/// type and bad range, each naming "<key>.<field>".
TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& key = "train");

}  // namespace biolm::train

#include "biolm/train/config.h"

#include <nlohmann/json.hpp>

#include <set>

#include "biolm/core/config.h"
#include "biolm/core/error.h"

namespace biolm::train {
namespace {

// The JSON spellings, read by ConfigReader::choice and written by to_json.
constexpr std::pair<OptimizerKind, const char*> kOptimizers[] = {{OptimizerKind::AdamW, "adamw"},
                                                                 {OptimizerKind::Sgd, "sgd"}};
constexpr std::pair<ScheduleKind, const char*> kSchedules[] = {
    {ScheduleKind::Constant, "constant"}, {ScheduleKind::Linear, "linear"}, {ScheduleKind::Cosine, "cosine"}};
constexpr std::pair<MetricMode, const char*> kMetricModes[] = {{MetricMode::Max, "max"}, {MetricMode::Min, "min"}};
constexpr std::pair<DpSampling, const char*> kDpSamplings[] = {{DpSampling::Poisson, "poisson"}};
constexpr std::pair<CheckpointFormat, const char*> kCheckpointFormats[] = {
    {CheckpointFormat::Sharded, "sharded"}, {CheckpointFormat::Consolidated, "consolidated"}};
constexpr std::pair<Zero3Unit, const char*> kZero3Units[] = {{Zero3Unit::Block, "block"}, {Zero3Unit::Model, "model"}};

template <typename E, size_t N>
std::string spelling(const std::pair<E, const char*> (&table)[N], E v) {
  for (const auto& [value, name] : table)
    if (value == v) return name;
  return "?";
}
std::string kind_name(OptimizerKind k) { return spelling(kOptimizers, k); }
std::string kind_name(ScheduleKind k) { return spelling(kSchedules, k); }
std::string kind_name(MetricMode m) { return spelling(kMetricModes, m); }
std::string kind_name(CheckpointFormat f) { return spelling(kCheckpointFormats, f); }

}  // namespace

void TrainConfig::validate() const {
  core::ConfigReader r(nlohmann::json::object(), "train");
  validate(r);
  r.throw_if_errors();
}

void TrainConfig::validate(core::ConfigReader& r) const {
  const auto check = [&](bool ok, const char* field, const std::string& msg) { r.check(ok, field, msg); };
  check(max_steps > 0, "max_steps", "must be > 0");
  check(grad_accum > 0, "grad_accum", "must be > 0");
  check(lr > 0, "lr", "must be > 0");
  check(weight_decay >= 0, "weight_decay", "must be >= 0");
  check(beta1 >= 0 && beta1 < 1, "beta1", "must be in [0, 1)");
  check(beta2 >= 0 && beta2 < 1, "beta2", "must be in [0, 1)");
  check(eps > 0, "eps", "must be > 0");
  check(momentum >= 0 && momentum < 1, "momentum", "must be in [0, 1)");
  check(warmup_steps >= 0 && warmup_steps <= max_steps, "warmup_steps", "must be in [0, max_steps]");
  check(min_lr_ratio >= 0 && min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]");
  check(!clip_grad_norm || *clip_grad_norm > 0, "clip_grad_norm", "must be > 0 (or null for no clipping)");
  check(max_nonfinite_steps >= 0, "max_nonfinite_steps", "must be >= 0");
  check(eval_every >= 0, "eval_every", "must be >= 0");
  check(!best_metric || eval_every > 0, "best_metric", "needs eval_every > 0");
  check(!early_stopping_patience || (*early_stopping_patience > 0 && best_metric), "early_stopping_patience",
        "must be > 0 and needs best_metric");
  check(log_every > 0, "log_every", "must be > 0");
  check(checkpoint_every >= 0, "checkpoint_every", "must be >= 0");
  check(keep_last > 0, "keep_last", "must be > 0");
  check(!run_dir.empty(), "run_dir", "must not be empty");
  check(bucket_mb > 0, "bucket_mb", "must be > 0");
  check(zero >= 0 && zero <= 3, "zero", "must be 0, 1, 2 or 3");
  check(dist_timeout_s > 0, "dist_timeout_s", "must be > 0");
  if (dp) {
    check(dp->noise_multiplier.has_value() != dp->target_epsilon.has_value(), "dp",
          "give exactly one of noise_multiplier and target_epsilon");
    check(!dp->noise_multiplier || *dp->noise_multiplier >= 0, "dp.noise_multiplier", "must be >= 0");
    check(!dp->target_epsilon || *dp->target_epsilon > 0, "dp.target_epsilon", "must be > 0");
    check(dp->max_grad_norm > 0, "dp.max_grad_norm", "must be > 0");
    check(dp->delta > 0 && dp->delta < 1, "dp.delta", "must be in (0, 1)");
    check(!clip_grad_norm, "clip_grad_norm",
          "cannot be combined with train.dp: DP-SGD clips every example's gradient to train.dp.max_grad_norm");
    check(!activation_checkpointing, "activation_checkpointing",
          "cannot be combined with train.dp: the recomputed forward would record each layer's activations twice");
  }
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j;
  j["max_steps"] = c.max_steps;
  j["grad_accum"] = c.grad_accum;
  j["optimizer"] = kind_name(c.optimizer);
  j["lr"] = c.lr;
  j["weight_decay"] = c.weight_decay;
  j["beta1"] = c.beta1;
  j["beta2"] = c.beta2;
  j["eps"] = c.eps;
  j["momentum"] = c.momentum;
  j["schedule"] = kind_name(c.schedule);
  j["warmup_steps"] = c.warmup_steps;
  j["min_lr_ratio"] = c.min_lr_ratio;
  j["clip_grad_norm"] = c.clip_grad_norm ? nlohmann::json(*c.clip_grad_norm) : nlohmann::json(nullptr);
  j["bf16"] = c.bf16;
  j["fused_optimizer"] = c.fused_optimizer;
  j["activation_checkpointing"] = c.activation_checkpointing;
  j["max_nonfinite_steps"] = c.max_nonfinite_steps;
  j["eval_every"] = c.eval_every;
  j["best_metric"] = c.best_metric ? nlohmann::json(*c.best_metric) : nlohmann::json(nullptr);
  j["best_mode"] = kind_name(c.best_mode);
  j["early_stopping_patience"] =
      c.early_stopping_patience ? nlohmann::json(*c.early_stopping_patience) : nlohmann::json(nullptr);
  j["log_every"] = c.log_every;
  j["checkpoint_every"] = c.checkpoint_every;
  j["keep_last"] = c.keep_last;
  j["save_adapter_only"] = c.save_adapter_only;
  j["run_dir"] = c.run_dir;
  j["resume"] = c.resume ? nlohmann::json(*c.resume) : nlohmann::json(nullptr);
  j["device"] = c.device;
  j["seed"] = c.seed ? nlohmann::json(*c.seed) : nlohmann::json(nullptr);
  j["bucket_mb"] = c.bucket_mb;
  j["zero"] = c.zero;
  j["checkpoint_format"] = kind_name(c.checkpoint_format);
  j["zero3_unit"] = spelling(kZero3Units, c.zero3_unit);
  j["dist_timeout_s"] = c.dist_timeout_s;
  j["handle_signals"] = c.handle_signals;
  if (c.dp) {  // written only when set, so a non-private run's config.json is unchanged
    const auto& d = *c.dp;
    j["dp"] = {{"noise_multiplier", d.noise_multiplier ? nlohmann::json(*d.noise_multiplier) : nlohmann::json(nullptr)},
               {"target_epsilon", d.target_epsilon ? nlohmann::json(*d.target_epsilon) : nlohmann::json(nullptr)},
               {"max_grad_norm", d.max_grad_norm},
               {"delta", d.delta},
               {"sampling", "poisson"}};
  }
  return j;
}

TrainConfig read_train_config(core::ConfigReader& r) {
  // Wrong types, bad choices and bad ranges are recorded in `r` with their key path
  // ("train.lr"); absent keys keep TrainConfig's defaults (every optional defaults to unset).
  const size_t n_errors = r.errors().size();
  TrainConfig c;
  c.max_steps = r.get("max_steps", c.max_steps);
  c.grad_accum = r.get("grad_accum", c.grad_accum);
  c.optimizer = r.choice("optimizer", kOptimizers, c.optimizer);
  c.lr = r.get("lr", c.lr);
  c.weight_decay = r.get("weight_decay", c.weight_decay);
  c.beta1 = r.get("beta1", c.beta1);
  c.beta2 = r.get("beta2", c.beta2);
  c.eps = r.get("eps", c.eps);
  c.momentum = r.get("momentum", c.momentum);
  c.schedule = r.choice("schedule", kSchedules, c.schedule);
  c.warmup_steps = r.get("warmup_steps", c.warmup_steps);
  c.min_lr_ratio = r.get("min_lr_ratio", c.min_lr_ratio);
  c.clip_grad_norm = r.optional<double>("clip_grad_norm");
  c.bf16 = r.get("bf16", c.bf16);
  c.fused_optimizer = r.get("fused_optimizer", c.fused_optimizer);
  c.activation_checkpointing = r.get("activation_checkpointing", c.activation_checkpointing);
  c.max_nonfinite_steps = r.get("max_nonfinite_steps", c.max_nonfinite_steps);
  c.eval_every = r.get("eval_every", c.eval_every);
  c.best_metric = r.optional<std::string>("best_metric");
  c.best_mode = r.choice("best_mode", kMetricModes, c.best_mode);
  c.early_stopping_patience = r.optional<int64_t>("early_stopping_patience");
  c.log_every = r.get("log_every", c.log_every);
  c.checkpoint_every = r.get("checkpoint_every", c.checkpoint_every);
  c.keep_last = r.get("keep_last", c.keep_last);
  c.save_adapter_only = r.get("save_adapter_only", c.save_adapter_only);
  c.run_dir = r.get("run_dir", c.run_dir);
  c.resume = r.optional<std::string>("resume");
  c.device = r.get("device", c.device);
  c.seed = r.optional<std::uint64_t>("seed");
  c.bucket_mb = r.get("bucket_mb", c.bucket_mb);
  c.zero = r.get("zero", c.zero);
  c.checkpoint_format = r.choice("checkpoint_format", kCheckpointFormats, c.checkpoint_format);
  c.zero3_unit = r.choice("zero3_unit", kZero3Units, c.zero3_unit);
  c.dist_timeout_s = r.get("dist_timeout_s", c.dist_timeout_s);
  c.handle_signals = r.get("handle_signals", c.handle_signals);
  if (r.has("dp")) {
    auto& d = r.child("dp");
    DpConfig dp;
    dp.noise_multiplier = d.optional<double>("noise_multiplier");
    dp.target_epsilon = d.optional<double>("target_epsilon");
    dp.max_grad_norm = d.get("max_grad_norm", dp.max_grad_norm);
    dp.delta = d.get("delta", dp.delta);
    // Fixed-size (shuffled) batches are refused rather than accounted as if Poisson: the RDP
    // bound assumes independent inclusion, and shuffling can spend more (Chua et al. 2024).
    dp.sampling = d.choice("sampling", kDpSamplings, dp.sampling);
    c.dp = dp;
  } else {
    r.raw("dp");  // "dp: null" is accepted as "off"
  }
  // Range checks only on values that were read cleanly (a wrong type would report twice).
  if (r.errors().size() == n_errors) c.validate(r);
  return c;
}

TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& key) {
  return core::read_section(j, key, read_train_config);
}

}  // namespace biolm::train

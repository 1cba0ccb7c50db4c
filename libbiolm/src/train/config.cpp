#include "biolm/train/config.h"

#include <nlohmann/json.hpp>

#include <set>

#include "biolm/core/error.h"

namespace biolm::train {
namespace {

std::string kind_name(OptimizerKind k) { return k == OptimizerKind::AdamW ? "adamw" : "sgd"; }
std::string kind_name(ScheduleKind k) {
  return k == ScheduleKind::Constant ? "constant" : k == ScheduleKind::Linear ? "linear" : "cosine";
}
std::string kind_name(MetricMode m) { return m == MetricMode::Max ? "max" : "min"; }

template <typename T>
void read(const nlohmann::json& j, const char* field, const std::string& key, T& out) {
  if (!j.contains(field)) return;
  try {
    out = j.at(field).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(key + "." + field, std::string("wrong type: ") + e.what());
  }
}
template <typename T>
void read_opt(const nlohmann::json& j, const char* field, const std::string& key, std::optional<T>& out) {
  if (!j.contains(field)) return;
  if (j.at(field).is_null()) {
    out.reset();
    return;
  }
  T v{};
  read(j, field, key, v);
  out = v;
}

}  // namespace

void TrainConfig::validate() const {
  auto check = [](bool ok, const char* field, const std::string& msg) {
    BIOLM_CHECK(ok, ConfigError, std::string("train.") + field, msg);
  };
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
  j["handle_signals"] = c.handle_signals;
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& key) {
  BIOLM_CHECK(j.is_object(), ConfigError, key, "expected an object");
  static const std::set<std::string> known = {
      "max_steps", "grad_accum", "optimizer", "lr", "weight_decay", "beta1", "beta2", "eps", "momentum",
      "schedule", "warmup_steps", "min_lr_ratio", "clip_grad_norm", "bf16", "activation_checkpointing",
      "max_nonfinite_steps", "eval_every", "best_metric", "best_mode", "early_stopping_patience", "log_every",
      "checkpoint_every", "keep_last", "save_adapter_only", "run_dir", "resume", "device", "seed", "bucket_mb",
      "handle_signals"};
  for (const auto& item : j.items()) {
    BIOLM_CHECK(known.count(item.key()), ConfigError, key + "." + item.key(), "unknown key");
  }
  TrainConfig c;
  read(j, "max_steps", key, c.max_steps);
  read(j, "grad_accum", key, c.grad_accum);
  std::string s;
  if (j.contains("optimizer")) {
    read(j, "optimizer", key, s);
    BIOLM_CHECK(s == "adamw" || s == "sgd", ConfigError, key + ".optimizer", "expected adamw|sgd, found '" + s + "'");
    c.optimizer = s == "adamw" ? OptimizerKind::AdamW : OptimizerKind::Sgd;
  }
  read(j, "lr", key, c.lr);
  read(j, "weight_decay", key, c.weight_decay);
  read(j, "beta1", key, c.beta1);
  read(j, "beta2", key, c.beta2);
  read(j, "eps", key, c.eps);
  read(j, "momentum", key, c.momentum);
  if (j.contains("schedule")) {
    read(j, "schedule", key, s);
    if (s == "constant") c.schedule = ScheduleKind::Constant;
    else if (s == "linear") c.schedule = ScheduleKind::Linear;
    else if (s == "cosine") c.schedule = ScheduleKind::Cosine;
    else throw ConfigError(key + ".schedule", "expected constant|linear|cosine, found '" + s + "'");
  }
  read(j, "warmup_steps", key, c.warmup_steps);
  read(j, "min_lr_ratio", key, c.min_lr_ratio);
  read_opt(j, "clip_grad_norm", key, c.clip_grad_norm);
  read(j, "bf16", key, c.bf16);
  read(j, "activation_checkpointing", key, c.activation_checkpointing);
  read(j, "max_nonfinite_steps", key, c.max_nonfinite_steps);
  read(j, "eval_every", key, c.eval_every);
  read_opt(j, "best_metric", key, c.best_metric);
  if (j.contains("best_mode")) {
    read(j, "best_mode", key, s);
    BIOLM_CHECK(s == "max" || s == "min", ConfigError, key + ".best_mode", "expected max|min, found '" + s + "'");
    c.best_mode = s == "max" ? MetricMode::Max : MetricMode::Min;
  }
  read_opt(j, "early_stopping_patience", key, c.early_stopping_patience);
  read(j, "log_every", key, c.log_every);
  read(j, "checkpoint_every", key, c.checkpoint_every);
  read(j, "keep_last", key, c.keep_last);
  read(j, "save_adapter_only", key, c.save_adapter_only);
  read(j, "run_dir", key, c.run_dir);
  read_opt(j, "resume", key, c.resume);
  read(j, "device", key, c.device);
  read_opt(j, "seed", key, c.seed);
  read(j, "bucket_mb", key, c.bucket_mb);
  read(j, "handle_signals", key, c.handle_signals);
  c.validate();
  return c;
}

}  // namespace biolm::train

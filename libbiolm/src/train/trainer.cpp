#include "biolm/train/trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "biolm/core/compat.h"
#include "biolm/core/device.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/core/seed.h"
#include "biolm/core/version.h"
#include "biolm/dist/sharded_checkpoint.h"
#include "biolm/dist/zero.h"
#include "biolm/io/safetensors.h"
#include "biolm/io/tensor_file.h"
#include "biolm/io/files.h"
#include "biolm/train/checkpoint.h"
#include "checkpoint_format.h"
#include "biolm/train/distributed.h"
#include "biolm/train/dp.h"
#include "biolm/train/optim.h"
#include "biolm/train/signals.h"

namespace fs = std::filesystem;

namespace biolm::train {

using namespace detail;  // the checkpoint format (checkpoint_format.h)

struct Trainer::State {
  c10::Device device = c10::Device(c10::kCPU);
  OptimizerSetup opt;
  std::vector<torch::Tensor> trainable;
  data::BatchSource* source = nullptr;
  int64_t epoch = 0;
  std::optional<double> best_metric;
  std::optional<int64_t> best_step;
  int64_t evals_without_improvement = 0;
  int64_t nonfinite_steps = 0;
  std::uint64_t seed = 0;
  bool set_up = false;
  std::optional<fs::path> last_checkpoint;
  int64_t last_checkpoint_step = -1;
  // DP-SGD (config.dp)
  std::unique_ptr<DpEngine> dp;
  RdpAccountant accountant;
  double dp_sigma = 0.0;
  PoissonLoader* dp_source = nullptr;
  // Data parallelism (dist/zero.h): gradient reduction, sharded optimizer and parameters.
  std::unique_ptr<dist::DataParallel> ddp;
};

namespace {

void write_json_atomic(const fs::path& path, const nlohmann::json& j) { io::write_file_atomic(path, j.dump(2) + "\n"); }

constexpr const char* kFlatOptimizerFile = "optimizer.safetensors";  // train.zero >= 1 (dist/zero.h)

/// Every rank's `bytes`, on rank 0 (other ranks get an empty vector). Built from two sum
/// all-reduces (lengths, then zero-padded rows), the only collective ProcessGroup needs.
std::vector<std::string> gather_to_rank0(ProcessGroup& group, const std::string& bytes) {
  const int world = group.world_size(), rank = group.rank();
  auto lengths = torch::zeros({world}, torch::kInt64);
  lengths[rank] = static_cast<int64_t>(bytes.size());
  group.allreduce_sum(lengths);
  const int64_t width = lengths.max().item<int64_t>();
  auto rows = torch::zeros({world, std::max<int64_t>(width, 1)}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(rows[rank].data_ptr(), bytes.data(), bytes.size());
  group.allreduce_sum(rows);
  std::vector<std::string> out;
  if (rank != 0) return out;
  for (int r = 0; r < world; ++r) {
    const auto* row = rows[r].data_ptr<std::uint8_t>();
    out.emplace_back(reinterpret_cast<const char*>(row), static_cast<size_t>(lengths[r].item<int64_t>()));
  }
  return out;
}

}  // namespace

Trainer::Trainer(models::TrainableModel& model, TrainConfig config)
    : model_(model), config_(std::move(config)), state_(std::make_unique<State>()) {
  config_.validate();
}

Trainer::~Trainer() = default;

fs::path Trainer::checkpoint_root() const { return fs::path(config_.run_dir) / "checkpoints"; }

bool Trainer::is_rank0() const { return !group_ || group_->rank() == 0; }

void Trainer::setup() {
  if (state_->set_up) return;
  auto& s = *state_;
  s.device = core::parse_device(config_.device, "train.device");
  if (config_.bf16) log::info("train.bf16: bf16 autocast on {} (weights, gradients, optimizer state in fp32)", s.device.str());
  model_.to(s.device);
  // train.activation_checkpointing turns recomputation on; it never turns off a model that was
  // configured with it (model.gradient_checkpointing: true).
  if (config_.activation_checkpointing) model_.set_activation_checkpointing(true);
  for (const auto& p : model_.parameters(true)) {
    if (p.requires_grad()) s.trainable.push_back(p);
  }
  if (group_) {
    broadcast_module(*group_, model_);
    s.ddp = std::make_unique<dist::DataParallel>(group_, model_, config_);
    s.opt = s.ddp->build_optimizer(config_, lr_scales_);
  } else {
    if (config_.zero != 0) log::info("train.zero = {}: a single process has nothing to shard; training unsharded", config_.zero);
    s.opt = build_optimizer(model_, config_, lr_scales_);
  }
  s.set_up = true;
}

void Trainer::write_run_files() {
  if (!is_rank0()) return;
  fs::create_directories(config_.run_dir);
  nlohmann::json cfg;
  cfg["train"] = to_json(config_);
  cfg["train"]["seed"] = state_->seed;  // the seed actually used, drawn or given
  cfg["run"] = run_info_;
  cfg["world_size"] = group_ ? group_->world_size() : 1;
  if (state_->dp) {
    cfg["privacy"] = {{"noise_multiplier", state_->dp_sigma}, {"sample_rate", state_->dp_source->sample_rate()},
                      {"dataset_size", state_->dp_source->dataset_size()}, {"accountant", "rdp"}};
  }
  write_json_atomic(fs::path(config_.run_dir) / "config.json", cfg);
  write_json_atomic(fs::path(config_.run_dir) / "versions.json", build_info());
}

void Trainer::append_metrics(const nlohmann::json& record) {
  if (!is_rank0()) return;
  std::ofstream out(fs::path(config_.run_dir) / "metrics.jsonl", std::ios::app);
  out << record.dump() << "\n";
  if (!out.good()) throw IoError((fs::path(config_.run_dir) / "metrics.jsonl").string(), "cannot append");
}

data::Batch Trainer::next_batch(data::BatchSource& source) {
  auto b = source.next();
  if (!b) {
    state_->epoch += 1;
    source.start_epoch(state_->epoch);
    b = source.next();
    BIOLM_CHECK(b.has_value(), Error, "Trainer: the training data yields no batch in epoch " +
                                          std::to_string(state_->epoch));
  }
  return b->to(state_->device);
}

int64_t Trainer::forward_backward(const data::Batch& batch, torch::Tensor& loss_sum) {
  models::StepOutput out;
  {
    compat::AutocastGuard autocast(state_->device.type(), c10::kBFloat16, config_.bf16);
    out = model_.run(batch);
  }
  BIOLM_CHECK(out.loss_sum.defined() && out.loss_sum.numel() == 1, Error,
              model_.name() + "::run must return a scalar loss_sum (the summed loss of the batch)");
  loss_sum.add_(out.loss_sum.detach().reshape({}).to(torch::kFloat64));
  if (out.n_target_tokens > 0) out.loss_sum.to(torch::kFloat32).backward();
  if (state_->ddp) state_->ddp->micro_batch_done(true, out.n_target_tokens > 0);
  return out.n_target_tokens;
}

StepInfo Trainer::train_step(data::BatchSource& source, torch::Tensor& grad_norm) {
  auto& s = *state_;
  for (auto& p : s.trainable) p.mutable_grad().reset();
  apply_lr(s.opt, config_, step_);
  // The losses of the micro-batches are summed on the device: nothing is read on the host inside
  // this loop. A non-finite micro-batch makes the sum non-finite (NaN + x = NaN, Inf + finite =
  // Inf, Inf - Inf = NaN), so one check of the sum decides the skip for the whole step. Its
  // backward pass runs too; the poisoned gradients are dropped with the skipped step.
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(s.device));
  int64_t tokens = 0;
  if (s.ddp) s.ddp->begin_step();  // ZeRO-3: parameters are sharded between steps
  for (int64_t m = 0; m < config_.grad_accum; ++m) {
    if (s.ddp) s.ddp->begin_micro_batch(m == config_.grad_accum - 1);  // the last one's backward reduces
    const data::Batch batch = next_batch(source);
    if (batch.n_examples == 0 && batch.tensors.empty()) {  // an empty slice of a small global batch
      if (s.ddp) s.ddp->micro_batch_done(false, false);  // per-block ZeRO-3: its collectives still
      continue;
    }
    tokens += forward_backward(batch, loss_sum);  // counted on the host by the collator: no device read
  }
  // The one device->host copy of the step. The skip decision must be known on the host before
  // the optimizer runs: LibTorch's optimizers keep their step counter on the host, and a step
  // with zeroed gradients is not a no-op for AdamW (moments decay, weight decay and bias
  // correction advance), so a torch::where on the gradients cannot replace skipping. The loss
  // travels in the same copy at no extra cost; the gradient norm stays on the device until the
  // next log step (see fit).
  const auto flags = torch::stack({loss_sum, torch::isfinite(loss_sum).logical_not().to(torch::kFloat64)}).cpu();
  const double local_loss = flags[0].item<double>();
  const double local_nonfinite = flags[1].item<double>();
  // One small all-reduce carries what every rank must agree on.
  auto stats = torch::tensor({local_loss, static_cast<double>(tokens), local_nonfinite, stop_requested() ? 1.0 : 0.0},
                             torch::kFloat64);
  if (group_) group_->allreduce_sum(stats);
  const auto* st = stats.data_ptr<double>();
  const double global_loss = st[0];
  const auto global_tokens = static_cast<int64_t>(st[1]);
  const bool skip = st[2] > 0 || !std::isfinite(global_loss);
  if (st[3] > 0) request_stop();

  StepInfo info;
  info.lr = s.opt.base_lrs.front() * lr_factor(config_, step_);
  info.n_target_tokens = global_tokens;
  if (s.ddp && (skip || global_tokens == 0)) s.ddp->discard_step();
  if (skip) {
    for (auto& p : s.trainable) p.mutable_grad().reset();
    info.skipped = true;
    info.loss = std::numeric_limits<double>::quiet_NaN();
    note_nonfinite_step();
  } else if (global_tokens > 0) {
    const double inv = 1.0 / static_cast<double>(global_tokens);
    if (s.ddp) {
      grad_norm = s.ddp->step(*s.opt.optimizer, inv, config_.clip_grad_norm);
    } else {
      {
        torch::NoGradGuard no_grad;
        for (auto& p : s.trainable) {
          if (p.grad().defined()) p.mutable_grad().mul_(inv);
        }
      }
      if (config_.clip_grad_norm) grad_norm = clip_grad_norm(s.trainable, *config_.clip_grad_norm);
      s.opt.optimizer->step();
    }
    info.loss = global_loss / static_cast<double>(global_tokens);
  } else {
    info.loss = 0.0;  // no target in the whole step: nothing to learn from
  }
  step_ += 1;
  info.step = step_;
  return info;
}

void Trainer::note_nonfinite_step() {
  auto& s = *state_;
  s.nonfinite_steps += 1;
  log::warn("step {}: non-finite loss, update skipped ({} of at most {})", step_ + 1, s.nonfinite_steps,
            config_.max_nonfinite_steps);
  if (s.nonfinite_steps > config_.max_nonfinite_steps) {
    throw Error("training stopped: " + std::to_string(s.nonfinite_steps) +
                " steps had a non-finite (NaN/Inf) loss, more than train.max_nonfinite_steps = " +
                std::to_string(config_.max_nonfinite_steps) + "; lower the lr, enable clip_grad_norm or check the data");
  }
}

void Trainer::setup_dp(data::BatchSource& source) {
  auto& s = *state_;
  if (!config_.dp || s.dp) return;
  const auto& dp = *config_.dp;
  BIOLM_CHECK(!group_ || group_->world_size() == 1, ConfigError, "train.dp",
              "DP-SGD with data parallelism is not supported (the noise must be drawn once per logical batch)");
  s.dp_source = dynamic_cast<PoissonLoader*>(&source);
  BIOLM_CHECK(s.dp_source != nullptr, ConfigError, "train.dp.sampling",
              "DP-SGD needs Poisson sampling: train from a train::PoissonLoader (the accountant's bound assumes each "
              "example joins each logical batch independently with probability q)");
  BIOLM_CHECK(s.dp_source->micro_batches() == config_.grad_accum, ConfigError, "train.grad_accum",
              fmt::format("the PoissonLoader cuts each logical batch into {} micro-batches, train.grad_accum is {}",
                          s.dp_source->micro_batches(), config_.grad_accum));
  const double q = s.dp_source->sample_rate();
  s.dp_sigma = dp.noise_multiplier ? *dp.noise_multiplier
                                   : rdp_noise_multiplier(*dp.target_epsilon, dp.delta, q, config_.max_steps);
  BIOLM_CHECK(s.dp_sigma == 0 || std::isfinite(dp.max_grad_norm), ConfigError, "train.dp.max_grad_norm",
              "must be finite when noise is added");
  s.dp = std::make_unique<DpEngine>(model_, s.trainable);
  log::info("DP-SGD: noise multiplier {:.6g}, max_grad_norm {}, q = {:.6g} (expected batch {:.1f} of {}), delta {}; "
            "{} steps spend epsilon {:.4g}",
            s.dp_sigma, dp.max_grad_norm, q, s.dp_source->expected_batch_size(), s.dp_source->dataset_size(), dp.delta,
            config_.max_steps, rdp_epsilon(s.dp_sigma, q, config_.max_steps, dp.delta).epsilon);
}

StepInfo Trainer::dp_train_step(data::BatchSource& source) {
  auto& s = *state_;
  const auto& dp = *config_.dp;
  for (auto& p : s.trainable) p.mutable_grad().reset();
  s.dp->reset_step();
  apply_lr(s.opt, config_, step_);
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(s.device));
  int64_t tokens = 0;
  for (int64_t m = 0; m < config_.grad_accum; ++m) {
    const data::Batch batch = next_batch(source);
    if (batch.n_examples == 0) continue;  // an empty Poisson micro-batch
    BIOLM_CHECK(!batch.has("segment_ids"), ConfigError, "train.dp",
                "packed rows (segment_ids: several examples in one row) cannot train with DP-SGD: one row's gradient "
                "is not one example's; turn data.packing off");
    s.dp->begin_micro_batch(batch.n_examples);
    tokens += forward_backward(batch, loss_sum);
    s.dp->clip_and_accumulate(dp.max_grad_norm);
  }
  // The one host read of the step, as in train_step.
  const auto flags = torch::stack({loss_sum, torch::isfinite(loss_sum).logical_not().to(torch::kFloat64)}).cpu();
  const double loss = flags[0].item<double>();
  const bool skip = flags[1].item<double>() > 0 || !std::isfinite(loss);
  StepInfo info;
  info.lr = s.opt.base_lrs.front() * lr_factor(config_, step_);
  info.n_target_tokens = tokens;
  if (skip) {
    // The sampled batch was used (its loss was seen): the step is accounted although nothing moves.
    s.dp->reset_step();
    for (auto& p : s.trainable) p.mutable_grad().reset();
    info.skipped = true;
    info.loss = std::numeric_limits<double>::quiet_NaN();
    note_nonfinite_step();
  } else {
    s.dp->finish_step(s.dp_sigma, dp.max_grad_norm, s.dp_source->expected_batch_size());
    s.opt.optimizer->step();
    info.loss = tokens > 0 ? loss / static_cast<double>(tokens) : 0.0;
  }
  s.accountant.step(s.dp_sigma, s.dp_source->sample_rate());
  step_ += 1;
  info.step = step_;
  return info;
}

TrainResult Trainer::fit(data::BatchSource& train) {
  auto& s = *state_;
  setup();
  setup_dp(train);
  s.source = &train;
  std::optional<SignalGuard> signals;
  if (config_.handle_signals) signals.emplace();
  clear_stop_request();

  bool resumed = false;
  if (config_.resume) {
    std::optional<fs::path> dir;
    if (*config_.resume == "auto") {
      dir = find_latest_valid(checkpoint_root(), /*hash_shards=*/false);
      if (!dir) log::info("resume: no checkpoint under {}, starting fresh", checkpoint_root().string());
    } else {
      dir = fs::path(*config_.resume);
    }
    if (dir) {
      load_checkpoint(*dir, train);
      resumed = true;
    }
  }
  if (!resumed) {
    s.seed = core::seed_all(config_.seed);
    train.start_epoch(0);
    s.epoch = 0;
  }
  write_run_files();
  if (resumed) append_metrics({{"resumed_from", step_}});

  TrainResult result;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t start_step = step_;
  int64_t tokens_seen = 0;
  // Seconds spent in training steps: tokens_per_s divides by this, not by the wall time, so an
  // evaluation or a checkpoint does not read as a slower step (until 2026-12-06 it did: after each
  // dev evaluation the logged rate fell by the evaluation's share of the time so far).
  double step_seconds = 0.0;
  // Gradient norms stay on the device until a log step (or a step callback) needs them: one
  // stacked copy then fills the history entries that wait for theirs.
  std::vector<size_t> pending_rows;
  std::vector<torch::Tensor> pending_norms;
  auto flush_norms = [&] {
    if (pending_norms.empty()) return;
    const auto host = torch::stack(pending_norms).to(torch::kFloat64).cpu();
    const auto* v = host.data_ptr<double>();
    for (size_t i = 0; i < pending_rows.size(); ++i) result.history[pending_rows[i]].grad_norm = v[i];
    pending_rows.clear();
    pending_norms.clear();
  };
  model_.train();
  while (step_ < config_.max_steps) {
    torch::Tensor grad_norm;
    const auto step_start = std::chrono::steady_clock::now();
    result.history.push_back(s.dp ? dp_train_step(train) : train_step(train, grad_norm));
    step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    if (grad_norm.defined()) {
      pending_rows.push_back(result.history.size() - 1);
      pending_norms.push_back(grad_norm.detach().reshape({}));
    }
    const bool log_now = step_ % config_.log_every == 0 || step_ == config_.max_steps;
    if (log_now || on_step_) flush_norms();
    const StepInfo info = result.history.back();
    tokens_seen += info.n_target_tokens;
    if (on_step_) on_step_(info);

    if (log_now) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ProgressEvent ev;
      ev.step = step_;
      ev.max_steps = config_.max_steps;
      ev.loss = info.loss;
      ev.lr = info.lr;
      ev.elapsed_s = elapsed;
      ev.tokens_per_s = step_seconds > 0 ? static_cast<double>(tokens_seen) / step_seconds : 0.0;
      const int64_t done = step_ - start_step;
      ev.eta_s = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(config_.max_steps - step_) : 0.0;
      ev.grad_norm = info.grad_norm;
      ev.nonfinite_steps = s.nonfinite_steps;
      nlohmann::json rec = {{"step", step_},         {"loss", info.skipped ? nlohmann::json(nullptr) : nlohmann::json(info.loss)},
                            {"lr", info.lr},         {"tokens", info.n_target_tokens},
                            {"tokens_per_s", ev.tokens_per_s}, {"skipped_steps", s.nonfinite_steps},
                            {"elapsed_s", elapsed},  {"step_s", step_seconds}};
      if (info.grad_norm) rec["grad_norm"] = *info.grad_norm;
      if (s.dp) rec["epsilon"] = s.accountant.epsilon(config_.dp->delta);
      append_metrics(rec);
      if (progress_ && is_rank0()) progress_(ev);
    }

    bool stop_early = false;
    bool checkpointed = false;
    if (config_.eval_every > 0 && step_ % config_.eval_every == 0 && eval_) {
      if (s.ddp) s.ddp->gather_parameters();
      model_.eval();
      Metrics metrics;
      {
        torch::NoGradGuard no_grad;
        metrics = eval_(model_, step_);
      }
      model_.train();
      nlohmann::json rec = {{"step", step_}, {"eval", metrics}};
      if (config_.best_metric) {
        const auto it = metrics.find(*config_.best_metric);
        BIOLM_CHECK(it != metrics.end(), ConfigError, "train.best_metric",
                    "the eval callback returned no metric '" + *config_.best_metric + "'");
        auto value = torch::tensor({it->second}, torch::kFloat64);
        if (group_) group_->broadcast(value, 0);  // rank 0 decides for everyone
        const double v = value.item<double>();
        const bool better = !s.best_metric || (config_.best_mode == MetricMode::Max ? v > *s.best_metric
                                                                                     : v < *s.best_metric);
        if (better) {
          s.best_metric = v;
          s.best_step = step_;
          s.evals_without_improvement = 0;
          rec["best"] = true;
          save_checkpoint();
          checkpointed = true;
          if (is_rank0()) {
            write_json_atomic(fs::path(config_.run_dir) / "best.json",
                              {{"step", step_}, {"metric", *config_.best_metric}, {"value", v},
                               {"checkpoint", s.last_checkpoint ? s.last_checkpoint->string() : ""}});
          }
        } else {
          s.evals_without_improvement += 1;
          if (config_.early_stopping_patience && s.evals_without_improvement >= *config_.early_stopping_patience) {
            stop_early = true;
          }
        }
      }
      append_metrics(rec);
    }
    const bool periodic = config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0;
    if (!checkpointed && (periodic || stop_early || stop_requested() || step_ == config_.max_steps)) {
      save_checkpoint();
    }
    if (stop_requested()) {
      log::warn("stop requested (signal {}): checkpoint written at step {}; resume with --resume", stop_signal(), step_);
      result.status = Status::Interrupted;
      break;
    }
    if (stop_early) {
      log::info("early stopping at step {}: no improvement of {} in {} evaluations", step_, *config_.best_metric,
                s.evals_without_improvement);
      result.status = Status::EarlyStopped;
      break;
    }
  }
  flush_norms();
  if (s.last_checkpoint_step != step_) save_checkpoint();
  if (s.ddp) s.ddp->gather_parameters();  // the caller gets the whole trained model
  result.step = step_;
  result.best_metric = s.best_metric;
  result.best_step = s.best_step;
  result.nonfinite_steps = s.nonfinite_steps;
  result.last_checkpoint = s.last_checkpoint.value_or(fs::path());
  if (s.dp) {
    result.privacy = privacy_report(*config_.dp, s.dp_sigma, s.dp_source->sample_rate(), s.dp_source->dataset_size(),
                                    s.accountant);
    log::info("DP-SGD: {} steps spent epsilon {} at delta {}", s.accountant.steps(), result.privacy["epsilon"].dump(),
              config_.dp->delta);
  }
  s.source = nullptr;
  return result;
}

fs::path Trainer::save_checkpoint() {
  auto& s = *state_;
  setup();
  s.last_checkpoint_step = step_;
  BIOLM_CHECK(s.source != nullptr, Error, "Trainer::save_checkpoint: only during fit (the loader position is needed)");
  const auto rng = core::capture_rng_state();
  // train.checkpoint_format: sharded (dist/sharded_checkpoint.h): every rank writes its own range
  // of the flat optimizer state (and, at stage 3, of the parameters) into the temporary directory;
  // nothing is gathered. consolidated: gathered to rank 0, one optimizer.safetensors.
  const bool sharded = s.ddp && s.ddp->stage() != dist::ZeroStage::Replicated &&
                       config_.checkpoint_format == CheckpointFormat::Sharded;
  const bool params_in_shards =
      sharded && s.ddp->stage() == dist::ZeroStage::Parameters && !config_.save_adapter_only;
  if (s.ddp && !params_in_shards) s.ddp->gather_parameters();
  std::map<std::string, torch::Tensor> flat_optimizer;
  if (s.ddp && s.ddp->stage() != dist::ZeroStage::Replicated && !sharded) {
    flat_optimizer = s.ddp->gather_optimizer_state(*s.opt.optimizer);
  }
  fs::path tmp;
  std::vector<KnownFile> shard_files;
  dist::ShardMetadata shard_meta;
  if (sharded) {
    // All ranks write into rank 0's temporary directory: its name carries rank 0's pid.
    auto tag = torch::full({1}, is_rank0() ? static_cast<int64_t>(::getpid()) : int64_t{0}, torch::kInt64);
    group_->allreduce_sum(tag);
    if (is_rank0()) begin_checkpoint(checkpoint_root(), step_, tag.item<int64_t>());
    tmp = checkpoint_tmp_dir(checkpoint_root(), step_, tag.item<int64_t>());
    group_->barrier();  // the directory exists
    const auto steps = s.ddp->optimizer_steps(*s.opt.optimizer);  // collective (one int64 per parameter)
    auto tensors = s.ddp->local_optimizer_state(*s.opt.optimizer);
    if (params_in_shards) tensors["param"] = s.ddp->local_parameters();
    const auto [lo, hi] = s.ddp->own_range();
    const auto mine = dist::write_shard_file(tmp, s.ddp->rank(), s.ddp->world_size(), lo, hi, tensors);
    tensors.clear();
    // Every rank's file entry to rank 0 (a collective: past it, every shard is written and fsynced).
    const auto entries = gather_to_rank0(
        *group_, nlohmann::json{{"file", mine.name}, {"bytes", mine.bytes}, {"sha256", mine.sha256}, {"begin", lo},
                                {"end", hi}}
                     .dump());
    if (is_rank0()) {
      shard_meta.stage = static_cast<int>(s.ddp->stage());
      shard_meta.world_size = s.ddp->world_size();
      shard_meta.parameters = s.ddp->layout();
      shard_meta.total_numel = shard_meta.parameters.back().offset + shard_meta.parameters.back().numel;
      shard_meta.shard_numel = (shard_meta.total_numel + shard_meta.world_size - 1) / shard_meta.world_size;
      shard_meta.adamw = config_.optimizer == OptimizerKind::AdamW;
      shard_meta.has_parameters = params_in_shards;
      shard_meta.steps = steps;
      for (size_t r = 0; r < entries.size(); ++r) {
        const auto e = nlohmann::json::parse(entries[r]);
        shard_meta.shards.push_back({static_cast<int>(r), e.at("file").get<std::string>(), e.at("begin").get<int64_t>(),
                                     e.at("end").get<int64_t>(), e.at("bytes").get<uint64_t>(),
                                     e.at("sha256").get<std::string>()});
        shard_files.push_back({e.at("file").get<std::string>(), e.at("bytes").get<uint64_t>(),
                               e.at("sha256").get<std::string>()});
      }
    }
  }
  // Data parallel: every rank's loader position, epoch and RNG state go into the checkpoint as
  // rank-<r>.safetensors, gathered to rank 0 (a collective: every rank calls save_checkpoint).
  std::vector<std::string> rank_blobs;
  if (group_ && group_->world_size() > 1) {
    auto mine = rng_tensors(rng);
    const std::string state = nlohmann::json{{"loader", s.source->state()}, {"epoch", s.epoch}}.dump();
    mine["state_json"] = bytes_tensor(std::vector<std::uint8_t>(state.begin(), state.end()));
    rank_blobs = gather_to_rank0(*group_, io::serialize_safetensors(mine, {{"format", "pt"}, {"writer", "biolm"}}));
  }
  if (!is_rank0()) return {};
  nlohmann::json ts;
  ts["step"] = step_;
  ts["epoch"] = s.epoch;
  ts["loader"] = s.source->state();
  ts["world_size"] = group_ ? group_->world_size() : 1;
  ts["checkpoint_format"] = sharded ? "sharded" : (flat_optimizer.empty() ? "optimizer.pt" : "consolidated");
  ts["best_metric"] = s.best_metric ? nlohmann::json(*s.best_metric) : nlohmann::json(nullptr);
  ts["best_step"] = s.best_step ? nlohmann::json(*s.best_step) : nlohmann::json(nullptr);
  ts["evals_without_improvement"] = s.evals_without_improvement;
  ts["nonfinite_steps"] = s.nonfinite_steps;
  ts["seed"] = s.seed;
  ts["adapter_only"] = config_.save_adapter_only;
  ts["config"] = to_json(config_);
  ts["run"] = run_info_;
  if (s.dp) {
    nlohmann::json hist = nlohmann::json::array();
    for (const auto& h : s.accountant.history()) hist.push_back({h.noise_multiplier, h.q, h.steps});
    ts["dp"] = {{"accountant_history", hist}, {"noise_multiplier", s.dp_sigma}};
  }
  const auto write_files = [&](const fs::path& tmp) {
    std::set<std::string> in_shards;
    for (const auto& p : shard_meta.parameters) {
      if (params_in_shards) in_shards.insert(p.name);
    }
    write_model_state(tmp / kModelFile, model_, config_.save_adapter_only, in_shards);
    if (sharded) {
      io::write_file_atomic(tmp / dist::kShardMetadataFile, shard_meta.to_json().dump(2) + "\n");
    } else if (!flat_optimizer.empty()) {
      io::write_tensor_file(tmp / kFlatOptimizerFile, flat_optimizer);
    } else {
      write_optimizer_state(tmp / kOptimizerFile, *s.opt.optimizer);
    }
    io::write_tensor_file(tmp / kRngFile, rng_tensors(rng));
    for (size_t r = 1; r < rank_blobs.size(); ++r) {
      const fs::path f = tmp / rank_file(static_cast<int>(r));
      std::ofstream out(f, std::ios::binary);
      out.write(rank_blobs[r].data(), static_cast<std::streamsize>(rank_blobs[r].size()));
      if (!out.good()) throw IoError(f.string(), "cannot write");
    }
    std::ofstream(tmp / kTrainerStateFile) << ts.dump(2) << "\n";
  };
  fs::path dir;
  if (sharded) {
    write_files(tmp);
    dir = finish_checkpoint(checkpoint_root(), step_, tmp, shard_files);  // refuses a missing shard
  } else {
    dir = commit_checkpoint(checkpoint_root(), step_, write_files);
  }
  s.last_checkpoint = dir;
  prune_checkpoints(checkpoint_root(), config_.keep_last, s.best_step);
  log::info("checkpoint written: {}", dir.string());
  return dir;
}

void Trainer::load_checkpoint(const fs::path& dir, data::BatchSource& train) {
  auto& s = *state_;
  setup();
  // Shard files are hashed when (and only when) this rank reads them (dist/sharded_checkpoint.h).
  verify_checkpoint(dir, /*hash_shards=*/false);
  const auto ts = read_checkpoint_json(dir / kTrainerStateFile);
  try {
    const bool adapter_only = ts.at("adapter_only").get<bool>();
    if (fs::exists(dir / dist::kShardMetadataFile)) {
      // Sharded: each rank reads the byte ranges of the shard files overlapping what it holds; any
      // world size and stage, or a single process (resharding).
      dist::ShardedCheckpointReader shards(dir);
      const auto layout = s.ddp ? s.ddp->layout() : dist::flat_layout(model_);
      shards.check_layout(layout);
      const auto read = shards.reader();
      if (shards.metadata().has_parameters) {
        std::set<std::string> in_shards;
        for (const auto& p : layout) in_shards.insert(p.name);
        if (s.ddp && s.ddp->stage() == dist::ZeroStage::Parameters && !s.ddp->parameters_gathered()) {
          read_model_state(dir / kModelFile, model_, adapter_only, in_shards);
          s.ddp->load_local_parameters(read);  // this rank's range only
        } else {
          if (s.ddp) s.ddp->gather_parameters();
          read_model_state(dir / kModelFile, model_, adapter_only, in_shards);
          torch::NoGradGuard no_grad;
          size_t i = 0;
          for (auto& p : model_.parameters(true)) {
            if (!p.requires_grad()) continue;
            p.view({-1}).copy_(read("param", layout[i].offset, layout[i].numel).to(p.device()));
            ++i;
          }
          if (s.ddp) s.ddp->parameters_loaded();
        }
      } else {
        if (s.ddp) s.ddp->gather_parameters();
        read_model_state(dir / kModelFile, model_, adapter_only);
        if (s.ddp) s.ddp->parameters_loaded();
      }
      const auto where = (dir / dist::kShardMetadataFile).string();
      BIOLM_CHECK(shards.metadata().adamw == (config_.optimizer == OptimizerKind::AdamW), CheckpointError, where,
                  "optimizer", "the checkpoint's optimizer is not this run's train.optimizer");
      if (s.ddp) {
        s.ddp->load_optimizer_state(*s.opt.optimizer, read, shards.metadata().steps, where);
      } else {
        dist::load_flat_optimizer_state(*s.opt.optimizer, model_, read, shards.metadata().steps, where);
      }
      log::info("sharded checkpoint (world size {}): read {} of {} shard files", shards.metadata().world_size,
                shards.opened().size(), shards.metadata().shards.size());
    } else {
      if (s.ddp) s.ddp->gather_parameters();
      read_model_state(dir / kModelFile, model_, adapter_only);
      if (s.ddp) s.ddp->parameters_loaded();
      const fs::path flat_file = dir / kFlatOptimizerFile;
      if (fs::exists(flat_file)) {
        const auto flat = io::read_tensor_file(flat_file);
        if (s.ddp) {
          s.ddp->load_optimizer_state(*s.opt.optimizer, flat, flat_file.string());
        } else {  // a single process takes the whole flat state
          const auto layout = dist::flat_layout(model_);
          const int64_t total = layout.empty() ? 0 : layout.back().offset + layout.back().numel;
          std::vector<int64_t> steps;
          BIOLM_CHECK(flat.count("step"), CheckpointError, flat_file.string(), "step", "missing");
          const auto st = flat.at("step").to(torch::kInt64).contiguous();
          steps.assign(st.data_ptr<int64_t>(), st.data_ptr<int64_t>() + st.numel());
          for (const auto& key : config_.optimizer == OptimizerKind::AdamW
                                     ? std::vector<std::string>{"exp_avg", "exp_avg_sq"}
                                     : std::vector<std::string>{"momentum_buffer"}) {
            BIOLM_CHECK(flat.count(key) && flat.at(key).numel() == total, CheckpointError, flat_file.string(), key,
                        fmt::format("missing or not {} elements (the trainable parameters of this model)", total));
          }
          dist::load_flat_optimizer_state(
              *s.opt.optimizer, model_,
              [&](const std::string& key, int64_t begin, int64_t numel) { return flat.at(key).narrow(0, begin, numel); },
              steps, flat_file.string());
        }
      } else {
        BIOLM_CHECK(!s.ddp || s.ddp->stage() == dist::ZeroStage::Replicated, CheckpointError,
                    (dir / kOptimizerFile).string(), "", "written without train.zero; resume it with train.zero: 0");
        read_optimizer_state(dir / kOptimizerFile, *s.opt.optimizer, s.device);
      }
    }
  } catch (const c10::Error& e) {
    throw CheckpointError(dir.string(), "", std::string("does not fit this model/optimizer: ") +
                                                e.what_without_backtrace());
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError((dir / "trainer_state.json").string(), "", e.what());
  }
  const int world = group_ ? group_->world_size() : 1;
  const int rank = group_ ? group_->rank() : 0;
  const int saved_world = ts.value("world_size", 1);
  // Another world size (resharding, docs/distributed.md) needs a position every rank shares;
  // each rank then continues from rank 0's RNG state (dropout masks are per rank anyway).
  const bool same_world = saved_world == world;
  BIOLM_CHECK(same_world || train.global_position(), CheckpointError, (dir / kTrainerStateFile).string(),
              "world_size",
              fmt::format("the checkpoint was written by {} process(es), this run has {}: each rank resumes "
                          "its own data position, so the process count must match (a data::Loader's global "
                          "position would allow it)",
                          saved_world, world));
  const fs::path rng_path = rank == 0 || !same_world ? dir / kRngFile : dir / rank_file(rank);
  const auto rng_map = io::read_tensor_file(rng_path);
  const core::RngState rng = rng_from_tensors(rng_map, rng_path);
  try {
    step_ = ts.at("step").get<int64_t>();
    nlohmann::json loader = ts.at("loader");
    s.epoch = ts.at("epoch").get<int64_t>();
    if (rank != 0 && same_world) {  // this rank's own position, not rank 0's
      BIOLM_CHECK(rng_map.count("state_json"), CheckpointError, rng_path.string(), "state_json", "missing");
      const auto bytes = tensor_bytes(rng_map.at("state_json"));
      const auto mine = nlohmann::json::parse(bytes.begin(), bytes.end());
      loader = mine.at("loader");
      s.epoch = mine.at("epoch").get<int64_t>();
    }
    s.best_metric = ts.at("best_metric").is_null() ? std::nullopt : std::optional<double>(ts["best_metric"].get<double>());
    s.best_step = ts.at("best_step").is_null() ? std::nullopt : std::optional<int64_t>(ts["best_step"].get<int64_t>());
    s.evals_without_improvement = ts.at("evals_without_improvement").get<int64_t>();
    s.nonfinite_steps = ts.at("nonfinite_steps").get<int64_t>();
    s.seed = ts.at("seed").get<std::uint64_t>();
    if (config_.dp) {
      BIOLM_CHECK(ts.contains("dp"), CheckpointError, (dir / "trainer_state.json").string(), "dp",
                  "this run uses DP-SGD but the checkpoint was written without it: its steps are not accounted");
      std::vector<RdpAccountant::Segment> hist;
      for (const auto& h : ts.at("dp").at("accountant_history")) {
        hist.push_back({h.at(0).get<double>(), h.at(1).get<double>(), h.at(2).get<int64_t>()});
      }
      s.accountant.set_history(std::move(hist));
    }
    train.restore(loader);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError((dir / "trainer_state.json").string(), "", e.what());
  }
  core::restore_rng_state(rng);
  s.last_checkpoint = dir;
  s.last_checkpoint_step = step_;
  log::info("resumed from {} at step {}", dir.string(), step_);
}

}  // namespace biolm::train

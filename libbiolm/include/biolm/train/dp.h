// biolm/train/dp.h: differentially private SGD (DP-SGD) for the trainer.
//
// Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1, as Opacus runs it:
//   1. a logical batch L draws every training example independently with probability q
//      (Poisson sampling: PoissonLoader; its size varies from step to step);
//   2. every example's gradient g_i of its own loss is computed and clipped to norm C:
//      ḡ_i = g_i · min(1, C / (‖g_i‖ + 1e-6))      (Opacus' clip factor; ‖·‖ over all trainable tensors)
//   3. the step's gradient is (Σ_{i∈L} ḡ_i + N(0, σ²C² I)) / (q N), N the dataset size:
//      divided by the EXPECTED batch size, since the real one is data-dependent (Opacus'
//      expected_batch_size); the noise is drawn once per logical batch, also for an empty one;
//   4. the RDP accountant (accountant.h) adds one sampled-Gaussian step of (σ, q).
// A logical batch is split into TrainConfig::grad_accum micro-batches (PoissonLoader's
// micro_batches), so batches larger than memory accumulate as in the non-private trainer.
//
// Per-example gradients come from stored activations and output gradients, as Opacus'
// grad-sample hooks (opacus/grad_sample/linear.py): a Linear y = x Wᵀ + b, x (B,R,in),
// dy = ∂loss/∂y (B,R,out), R the rows of one example (tokens; choices × tokens):
//   g_W[b] = Σ_r dy[b,r]ᵀ x[b,r]  (out,in),   g_b[b] = Σ_r dy[b,r]  (out)
// and a LoRA adapter out += s · (h Aᵀ) Bᵀ, h = dropout(x), u = h Aᵀ (B,R,r):
//   g_B[b] = s Σ_r dy[b,r]ᵀ u[b,r]  (out,r),   g_A[b] = s Σ_r (dy[b,r] B)ᵀ h[b,r]  (r,in).
// x, h and u are recorded by the layers' forward taps (nn::LinearImpl::forward_tap,
// peft::LoraAdapterImpl::forward_tap), dy by a backward hook on the layer's output. One backward
// pass per micro-batch, not one per example.
//
// What is refused (ConfigError / Error naming the reason), because per-example gradients would
// be wrong or examples would mix: trainable tensors outside nn::Linear weights/biases and LoRA
// adapters (embeddings, norms, IA3, soft prompts: freeze them), a model whose dp_refusal() says
// so (MoE routing, sparse MLM logits), packed rows (batches with segment_ids), a Linear whose
// input rows are not a whole multiple of the batch's examples, a parameter whose gradient does
// not equal the sum of its per-example gradients (checked once, on the first micro-batch: tied
// or otherwise shared weights), data parallelism, activation checkpointing, clip_grad_norm.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/data/loader.h"
#include "biolm/train/accountant.h"
#include "biolm/train/config.h"

namespace biolm::train {

struct PoissonOptions {
  double sample_rate = 0.01;  ///< q: each example joins a logical batch with this probability
  int64_t micro_batches = 1;  ///< micro-batches per logical batch (= TrainConfig::grad_accum)
  uint64_t seed = 0;
};

/// Poisson sampling over a Dataset: logical batch k of epoch e holds every index i with
/// u_i < q, u drawn from std::mt19937_64(mix_seed(mix_seed(seed, e), k)): a pure function of
/// (seed, e, k), so state() = {epoch, next micro-batch} resumes exactly. An epoch is
/// floor(1 / q) logical batches (as Opacus' UniformWithReplacementSampler). The logical batch is
/// cut into micro_batches consecutive chunks of ceil(|L| / micro_batches) examples (some may be
/// empty: n_examples == 0, no tensors).
class PoissonLoader : public data::BatchSource {
 public:
  PoissonLoader(std::shared_ptr<const data::Dataset> dataset, data::Collator collator, PoissonOptions opts);

  std::optional<data::Batch> next() override;
  void start_epoch(int64_t epoch) override;
  /// {"epoch", "micro" (next micro-batch index in the epoch), "seed", "sample_rate", "micro_batches", "n_samples"}
  nlohmann::json state() const override;
  /// ConfigError when the state was written with other options or another dataset size.
  void restore(const nlohmann::json& state) override;
  std::optional<int64_t> batches_per_epoch() const override { return steps_per_epoch() * opts_.micro_batches; }

  /// The example indices of logical batch k of epoch e, ascending.
  std::vector<int64_t> logical_batch(int64_t epoch, int64_t k) const;
  double sample_rate() const { return opts_.sample_rate; }
  int64_t micro_batches() const { return opts_.micro_batches; }
  int64_t dataset_size() const { return n_; }
  double expected_batch_size() const { return opts_.sample_rate * static_cast<double>(n_); }
  int64_t steps_per_epoch() const;

 private:
  std::shared_ptr<const data::Dataset> dataset_;
  data::Collator collator_;
  PoissonOptions opts_;
  int64_t n_ = 0;
  int64_t epoch_ = 0;
  int64_t micro_ = 0;  // next micro-batch index within the epoch
  int64_t cached_k_ = -1;
  std::vector<int64_t> cached_;
};

/// Per-example gradients, clipping and noise over a model's trainable tensors (see the file
/// comment). Installs forward taps on construction, removes them on destruction.
class DpEngine {
 public:
  /// `trainable`: the tensors the optimizer updates (requires_grad). ConfigError("train.dp")
  /// naming every trainable tensor that has no per-example gradient rule, or the model's
  /// dp_refusal() when model is a TrainableModel.
  DpEngine(torch::nn::Module& model, std::vector<torch::Tensor> trainable);
  ~DpEngine();
  DpEngine(const DpEngine&) = delete;
  DpEngine& operator=(const DpEngine&) = delete;

  /// Before the forward pass of a micro-batch of n_examples examples (its rows).
  void begin_micro_batch(int64_t n_examples);
  /// After its backward pass: the per-example gradients of every trainable tensor, (B, *shape),
  /// by parameter name (zeros where no gradient reached a tensor). Does not consume the records.
  std::map<std::string, torch::Tensor> per_example_grads() const;
  /// After its backward pass: clips each example's gradient to max_grad_norm and adds it to the
  /// step's sum; drops the records and the tensors' .grad. Returns the pre-clip norms (B).
  torch::Tensor clip_and_accumulate(double max_grad_norm);
  /// Ends the logical batch: grad = (sum + N(0, (σC)²)) / expected_batch_size on every trainable
  /// tensor (noise from the global torch generator, so seeding and checkpoints cover it); the sum
  /// restarts at zero.
  void finish_step(double noise_multiplier, double max_grad_norm, double expected_batch_size);
  /// Drops the step's sum and records (a skipped step).
  void reset_step();
  /// Names of the trainable tensors, in optimizer order.
  const std::vector<std::string>& names() const { return names_; }

  struct Site;

 private:
  std::vector<std::shared_ptr<Site>> sites_;
  std::vector<torch::Tensor> trainable_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> sum_;  // per trainable tensor, the step's clipped sum
  int64_t n_examples_ = 0;
  bool checked_ = false;  // the sum-of-per-example == autograd check has run
};

/// What a DP run spent, for logs, results.json and model metadata.
nlohmann::json privacy_report(const DpConfig& config, double noise_multiplier, double sample_rate,
                              int64_t dataset_size, const RdpAccountant& accountant);

}  // namespace biolm::train

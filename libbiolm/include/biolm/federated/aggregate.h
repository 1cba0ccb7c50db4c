// biolm/federated/aggregate.h: the server side of one round — which sites train, how their
// updates become the next global state — and FedProx's proximal term on the site side.
//
// FedAvg (McMahan et al. 2017, Algorithm 1): w_{t+1} = Σ_k n_k w_k / Σ_k n_k over the sites k
//   that returned an update, n_k the site's training examples (Flower's aggregate() in
//   flwr/server/strategy/aggregate.py computes the same weighted mean).
// FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2), as Flower's
//   FedAdam (flwr/server/strategy/fedadam.py) runs it, round t = 1, 2, ...:
//   Δ_t = FedAvg(w_k) − w_{t−1};  m_t = β1 m_{t−1} + (1−β1) Δ_t;  v_t = β2 v_{t−1} + (1−β2) Δ_t²
//   w_t = w_{t−1} + η_t m_t / (√v_t + τ),  η_t = η √(1−β2^{t+1}) / (1−β1^{t+1})
// FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks", eq. 2): each site
//   minimises F_k(w) + μ/2 ‖w − w_t‖², ‖·‖ over the exchanged tensors; ProximalModel adds the
//   term to the model's loss so the trainer's gradient is ∇F_k(w) + μ (w − w_t).
#pragma once

#include <nlohmann/json.hpp>

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "biolm/federated/config.h"
#include "biolm/train/model.h"

namespace biolm::federated {

using TensorMap = std::map<std::string, torch::Tensor>;

/// The sites of round `round` (1-based): m = min(N, max(floor(fraction · N), min_clients)) distinct
/// indices of [0, N), ascending, drawn from std::mt19937_64(mix_seed(seed, round)): a pure
/// function of (seed, round, N, fraction, min_clients), so a resumed federation samples the same.
std::vector<int64_t> sample_clients(int64_t n_sites, double fraction, int64_t min_clients, uint64_t seed,
                                    int64_t round);

/// One site's answer to a round.
struct Update {
  TensorMap tensors;       ///< the exchanged tensors after local training (CPU)
  int64_t n_examples = 0;  ///< training examples of the site (the FedAvg weight; TaskData::n_examples)
  double train_loss = 0.0; ///< mean loss of its last local step (for logs)
  int64_t steps = 0;       ///< local optimizer steps run
  /// DP-SGD at the site: what it has spent over all its rounds so far ({"epsilon", "delta",
  /// "noise_multiplier", "sample_rate", "steps", "rounds", "accountant"}); null without DP.
  nlohmann::json privacy;
};

/// Σ_k n_k w_k / Σ_k n_k per tensor, accumulated in float64 and cast back to each tensor's dtype.
/// Every update must hold the same names and shapes (CheckpointError naming the tensor otherwise);
/// Error when there is no update or Σ n_k == 0.
TensorMap fedavg(const std::vector<const Update*>& updates);

/// Bytes of the tensor payload (Σ numel · element size); what one transfer of `tensors` costs.
int64_t payload_bytes(const TensorMap& tensors);

/// FedAdam's server state (m, v per tensor) and step; empty until the first round.
class FedAdam {
 public:
  FedAdam(double lr, double beta1, double beta2, double tau);
  /// The new global state from the previous one and the round's FedAvg; `round` is 1-based.
  TensorMap step(const TensorMap& global, const TensorMap& averaged, int64_t round);
  /// "m.<name>" and "v.<name>" tensors, for checkpoints.
  TensorMap state() const;
  void load_state(const TensorMap& state);

 private:
  double lr_, beta1_, beta2_, tau_;
  TensorMap m_, v_;
};

/// FedProx's local objective around a fixed global state: forward_batch returns the wrapped
/// model's loss_sum + n_target_tokens · μ/2 ‖w − w_global‖². The trainer divides the step's loss
/// sum by its target count, so the step's objective is mean loss + μ/2 ‖w − w_global‖² however
/// the tokens fall into micro-batches. Registers the wrapped model as submodule "model"
/// (parameter names gain the prefix "model."). DP-SGD is refused (the term is not per example).
class ProximalModel : public train::TrainableModel {
 public:
  /// `global`: name (without the "model." prefix) -> tensor; every name must be a parameter of
  /// `inner` with the same shape (CheckpointError otherwise).
  ProximalModel(std::shared_ptr<train::TrainableModel> inner, double mu, const TensorMap& global);
  train::StepOutput forward_batch(const data::Batch& batch) override;
  torch::Tensor embed_tokens(const torch::Tensor& input_ids) override;
  void set_activation_checkpointing(bool enabled) override;
  std::optional<std::string> dp_refusal() const override;
  /// μ/2 ‖w − w_global‖² (a scalar with gradient).
  torch::Tensor proximal_term();

 private:
  std::shared_ptr<train::TrainableModel> inner_;
  double mu_;
  std::vector<torch::Tensor> params_;  // inner parameters with a global reference, in name order
  std::vector<torch::Tensor> global_;  // the references (no gradient), on the parameters' devices
};

}  // namespace biolm::federated

#include "biolm/federated/aggregate.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "biolm/core/error.h"
#include "biolm/data/collate.h"

namespace biolm::federated {

std::vector<int64_t> sample_clients(int64_t n_sites, double fraction, int64_t min_clients, uint64_t seed,
                                    int64_t round) {
  BIOLM_CHECK(n_sites >= 1, ConfigError, "sites", "a federation needs at least one site");
  // Flower's sample size: int(num_available_clients * fraction_fit), at least min_fit_clients.
  const auto by_fraction = static_cast<int64_t>(std::floor(fraction * static_cast<double>(n_sites)));
  const int64_t m = std::min(n_sites, std::max(by_fraction, min_clients));
  std::vector<int64_t> all(static_cast<size_t>(n_sites));
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(data::mix_seed(seed, static_cast<uint64_t>(round)));
  // Partial Fisher-Yates: the first m entries are a uniform sample without replacement.
  for (int64_t i = 0; i < m; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, n_sites - 1);
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(pick(rng))]);
  }
  std::vector<int64_t> chosen(all.begin(), all.begin() + m);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

TensorMap fedavg(const std::vector<const Update*>& updates) {
  BIOLM_CHECK(!updates.empty(), Error, "fedavg: no update to average");
  int64_t total = 0;
  for (const auto* u : updates) total += u->n_examples;
  BIOLM_CHECK(total > 0, Error, "fedavg: the updates hold 0 training examples in all");
  const auto& first = updates.front()->tensors;
  TensorMap out;
  for (const auto& [name, t0] : first) {
    auto acc = torch::zeros(t0.sizes(), torch::TensorOptions().dtype(torch::kFloat64));
    for (const auto* u : updates) {
      const auto it = u->tensors.find(name);
      if (it == u->tensors.end()) throw CheckpointError("", name, "fedavg: a site's update lacks this tensor");
      if (!it->second.sizes().equals(t0.sizes())) {
        throw CheckpointError("", name, "fedavg: shapes differ between sites");
      }
      acc.add_(it->second.detach().to(torch::kCPU, torch::kFloat64), static_cast<double>(u->n_examples));
    }
    out[name] = (acc / static_cast<double>(total)).to(t0.scalar_type());
  }
  for (const auto* u : updates) {
    for (const auto& [name, t] : u->tensors) {
      if (!first.count(name)) throw CheckpointError("", name, "fedavg: only some sites' updates hold this tensor");
    }
  }
  return out;
}

int64_t payload_bytes(const TensorMap& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

FedAdam::FedAdam(double lr, double beta1, double beta2, double tau) : lr_(lr), beta1_(beta1), beta2_(beta2), tau_(tau) {}

TensorMap FedAdam::step(const TensorMap& global, const TensorMap& averaged, int64_t round) {
  // Flower's FedAdam computes in the arrays' dtype (float32 for our tensors); so do we, in
  // float64 for the scalar step size only.
  const double t = static_cast<double>(round);
  const double eta = lr_ * std::sqrt(1.0 - std::pow(beta2_, t + 1.0)) / (1.0 - std::pow(beta1_, t + 1.0));
  TensorMap out;
  for (const auto& [name, w] : global) {
    const auto it = averaged.find(name);
    if (it == averaged.end()) throw CheckpointError("", name, "FedAdam: the round's average lacks this tensor");
    const auto delta = it->second - w;
    auto& m = m_[name];
    auto& v = v_[name];
    if (!m.defined()) m = torch::zeros_like(delta);
    if (!v.defined()) v = torch::zeros_like(delta);
    m = m * beta1_ + delta * (1.0 - beta1_);
    v = v * beta2_ + delta * delta * (1.0 - beta2_);
    out[name] = w + m * eta / (v.sqrt() + tau_);
  }
  return out;
}

TensorMap FedAdam::state() const {
  TensorMap s;
  for (const auto& [name, t] : m_) s["m." + name] = t;
  for (const auto& [name, t] : v_) s["v." + name] = t;
  return s;
}

void FedAdam::load_state(const TensorMap& state) {
  m_.clear();
  v_.clear();
  for (const auto& [key, t] : state) {
    if (key.rfind("m.", 0) == 0) {
      m_[key.substr(2)] = t.clone();
    } else if (key.rfind("v.", 0) == 0) {
      v_[key.substr(2)] = t.clone();
    } else {
      throw CheckpointError("", key, "FedAdam state: expected tensors named m.<name> or v.<name>");
    }
  }
}

ProximalModel::ProximalModel(std::shared_ptr<train::TrainableModel> inner, double mu, const TensorMap& global)
    : inner_(std::move(inner)), mu_(mu) {
  register_module("model", inner_);
  const auto named = inner_->named_parameters(/*recurse=*/true);
  for (const auto& [name, ref] : global) {
    const auto* p = named.find(name);
    if (!p) throw CheckpointError("", name, "FedProx: the global state names a tensor the model does not have");
    if (!p->sizes().equals(ref.sizes())) throw CheckpointError("", name, "FedProx: shape differs from the model's");
    params_.push_back(*p);
    global_.push_back(ref.detach().to(p->device(), p->scalar_type()).clone());
  }
}

torch::Tensor ProximalModel::proximal_term() {
  auto sq = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32));
  if (!params_.empty()) sq = sq.to(params_.front().device());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (global_[i].device() != params_[i].device()) global_[i] = global_[i].to(params_[i].device());
    sq = sq + (params_[i] - global_[i]).pow(2).sum().to(torch::kFloat32);
  }
  return sq * (mu_ / 2.0);
}

train::StepOutput ProximalModel::forward_batch(const data::Batch& batch) {
  auto out = inner_->run(batch);
  if (mu_ > 0.0 && !params_.empty()) {
    out.loss_sum = out.loss_sum + proximal_term() * static_cast<double>(out.n_target_tokens);
  }
  return out;
}

torch::Tensor ProximalModel::embed_tokens(const torch::Tensor& input_ids) { return inner_->embed_tokens(input_ids); }
void ProximalModel::set_activation_checkpointing(bool enabled) { inner_->set_activation_checkpointing(enabled); }
std::optional<std::string> ProximalModel::dp_refusal() const {
  return std::string("FedProx's proximal term is not a per-example loss: use algorithm: fedavg with train.dp");
}

}  // namespace biolm::federated

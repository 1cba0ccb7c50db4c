// biolm/nn/moe.h: sparse mixture-of-experts FFN with top-k routing (Shazeer et al. 2017; Switch
// Transformer, Fedus et al. 2021; Mixtral, Jiang et al. 2024).
//
//   p = softmax(router(x)) (N,E); each token goes to its k most probable experts with weights
//   p_topk (renormalised to sum 1 when normalize_top_k, as Mixtral); out = sum_k w_k expert_k(x).
//   Load-balancing loss (Switch eq. 4, generalised to top-k as in HF Mixtral):
//     aux = E * sum_e f_e * P_e,  f_e = share of the N*k assignments that went to e,
//                                  P_e = mean router probability of e over tokens.
//   aux = 1 whenever P is uniform (and under perfectly balanced routing); it grows with imbalance.
// Registered: "router" (C->E, no bias), "experts.E.{up,gate,down}".
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "biolm/nn/linear.h"
#include "biolm/nn/mlp.h"

namespace biolm::nn {

struct MoeOptions {
  MoeOptions(int64_t hidden_size, int64_t ffn_size, int64_t n_experts, int64_t top_k)
      : hidden_size_(hidden_size), ffn_size_(ffn_size), n_experts_(n_experts), top_k_(top_k) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, ffn_size);
  TORCH_ARG(int64_t, n_experts);
  TORCH_ARG(int64_t, top_k);
  TORCH_ARG(Activation, activation) = Activation::SwiGLU;
  TORCH_ARG(bool, bias) = false;
  TORCH_ARG(bool, normalize_top_k) = true;
  TORCH_ARG(double, init_std) = 0.02;
};

struct MoeOutput {
  torch::Tensor out;            // (B,T,C)
  torch::Tensor aux_loss;       // scalar (unweighted), float32
  torch::Tensor router_probs;   // (N,E) over the N = B*T tokens, float32
  torch::Tensor expert_index;   // (N,k) chosen experts
};

class MoeImpl : public torch::nn::Cloneable<MoeImpl> {
 public:
  explicit MoeImpl(const MoeOptions& options);
  void reset() override;
  /// x: (B,T,C); token_mask (B,T) 1 = real (undefined = all): padding is routed like any token
  /// but left out of the load-balancing statistics.
  MoeOutput forward(const torch::Tensor& x, const torch::Tensor& token_mask = {});

  MoeOptions options;
  Linear router{nullptr};
  torch::nn::ModuleList experts{nullptr};
};
TORCH_MODULE(Moe);

/// The load-balancing loss from router probabilities (N,E), the chosen experts (N,k) and an
/// optional token weight (N) (1 = counted).
torch::Tensor load_balancing_loss(const torch::Tensor& router_probs, const torch::Tensor& expert_index,
                                  int64_t n_experts, const torch::Tensor& token_weight = {});

}  // namespace biolm::nn

#include "biolm/nn/moe.h"

#include "biolm/core/error.h"

namespace biolm::nn {

MoeImpl::MoeImpl(const MoeOptions& options_) : options(options_) { reset(); }

void MoeImpl::reset() {
  BIOLM_CHECK(options.n_experts() > 0 && options.top_k() >= 1 && options.top_k() <= options.n_experts(), ShapeError,
              "Moe", "need n_experts > 0 and 1 <= top_k <= n_experts");
  router = register_module(
      "router", Linear(LinearOptions(options.hidden_size(), options.n_experts()).bias(false).init_std(options.init_std())));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < options.n_experts(); ++e) {
    experts->push_back(Mlp(MlpOptions(options.hidden_size(), options.ffn_size())
                               .activation(options.activation())
                               .bias(options.bias())
                               .init_std(options.init_std())));
  }
}

torch::Tensor load_balancing_loss(const torch::Tensor& router_probs, const torch::Tensor& expert_index,
                                  int64_t n_experts, const torch::Tensor& token_weight) {
  const int64_t N = router_probs.size(0), k = expert_index.size(1);
  auto w = token_weight.defined() ? token_weight.to(torch::kFloat).view({N})
                                  : torch::ones({N}, router_probs.options().dtype(torch::kFloat));
  const auto n_tokens = w.sum().clamp_min(1.0);
  // f_e: share of the N*k assignments routed to e (not differentiable, as in Switch).
  const auto one_hot = torch::one_hot(expert_index, n_experts).to(torch::kFloat);  // (N,k,E)
  const auto f = (one_hot.sum(1) * w.unsqueeze(1)).sum(0) / (n_tokens * static_cast<double>(k));  // (E)
  // P_e: mean router probability (carries the gradient to the router).
  const auto P = (router_probs.to(torch::kFloat) * w.unsqueeze(1)).sum(0) / n_tokens;  // (E)
  return static_cast<double>(n_experts) * (f * P).sum();
}

MoeOutput MoeImpl::forward(const torch::Tensor& x, const torch::Tensor& token_mask) {
  BIOLM_CHECK(x.dim() == 3 && x.size(2) == options.hidden_size(), ShapeError, "Moe", "expected x (B,T,C)");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), N = B * T;
  const auto flat = x.reshape({N, C});                                   // (N,C)
  const auto probs = torch::softmax(router(flat).to(torch::kFloat), -1);  // (N,E)
  auto [top_w, top_i] = torch::topk(probs, options.top_k(), -1);         // (N,k)
  if (options.normalize_top_k()) top_w = top_w / top_w.sum(-1, /*keepdim=*/true);
  top_w = top_w.to(x.scalar_type());
  auto out = torch::zeros_like(flat);
  for (int64_t e = 0; e < options.n_experts(); ++e) {
    const auto hit = (top_i == e).nonzero();  // (n_e, 2): token, slot
    if (hit.size(0) == 0) continue;
    const auto tokens = hit.select(1, 0), slots = hit.select(1, 1);
    const auto y = experts[e]->as<MlpImpl>()->forward(flat.index_select(0, tokens));  // (n_e,C)
    const auto w = top_w.index({tokens, slots}).unsqueeze(1);                          // (n_e,1)
    out = out.index_add(0, tokens, y * w);
  }
  MoeOutput result;
  result.out = out.view({B, T, C});
  result.router_probs = probs;
  result.expert_index = top_i;
  result.aux_loss = load_balancing_loss(probs, top_i, options.n_experts(),
                                        token_mask.defined() ? token_mask.reshape({N}) : torch::Tensor());
  return result;
}

}  // namespace biolm::nn

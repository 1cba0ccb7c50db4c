#include "biolm/train/optim.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "biolm/core/compat.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"

namespace biolm::train {

namespace {

// torch::optim::AdamW whose step() is one fused kernel per group (compat::fused_adamw_, the
// kernel of torch.optim.AdamW(fused=True)) instead of ~10 ATen calls per tensor. The state lives
// in the same AdamWParamState objects, so checkpoints, optimizer_state_numel and resume are
// unchanged; only the step count is also kept as a float tensor on the device, as the kernel wants.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard no_grad;
    torch::Tensor loss;
    if (closure) {
      at::AutoGradMode enable_grad(true);
      loss = closure();
    }
    for (auto& group : param_groups_) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      std::vector<torch::Tensor> ps, gs, ms, vs, steps;
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        auto& slot = state_[compat::optimizer_state_key(p)];
        if (!slot) {
          auto st = std::make_unique<torch::optim::AdamWParamState>();
          st->step(0);
          st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
          st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
          slot = std::move(st);
        }
        auto& st = static_cast<torch::optim::AdamWParamState&>(*slot);
        st.step(st.step() + 1);
        ps.push_back(p);
        gs.push_back(p.grad());
        ms.push_back(st.exp_avg());
        vs.push_back(st.exp_avg_sq());
        steps.push_back(torch::full({}, static_cast<double>(st.step()), p.options().dtype(torch::kFloat)));
      }
      compat::fused_adamw_(ps, gs, ms, vs, steps, o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()),
                           o.weight_decay(), o.eps());
    }
    return loss;
  }
};

// The fused kernel needs every tensor on one device of a kind it supports, in a float dtype.
bool can_fuse(const std::vector<std::vector<torch::Tensor>>& params) {
  const auto device = params.at(0).at(0).device();
  if (!compat::has_fused_adamw(device.type())) return false;
  for (const auto& group : params) {
    for (const auto& p : group) {
      if (p.device() != device || !p.is_floating_point()) return false;
    }
  }
  return true;
}

}  // namespace

bool decays(const std::string& name, const torch::Tensor& param) {
  if (param.dim() < 2) return false;
  if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) return false;
  const auto last_dot = name.rfind('.');
  const std::string owner = last_dot == std::string::npos ? "" : name.substr(0, last_dot);
  const std::string owner_last = owner.substr(owner.rfind('.') == std::string::npos ? 0 : owner.rfind('.') + 1);
  return owner_last.find("norm") == std::string::npos;
}

OptimizerSetup build_optimizer(torch::nn::Module& model, const TrainConfig& config,
                               const std::map<std::string, double>& lr_scales) {
  std::vector<OptimizerParam> params;
  for (const auto& item : model.named_parameters(true)) {
    if (item.value().requires_grad()) params.push_back({item.key(), item.value(), item.value()});
  }
  return build_optimizer(params, config, lr_scales);
}

OptimizerSetup build_optimizer(const std::vector<OptimizerParam>& named, const TrainConfig& config,
                               const std::map<std::string, double>& lr_scales) {
  // Groups keyed by (scale, decay), in first-seen order so the layout is deterministic.
  std::vector<std::pair<double, bool>> keys;
  std::vector<std::vector<torch::Tensor>> params;
  OptimizerSetup setup;
  for (const auto& item : named) {
    const auto it = lr_scales.find(item.name);
    const double scale = it == lr_scales.end() ? 1.0 : it->second;
    const bool decay = config.weight_decay > 0 && decays(item.name, item.like);
    size_t g = 0;
    while (g < keys.size() && keys[g] != std::make_pair(scale, decay)) ++g;
    if (g == keys.size()) {
      keys.emplace_back(scale, decay);
      params.emplace_back();
      setup.group_names.emplace_back();
    }
    params[g].push_back(item.tensor);
    setup.group_names[g].push_back(item.name);
  }
  BIOLM_CHECK(!keys.empty(), ConfigError, "peft.method", "the model has no trainable parameters");
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (size_t g = 0; g < keys.size(); ++g) {
    const double lr = config.lr * keys[g].first;
    const double wd = keys[g].second ? config.weight_decay : 0.0;
    setup.base_lrs.push_back(lr);
    if (config.optimizer == OptimizerKind::AdamW) {
      groups.emplace_back(params[g], std::make_unique<torch::optim::AdamWOptions>(
                                         torch::optim::AdamWOptions(lr)
                                             .betas({config.beta1, config.beta2})
                                             .eps(config.eps)
                                             .weight_decay(wd)));
    } else {
      groups.emplace_back(params[g], std::make_unique<torch::optim::SGDOptions>(
                                         torch::optim::SGDOptions(lr).momentum(config.momentum).weight_decay(wd)));
    }
  }
  if (config.optimizer == OptimizerKind::AdamW && config.fused_optimizer && can_fuse(params)) {
    setup.optimizer = std::make_unique<FusedAdamW>(std::move(groups), torch::optim::AdamWOptions(config.lr));
  } else if (config.optimizer == OptimizerKind::AdamW) {
    if (config.fused_optimizer) {
      log::info("train.fused_optimizer: no fused AdamW in LibTorch {} for {}; using torch::optim::AdamW",
                TORCH_VERSION, params[0][0].device().str());
    }
    setup.optimizer = std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(config.lr));
  } else {
    setup.optimizer = std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(config.lr));
  }
  return setup;
}

double lr_factor(const TrainConfig& c, int64_t step) {
  if (c.warmup_steps > 0 && step < c.warmup_steps) {
    return static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  }
  if (c.schedule == ScheduleKind::Constant) return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, c.max_steps - c.warmup_steps));
  const double p = std::clamp(static_cast<double>(step - c.warmup_steps) / span, 0.0, 1.0);
  const double m = c.min_lr_ratio;
  if (c.schedule == ScheduleKind::Linear) return m + (1 - m) * (1 - p);
  return m + (1 - m) * 0.5 * (1 + std::cos(M_PI * p));
}

void apply_lr(OptimizerSetup& setup, const TrainConfig& config, int64_t step) {
  const double f = lr_factor(config, step);
  auto& groups = setup.optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(setup.base_lrs[g] * f);
}

int64_t optimizer_state_numel(const torch::optim::Optimizer& optimizer) {
  int64_t n = 0;
  for (const auto& kv : optimizer.state()) {
    if (const auto* a = dynamic_cast<const torch::optim::AdamWParamState*>(kv.second.get())) {
      if (a->exp_avg().defined()) n += a->exp_avg().numel();
      if (a->exp_avg_sq().defined()) n += a->exp_avg_sq().numel();
      if (a->max_exp_avg_sq().defined()) n += a->max_exp_avg_sq().numel();
    } else if (const auto* s = dynamic_cast<const torch::optim::SGDParamState*>(kv.second.get())) {
      if (s->momentum_buffer().defined()) n += s->momentum_buffer().numel();
    }
  }
  return n;
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().norm(2));
  }
  if (grads.empty()) return torch::zeros({});
  const auto total = norms.size() == 1 ? norms.front() : torch::stack(norms).norm(2);
  const auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (auto& g : grads) g.mul_(coef.to(g.dtype()));
  return total;
}

}  // namespace biolm::train

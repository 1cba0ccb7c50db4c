#include "biolm/peft/lora.h"

#include <torch/nn/init.h>

#include <cmath>

#include "biolm/core/error.h"
#include "biolm/nn/dropout.h"
#include "biolm/peft/dora.h"
#include "biolm/peft/pattern.h"

namespace biolm::peft {

double LoraOptions::scaling() const {
  return rank_stabilized() ? alpha() / std::sqrt(static_cast<double>(rank())) : alpha() / static_cast<double>(rank());
}

LoraOptions LoraOptions::for_module(const std::string& name) const {
  LoraOptions out = *this;
  for (const auto& [pattern, r] : rank_pattern()) {
    if (NamePattern(pattern, "peft.lora.rank_pattern").matches(name)) {
      out.rank(r);
      break;
    }
  }
  for (const auto& [pattern, a] : alpha_pattern()) {
    if (NamePattern(pattern, "peft.lora.alpha_pattern").matches(name)) {
      out.alpha(a);
      break;
    }
  }
  out.rank_pattern({}).alpha_pattern({});
  return out;
}

void LoraOptions::validate() const {
  for (const auto& [pattern, r] : rank_pattern()) {
    BIOLM_CHECK(r > 0, ConfigError, "peft.lora.rank_pattern." + pattern, "must be > 0, got " + std::to_string(r));
  }
  for (const auto& [pattern, a] : alpha_pattern()) {
    BIOLM_CHECK(a > 0, ConfigError, "peft.lora.alpha_pattern." + pattern, "must be > 0, got " + std::to_string(a));
  }
  BIOLM_CHECK(rank() > 0, ConfigError, "peft.lora.rank", "must be > 0, got " + std::to_string(rank()));
  BIOLM_CHECK(alpha() > 0, ConfigError, "peft.lora.alpha", "must be > 0, got " + std::to_string(alpha()));
  BIOLM_CHECK(dropout() >= 0 && dropout() < 1, ConfigError, "peft.lora.dropout",
              "must be in [0, 1), got " + std::to_string(dropout()));
  BIOLM_CHECK(!targets().empty(), ConfigError, "peft.lora.targets", "no target patterns given");
}

LoraAdapterImpl::LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options,
                                 const torch::Tensor& like)
    : scaling_(options.scaling()), dropout_(options.dropout()) {
  const auto opts = like.options().requires_grad(false);
  lora_a = register_parameter("lora_a", torch::empty({options.rank(), in_features}, opts));
  lora_b = register_parameter("lora_b", torch::zeros({out_features, options.rank()}, opts));
  torch::NoGradGuard no_grad;
  // PEFT: nn.init.kaiming_uniform_(lora_A.weight, a=math.sqrt(5)); B = 0 (Hu et al. §4.1).
  torch::nn::init::kaiming_uniform_(lora_a, std::sqrt(5.0));
}

torch::Tensor LoraAdapterImpl::adapt(const torch::Tensor& x, const torch::Tensor& base_out, const nn::LinearImpl&) {
  auto h = dropout_ > 0 ? nn::dropout(x, dropout_, is_training()) : x;
  // (..., in) -> (..., r) -> (..., out)
  const auto u = torch::matmul(h, lora_a.t());
  if (forward_tap) forward_tap(h, u);
  return torch::add(base_out, torch::matmul(u, lora_b.t()), scaling_);  // base + scaling * h in one pass
}

torch::Tensor LoraAdapterImpl::delta_weight() const { return torch::matmul(lora_b, lora_a) * scaling_; }

void LoraAdapterImpl::merge_into(nn::LinearImpl& base) { base.weight.add_(delta_weight().to(base.weight.dtype())); }

void LoraAdapterImpl::unmerge_from(nn::LinearImpl& base) { base.weight.sub_(delta_weight().to(base.weight.dtype())); }

void LoraAdapterImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::peft::LoraAdapter(rank=" << lora_a.size(0) << ", scaling=" << scaling_ << ", dropout=" << dropout_
         << ")";
}

std::vector<std::string> apply_lora(torch::nn::Module& model, const LoraOptions& options) {
  options.validate();
  std::vector<std::string> names;
  for (auto& [name, lin] : find_linears(model, options.targets(), "peft.lora.targets")) {
    const LoraOptions o = options.for_module(name);
    const int64_t in = lin->options.in_features(), out = lin->options.out_features();
    lin->attach_adapter(o.use_dora() ? std::make_shared<DoraAdapterImpl>(in, out, o, lin->dense_weight())
                                     : std::make_shared<LoraAdapterImpl>(in, out, o, lin->weight));
    names.push_back(name);
  }
  return names;
}

}  // namespace biolm::peft

#include "biolm/peft/ia3.h"

#include <torch/nn/functional/linear.h>

#include <set>

#include "biolm/core/error.h"
#include "biolm/peft/pattern.h"

namespace biolm::peft {

void Ia3Options::validate() const {
  BIOLM_CHECK(!targets().empty() || !input_targets().empty(), ConfigError, "peft.ia3.targets",
              "neither targets nor input_targets given");
}

Ia3AdapterImpl::Ia3AdapterImpl(int64_t n, bool scale_input, const torch::Tensor& like) : scale_input_(scale_input) {
  ia3_scale = register_parameter("ia3_scale", torch::ones({n}, like.options().requires_grad(false)));
}

torch::Tensor Ia3AdapterImpl::adapt(const torch::Tensor& x, const torch::Tensor& base_out, const nn::LinearImpl& base) {
  if (!scale_input_) return base_out * ia3_scale;  // l ⊙ (x W^T + b)
  // (l ⊙ x) W^T + b: the base output cannot be rescaled afterwards, so recompute it.
  return base.base_linear(x * ia3_scale);
}

void Ia3AdapterImpl::merge_into(nn::LinearImpl& base) {
  const auto l = ia3_scale.to(base.weight.dtype());
  if (scale_input_) {
    base.weight.mul_(l.unsqueeze(0));  // W (out,in) · diag(l)
  } else {
    base.weight.mul_(l.unsqueeze(1));  // diag(l) · W
    if (base.bias.defined()) base.bias.mul_(l);
  }
}

void Ia3AdapterImpl::unmerge_from(nn::LinearImpl& base) {
  const auto l = ia3_scale.to(base.weight.dtype());
  if (scale_input_) {
    base.weight.div_(l.unsqueeze(0));
  } else {
    base.weight.div_(l.unsqueeze(1));
    if (base.bias.defined()) base.bias.div_(l);
  }
}

void Ia3AdapterImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::peft::Ia3Adapter(n=" << ia3_scale.size(0) << ", scale=" << (scale_input_ ? "input" : "output")
         << ")";
}

std::vector<std::string> apply_ia3(torch::nn::Module& model, const Ia3Options& options) {
  options.validate();
  std::vector<std::pair<std::string, std::shared_ptr<nn::LinearImpl>>> out_lins, in_lins;
  if (!options.targets().empty()) out_lins = find_linears(model, options.targets(), "peft.ia3.targets");
  if (!options.input_targets().empty()) in_lins = find_linears(model, options.input_targets(), "peft.ia3.input_targets");
  std::set<std::string> seen;
  for (const auto& nl : out_lins) seen.insert(nl.first);
  for (const auto& nl : in_lins) {
    BIOLM_CHECK(!seen.count(nl.first), ConfigError, "peft.ia3.input_targets",
                "Linear '" + nl.first + "' is matched by both targets and input_targets");
  }
  std::vector<std::string> names;
  for (auto& [name, lin] : out_lins) {
    lin->attach_adapter(std::make_shared<Ia3AdapterImpl>(lin->options.out_features(), false, lin->weight));
    names.push_back(name);
  }
  for (auto& [name, lin] : in_lins) {
    lin->attach_adapter(std::make_shared<Ia3AdapterImpl>(lin->options.in_features(), true, lin->weight));
    names.push_back(name);
  }
  return names;
}

}  // namespace biolm::peft

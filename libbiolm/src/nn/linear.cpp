#include "biolm/nn/linear.h"

#include <torch/nn/functional/linear.h>
#include <torch/nn/init.h>

#include "biolm/core/error.h"

namespace biolm::nn {

LinearImpl::LinearImpl(const LinearOptions& options_) : options(options_) { reset(); }

void LinearImpl::reset() {
  BIOLM_CHECK(options.in_features() > 0 && options.out_features() > 0, ShapeError, "Linear",
              "in_features and out_features must be positive");
  weight = register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
  // An absent bias stays registered (undefined) so parameter names never shift.
  bias = register_parameter("bias", options.bias() ? torch::empty({options.out_features()}) : torch::Tensor(),
                            /*requires_grad=*/options.bias());
  reset_parameters();
}

void LinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  if (options.init_std() > 0) {
    weight.normal_(0.0, options.init_std());
  } else {
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  }
  if (bias.defined()) bias.zero_();
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << "biolm::nn::Linear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", bias=" << (options.bias() ? "true" : "false")
         << (adapter_ ? (merged_ ? ", adapter=merged" : ", adapter=attached") : "") << ")";
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  BIOLM_CHECK(x.dim() >= 1 && x.size(-1) == options.in_features(), ShapeError, "Linear",
              "expected last dimension " + std::to_string(options.in_features()) + ", got input of " +
                  std::to_string(x.dim()) + " dims with last " + std::to_string(x.dim() ? x.size(-1) : 0));
  // at::linear, not torch::nn::functional::linear: the C++ frontend helper runs matmul + add for
  // inputs of more than 2 dims, at::linear folds a contiguous (B,T,C) input into one addmm.
  auto y = at::linear(x, weight, bias);
  if (adapter_ && !merged_) y = adapter_->adapt(x, y, *this);
  if (forward_tap) forward_tap(x, y);
  return y;
}

void LinearImpl::attach_adapter(std::shared_ptr<LinearAdapter> adapter) {
  if (adapter_) detach_adapter();
  adapter_ = register_module("adapter", std::move(adapter));
  merged_ = false;
}

std::shared_ptr<LinearAdapter> LinearImpl::detach_adapter() {
  if (!adapter_) return nullptr;
  if (merged_) unmerge_adapter();
  auto out = adapter_;
  unregister_module("adapter");
  adapter_.reset();
  return out;
}

void LinearImpl::merge_adapter() {
  if (!adapter_ || merged_) return;
  torch::NoGradGuard no_grad;
  adapter_->merge_into(*this);
  merged_ = true;
}

void LinearImpl::unmerge_adapter() {
  if (!adapter_ || !merged_) return;
  torch::NoGradGuard no_grad;
  adapter_->unmerge_from(*this);
  merged_ = false;
}

}  // namespace biolm::nn

#include "biolm/nn/linear.h"

#include <fmt/format.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/init.h>

#include "biolm/core/error.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"

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
  auto y = base_linear(x);
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

void LinearImpl::quantize_weight(quant::QuantType type, bool double_quant) {
  BIOLM_CHECK(!adapter_ || !merged_, ConfigError, "model.quantize", "unmerge the adapter before quantizing");
  if (quantized_) dequantize_weight();
  set_quantized_weight(std::make_shared<const quant::QuantizedTensor>(quant::quantize(weight, type, double_quant)));
}

void LinearImpl::set_quantized_weight(std::shared_ptr<const quant::QuantizedTensor> q) {
  BIOLM_CHECK(q && q->shape == std::vector<int64_t>({options.out_features(), options.in_features()}), ShapeError,
              "Linear", fmt::format("quantized weight of shape {} for a ({}, {}) Linear",
                                    q ? c10::str(c10::IntArrayRef(q->shape)) : "none", options.out_features(),
                                    options.in_features()));
  torch::NoGradGuard no_grad;
  quantized_ = std::move(q);
  weight.set_requires_grad(false);
  weight.set_data(torch::empty({0}, weight.options()));  // frees the dense copy; the name stays registered
}

void LinearImpl::dequantize_weight() {
  if (!quantized_) return;
  torch::NoGradGuard no_grad;
  weight.set_data(quant::dequantize(*quantized_, at::kFloat).to(weight.device()));
  quantized_.reset();
}

torch::Tensor LinearImpl::base_linear(const torch::Tensor& x, bool with_bias) const {
  const torch::Tensor b = with_bias ? bias : torch::Tensor();
  return quantized_ ? quant::quantized_linear(x, quantized_, b) : at::linear(x, weight, b);
}

torch::Tensor LinearImpl::dense_weight() const {
  return quantized_ ? quant::dequantize(*quantized_, at::kFloat).to(weight.device()) : weight;
}

void LinearImpl::merge_adapter() {
  if (!adapter_ || merged_) return;
  // QLoRA's merge goes into a dequantized base: the merged weight is not representable in 4 bits
  // (re-quantizing it would lose part of the adapter), so the base is dense while merged; the
  // quantized form is kept and comes back on unmerge.
  quantized_before_merge_ = quantized_;
  dequantize_weight();
  torch::NoGradGuard no_grad;
  adapter_->merge_into(*this);
  merged_ = true;
}

void LinearImpl::unmerge_adapter() {
  if (!adapter_ || !merged_) return;
  torch::NoGradGuard no_grad;
  adapter_->unmerge_from(*this);
  merged_ = false;
  if (quantized_before_merge_) set_quantized_weight(std::move(quantized_before_merge_));
  quantized_before_merge_.reset();
}

std::map<std::string, LinearImpl*> linears_by_weight(torch::nn::Module& model) {
  std::map<std::string, LinearImpl*> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto* lin = item.value()->as<LinearImpl>()) out[item.key() + ".weight"] = lin;
  }
  return out;
}

}  // namespace biolm::nn

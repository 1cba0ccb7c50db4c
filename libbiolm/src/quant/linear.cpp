#include "biolm/quant/linear.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "biolm/core/error.h"
#include "biolm/core/host_memory.h"
#include "biolm/nn/linear.h"

namespace biolm::quant {

namespace {

// Keeps the quantized weight alive in the autograd graph (an IValue capsule).
struct Holder : torch::CustomClassHolder {
  explicit Holder(std::shared_ptr<const QuantizedTensor> q_) : q(std::move(q_)) {}
  std::shared_ptr<const QuantizedTensor> q;
};

// The weight's scales (double quantization undone) are computed once per forward and kept for
// the backward; the packed weight stays where it is.
struct QuantMatmul : public torch::autograd::Function<QuantMatmul> {
  // x2: (N, in) -> (N, out)
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x2,
                               const torch::Tensor& scales, std::shared_ptr<const QuantizedTensor> q,
                               int64_t chunk_rows) {
    ctx->save_for_backward({scales});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["dtype"] = static_cast<int64_t>(x2.scalar_type());
    ctx->saved_data["q"] = c10::IValue::make_capsule(c10::make_intrusive<Holder>(q));
    const int64_t out = q->rows();
    auto y = torch::empty({x2.size(0), out}, x2.options());
    for (int64_t r0 = 0; r0 < out; r0 += chunk_rows) {
      const int64_t r1 = std::min(out, r0 + chunk_rows);
      const auto w = dequantize_rows(*q, scales, r0, r1, x2.scalar_type());  // (r1 - r0, in)
      y.narrow(1, r0, r1 - r0).copy_(torch::matmul(x2, w.t()));
    }
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto scales = ctx->get_saved_variables()[0];
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    const auto holder = c10::static_intrusive_pointer_cast<Holder>(ctx->saved_data["q"].toCapsule());
    const std::shared_ptr<const QuantizedTensor> q = holder->q;
    const auto& gy = grads[0];  // (N, out)
    const int64_t out = q->rows();
    auto gx = torch::zeros({gy.size(0), q->cols()}, gy.options());
    for (int64_t r0 = 0; r0 < out; r0 += chunk_rows) {
      const int64_t r1 = std::min(out, r0 + chunk_rows);
      const auto w = dequantize_rows(*q, scales, r0, r1, dtype);  // (r1 - r0, in)
      gx.add_(torch::matmul(gy.narrow(1, r0, r1 - r0), w));
    }
    return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

at::Tensor quantized_linear(const at::Tensor& x, const std::shared_ptr<const QuantizedTensor>& q,
                            const at::Tensor& bias, int64_t chunk_rows) {
  BIOLM_CHECK(q != nullptr && q->shape.size() == 2, ShapeError, "quant::quantized_linear",
              "needs a quantized 2-D (out, in) weight");
  BIOLM_CHECK(x.dim() >= 1 && x.size(-1) == q->cols(), ShapeError, "quant::quantized_linear",
              fmt::format("expected last dimension {}, got {}", q->cols(), x.dim() ? x.size(-1) : 0));
  BIOLM_CHECK(chunk_rows > 0, ConfigError, "quant.chunk_rows", fmt::format("must be > 0, got {}", chunk_rows));
  auto sizes = x.sizes().vec();
  const auto x2 = x.reshape({-1, q->cols()});
  auto y = QuantMatmul::apply(x2, q->scales(), q, chunk_rows);
  sizes.back() = q->rows();
  y = y.view(sizes);
  return bias.defined() ? y + bias : y;
}

std::vector<std::string> quantize_linears(torch::nn::Module& model, QuantType type,
                                          const std::vector<std::string>& exclude, bool double_quant) {
  std::vector<std::string> names;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* lin = item.value()->as<nn::LinearImpl>();
    if (!lin) continue;
    const auto dot = item.key().rfind('.');
    const std::string leaf = dot == std::string::npos ? item.key() : item.key().substr(dot + 1);
    if (std::find(exclude.begin(), exclude.end(), leaf) != exclude.end()) continue;
    lin->quantize_weight(type, double_quant);
    names.push_back(item.key());
  }
  BIOLM_CHECK(!names.empty(), ConfigError, "model.quantize", "no Linear to quantize in the model");
  return names;
}

void check_quantized_frozen(torch::nn::Module& model) {
  for (const auto& [name, lin] : nn::linears_by_weight(model)) {
    BIOLM_CHECK(!lin->quantized_weight() || !lin->weight.requires_grad(), ConfigError, "model.quantize",
                name + " is quantized but the fine-tuning method would train it in full; a quantized base is "
                       "frozen and trains through adapters (peft.method lora, ia3 or prompt; not full, and no "
                       "train_top_layers or train_patterns that reach a block's projections)");
  }
}

void load_weight(nn::LinearImpl& lin, const at::Tensor& dense, const std::string& name) {
  const std::vector<int64_t> expect = {lin.options.out_features(), lin.options.in_features()};
  BIOLM_CHECK(dense.sizes().vec() == expect, ShapeError, name,
              fmt::format("shape {} does not fit a ({}, {}) Linear", c10::str(dense.sizes()), expect[0], expect[1]));
  if (const auto& q = lin.quantized_weight()) {
    const QuantType type = q->type;
    const bool nested = q->nested;
    lin.set_quantized_weight(std::make_shared<const QuantizedTensor>(quantize(dense.to(at::kCPU), type, nested)));
    core::release_free_host_memory();  // quantize-on-load: the transient float32 copies leave the process
    return;
  }
  torch::NoGradGuard no_grad;
  lin.weight.copy_(dense.to(lin.weight.device(), lin.weight.scalar_type()));
}

void load_weight(nn::LinearImpl& lin, std::shared_ptr<const QuantizedTensor> q, const std::string& name) {
  const std::vector<int64_t> expect = {lin.options.out_features(), lin.options.in_features()};
  BIOLM_CHECK(q && q->shape == expect, ShapeError, name,
              fmt::format("quantized shape {} does not fit a ({}, {}) Linear",
                          q ? c10::str(c10::IntArrayRef(q->shape)) : "none", expect[0], expect[1]));
  if (lin.quantized_weight()) {
    lin.set_quantized_weight(std::move(q));
    return;
  }
  torch::NoGradGuard no_grad;
  lin.weight.copy_(dequantize(*q, at::kFloat).to(lin.weight.device(), lin.weight.scalar_type()));
}

std::vector<std::string> load_stored_weight(nn::LinearImpl& lin, const std::function<bool(const std::string&)>& has,
                                            const std::function<at::Tensor(const std::string&)>& get,
                                            const std::string& stored_name, const std::string& where) {
  auto names = stored_quantized_names(has, stored_name);
  if (names.empty()) return names;
  try {
    load_weight(lin, std::make_shared<const QuantizedTensor>(read_stored(has, get, stored_name, where)), stored_name);
  } catch (const ShapeError& e) {
    throw CheckpointError(where, stored_name, e.what());
  }
  return names;
}

}  // namespace biolm::quant

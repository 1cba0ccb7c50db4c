// biolm/nn/linear.h: the projection every model uses, with a slot where adapters attach.
//
// All projections in libbiolm models (q_proj, k_proj, v_proj, o_proj, up, gate, down, heads)
// are biolm::nn::Linear, so one adapter mechanism serves every architecture: peft/ walks
// named_modules(), finds a Linear by its dotted name and attaches a LinearAdapter (LoRA, IA3).
// The base keeps its parameter names ("...q_proj.weight"), so base checkpoints load unchanged;
// the adapter's own parameters live under "...q_proj.adapter.*".
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace biolm::quant {
enum class QuantType;
struct QuantizedTensor;
}  // namespace biolm::quant

namespace biolm::nn {

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  /// std of the normal init (BERT/GPT-2/LLaMA use 0.02); 0 keeps LibTorch's kaiming-uniform.
  TORCH_ARG(double, init_std) = 0.02;
};

class LinearImpl;

/// Something that changes what a Linear computes: y = adapter(x, base_y, base).
class LinearAdapter : public torch::nn::Module {
 public:
  /// x: (..., in), base_out: (..., out) = x W^T + b. Returns the adapted output.
  virtual torch::Tensor adapt(const torch::Tensor& x, const torch::Tensor& base_out, const LinearImpl& base) = 0;
  /// Folds the adapter into base.weight / base.bias (after this, adapt() must not be applied).
  virtual void merge_into(LinearImpl& base) = 0;
  /// Undoes merge_into.
  virtual void unmerge_from(LinearImpl& base) = 0;
};

class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features) : LinearImpl(LinearOptions(in_features, out_features)) {}
  explicit LinearImpl(const LinearOptions& options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// x: (..., in) -> (..., out)
  torch::Tensor forward(const torch::Tensor& x);

  /// Attaches `adapter` as submodule "adapter" (replacing any previous one).
  void attach_adapter(std::shared_ptr<LinearAdapter> adapter);
  /// Detaches and returns the adapter (nullptr if none). Unmerges first if merged.
  std::shared_ptr<LinearAdapter> detach_adapter();
  const std::shared_ptr<LinearAdapter>& adapter() const { return adapter_; }
  /// Merge / unmerge the attached adapter into the base weights (no-op without adapter).
  void merge_adapter();
  void unmerge_adapter();
  bool merged() const { return merged_; }

  /// Per-example gradients (DP-SGD, train/dp.h): when set, forward calls tap(x, y) with its input
  /// x (..., in) and its final output y (..., out), adapter included. Unset: no cost.
  using ForwardTap = std::function<void(const torch::Tensor& x, const torch::Tensor& y)>;
  ForwardTap forward_tap;

  /// QLoRA (quant/linear.h): replaces the weight by its NF4 / FP4 / int8 form. The parameter
  /// `weight` stays registered but empty (0 elements, frozen); forward dequantizes chunk by
  /// chunk. Adapters keep working; merging first dequantizes (merge_adapter) and unmerging
  /// restores the quantized base it had, bit for bit.
  void quantize_weight(quant::QuantType type, bool double_quant = true);
  /// Installs an already quantized weight (a loader's), shape (out, in) checked.
  void set_quantized_weight(std::shared_ptr<const quant::QuantizedTensor> q);
  /// Turns a quantized weight back into a dense float32 parameter (no-op when dense).
  void dequantize_weight();
  const std::shared_ptr<const quant::QuantizedTensor>& quantized_weight() const { return quantized_; }
  /// x W^T (+ b): the base product without the adapter, dense or quantized.
  torch::Tensor base_linear(const torch::Tensor& x, bool with_bias = true) const;
  /// The weight as a dense (out, in) tensor: `weight` itself, or a transient dequantized copy.
  torch::Tensor dense_weight() const;

  LinearOptions options;
  torch::Tensor weight;  // (out, in); empty while the weight is quantized
  torch::Tensor bias;    // (out), undefined when options.bias() is false (still registered)

 private:
  std::shared_ptr<LinearAdapter> adapter_;
  bool merged_ = false;
  std::shared_ptr<const quant::QuantizedTensor> quantized_;
  /// While merged: the quantized base before the merge (unmerge restores it exactly).
  std::shared_ptr<const quant::QuantizedTensor> quantized_before_merge_;
};

TORCH_MODULE(Linear);

/// Every Linear of `model` by the name of its weight ("layers.0.attn.q_proj.weight"): loaders and
/// savers use it to treat quantized weights (which are not plain parameters) by name.
std::map<std::string, LinearImpl*> linears_by_weight(torch::nn::Module& model);

}  // namespace biolm::nn

// biolm/quant/linear.h: y = x W^T + b with W held in 4 or 8 bits (quant/quantize.h).
//
// QLoRA's forward (Dettmers et al. 2023, §3 eq. (5)): the frozen base weight is dequantized to the
// compute dtype only for the product, and no full-precision copy of it is kept. Here that is done
// `chunk_rows` output rows at a time, so the transient is chunk_rows x in values, whatever the
// layer's size; the backward (the gradient for the input, which adapters in earlier layers need)
// dequantizes the same chunks again. The base gets no gradient: it is frozen by construction.
// nn::Linear calls this when its weight is quantized (LinearImpl::quantize_weight), so LoRA, DoRA
// and IA3 adapters in the Linear's slot train on top unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "biolm/quant/quantize.h"

namespace torch::nn {
class Module;
}
namespace biolm::nn {
class LinearImpl;
}

namespace biolm::quant {

/// Output rows dequantized at once: 256 rows of a 4096-wide layer is 4 MiB of float32.
inline constexpr int64_t kDefaultChunkRows = 256;

/// x (..., in) -> (..., out) with the weight dequantized chunk by chunk in x's dtype (float32,
/// bfloat16 or float16); `bias` may be undefined. Differentiable with respect to x and bias.
/// `q` must outlive the backward pass (the Linear holding it does).
at::Tensor quantized_linear(const at::Tensor& x, const std::shared_ptr<const QuantizedTensor>& q,
                            const at::Tensor& bias, int64_t chunk_rows = kDefaultChunkRows);

/// Quantizes the weight of every nn::Linear of `model` whose last name component is not in
/// `exclude` (QLoRA keeps the LM head in 16/32 bits: bitsandbytes' llm_int8_skip_modules); returns
/// the names. Call before attaching adapters or after: adapters read the base through the slot.
std::vector<std::string> quantize_linears(torch::nn::Module& model, QuantType type,
                                          const std::vector<std::string>& exclude = {"lm_head"},
                                          bool double_quant = true);

/// Throws ConfigError("model.quantize") naming the first quantized Linear whose weight is set to
/// train (requires_grad): a quantized base is frozen, it trains through adapters only. Recipes call
/// it after peft::apply.
void check_quantized_frozen(torch::nn::Module& model);

/// Loaders (io/hf_weights.h, io/model_dir.h) put a weight read from a file into a Linear with
/// these, whichever forms the two have. A dense (out, in) tensor is copied into a dense Linear and
/// quantized, with the Linear's own type and double quantization, into a quantized one (QLoRA's
/// quantize-on-load: only this one tensor is ever in full precision). ShapeError naming `name`
/// on a wrong shape.
void load_weight(nn::LinearImpl& lin, const at::Tensor& dense, const std::string& name);
/// A weight stored quantized (our model directories, transformers + bitsandbytes checkpoints) is
/// installed as it is into a quantized Linear (no re-quantization, whatever type the Linear had)
/// and dequantized into a dense one.
void load_weight(nn::LinearImpl& lin, std::shared_ptr<const QuantizedTensor> q, const std::string& name);
/// The loaders' common step for a source read tensor by tensor (`has` / `get`): when it stores
/// `stored_name` in quantized form (read_stored), puts that weight into `lin` as the overload above
/// does and returns the names of the tensors it used; returns an empty list, having done nothing,
/// when `stored_name` is a plain tensor there. A shape that does not fit is a CheckpointError
/// naming `where` and `stored_name`.
std::vector<std::string> load_stored_weight(nn::LinearImpl& lin, const std::function<bool(const std::string&)>& has,
                                            const std::function<at::Tensor(const std::string&)>& get,
                                            const std::string& stored_name, const std::string& where);

}  // namespace biolm::quant

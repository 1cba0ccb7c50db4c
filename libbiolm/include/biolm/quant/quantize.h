// biolm/quant/quantize.h: frozen weights stored in 4 bits (NF4, FP4) or 8 bits (int8), as
// bitsandbytes stores them, so QLoRA checkpoints and numbers carry over both ways.
//
// 4-bit (Dettmers et al. 2023, "QLoRA", §3): the flattened weight is cut into blocks of 64; each
// block is divided by its absolute maximum (absmax) and every value is replaced by the index of the
// nearest entry of a 16-value code (NF4: quantiles of N(0, 1); FP4: 1 sign, 2 exponent, 1 mantissa
// bit, normalised to [-1, 1]); two indices share a byte, the first in the high nibble. Double
// quantization (§3, "Double Quantization") stores the fp32 absmax constants themselves in 8 bits:
// their mean is subtracted (`offset`), then blocks of 256 are quantized with bitsandbytes' signed
// 8-bit "dynamic" code (create_dynamic_map) and one fp32 absmax per 256 blocks. That brings the
// constants from 32/64 = 0.5 to 8/64 + 32/(64*256) = 0.127 bits per weight.
//
// int8 (Dettmers et al. 2022, "LLM.int8()", §3.1, vector-wise quantization of the weight): each
// output row r is scaled by 127 / max|W[r, :]| and rounded to the nearest int8 (ties to even). We
// store the weight only; the outlier decomposition of LLM.int8() (inputs with |x| >= 6 computed
// in 16 bits) concerns the activations of the int8 matmul, which we do not run: the forward
// dequantizes the weight and multiplies in floating point.
//
// Bit for bit (the 8-bit indices of the double-quantized absmax included, where bitsandbytes'
// binned lookup keeps a farther code entry than the nearest near 0; see src/quant/quantize.cpp):
// quantize_4bit / dequantize_4bit / quantize_int8 / dequantize_int8 equal
// bitsandbytes 0.50's CPU path (functional.quantize_4bit with compress_statistics=True, its
// default torch kernels for quantize_4bit and dequantize_4bit, its native CPU kernel for the 8-bit
// blockwise step; int8_vectorwise_quant / int8_vectorwise_dequant), tested byte for byte by
// tests/parity/test_quant.py on random weights of several shapes and on all-MiniLM-L6-v2.
// bitsandbytes 0.50.2's native CPU dequantize_4bit (used when the last dimension is even) is wrong
// when a row's length is not a multiple of the block size (a (40, 96) weight comes back with
// errors up to 60 where its own torch kernel gives 3.9); we equal the torch kernel (flat blocks of
// 64, as quantize_4bit cut them), and the native one wherever it is right.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace biolm::quant {

enum class QuantType { NF4, FP4, Int8 };

std::string_view quant_type_name(QuantType type);  ///< "nf4", "fp4", "int8"
std::optional<QuantType> parse_quant_type(std::string_view name);
inline bool is_4bit(QuantType type) { return type != QuantType::Int8; }

inline constexpr int64_t kBlockSize4bit = 64;     ///< QLoRA's block size for the weights
inline constexpr int64_t kNestedBlockSize = 256;  ///< bitsandbytes' block size for the absmax constants

/// bitsandbytes' 4-bit code (functional.get_4bit_type): index -> value in [-1, 1].
const std::array<float, 16>& code_4bit(QuantType type);
/// bitsandbytes' signed 8-bit dynamic code (functional.create_dynamic_map(), sorted, 256 values,
/// from -0.99297 to 1), the code of the double-quantized absmax constants.
const std::array<float, 256>& dynamic_code();

/// A frozen weight in 4 or 8 bits, with everything needed to restore it.
struct QuantizedTensor {
  QuantType type = QuantType::NF4;
  std::vector<int64_t> shape;  ///< the original shape, (out, in) for a linear weight
  c10::ScalarType dtype = c10::kFloat;  ///< the dtype it was quantized from (recorded, as bnb does)
  int64_t blocksize = kBlockSize4bit;   ///< 4-bit only

  /// 4-bit: uint8 (ceil(numel / 2)), two indices per byte, high nibble first (an odd numel pads
  /// the last low nibble with the index of 0). int8: int8 (out, in).
  at::Tensor data;
  /// 4-bit: float32 (n_blocks), or uint8 (n_blocks) when nested. int8: float32 (out), the row absmax.
  at::Tensor absmax;
  bool nested = false;         ///< double quantization of the 4-bit absmax
  at::Tensor nested_absmax;    ///< float32 (ceil(n_blocks / 256))
  at::Tensor nested_code;      ///< float32 (256), the code the absmax was quantized with
  float offset = 0.0f;         ///< the mean subtracted from absmax before quantizing it

  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 1 : shape.front(); }
  int64_t cols() const { return shape.empty() ? 1 : numel() / rows(); }
  int64_t n_blocks() const { return (numel() + blocksize - 1) / blocksize; }
  /// The per-block (4-bit) or per-row (int8) scales as float32, double quantization undone.
  at::Tensor scales() const;
  /// Bytes held (data, scales and nested state).
  int64_t nbytes() const;
};

/// Quantizes `weight` (float32, float16 or bfloat16; computed in float32 as bitsandbytes does).
/// 4-bit types: block size `blocksize` (a power of two from 32 to 4096, bitsandbytes' set),
/// double quantization when `double_quant`. Throws ConfigError("quant", ...) on bad arguments.
QuantizedTensor quantize(const at::Tensor& weight, QuantType type, bool double_quant = true,
                         int64_t blocksize = kBlockSize4bit);

/// The whole weight in `dtype` (float32, float16, bfloat16), shaped like the original.
at::Tensor dequantize(const QuantizedTensor& q, c10::ScalarType dtype = c10::kFloat);

/// Rows [row_begin, row_end) of the (rows, cols) weight in `dtype`, from precomputed `scales`
/// (QuantizedTensor::scales()): the forward dequantizes a few rows at a time with this.
at::Tensor dequantize_rows(const QuantizedTensor& q, const at::Tensor& scales, int64_t row_begin, int64_t row_end,
                           c10::ScalarType dtype);

/// bitsandbytes' 8-bit blockwise quantization (functional.quantize_blockwise, CPU kernel) of a
/// float32 vector with `code` (256 sorted values): returns (uint8 indices, float32 absmax per block).
std::pair<at::Tensor, at::Tensor> quantize_blockwise(const at::Tensor& values, const std::array<float, 256>& code,
                                                     int64_t blocksize);

// --- stored form ---------------------------------------------------------------------------------
// The tensors of one quantized weight under `name` (say "model.layers.0.self_attn.q_proj.weight"),
// named as transformers + bitsandbytes save them, so that their checkpoints read directly:
//   4-bit: name (uint8, (ceil(numel/2), 1)), name.absmax, name.quant_map (16 float32),
//          name.nested_absmax, name.nested_quant_map (when nested),
//          name.quant_state.bitsandbytes__<nf4|fp4> (uint8: the JSON {"quant_type", "blocksize",
//          "dtype", "shape", "nested_blocksize", "nested_offset", "nested_dtype"})
//   int8:  name (int8, (out, in)) and the sibling "SCB" (float32 (out)) of the module, as
//          transformers' Linear8bitLt checkpoints hold them.

/// Adds the stored tensors of `q` under `name` to `out`.
void to_tensors(const QuantizedTensor& q, const std::string& name, std::map<std::string, at::Tensor>& out);
/// True when `tensors` holds a 4-bit quant state for `name` (name.quant_state.bitsandbytes__*).
bool has_quant_state(const std::map<std::string, at::Tensor>& tensors, const std::string& name);
/// Reads a quantized weight stored by to_tensors or by transformers + bitsandbytes. `where` names
/// the file in errors (CheckpointError naming the tensor).
QuantizedTensor from_tensors(const std::map<std::string, at::Tensor>& tensors, const std::string& name,
                             const std::string& where);
/// The names to_tensors writes for `name` and `type` (for loaders that read tensor by tensor).
std::vector<std::string> stored_names(const std::string& name, QuantType type, bool nested);

/// For loaders that read a file tensor by tensor: the names of the tensors that store `name` in
/// quantized form (4-bit: a quant_state beside it; int8: an SCB beside it), given what the file
/// holds (`has`); empty when `name` is stored as a plain dense tensor.
std::vector<std::string> stored_quantized_names(const std::function<bool(const std::string&)>& has,
                                                const std::string& name);
/// Reads the quantized weight `name` from those tensors (`get` reads one); `where` names the file.
QuantizedTensor read_stored(const std::function<bool(const std::string&)>& has,
                            const std::function<at::Tensor(const std::string&)>& get, const std::string& name,
                            const std::string& where);

}  // namespace biolm::quant

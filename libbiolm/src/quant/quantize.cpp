// NF4 / FP4 / int8 quantization equal to bitsandbytes 0.50's CPU path (see quant/quantize.h).
//
// The places where bit equality hangs on a detail, each as bitsandbytes does it:
//  - 4-bit, full blocks: x * (1 / max(absmax, 1e-38)) (a float32 reciprocal, then a product);
//    the last partial block: x / max(absmax, 1e-38), and that clamped absmax is what is stored
//    (backends/default/ops.py, quantize_4bit);
//  - the nearest code entry is found with torch.bucketize over the float32 midpoints of the
//    sorted code, right=False: a value on a midpoint goes to the lower entry; FP4's code holds +0
//    (index 0) and -0 (index 8): 0 maps to +0, values in (0, 0.0026] to -0 (argsort order);
//  - the absmax constants: offset = torch.mean (float32), then the native 8-bit kernel
//    (csrc/cpu_ops.cpp quantize_cpu_impl): x * (1 / absmax), then not a search but one of 65,536
//    bins of [-1, 1] and the code entry precomputed for it (BinnedCode below). Near 0, where the
//    dynamic code's entries are closer than a bin, that entry is now and then not the nearest
//    (MiniLM's word embeddings: 296 of their constants); we reproduce it, so the bytes are equal
//    there too (an earlier version kept the nearest entry and differed at those indices);
//  - dequantization: code[i] * scale in float32, then the cast (round to nearest even).
#include "biolm/quant/quantize.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "biolm/core/error.h"

namespace biolm::quant {

namespace {

// functional.get_4bit_type("nf4"): create_normal_map(offset=0.9677083, use_extra_value=True).
constexpr std::array<float, 16> kNf4 = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};

// functional.get_4bit_type("fp4"): bit patterns 0..15 (sign, 2 exponent bits, 1 mantissa bit,
// bias 2) then divided by the largest magnitude, 12.
std::array<float, 16> make_fp4() {
  // index 8 is "-0" in bitsandbytes' Python list, an int, so +0.0 in the tensor
  constexpr std::array<float, 16> raw = {0.0f, 0.0625f,  8.0f,  12.0f,  4.0f,  6.0f,  2.0f,  3.0f,
                                         0.0f, -0.0625f, -8.0f, -12.0f, -4.0f, -6.0f, -2.0f, -3.0f};
  std::array<float, 16> code{};
  for (size_t i = 0; i < raw.size(); ++i) code[i] = raw[i] / 12.0f;
  return code;
}

// functional.create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent
// i = 0..6 the midpoints of linspace(0.1, 1, 2^i + 1) scaled by 10^(i-6), both signs, plus 0 and 1.
std::array<float, 256> make_dynamic() {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const int n_fraction = (1 << i) + 1;
    // torch.linspace(0.1, 1, n, dtype=float32) as ATen's vectorised CPU kernel computes it: a
    // float32 step, start + step * k for the first half and end - step * (n - 1 - k) for the
    // second, each a fused multiply-add (one rounding); checked against torch 2.x in test_quant.py.
    std::vector<float> bounds(n_fraction);
    const float start = 0.1f, end = 1.0f;
    const float step = (end - start) / static_cast<float>(n_fraction - 1);
    const int64_t halfway = n_fraction / 2;
    for (int64_t k = 0; k < n_fraction; ++k)
      bounds[k] = k < halfway ? std::fma(step, static_cast<float>(k), start)
                              : std::fma(-step, static_cast<float>(n_fraction - 1 - k), end);
    const double scale = std::pow(10.0, -6 + i);  // python: 10 ** (-(7 - 1) + i)
    for (int k = 0; k + 1 < n_fraction; ++k) {
      const float mean = (bounds[k] + bounds[k + 1]) / 2.0f;  // float32 tensor arithmetic
      // (10 ** e) * means: a python float times a float32 tensor, computed in float32
      const float value = static_cast<float>(scale) * mean;
      data.push_back(value);
      data.push_back(-value);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> code{};
  std::copy(data.begin(), data.end(), code.begin());
  return code;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// The 4-bit index of `x` (already scaled into [-1, 1]): torch.bucketize over the sorted code's
// midpoints, mapped back through the argsort order.
struct FourBitSearch {
  std::array<float, 15> bounds{};
  std::array<uint8_t, 16> order{};
  explicit FourBitSearch(QuantType type) {
    const auto& code = code_4bit(type);
    // torch.argsort of the code (bnb's _get_4bit_quantize_bounds); FP4's +0 (0) sorts before -0 (8)
    std::array<uint8_t, 16> idx{};
    for (uint8_t i = 0; i < 16; ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](uint8_t a, uint8_t b) { return code[a] < code[b]; });
    if (type == QuantType::FP4) {  // equal zeros: bnb's argsort puts index 0 before index 8
      auto zero = std::find(idx.begin(), idx.end(), uint8_t{8});
      if (zero != idx.end() && zero + 1 != idx.end() && *(zero + 1) == 0) std::iter_swap(zero, zero + 1);
    }
    order = idx;
    for (int i = 0; i < 15; ++i) bounds[i] = (code[order[i]] + code[order[i + 1]]) / 2.0f;
  }
  uint8_t operator()(float x) const {
    // count of bounds strictly below x (bucketize, right=False)
    const auto pos = std::lower_bound(bounds.begin(), bounds.end(), x) - bounds.begin();
    return order[static_cast<size_t>(pos)];
  }
};

void check_4bit_args(int64_t blocksize) {
  const bool power_of_two = blocksize > 0 && (blocksize & (blocksize - 1)) == 0;
  BIOLM_CHECK(power_of_two && blocksize >= 32 && blocksize <= 4096, ConfigError, "quant.blocksize",
              fmt::format("must be a power of two from 32 to 4096 (bitsandbytes' sizes), got {}", blocksize));
}

at::Tensor float_contiguous(const at::Tensor& weight) {
  BIOLM_CHECK(weight.defined(), ConfigError, "quant", "cannot quantize an undefined tensor");
  const auto st = weight.scalar_type();
  BIOLM_CHECK(st == at::kFloat || st == at::kHalf || st == at::kBFloat16, ConfigError, "quant",
              fmt::format("quantizes float32, float16 or bfloat16 weights, got {}", c10::toString(st)));
  return weight.detach().to(at::kCPU, at::kFloat).contiguous();
}

QuantizedTensor quantize_4bit(const at::Tensor& weight, QuantType type, bool double_quant, int64_t blocksize) {
  check_4bit_args(blocksize);
  const at::Tensor a = float_contiguous(weight);
  QuantizedTensor q;
  q.type = type;
  q.shape = a.sizes().vec();
  q.dtype = weight.scalar_type();
  q.blocksize = blocksize;
  const int64_t n = a.numel();
  const int64_t n_blocks = (n + blocksize - 1) / blocksize;
  const int64_t full = n - n % blocksize;
  const float* x = a.data_ptr<float>();
  at::Tensor absmax = at::empty({n_blocks}, at::kFloat);
  at::Tensor packed = at::empty({(n + 1) / 2}, at::kByte);
  float* am = absmax.data_ptr<float>();
  uint8_t* out = packed.data_ptr<uint8_t>();
  const FourBitSearch search(type);
  const float tiny = static_cast<float>(1e-38);  // torch's clamp(min=1e-38) in float32
  // Blocks hold an even number of values, so each block writes whole bytes.
  at::parallel_for(0, n_blocks, 16, [&](int64_t b0, int64_t b1) {
    std::vector<uint8_t> idx(static_cast<size_t>(blocksize) + 1);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
      float m = 0.0f;
      for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(x[i]));
      const bool partial = begin >= full;
      if (partial) {
        m = std::max(m, tiny);
        am[b] = m;
        for (int64_t i = begin; i < end; ++i) idx[i - begin] = search(std::clamp(x[i] / m, -1.0f, 1.0f));
      } else {
        am[b] = m;
        const float inv = 1.0f / std::max(m, tiny);
        for (int64_t i = begin; i < end; ++i) idx[i - begin] = search(std::clamp(x[i] * inv, -1.0f, 1.0f));
      }
      int64_t len = end - begin;
      if (len % 2) idx[len++] = search(0.0f);  // bnb pads an odd tensor with a 0 before packing
      for (int64_t k = 0; k < len; k += 2)
        out[(begin + k) / 2] = static_cast<uint8_t>((idx[k] << 4) | idx[k + 1]);
    }
  });
  q.data = packed;
  if (!double_quant) {
    q.absmax = absmax;
    return q;
  }
  q.nested = true;
  // functional.quantize_4bit(compress_statistics=True): offset = absmax.mean(), then
  // quantize_blockwise(absmax - offset, blocksize=256) with the dynamic code.
  q.offset = absmax.mean().item<float>();
  const at::Tensor centred = absmax - q.offset;
  auto [qabsmax, nested_absmax] = quantize_blockwise(centred, dynamic_code(), kNestedBlockSize);
  q.absmax = qabsmax;
  q.nested_absmax = nested_absmax;
  q.nested_code = at::from_blob(const_cast<float*>(dynamic_code().data()), {256}, at::kFloat).clone();
  return q;
}

QuantizedTensor quantize_int8(const at::Tensor& weight) {
  const at::Tensor a = float_contiguous(weight);
  BIOLM_CHECK(a.dim() == 2, ConfigError, "quant",
              fmt::format("int8 quantizes 2-D (out, in) weights row by row, got {} dimensions", a.dim()));
  QuantizedTensor q;
  q.type = QuantType::Int8;
  q.shape = a.sizes().vec();
  q.dtype = weight.scalar_type();
  q.blocksize = 0;
  const int64_t rows = a.size(0), cols = a.size(1);
  at::Tensor data = at::empty({rows, cols}, at::kChar);
  at::Tensor stats = at::empty({rows}, at::kFloat);
  const float* x = a.data_ptr<float>();
  int8_t* out = data.data_ptr<int8_t>();
  float* st = stats.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = x + r * cols;
      float m = 0.0f;
      for (int64_t c = 0; c < cols; ++c) m = std::max(m, std::fabs(row[c]));
      st[r] = m;
      // int8_vectorwise_quant: round(A * (127.0 / row_stats)); `127.0 / t` is t.reciprocal() * 127.
      // A zero row (bnb: 0 * inf = NaN, cast undefined) is stored as zeros.
      const float scale = m > 0.0f ? (1.0f / m) * 127.0f : 0.0f;
      for (int64_t c = 0; c < cols; ++c)
        out[r * cols + c] = static_cast<int8_t>(std::nearbyint(row[c] * scale));
    }
  });
  q.data = data;
  q.absmax = stats;
  return q;
}

void check_dtype(c10::ScalarType dtype) {
  BIOLM_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16, ConfigError, "quant",
              fmt::format("dequantizes to float32, float16 or bfloat16, not {}", c10::toString(dtype)));
}

}  // namespace

std::string_view quant_type_name(QuantType type) {
  switch (type) {
    case QuantType::NF4: return "nf4";
    case QuantType::FP4: return "fp4";
    case QuantType::Int8: return "int8";
  }
  return "?";
}

std::optional<QuantType> parse_quant_type(std::string_view name) {
  if (name == "nf4") return QuantType::NF4;
  if (name == "fp4") return QuantType::FP4;
  if (name == "int8") return QuantType::Int8;
  return std::nullopt;
}

const std::array<float, 16>& code_4bit(QuantType type) {
  static const std::array<float, 16> fp4 = make_fp4();
  BIOLM_CHECK(type != QuantType::Int8, ConfigError, "quant", "int8 has no 4-bit code");
  return type == QuantType::NF4 ? kNf4 : fp4;
}

const std::array<float, 256>& dynamic_code() {
  static const std::array<float, 256> code = make_dynamic();
  return code;
}

int64_t QuantizedTensor::numel() const { return numel_of(shape); }

int64_t QuantizedTensor::nbytes() const {
  int64_t total = 0;
  for (const auto* t : {&data, &absmax, &nested_absmax, &nested_code})
    if (t->defined()) total += t->numel() * static_cast<int64_t>(t->element_size());
  return total;
}

at::Tensor QuantizedTensor::scales() const {
  if (!nested) return absmax.to(at::kFloat);
  // dequantize_blockwise (native CPU kernel): code[i] * absmax[block] in float32; then += offset
  const int64_t n = absmax.numel();
  at::Tensor out = at::empty({n}, at::kFloat);
  const uint8_t* qa = absmax.data_ptr<uint8_t>();
  const at::Tensor code = nested_code.to(at::kFloat).contiguous();
  const float* cd = code.data_ptr<float>();
  const at::Tensor nam = nested_absmax.to(at::kFloat).contiguous();
  const float* na = nam.data_ptr<float>();
  const int64_t bs = kNestedBlockSize;
  BIOLM_CHECK(nam.numel() == (n + bs - 1) / bs && code.numel() == 256, CheckpointError, "", "nested_absmax",
              fmt::format("{} nested absmax values and a {}-entry code for {} blocks (expected {} and 256)",
                          nam.numel(), code.numel(), n, (n + bs - 1) / bs));
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) o[i] = cd[qa[i]] * na[i / bs] + offset;
  return out;
}

namespace {

// bitsandbytes 0.50's CPU blockwise quantization (csrc/cpu_ops.cpp, quantize_cpu_impl) does not
// search the code per value: it maps the normalised value v = x · (1 / absmax) to one of 65,536
// evenly spaced bins of [-1, 1], index trunc((v + 1) · 0.5 · 65535 + 0.5), and reads the code entry
// precomputed for that bin: the number of midpoints between consecutive entries that lie below the
// bin's value -1 + 2i / 65535 (build_quantize_lut). Near 0, where the dynamic code's entries are
// 5e-7 apart and a bin is 3e-5 wide, that entry is not always the nearest one to v. Those are
// bitsandbytes' bytes, so we compute them the same way, in the same float32 steps.
class BinnedCode {
 public:
  static constexpr int kBins = 65536;
  explicit BinnedCode(const std::array<float, 256>& code) : lut_(kBins) {
    std::array<float, 255> mid{};
    for (int i = 0; i < 255; ++i) mid[i] = 0.5f * (code[i] + code[i + 1]);
    int k = 0;
    for (int i = 0; i < kBins; ++i) {
      const float v = -1.0f + (2.0f * static_cast<float>(i)) / static_cast<float>(kBins - 1);
      while (k < 255 && mid[k] < v) ++k;
      lut_[i] = static_cast<uint8_t>(k);
    }
  }
  uint8_t operator()(float v) const {
    v = std::clamp(v, -1.0f, 1.0f);
    volatile float t = (v + 1.0f) * 0.5f * static_cast<float>(kBins - 1);  // no fused multiply-add
    return lut_[static_cast<uint16_t>(t + 0.5f)];
  }

 private:
  std::vector<uint8_t> lut_;
};

}  // namespace

std::pair<at::Tensor, at::Tensor> quantize_blockwise(const at::Tensor& values, const std::array<float, 256>& code,
                                                     int64_t blocksize) {
  const at::Tensor a = float_contiguous(values).reshape({-1});
  const int64_t n = a.numel();
  const int64_t n_blocks = (n + blocksize - 1) / blocksize;
  at::Tensor out = at::empty({n}, at::kByte);
  at::Tensor absmax = at::empty({n_blocks}, at::kFloat);
  const float* x = a.data_ptr<float>();
  uint8_t* o = out.data_ptr<uint8_t>();
  float* am = absmax.data_ptr<float>();
  const BinnedCode binned(code);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(x[i]));
    am[b] = m;
    if (m == 0.0f) {  // an all-zero block: index 0 throughout, as bitsandbytes writes
      std::fill(o + begin, o + end, uint8_t{0});
      continue;
    }
    const float inv = 1.0f / m;
    for (int64_t i = begin; i < end; ++i) o[i] = binned(x[i] * inv);
  }
  return {out, absmax};
}

QuantizedTensor quantize(const at::Tensor& weight, QuantType type, bool double_quant, int64_t blocksize) {
  if (type == QuantType::Int8) return quantize_int8(weight);
  return quantize_4bit(weight, type, double_quant, blocksize);
}

at::Tensor dequantize_rows(const QuantizedTensor& q, const at::Tensor& scales, int64_t row_begin, int64_t row_end,
                           c10::ScalarType dtype) {
  check_dtype(dtype);
  const int64_t cols = q.cols();
  BIOLM_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= q.rows(), ShapeError, "quant::dequantize_rows",
              fmt::format("rows [{}, {}) outside a weight of {} rows", row_begin, row_end, q.rows()));
  at::Tensor out = at::empty({row_end - row_begin, cols}, at::kFloat);
  float* o = out.data_ptr<float>();
  const float* sc = scales.data_ptr<float>();
  const int64_t begin = row_begin * cols, end = row_end * cols;
  if (q.type == QuantType::Int8) {
    const int8_t* d = q.data.data_ptr<int8_t>();
    // int8_vectorwise_dequant: A * stats.view(-1, 1) * 7.874015718698502e-3 (two float32 products)
    const float inv127 = static_cast<float>(7.874015718698502e-3);
    at::parallel_for(row_begin, row_end, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c)
          o[(r - row_begin) * cols + c] = (static_cast<float>(d[r * cols + c]) * sc[r]) * inv127;
    });
  } else {
    const auto& code = code_4bit(q.type);
    const uint8_t* d = q.data.data_ptr<uint8_t>();
    const int64_t bs = q.blocksize;
    at::parallel_for(begin, end, 4096, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const uint8_t byte = d[i / 2];
        const uint8_t nibble = (i % 2) ? (byte & 0x0F) : (byte >> 4);
        o[i - begin] = code[nibble] * sc[i / bs];
      }
    });
  }
  return dtype == at::kFloat ? out : out.to(dtype);
}

at::Tensor dequantize(const QuantizedTensor& q, c10::ScalarType dtype) {
  return dequantize_rows(q, q.scales().contiguous(), 0, q.rows(), dtype).reshape(q.shape);
}

// --- stored form -----------------------------------------------------------------------------------

namespace {

std::string state_key(const std::string& name, QuantType type) {
  return fmt::format("{}.quant_state.bitsandbytes__{}", name, quant_type_name(type));
}

std::string scb_key(const std::string& name) {
  // "x.q_proj.weight" -> "x.q_proj.SCB" (transformers' Linear8bitLt keeps SCB beside weight)
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "SCB" : name.substr(0, dot) + ".SCB";
}

std::string dtype_word(c10::ScalarType st) {
  switch (st) {
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return "float32";
  }
}

c10::ScalarType parse_dtype_word(const std::string& word, const std::string& where, const std::string& tensor) {
  if (word == "float32") return at::kFloat;
  if (word == "float16") return at::kHalf;
  if (word == "bfloat16") return at::kBFloat16;
  throw CheckpointError(where, tensor, fmt::format("quant state dtype '{}': expected float32, float16 or bfloat16", word));
}

const at::Tensor& need(const std::map<std::string, at::Tensor>& tensors, const std::string& key,
                       const std::string& where) {
  auto it = tensors.find(key);
  if (it == tensors.end()) throw CheckpointError(where, key, "missing: the quantized weight needs it");
  return it->second;
}

}  // namespace

std::vector<std::string> stored_names(const std::string& name, QuantType type, bool nested) {
  if (type == QuantType::Int8) return {name, scb_key(name)};
  std::vector<std::string> names = {name, name + ".absmax", name + ".quant_map", state_key(name, type)};
  if (nested) {
    names.push_back(name + ".nested_absmax");
    names.push_back(name + ".nested_quant_map");
  }
  return names;
}

void to_tensors(const QuantizedTensor& q, const std::string& name, std::map<std::string, at::Tensor>& out) {
  if (q.type == QuantType::Int8) {
    out[name] = q.data;
    out[scb_key(name)] = q.absmax;
    return;
  }
  out[name] = q.data.reshape({-1, 1});
  out[name + ".absmax"] = q.absmax;
  out[name + ".quant_map"] = at::from_blob(const_cast<float*>(code_4bit(q.type).data()), {16}, at::kFloat).clone();
  nlohmann::json state = {{"quant_type", quant_type_name(q.type)},
                          {"blocksize", q.blocksize},
                          {"dtype", dtype_word(q.dtype)},
                          {"shape", q.shape}};
  if (q.nested) {
    out[name + ".nested_absmax"] = q.nested_absmax;
    out[name + ".nested_quant_map"] = q.nested_code;
    state["nested_blocksize"] = kNestedBlockSize;
    state["nested_dtype"] = "float32";
    state["nested_offset"] = static_cast<double>(q.offset);
  }
  const std::string text = state.dump();
  out[state_key(name, q.type)] =
      at::from_blob(const_cast<char*>(text.data()), {static_cast<int64_t>(text.size())}, at::kByte).clone();
}

std::vector<std::string> stored_quantized_names(const std::function<bool(const std::string&)>& has,
                                                const std::string& name) {
  for (const QuantType type : {QuantType::NF4, QuantType::FP4}) {
    if (!has(state_key(name, type))) continue;
    std::vector<std::string> names;
    for (const auto& n : stored_names(name, type, /*nested=*/true))
      if (has(n)) names.push_back(n);
    return names;
  }
  if (has(scb_key(name))) return {name, scb_key(name)};
  return {};
}

QuantizedTensor read_stored(const std::function<bool(const std::string&)>& has,
                            const std::function<at::Tensor(const std::string&)>& get, const std::string& name,
                            const std::string& where) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& n : stored_quantized_names(has, name)) tensors[n] = get(n);
  BIOLM_CHECK(!tensors.empty(), CheckpointError, where, name, "not stored in quantized form");
  return from_tensors(tensors, name, where);
}

bool has_quant_state(const std::map<std::string, at::Tensor>& tensors, const std::string& name) {
  return tensors.count(state_key(name, QuantType::NF4)) || tensors.count(state_key(name, QuantType::FP4));
}

QuantizedTensor from_tensors(const std::map<std::string, at::Tensor>& tensors, const std::string& name,
                             const std::string& where) {
  QuantizedTensor q;
  if (!has_quant_state(tensors, name)) {
    // int8: weight (int8) + SCB
    const at::Tensor& w = need(tensors, name, where);
    BIOLM_CHECK(w.scalar_type() == at::kChar && w.dim() == 2, CheckpointError, where, name,
                "expected an int8 (out, in) weight or a 4-bit quant_state beside it");
    q.type = QuantType::Int8;
    q.blocksize = 0;
    q.shape = w.sizes().vec();
    q.data = w.contiguous();
    q.absmax = need(tensors, scb_key(name), where).to(at::kFloat).contiguous();
    BIOLM_CHECK(q.absmax.numel() == w.size(0), CheckpointError, where, scb_key(name),
                fmt::format("{} row scales for a weight of {} rows", q.absmax.numel(), w.size(0)));
    return q;
  }
  const QuantType type = tensors.count(state_key(name, QuantType::NF4)) ? QuantType::NF4 : QuantType::FP4;
  const std::string skey = state_key(name, type);
  const at::Tensor bytes = tensors.at(skey).to(at::kByte).contiguous();
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()),
                                              static_cast<size_t>(bytes.numel())));
    q.type = type;
    q.blocksize = state.at("blocksize").get<int64_t>();
    q.shape = state.at("shape").get<std::vector<int64_t>>();
    q.dtype = parse_dtype_word(state.at("dtype").get<std::string>(), where, skey);
    q.nested = state.contains("nested_offset");
    if (q.nested) {
      q.offset = static_cast<float>(state.at("nested_offset").get<double>());
      BIOLM_CHECK(state.value("nested_blocksize", kNestedBlockSize) == kNestedBlockSize, CheckpointError, where, skey,
                  "nested_blocksize other than 256 is not supported");
    }
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where, skey, fmt::format("unreadable quant state JSON: {}", e.what()));
  }
  check_4bit_args(q.blocksize);
  q.data = need(tensors, name, where).reshape({-1}).contiguous();
  BIOLM_CHECK(q.data.scalar_type() == at::kByte, CheckpointError, where, name,
              "a 4-bit weight is stored as uint8 (other quant_storage dtypes are not read)");
  BIOLM_CHECK(q.data.numel() == (q.numel() + 1) / 2, CheckpointError, where, name,
              fmt::format("{} bytes for a {}-value weight (expected {})", q.data.numel(), q.numel(), (q.numel() + 1) / 2));
  const at::Tensor& qmap = need(tensors, name + ".quant_map", where);
  const at::Tensor expected = at::from_blob(const_cast<float*>(code_4bit(type).data()), {16}, at::kFloat);
  BIOLM_CHECK(qmap.numel() == 16 && at::equal(qmap.to(at::kFloat).reshape({16}), expected), CheckpointError, where,
              name + ".quant_map", fmt::format("differs from bitsandbytes' {} code", quant_type_name(type)));
  q.absmax = need(tensors, name + ".absmax", where).reshape({-1}).contiguous();
  BIOLM_CHECK(q.absmax.numel() == q.n_blocks(), CheckpointError, where, name + ".absmax",
              fmt::format("{} block scales for {} blocks of {}", q.absmax.numel(), q.n_blocks(), q.blocksize));
  if (q.nested) {
    BIOLM_CHECK(q.absmax.scalar_type() == at::kByte, CheckpointError, where, name + ".absmax",
                "double-quantized absmax must be uint8");
    q.nested_absmax = need(tensors, name + ".nested_absmax", where).to(at::kFloat).reshape({-1}).contiguous();
    q.nested_code = need(tensors, name + ".nested_quant_map", where).to(at::kFloat).reshape({-1}).contiguous();
    (void)q.scales();  // validates the nested sizes
  } else {
    q.absmax = q.absmax.to(at::kFloat);
  }
  return q;
}

}  // namespace biolm::quant

// biolm-quant-dump: our NF4 / FP4 / int8 quantization of every tensor of a safetensors file, for
// tests/parity/test_quant.py, which compares it byte for byte with bitsandbytes.
//
//   biolm-quant-dump IN.safetensors OUT.safetensors nf4|fp4|int8 [--no-double-quant]
//   biolm-quant-dump CHECKPOINT.safetensors OUT.safetensors read
//
// The second form reads a transformers + bitsandbytes 4-bit checkpoint: for every weight NAME with
// a NAME.quant_state.bitsandbytes__* tensor, OUT gets NAME.@dequant (float32) read by
// quant::from_tensors.
//
// OUT holds, for each tensor NAME of IN: the stored form (quant::to_tensors: NAME, NAME.absmax,
// NAME.quant_map, NAME.nested_absmax, NAME.nested_quant_map, NAME.quant_state.bitsandbytes__*;
// int8: NAME and the sibling SCB), NAME.@scales (the float32 block or row scales, double
// quantization undone), NAME.@dequant (float32), NAME.@dequant_bf16 (bfloat16) and
// NAME.@roundtrip (the dequantization of the stored form read back by quant::from_tensors).
// It is a test driver, not a user command.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstring>
#include <iostream>

#include "biolm/io/safetensors.h"
#include "biolm/quant/quantize.h"

namespace {

int run(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: biolm-quant-dump IN.safetensors OUT.safetensors nf4|fp4|int8 [--no-double-quant]\n";
    return 2;
  }
  if (std::strcmp(argv[3], "read") == 0) {
    const auto tensors = biolm::io::load_safetensors(argv[1]);
    std::map<std::string, at::Tensor> out;
    const std::string marker = ".quant_state.bitsandbytes__";
    for (const auto& [key, value] : tensors) {
      const auto at = key.find(marker);
      if (at == std::string::npos) continue;
      const std::string name = key.substr(0, at);
      out[name + ".@dequant"] = biolm::quant::dequantize(biolm::quant::from_tensors(tensors, name, argv[1]));
    }
    biolm::io::save_safetensors(argv[2], out);
    return 0;
  }
  const auto type = biolm::quant::parse_quant_type(argv[3]);
  if (!type) {
    std::cerr << "unknown quant type " << argv[3] << "\n";
    return 2;
  }
  const bool double_quant = !(argc > 4 && std::strcmp(argv[4], "--no-double-quant") == 0);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, weight] : biolm::io::load_safetensors(argv[1])) {
    const auto q = biolm::quant::quantize(weight, *type, double_quant);
    std::map<std::string, at::Tensor> stored;
    biolm::quant::to_tensors(q, name, stored);
    const auto back = biolm::quant::from_tensors(stored, name, argv[1]);
    out.insert(stored.begin(), stored.end());
    out[name + ".@scales"] = q.scales();
    out[name + ".@dequant"] = biolm::quant::dequantize(q, at::kFloat);
    out[name + ".@dequant_bf16"] = biolm::quant::dequantize(q, at::kBFloat16);
    out[name + ".@roundtrip"] = biolm::quant::dequantize(back, at::kFloat);
  }
  biolm::io::save_safetensors(argv[2], out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "biolm-quant-dump: " << e.what() << "\n";
    return 1;
  }
}

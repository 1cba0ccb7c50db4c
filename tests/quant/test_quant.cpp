// quant/: NF4 / FP4 / int8 weights (bit equality with bitsandbytes is tests/parity/test_quant.py)
// and the quantized Linear: chunked forward = dense product with the dequantized weight, input
// gradients, adapters training on top, merge into a dequantized base, bad input refused.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "biolm/core/error.h"
#include "biolm/nn/linear.h"
#include "biolm/peft/dora.h"
#include "biolm/peft/lora.h"
#include "biolm/quant/linear.h"
#include "biolm/quant/quantize.h"
#include "support/test_util.h"

using namespace biolm;

namespace {

torch::Tensor weights(int64_t out, int64_t in, uint64_t seed) {
  auto g = torch::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn({out, in}, g) * 0.05;
}

}  // namespace

TEST_CASE("quant: every value within half a code gap of its block's scale; layout as documented", "[quant]") {
  for (auto type : {quant::QuantType::NF4, quant::QuantType::FP4}) {
    const auto w = weights(33, 17, 3);  // 561 values: 8 full blocks and 49 in the last, odd count
    const auto q = quant::quantize(w, type, /*double_quant=*/false);
    CHECK(q.data.numel() == 281);
    CHECK(q.absmax.numel() == 9);
    const auto& code = quant::code_4bit(type);
    std::vector<float> sorted(code.begin(), code.end());
    std::sort(sorted.begin(), sorted.end());
    float max_gap = 0;
    for (size_t i = 1; i < sorted.size(); ++i) max_gap = std::max(max_gap, sorted[i] - sorted[i - 1]);
    const auto deq = quant::dequantize(q).reshape({-1});
    const auto flat = w.reshape({-1});
    const auto scale = q.absmax.repeat_interleave(64).narrow(0, 0, flat.numel());
    const auto err = ((deq - flat).abs() / scale).max().item<float>();
    CHECK(err <= max_gap / 2 + 1e-6f);
    CHECK(err > 0);
    // the block's largest magnitude is exact (code holds +-1 for NF4, -1 and 1 for FP4)
    CHECK(torch::allclose(deq.abs().narrow(0, 0, 512).view({8, 64}).amax(1), q.absmax.narrow(0, 0, 8)));
  }
  const auto q8 = quant::quantize(weights(5, 7, 4), quant::QuantType::Int8);
  CHECK(q8.data.scalar_type() == torch::kChar);
  CHECK(q8.data.abs().amax(1).eq(127).all().item<bool>());  // each row's absmax maps to +-127
}

TEST_CASE("quant: double quantization stores uint8 scales within the 8-bit code's resolution", "[quant]") {
  const auto w = weights(256, 512, 5);  // 2048 blocks: the 1 KiB nested code is small beside them
  const auto plain = quant::quantize(w, quant::QuantType::NF4, false);
  const auto nested = quant::quantize(w, quant::QuantType::NF4, true);
  CHECK(torch::equal(plain.data, nested.data));  // the 4-bit indices do not depend on it
  CHECK(nested.absmax.scalar_type() == torch::kByte);
  const auto rel = ((nested.scales() - plain.absmax).abs() / plain.absmax).max().item<float>();
  CHECK(rel < 0.02f);  // measured ~0.4 %: the dynamic code around the centred constants
  CHECK(rel > 0.0f);
  CHECK(nested.nbytes() < plain.nbytes());
}

TEST_CASE("quant: bad arguments and stored forms are refused by name", "[quant]") {
  const auto w = weights(4, 64, 6);
  CHECK_THROWS_AS(quant::quantize(w, quant::QuantType::NF4, true, 48), ConfigError);
  CHECK_THROWS_AS(quant::quantize(w.to(torch::kInt64), quant::QuantType::NF4), ConfigError);
  CHECK_THROWS_AS(quant::quantize(torch::randn({2, 3, 4}), quant::QuantType::Int8), ConfigError);
  std::map<std::string, at::Tensor> stored;
  quant::to_tensors(quant::quantize(w, quant::QuantType::FP4), "l.weight", stored);
  CHECK(torch::equal(quant::dequantize(quant::from_tensors(stored, "l.weight", "f")), quant::dequantize(quant::quantize(w, quant::QuantType::FP4))));
  auto missing = stored;
  missing.erase("l.weight.nested_absmax");
  CHECK_THROWS_WITH(quant::from_tensors(missing, "l.weight", "x.safetensors"),
                    Catch::Contains("x.safetensors") && Catch::Contains("l.weight.nested_absmax"));
  auto short_data = stored;
  short_data["l.weight"] = stored["l.weight"].narrow(0, 0, 10);
  CHECK_THROWS_AS(quant::from_tensors(short_data, "l.weight", "x"), CheckpointError);
}

TEST_CASE("quantized Linear: chunked forward and input gradient equal the dense dequantized product", "[quant]") {
  for (auto type : {quant::QuantType::NF4, quant::QuantType::FP4, quant::QuantType::Int8}) {
    nn::Linear lin(nn::LinearOptions(40, 70));
    lin->quantize_weight(type);
    CHECK(lin->weight.numel() == 0);  // no dense copy kept
    const auto dense = lin->dense_weight();
    const auto x = torch::randn({2, 5, 40}).requires_grad_(true);
    const auto y = lin->forward(x);
    const auto x2 = x.detach().clone().requires_grad_(true);
    const auto ref = at::linear(x2, dense, lin->bias.detach());
    BIOLM_REQUIRE_CLOSE(y, ref, 1e-5);
    // chunks of 3 rows (70 = 23 * 3 + 1) equal one chunk of all rows
    BIOLM_REQUIRE_CLOSE(quant::quantized_linear(x, lin->quantized_weight(), lin->bias, 3), y, 1e-6);
    const auto gy = torch::randn_like(ref);
    y.backward(gy);
    ref.backward(gy);
    BIOLM_REQUIRE_CLOSE(x.grad(), x2.grad(), 1e-5);
    CHECK(!lin->weight.grad().defined());
  }
}

TEST_CASE("QLoRA / QDoRA: adapters train on a quantized base; merge goes into the dequantized base", "[quant]") {
  for (bool dora : {false, true}) {
    nn::Linear lin(nn::LinearOptions(24, 16));
    lin->quantize_weight(quant::QuantType::NF4);
    const auto dense = lin->dense_weight();
    const auto x = torch::randn({3, 24});
    const auto base_y = lin->forward(x).detach();
    const auto opts = peft::LoraOptions(4, 8.0).use_dora(dora);
    std::shared_ptr<peft::LoraAdapterImpl> adapter =
        dora ? std::make_shared<peft::DoraAdapterImpl>(24, 16, opts, lin->dense_weight())
             : std::make_shared<peft::LoraAdapterImpl>(24, 16, opts, lin->weight);
    lin->attach_adapter(adapter);
    BIOLM_REQUIRE_CLOSE(lin->forward(x), base_y, 1e-6);  // identity at init
    for (auto& p : adapter->parameters()) p.set_requires_grad(true);
    {
      torch::NoGradGuard ng;
      adapter->lora_b.copy_(torch::sin(torch::arange(adapter->lora_b.numel(), torch::kFloat)).view_as(adapter->lora_b));
    }
    const auto y = lin->forward(x);
    y.pow(2).sum().backward();
    CHECK(adapter->lora_a.grad().defined());
    CHECK(adapter->lora_b.grad().abs().sum().item<float>() > 0);
    if (!dora) {
      const auto expected =
          at::linear(x, dense, lin->bias) + 2.0 * torch::matmul(torch::matmul(x, adapter->lora_a.t()), adapter->lora_b.t());
      BIOLM_REQUIRE_CLOSE(y, expected, 1e-5);
    } else {  // eq. (5) on the dequantized base
      const auto adapted_w = dense + 2.0 * torch::matmul(adapter->lora_b, adapter->lora_a);
      const auto m = std::dynamic_pointer_cast<peft::DoraAdapterImpl>(adapter)->magnitude;
      const auto w_prime = m.unsqueeze(1) * adapted_w / adapted_w.norm(2, {1}, true);
      BIOLM_REQUIRE_CLOSE(y, at::linear(x, w_prime, lin->bias), 1e-5);
    }
    lin->merge_adapter();
    CHECK(!lin->quantized_weight());
    CHECK(lin->weight.sizes() == torch::IntArrayRef({16, 24}));
    BIOLM_REQUIRE_CLOSE(lin->forward(x), y.detach(), 1e-5);
  }
}

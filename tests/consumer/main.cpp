// Uses libbiolm through its installed headers and library only.
#include <biolm/core/error.h>
#include <biolm/core/seed.h>
#include <biolm/core/version.h>
#include <torch/torch.h>

#include <iostream>

int main() {
  biolm::core::seed_all(7);
  const auto a = torch::randn({3, 3});
  try {
    throw biolm::DataError("x.conll", 12, "tag", "expected B-/I-/O, found \"B_Disease\"");
  } catch (const biolm::Error& e) {
    if (std::string(e.what()) != "x.conll:12: field 'tag': expected B-/I-/O, found \"B_Disease\"") {
      std::cerr << "unexpected message: " << e.what() << "\n";
      return 1;
    }
  }
  std::cout << "biolm " << biolm::version() << " with LibTorch " << biolm::torch_version()
            << ", sum " << a.sum().item<float>() << "\nconsumer ok\n";
  return 0;
}

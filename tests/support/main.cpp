// Catch2 main shared by every test executable.
//
// A run asked for "[cuda]" exits 77 (ctest: skipped) when no CUDA device is visible, so GPU cases
// show up as skipped on CPU machines instead of silently passing.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <string>

#include "biolm/core/device.h"
#include "biolm/core/log.h"

int main(int argc, char** argv) {
  bool wants_cuda = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]).find("[cuda]") != std::string::npos &&
        std::string(argv[i]).find("~[cuda]") == std::string::npos) {
      wants_cuda = true;
    }
  }
  if (wants_cuda && !biolm::core::cuda_available()) {
    return 77;
  }
  biolm::log::set_level(biolm::log::Level::Warn);
  return Catch::Session().run(argc, argv);
}

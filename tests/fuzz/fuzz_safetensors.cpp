// libFuzzer target for the safetensors reader. Not part of the normal build; build by hand with
// clang (see docs/formats.md, "Fuzzing the reader"):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address tests/fuzz/fuzz_safetensors.cpp \
//     libbiolm/src/io/safetensors.cpp libbiolm/src/io/files.cpp libbiolm/src/core/error.cpp ...
// Every input must either parse into a header whose tensors lie inside the data section, or be
// refused with a biolm::CheckpointError; anything else (a crash, an ASan report, another
// exception type) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into an exact-size heap buffer so ASan catches any read past the end.
  auto* buf = static_cast<uint8_t*>(std::malloc(size ? size : 1));
  if (size) std::memcpy(buf, data, size);
  try {
    const auto h = biolm::io::parse_safetensors(buf, size, "fuzz");
    uint64_t covered = 0;
    for (const auto& t : h.tensors) {
      if (t.end > h.data_size || t.begin > t.end) std::abort();  // validation let a bad entry through
      covered += t.nbytes();
    }
    if (covered != h.data_size) std::abort();
    // Valid inputs also go through the memory-mapped reader and are copied out.
    static const std::string path = "/tmp/fuzz_safetensors_" + std::to_string(::getpid()) + ".safetensors";
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(buf), static_cast<std::streamsize>(size));
    }
    biolm::io::SafetensorsFile f(path);
    for (const auto& t : f.tensors()) (void)f.tensor(t.name);
  } catch (const biolm::CheckpointError&) {
    // refused: fine
  }
  std::free(buf);
  return 0;
}

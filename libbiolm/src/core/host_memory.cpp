#include "biolm/core/host_memory.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace biolm::core {

HostAllocatorTuning tune_host_allocator(std::size_t mmap_threshold, std::size_t trim_threshold) {
  HostAllocatorTuning out;
  if (const char* choice = std::getenv("BIOLM_HOST_ALLOCATOR"); choice != nullptr && std::strcmp(choice, "system") == 0) {
    out.detail = "BIOLM_HOST_ALLOCATOR=system: malloc left as configured";
    return out;
  }
#if defined(__GLIBC__)
  if (const char* tunables = std::getenv("GLIBC_TUNABLES"); tunables != nullptr && std::strstr(tunables, "glibc.malloc.")) {
    out.detail = "GLIBC_TUNABLES sets malloc: left as the user configured it";
    return out;
  }
  // mallopt takes int; both values are far below INT_MAX by construction of the defaults, but a
  // caller's value is clamped rather than wrapped.
  const auto as_int = [](std::size_t v) { return static_cast<int>(v > 0x7fffffffu ? 0x7fffffffu : v); };
  // The trim threshold first: setting either one switches off glibc's dynamic adjustment.
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, as_int(trim_threshold)) == 1;
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, as_int(mmap_threshold)) == 1;
  out.applied = trim_ok && mmap_ok;
  out.detail = "glibc malloc: mmap threshold " + std::to_string(mmap_threshold >> 20) + " MiB (" +
               (mmap_ok ? "set" : "refused") + "), trim threshold " + std::to_string(trim_threshold >> 20) +
               " MiB (" + (trim_ok ? "set" : "refused") + ")";
#else
  (void)mmap_threshold;
  (void)trim_threshold;
  out.detail = "not glibc: malloc left as it is";
#endif
  return out;
}

void release_free_host_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace biolm::core

// biolm/core/host_memory.h: keep freed tensor memory in the process for reuse.
//
// LibTorch's CPU allocator takes every tensor from malloc. glibc serves blocks above its mmap
// threshold (128 KiB, raised only as such blocks are freed) with a fresh mmap and hands the top of
// its heap back to the kernel once more than the trim threshold is free, so a training step that
// allocates the same activations step after step takes a page fault on every 4 KiB of them, every
// step. On the 2-core bench machine that was 1.5 million faults in 18 forward passes of the
// `small` decoder and a third of the step time (docs/performance.md).
//
// tune_host_allocator() raises both thresholds so that freed blocks stay in the heap and are reused;
// the cost is that the process keeps its peak heap resident, which is what a caching allocator does
// anyway. It is process-wide, so the library never calls it by itself: the biolm command,
// biolm-bench and the examples call it first thing in main(); programs that link libbiolm call it
// when they want the same. It leaves malloc alone where the user chose otherwise:
//   BIOLM_HOST_ALLOCATOR=system   skip the tuning
//   GLIBC_TUNABLES=...glibc.malloc...   the user's own malloc settings win
// and on C libraries other than glibc it does nothing.
#pragma once

#include <cstddef>
#include <string>

namespace biolm::core {

struct HostAllocatorTuning {
  bool applied = false;  ///< both thresholds were set
  std::string detail;    ///< what was done, or why nothing was (for logs and the bench record)
};

inline constexpr std::size_t kDefaultMmapThreshold = std::size_t{256} << 20;  // 256 MiB
inline constexpr std::size_t kDefaultTrimThreshold = std::size_t{512} << 20;  // 512 MiB

/// Blocks below `mmap_threshold` come from the heap; up to `trim_threshold` of free heap is kept.
HostAllocatorTuning tune_host_allocator(std::size_t mmap_threshold = kDefaultMmapThreshold,
                                        std::size_t trim_threshold = kDefaultTrimThreshold);

/// Hands the heap's free pages back to the kernel (glibc malloc_trim, which also releases free
/// pages inside the heap): with the tuning above, memory freed once and not needed again (the
/// float32 weights of a block just quantized, QLoRA) would otherwise stay resident and, fragmented
/// by the small allocations in between, add up to several times the model. No-op elsewhere.
void release_free_host_memory();

}  // namespace biolm::core

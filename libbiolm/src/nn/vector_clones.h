// libbiolm/src/nn/vector_clones.h (private): BIOLM_VECTOR_CLONES on a hot loop compiles it three
// times, for the baseline x86-64 (SSE2), AVX2 and AVX-512F, and picks the clone at load time by
// the CPU (GCC/Clang target_clones, an ifunc): the fused kernels' loops then vectorise 8 or 16
// floats wide on current CPUs while the library still runs on any x86-64 (measured on the 2-core
// AVX-512 machine: GELU forward 3.8 ms with AVX2 alone, 1.4 ms with AVX-512, one thread, 1.57M
// floats). No FMA is enabled, so every clone does the same IEEE operations in the same order
// (only the reductions' lane split differs). Elsewhere (other architectures, compilers) it is
// empty and the loops are compiled for the build's target.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(BIOLM_NO_VECTOR_CLONES)
#define BIOLM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BIOLM_VECTOR_CLONES
#endif

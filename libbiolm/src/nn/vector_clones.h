// libbiolm/src/nn/vector_clones.h (private): BIOLM_VECTOR_CLONES on a hot loop compiles it twice,
// for the baseline x86-64 (SSE2) and for AVX2, and picks the clone at load time by the CPU
// (GCC/Clang target_clones, an ifunc): the fused kernels' loops then vectorise 8 floats wide on
// current CPUs while the library still runs on any x86-64. No FMA is enabled, so both clones do
// the same IEEE operations in the same order. Elsewhere (other architectures, compilers) it is
// empty and the loops are compiled for the build's target.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(BIOLM_NO_VECTOR_CLONES)
#define BIOLM_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BIOLM_VECTOR_CLONES
#endif

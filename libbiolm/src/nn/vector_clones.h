// libbiolm/src/nn/vector_clones.h (private): BIOLM_VECTOR_CLONES on a hot loop compiles it three
// times, for the baseline x86-64 (SSE2), AVX2 and AVX-512F, and picks the clone at load time by
// the CPU (GCC/Clang target_clones, an ifunc): the fused kernels' loops then vectorise 8 or 16
// floats wide on current CPUs while the library still runs on any x86-64 (measured on the 2-core
// AVX-512 machine: GELU forward 3.8 ms with AVX2 alone, 1.4 ms with AVX-512, one thread, 1.57M
// floats). GCC's avx512f target includes FMA and GCC contracts a * b + c into one by default, so
// the AVX-512 clone rounds some products once where the AVX2 and baseline clones round twice
// (found 2026-12-06: 60 FMAs in the AVX-512 GELU, none in the AVX2 one): results agree to about
// an ulp across CPUs, not bit for bit (nor do the BLAS's). -ffp-contract=off would make them
// identical at a measured cost: GELU forward on MiniLM's FFN activations (16 x 64 x 1536, 2
// threads) 1.2-1.7 ms without FMA against 0.7-1.2 ms with. Elsewhere (other architectures,
// compilers) it is empty and the loops are compiled for the build's target.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(BIOLM_NO_VECTOR_CLONES)
#define BIOLM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BIOLM_VECTOR_CLONES
#endif

// A row helper that a cloned loop calls must be inlined into the clone, or it runs as the
// baseline (SSE2) code: GCC declined to inline the larger ones on its own.
#if defined(__GNUC__)
#define BIOLM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define BIOLM_ALWAYS_INLINE inline
#endif

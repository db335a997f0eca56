/*
 * simd.h — one binary, every CPU's vector width. PX_SIMD_CLONES on a function definition compiles
 * it three times: for AVX-512 (x86-64-v4), for AVX2 + FMA (x86-64-v3) and for baseline x86-64
 * (SSE2); the loader picks the best the CPU has (GCC's target_clones, an ifunc). The
 * element-wise loops of the kernels and the checkpoint checksum use it: GCC vectorises them for
 * the CPU that runs them, not for the oldest one the binary must start on (GELU: about 5x over
 * SSE2 on an AVX-512 CPU). The choice is the same for every call on a machine; ranks on CPUs of
 * different levels may round differently (FMA or not), as any two builds may.
 * Define PX_NO_SIMD_CLONES to build the baseline code only. GCC only: clang 14 (Debian 12)
 * leaves a cloned function undefined for callers in other files (a link error), so a clang build
 * gets the baseline code.
 */
#ifndef PROXIMA_SIMD_H
#define PROXIMA_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute) && \
    !defined(PX_NO_SIMD_CLONES)
#if __has_attribute(target_clones)
#define PX_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef PX_SIMD_CLONES
#define PX_SIMD_CLONES
#endif

#endif

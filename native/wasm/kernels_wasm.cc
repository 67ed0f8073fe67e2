// WebAssembly SIMD128 build of the CPU kernels (native/src/kernels.inl): the third instruction
// set of the same source, for the wasm backend (src/engine/backends/wasm.ts) in Node and in a
// browser. Compiled by build-wasm.js with em++ -O3 -msimd128, one thread (omp.h beside this file
// stands in for OpenMP: every `#pragma omp` is ignored).
//
// GEMM micro-kernel: a 4 x 8 tile of C in 8 v128 accumulators (two per row), plain multiply +
// add (relaxed-SIMD FMA is not available to this toolchain's engines). The engine that compiles
// the wasm to machine code has 16 (x86-64) or 32 (arm64) vector registers and keeps one or two
// for itself: 8 accumulators + 2 B vectors + 1 broadcast fit x86-64's with room to spare, where
// 6 x 8 (15 live vectors) spills. op(A) is packed into kMR-wide panels (MMGPT_PACK_A=1, the
// kernels' BLIS option): unlike the x86 builds, where reading A in place wins, the wasm engine
// spends an address computation per row and step on an in-place A, and the packed panel measured
// ~1.3x faster on the model's shapes. Each A element is broadcast with load32_splat; unrolling
// the depth loop measured slower.

#include <stdint.h>
#include <string.h>
#include <wasm_simd128.h>

#include <cmath>  // std::isfinite in kernels.inl (emscripten's math.h does not declare it)

#include "kernels.h"

namespace {

#ifndef MMGPT_WASM_MR
#define MMGPT_WASM_MR 4
#endif
/**
 * memcpy as kernels.inl calls it (its unqualified calls find this one first): with bulk memory a
 * memcpy of unknown size is a memory.copy, which the engine runs out of line, costly for the
 * 4-32 bytes the GEMM's packing copies per depth step (a row of an A panel, of a B panel).
 * Those are copied inline here; constant sizes (vload/vstore) and long copies go to the builtin.
 */
inline void* memcpy(void* __restrict dst, const void* __restrict src, size_t n) {
  if (__builtin_constant_p(n) || n > 32) return __builtin_memcpy(dst, src, n);
  unsigned char* d = (unsigned char*)dst;
  const unsigned char* s = (const unsigned char*)src;
  if (n >= 16) {
    wasm_v128_store(d, wasm_v128_load(s));
    wasm_v128_store(d + n - 16, wasm_v128_load(s + n - 16));  // overlaps the first when n < 32
  } else if (n >= 4) {
    uint32_t a, b;
    __builtin_memcpy(&a, s, 4);
    __builtin_memcpy(&b, s + n - 4, 4);
    if (n > 8) wasm_v128_store64_lane(d, wasm_v128_load64_zero(s), 0);
    __builtin_memcpy(d, &a, 4);
    __builtin_memcpy(d + n - 4, &b, 4);
  } else {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  }
  return dst;
}

const int kMR = MMGPT_WASM_MR;
const int kNR = 8;

template <int R, int kAKind>
void ukernel(int64_t kc, const float* __restrict Ap, int64_t lda, const float* __restrict Bp,
             float* __restrict C, int64_t ldc, int cols, float alpha, int beta) {
  v128_t c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    c0[i] = wasm_f32x4_splat(0.0f);
    c1[i] = wasm_f32x4_splat(0.0f);
  }
  for (int64_t p = 0; p < kc; p++) {
    const v128_t b0 = wasm_v128_load(Bp + p * kNR), b1 = wasm_v128_load(Bp + p * kNR + 4);
    const float* a = Ap + p * (kAKind == 0 ? kMR : kAKind == 1 ? 1 : lda);
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      const v128_t av = wasm_v128_load32_splat(a + (kAKind == 1 ? i * lda : i));
      c0[i] = wasm_f32x4_add(c0[i], wasm_f32x4_mul(av, b0));
      c1[i] = wasm_f32x4_add(c1[i], wasm_f32x4_mul(av, b1));
    }
  }
  const v128_t va = wasm_f32x4_splat(alpha);
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    float* c = C + i * ldc;
    const v128_t r0 = wasm_f32x4_mul(va, c0[i]), r1 = wasm_f32x4_mul(va, c1[i]);
    if (cols == kNR) {
      wasm_v128_store(c, beta ? wasm_f32x4_add(r0, wasm_v128_load(c)) : r0);
      wasm_v128_store(c + 4, beta ? wasm_f32x4_add(r1, wasm_v128_load(c + 4)) : r1);
    } else {  // a ragged right edge: through a bounce buffer, touching only C[i, 0:cols]
      float tile[kNR];
      wasm_v128_store(tile, r0);
      wasm_v128_store(tile + 4, r1);
      for (int j = 0; j < cols; j++) c[j] = beta ? c[j] + tile[j] : tile[j];
    }
  }
}

}  // namespace

#define MMGPT_PACK_A 1
// One thread: kernels.inl's per-thread scratch buffers are plain globals (wasm-ld refuses
// thread-local storage in a module without atomics once bulk memory is on).
#pragma clang diagnostic ignored "-Wkeyword-macro"
#define __thread
#define MMGPT_VL 4
#define MMGPT_ISA_NAME "wasm-simd128"
#define MMGPT_TABLE_FN mmgpt_kernels_wasm
#include "kernels.inl"

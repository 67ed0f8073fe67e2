// The parts of the AVX2 and AVX-512 GEMM micro-kernels (kernels_avx2.cc, kernels_avx512.cc) that
// are the same but for the vector type: clearing the accumulator tile, and writing it to C as
// C = alpha * acc (+ C where beta) (+ bias, a row vector, on the last depth block's store),
// full-width rows with plain loads/stores, a ragged right edge with masked ones. The k loops stay in the ISA files (each is shaped for its register file).
//
// The tile is R rows of two vectors (c0: columns 0 .. W-1, c1: W .. 2W-1) with W = V::kWidth.
// V is the ISA's vector traits: Vec, Mask, kWidth, zero(), set1, loadu, storeu, fmadd(a, b, c) =
// a * b + c rounded once, mul, add, lanesBelow(k) (the mask of lanes < k, any k), maskLoad (zeros in
// the masked-off lanes) and maskStore.
//
// Notable choices: everything here has internal linkage (an anonymous namespace in each ISA's
// translation unit), so no instantiation can be merged across the ISA builds by the linker (see
// kernels.h). always_inline: the accumulators must stay in registers.

#ifndef MMGPT_GEMM_TILE_H
#define MMGPT_GEMM_TILE_H

#include <stdint.h>

namespace {

/** Zeroes the accumulators and prefetches the tile's rows of C (one 64-byte line per 16 floats). */
template <class V, int R>
__attribute__((always_inline)) inline void clearTile(typename V::Vec (&c0)[R],
                                                     typename V::Vec (&c1)[R], const float* C,
                                                     int64_t ldc) {
#pragma GCC unroll 16
  for (int i = 0; i < R; i++) {
    c0[i] = V::zero();
    c1[i] = V::zero();
#pragma GCC unroll 2
    for (int col = 0; col < 2 * V::kWidth; col += 16) {
      _mm_prefetch((const char*)(C + i * ldc + col), _MM_HINT_T0);
    }
  }
}

/**
 * v, opaque to the optimiser: a product alpha * acc stays rounded before the bias is added (no
 * multiply-add fused from the two intrinsics, which GCC's default -ffp-contract=fast would form).
 */
template <class Vec>
__attribute__((always_inline)) inline Vec rounded(Vec v) {
  __asm__("" : "+x"(v));
  return v;
}

/**
 * C[i, 0:cols] = alpha * acc[i] (+ C[i, 0:cols] if beta) (+ bias[0:cols] if bias is not null)
 * for the tile's R rows. The bias is added to the rounded product, a second rounding, so that C
 * has the bits of the product followed by a separate add.
 */
template <class V, int R>
__attribute__((always_inline)) inline void storeTile(const typename V::Vec (&c0)[R],
                                                     const typename V::Vec (&c1)[R], float* C,
                                                     int64_t ldc, int cols, float alpha, int beta,
                                                     const float* bias) {
  typedef typename V::Vec Vec;
  const int W = V::kWidth;
  const Vec va = V::set1(alpha);
  if (cols == 2 * W) {
    const Vec b0 = bias ? V::loadu(bias) : V::zero(), b1 = bias ? V::loadu(bias + W) : V::zero();
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      float* c = C + i * ldc;
      Vec r0 = beta ? V::fmadd(va, c0[i], V::loadu(c)) : V::mul(va, c0[i]);
      Vec r1 = beta ? V::fmadd(va, c1[i], V::loadu(c + W)) : V::mul(va, c1[i]);
      if (bias) {
        r0 = V::add(rounded(r0), b0);
        r1 = V::add(rounded(r1), b1);
      }
      V::storeu(c, r0);
      V::storeu(c + W, r1);
    }
    return;
  }
  const typename V::Mask m0 = V::lanesBelow(cols), m1 = V::lanesBelow(cols - W);
  const Vec b0 = bias ? V::maskLoad(bias, m0) : V::zero();
  const Vec b1 = bias ? V::maskLoad(bias + W, m1) : V::zero();
#pragma GCC unroll 16
  for (int i = 0; i < R; i++) {
    float* c = C + i * ldc;
    Vec r0 = beta ? V::fmadd(va, c0[i], V::maskLoad(c, m0)) : V::mul(va, c0[i]);
    Vec r1 = beta ? V::fmadd(va, c1[i], V::maskLoad(c + W, m1)) : V::mul(va, c1[i]);
    if (bias) {
      r0 = V::add(rounded(r0), b0);
      r1 = V::add(rounded(r1), b1);
    }
    V::maskStore(c, m0, r0);
    V::maskStore(c + W, m1, r1);
  }
}

}  // namespace

#endif  // MMGPT_GEMM_TILE_H

// AVX-512 build of the CPU kernels (kernels.inl), chosen at load time when the processor has
// AVX-512 F/DQ/BW/VL. Compiled with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma
// (binding.gyp) and called only after __builtin_cpu_supports says so (addon.cc).
//
// GEMM micro-kernel: a 12 x 32 tile of C in 24 zmm accumulators; per step of k it loads one
// 32-wide row of the packed B panel (2 zmm) and broadcasts 12 elements of op(A), i.e. 24 FMAs
// per 2 vector loads and 12 broadcasts (the BLIS skx kernel's shape, transposed for row-major
// C). kAKind says where the A elements live (packed panel, A's rows, or A transposed; see
// ukernelRows in kernels.inl). Partial tiles use masked loads/stores.

#include <stdint.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

#include "gemm_tile.h"

namespace {

const int kMR = 12;
const int kNR = 32;

/** The vector traits gemm_tile.h writes the tile with: 16 floats, __mmask16 masks. */
struct Avx512 {
  typedef __m512 Vec;
  typedef __mmask16 Mask;
  static const int kWidth = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static Mask lanesBelow(int k) {
    return k >= 16 ? (Mask)0xFFFF : k <= 0 ? (Mask)0 : (Mask)((1u << k) - 1u);
  }
  static Vec maskLoad(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void maskStore(float* p, Mask m, Vec v) { _mm512_mask_storeu_ps(p, m, v); }
};

template <int R, int kAKind>
void ukernel(int64_t kc, const float* __restrict Ap, int64_t lda, const float* __restrict Bp,
             float* __restrict C, int64_t ldc, int cols, float alpha, int beta,
             const float* __restrict bias) {
  __m512 c0[R], c1[R];
  clearTile<Avx512, R>(c0, c1, C, ldc);
  if constexpr (kAKind == 1) {
    // R row pointers advanced by one shared index that counts up to 0 (no end register):
    // R + 2 general registers in the loop, which keeps GCC from spilling B to the stack.
    const float* rows[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) rows[i] = Ap + i * lda + kc;
    const float* b = Bp;
#pragma GCC unroll 2
    for (int64_t p = -kc; p < 0; p++, b += kNR) {
      const __m512 b0 = _mm512_load_ps(b);
      const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
      for (int i = 0; i < R; i++) {
        const __m512 av = _mm512_set1_ps(rows[i][p]);
        c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
      }
    }
  } else {
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
      const __m512 b0 = _mm512_load_ps(Bp + p * kNR);
      const __m512 b1 = _mm512_load_ps(Bp + p * kNR + 16);
      const float* a = Ap + p * (kAKind == 0 ? kMR : lda);
#pragma GCC unroll 16
      for (int i = 0; i < R; i++) {
        const __m512 av = _mm512_set1_ps(a[i]);
        c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
      }
    }
  }
  storeTile<Avx512, R>(c0, c1, C, ldc, cols, alpha, beta, bias);
}

}  // namespace

#define MMGPT_HOOKS_AVX512 1  // masked tails (and scalef) in kernels.inl
#define MMGPT_VL 16
#define MMGPT_ISA_NAME "avx512"
#define MMGPT_TABLE_FN mmgpt_kernels_avx512
#include "kernels.inl"

#else
extern "C" const mmgpt::KernelTable* mmgpt_kernels_avx512(void) { return nullptr; }
#endif

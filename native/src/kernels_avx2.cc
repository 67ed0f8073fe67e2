// AVX2 + FMA build of the CPU kernels (kernels.inl), chosen at load time when the processor has
// AVX2 and FMA but not AVX-512. Compiled with -mavx2 -mfma (binding.gyp).
//
// GEMM micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators (the classic Haswell shape:
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 registers). Partial tiles use
// vmaskmov loads/stores.

#include <stdint.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "gemm_tile.h"

namespace {

const int kMR = 6;
const int kNR = 16;

/** The vector traits gemm_tile.h writes the tile with: 8 floats, lane masks in a __m256i. */
struct Avx2 {
  typedef __m256 Vec;
  typedef __m256i Mask;
  static const int kWidth = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Mask lanesBelow(int k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Vec maskLoad(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void maskStore(float* p, Mask m, Vec v) { _mm256_maskstore_ps(p, m, v); }
};

template <int R, int kAKind>
void ukernel(int64_t kc, const float* __restrict Ap, int64_t lda, const float* __restrict Bp,
             float* __restrict C, int64_t ldc, int cols, float alpha, int beta,
             const float* __restrict bias) {
  __m256 c0[R], c1[R];
  clearTile<Avx2, R>(c0, c1, C, ldc);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_load_ps(Bp + p * kNR);
    const __m256 b1 = _mm256_load_ps(Bp + p * kNR + 8);
    const float* a = Ap + p * (kAKind == 0 ? kMR : kAKind == 1 ? 1 : lda);
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      const __m256 av = _mm256_broadcast_ss(a + (kAKind == 1 ? i * lda : i));
      c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
    }
  }
  storeTile<Avx2, R>(c0, c1, C, ldc, cols, alpha, beta, bias);
}

}  // namespace

#define MMGPT_HOOKS_AVX2 1  // masked tails in kernels.inl
#define MMGPT_VL 8
#define MMGPT_ISA_NAME "avx2"
#define MMGPT_TABLE_FN mmgpt_kernels_avx2
#include "kernels.inl"

#else
extern "C" const mmgpt::KernelTable* mmgpt_kernels_avx2(void) { return nullptr; }
#endif

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

namespace {

const int kMR = 6;
const int kNR = 16;

template <int R, int kAKind>
void ukernel(int64_t kc, const float* __restrict Ap, int64_t lda, const float* __restrict Bp,
             float* __restrict C, int64_t ldc, int cols, float alpha, int beta) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
    _mm_prefetch((const char*)(C + i * ldc), _MM_HINT_T0);
  }
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
  const __m256 va = _mm256_set1_ps(alpha);
  if (cols == kNR) {
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      float* c = C + i * ldc;
      if (beta) {
        _mm256_storeu_ps(c, _mm256_fmadd_ps(va, c0[i], _mm256_loadu_ps(c)));
        _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(va, c1[i], _mm256_loadu_ps(c + 8)));
      } else {
        _mm256_storeu_ps(c, _mm256_mul_ps(va, c0[i]));
        _mm256_storeu_ps(c + 8, _mm256_mul_ps(va, c1[i]));
      }
    }
    return;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    float* c = C + i * ldc;
    __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
    if (beta) {
      r0 = _mm256_fmadd_ps(va, c0[i], _mm256_maskload_ps(c, m0));
      r1 = _mm256_fmadd_ps(va, c1[i], _mm256_maskload_ps(c + 8, m1));
    }
    _mm256_maskstore_ps(c, m0, r0);
    _mm256_maskstore_ps(c + 8, m1, r1);
  }
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

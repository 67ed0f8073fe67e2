// Baseline build of the CPU kernels (kernels.inl): no flags beyond the compiler's default target
// (SSE2 on x86-64, NEON on arm64), so it runs on every machine; the fallback when neither AVX2
// nor AVX-512 is available, and a reference point in bench/gemm.ts.
//
// GEMM micro-kernel: a 6 x 8 tile of C in 12 four-wide accumulators, written with GCC vector
// extensions (plain multiply + add: the baseline has no FMA).

#include <stdint.h>
#include <string.h>

#include "kernels.h"

namespace {

const int kMR = 6;
const int kNR = 8;
typedef float v4f __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, v4f v) { memcpy(p, &v, sizeof v); }

template <int R, int kAKind>
void ukernel(int64_t kc, const float* __restrict Ap, int64_t lda, const float* __restrict Bp,
             float* __restrict C, int64_t ldc, int cols, float alpha, int beta,
             const float* __restrict bias) {
  v4f c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    c0[i] = v4f{0, 0, 0, 0};
    c1[i] = v4f{0, 0, 0, 0};
  }
  for (int64_t p = 0; p < kc; p++) {
    const v4f b0 = load4(Bp + p * kNR), b1 = load4(Bp + p * kNR + 4);
    const float* a = Ap + p * (kAKind == 0 ? kMR : kAKind == 1 ? 1 : lda);
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      const float ai = a[kAKind == 1 ? i * lda : i];
      const v4f av = v4f{ai, ai, ai, ai};
      c0[i] += av * b0;
      c1[i] += av * b1;
    }
  }
  for (int i = 0; i < R; i++) {
    float tile[8];
    store4(tile, c0[i] * alpha);
    store4(tile + 4, c1[i] * alpha);
    float* c = C + i * ldc;
    for (int j = 0; j < cols; j++) {
      const float r = beta ? c[j] + tile[j] : tile[j];
      c[j] = bias ? r + bias[j] : r;  // the bias after the rounded product, as a separate add
    }
  }
}

}  // namespace

#define MMGPT_VL 4
#define MMGPT_ISA_NAME "baseline"
#define MMGPT_TABLE_FN mmgpt_kernels_scalar
#include "kernels.inl"

// The cpu backend's bfloat16 matmul: C = alpha op(A) op(B) (+ C) (+ bias) with op(A) and op(B)
// rounded to bfloat16 and the products summed in float32 by the AMX tile unit (TDPBF16PS), for
// processors with AMX-BF16 (Intel Sapphire Rapids and later). An opt-in precision of the cpu
// backend's matmul (MMGPT_MATMUL=bf16, setCpuMatmulPrecision): every other kernel, and every
// product this one declines, stays the float32 GEMM of kernels.inl.
//
// Numbers: each operand element is rounded to nearest-even bfloat16 (8 significant bits;
// VCVTNE2PS2BF16, which also flushes subnormals to zero), each product of two bfloat16 is exact in
// float32 and the tile unit sums them in float32 in an order of its own. So the result is close to
// the float32 product of the rounded operands, not to the float32 product of the operands: a
// relative error of about 2^-8 per element for inputs of one sign (test/engine/amx_matmul.test.ts
// bounds it against a float64 product of the rounded operands). Deterministic for a given
// machine and thread count: each element of C is one tile element's sum over the whole depth.
//
// Layout: op(A) [m x k] is packed into rows of bfloat16 pairs, Ap[i][q] = (op(A)[i, 2q],
// op(A)[i, 2q+1]), the tile unit's left operand; op(B) [k x n] into the "VNNI" pairs
// Bp[q][j] = (op(B)[2q, j], op(B)[2q+1, j]), its right operand. Both are padded with zeros to
// multiples of 32 rows (m, n) and 32 depth (k). Packing works on 16 x 16 blocks of pairs: a pair
// row is read from two source rows (a source contiguous along m or n) or from one (a source
// contiguous along k), converted, and transposed as 32-bit lanes where the packed layout wants
// the other orientation. Then each thread computes 32 x 32 blocks of C in four accumulator tiles
// over the whole depth (two left and two right tiles a step of 32), and stores them through an
// epilogue that applies alpha, + C, the bias and the edges.
//
// The tiles need the process's permission to use the AMX state (arch_prctl XTILEDATA, Linux
// 5.16+), asked for once by mmgpt_amx_available().

#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

const int64_t kBlock = 32;  // rows and columns of C per task; depth of one tile step
const int kArchReqXcompPerm = 0x1023;
const int kXfeatureXtiledata = 18;

struct TileConfig {
  uint8_t palette, startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

inline int64_t roundUp(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

/** A growable 64-byte-aligned buffer per OS thread, never freed (as kernels.inl's scratch). */
struct Buffer {
  void* p;
  int64_t bytes;
};
__thread Buffer tlsPacked = {nullptr, 0};

void* grow(Buffer* b, int64_t bytes) {
  if (b->bytes < bytes) {
    free(b->p);
    b->p = aligned_alloc(64, (size_t)roundUp(bytes, 64));
    b->bytes = b->p ? bytes : 0;
  }
  return b->p;
}

/**
 * 16 x 16 transpose of 32-bit lanes, in place: stage S (8, 4, 2, 1) exchanges the off-diagonal
 * S x S sub-blocks of every 2S x 2S block between rows q and q + S (two-input permutes); the four
 * stages together transpose.
 */
inline void transpose16(__m512i r[16]) {
  // Per stage S: the top row's lanes (its own left part, the bottom's left part), then the
  // bottom row's (the top's right part, its own right part); indices >= 16 name the bottom row.
  alignas(64) static const int32_t kIndex[4][2][16] = {
      {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
       {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
      {{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
       {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}},
      {{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
       {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}},
      {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
       {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}},
  };
  for (int stage = 0; stage < 4; stage++) {
    const int S = 8 >> stage;
    const __m512i lo = _mm512_load_si512(kIndex[stage][0]), hi = _mm512_load_si512(kIndex[stage][1]);
    for (int q = 0; q < 16; q++) {
      if (q & S) continue;
      const __m512i top = r[q], bottom = r[q + S];
      r[q] = _mm512_permutex2var_epi32(top, lo, bottom);
      r[q + S] = _mm512_permutex2var_epi32(top, hi, bottom);
    }
  }
}

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/** 16 floats of src from p (n of them valid, the rest 0) as 16 bfloat16 in the low 16 bits. */
inline __m512i bf16Lanes(const float* p, int64_t n) {
  const __m512 x = _mm512_maskz_loadu_ps(lanes(n), p);
  // (the zero-masked form: the plain one trips GCC 12's uninitialised-value warning in its header)
  return _mm512_maskz_cvtepu16_epi32((__mmask16)0xFFFF, (__m256i)_mm512_cvtneps_pbh(x));
}

/**
 * Pair rows of a 16 x 16 block of pairs (16 outer indices x from x0, 16 pairs q from q0, i.e.
 * depth 2q0 .. 2q0 + 32) of a source S with element (x, p) at S[x * sx + p * sp], one of sx, sp
 * being 1. Returns rows indexed by x (each: 16 pairs over q) when byX, else rows indexed by q
 * (each: 16 pairs over x). Outside [0, xs) x [0, ps) the source counts as zero.
 */
inline void pairBlock(const float* S, int64_t sx, int64_t sp, int64_t x0, int64_t xs, int64_t q0,
                      int64_t ps, bool byX, __m512i r[16]) {
  const int64_t p0 = 2 * q0;
  if (sp == 1) {  // rows along the depth: one source row gives one pair row indexed by x
    for (int i = 0; i < 16; i++) {
      const int64_t x = x0 + i;
      if (x >= xs) {
        r[i] = _mm512_setzero_si512();
        continue;
      }
      const float* row = S + x * sx + p0;
      const int64_t n = ps - p0;
      const __m512 lo = _mm512_maskz_loadu_ps(lanes(n), row);
      const __m512 hi = _mm512_maskz_loadu_ps(lanes(n - 16), row + 16);
      r[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // lane q: (p0 + 2q, p0 + 2q + 1)
    }
    if (!byX) transpose16(r);
  } else {  // rows along x: two source rows (depth 2q, 2q + 1) give one pair row indexed by q
    const int64_t n = xs - x0;
    for (int i = 0; i < 16; i++) {
      const int64_t p = p0 + 2 * i;
      const __m512i even = p < ps ? bf16Lanes(S + p * sp + x0, n) : _mm512_setzero_si512();
      const __m512i odd = p + 1 < ps ? bf16Lanes(S + (p + 1) * sp + x0, n) : _mm512_setzero_si512();
      r[i] = _mm512_or_si512(even, _mm512_maskz_slli_epi32((__mmask16)0xFFFF, odd, 16));
    }
    if (byX) transpose16(r);
  }
}

/**
 * Packs this thread's share of the 16 x 16 pair blocks of an operand with outer size xs (padded
 * to xp) and depth ps (padded to pp): left (rows by x, pp/2 pairs each) or right (rows by q, xp
 * pairs each) layout.
 */
void packPairs(const float* S, int64_t sx, int64_t sp, int64_t xs, int64_t xp, int64_t ps,
               int64_t pp, bool left, uint32_t* out, int tid, int nth) {
  const int64_t xBlocks = xp / 16, qBlocks = pp / 32, blocks = xBlocks * qBlocks;
  const int64_t lo = blocks * tid / nth, hi = blocks * (tid + 1) / nth;
  __m512i r[16];
  for (int64_t b = lo; b < hi; b++) {
    const int64_t x0 = (b / qBlocks) * 16, q0 = (b % qBlocks) * 16;
    pairBlock(S, sx, sp, x0, xs, q0, ps, left, r);
    for (int i = 0; i < 16; i++) {
      uint32_t* dst = left ? out + (x0 + i) * (pp / 2) + q0 : out + (q0 + i) * xp + x0;
      _mm512_store_si512(dst, r[i]);
    }
  }
}

/** C rows [i0, i0 + 16) x columns [j0, j0 + 16) (clipped to m x n) from a 16 x 16 tile `acc`. */
inline void storeTile(const float* acc, float* C, int64_t ldc, int64_t i0, int64_t j0, int64_t m,
                      int64_t n, float alpha, bool beta, const float* bias) {
  const __mmask16 mask = lanes(n - j0);
  const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + j0) : _mm512_setzero_ps();
  for (int64_t i = 0; i < 16 && i0 + i < m; i++) {
    float* c = C + (i0 + i) * ldc + j0;
    __m512 v = _mm512_load_ps(acc + i * 16);
    if (alpha != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(alpha));
    if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c));
    if (bias) v = _mm512_add_ps(v, b);
    _mm512_mask_storeu_ps(c, mask, v);
  }
}

/** One product (an item of a batch) by the calling team; Ap / Bp the team's packed buffers. */
void productTeam(const float* A, const float* B, float* C, const mmgpt::MatmulArgs* p,
                 uint32_t* Ap, uint32_t* Bp, int tid, int nth) {
  const int64_t m = p->m, n = p->n, k = p->k;
  const int64_t mp = roundUp(m, kBlock), np = roundUp(n, kBlock), kp = roundUp(k, kBlock);
  const int64_t lda = p->transA ? m : k, ldb = p->transB ? k : n;
  // op(A)[i, p] = A[i * lda + p] or A[p * lda + i]; op(B)[p, j] = B[p * ldb + j] or B[j * ldb + p].
  packPairs(A, p->transA ? 1 : lda, p->transA ? lda : 1, m, mp, k, kp, true, Ap, tid, nth);
  packPairs(B, p->transB ? ldb : 1, p->transB ? 1 : ldb, n, np, k, kp, false, Bp, tid, nth);
#pragma omp barrier
  const int64_t colBlocks = np / kBlock, tasks = (mp / kBlock) * colBlocks;
  const int64_t lo = tasks * tid / nth, hi = tasks * (tid + 1) / nth;
  const float alpha = (float)p->alpha;
  alignas(64) float acc[4][256];
  for (int64_t t = lo; t < hi; t++) {
    const int64_t i0 = (t / colBlocks) * kBlock, j0 = (t % colBlocks) * kBlock;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint32_t* a0 = Ap + i0 * (kp / 2);
    const uint32_t* a1 = Ap + (i0 + 16) * (kp / 2);
    for (int64_t q = 0; q < kp / 2; q += 16) {
      _tile_loadd(4, a0 + q, kp * 2);
      _tile_loadd(5, a1 + q, kp * 2);
      _tile_loadd(6, Bp + q * np + j0, np * 4);
      _tile_loadd(7, Bp + q * np + j0 + 16, np * 4);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    const bool whole = i0 + kBlock <= m && j0 + kBlock <= n && alpha == 1.0f && !p->accumulate &&
                       !p->bias;
    if (whole) {  // straight into C
      _tile_stored(0, C + i0 * n + j0, n * 4);
      _tile_stored(1, C + i0 * n + j0 + 16, n * 4);
      _tile_stored(2, C + (i0 + 16) * n + j0, n * 4);
      _tile_stored(3, C + (i0 + 16) * n + j0 + 16, n * 4);
      continue;
    }
    _tile_stored(0, acc[0], 64);
    _tile_stored(1, acc[1], 64);
    _tile_stored(2, acc[2], 64);
    _tile_stored(3, acc[3], 64);
    for (int s = 0; s < 4; s++) {
      const int64_t ti = i0 + (s / 2) * 16, tj = j0 + (s % 2) * 16;
      if (ti < m && tj < n) storeTile(acc[s], C, n, ti, tj, m, n, alpha, p->accumulate, p->bias);
    }
  }
}

int gTiles = -1;  // mmgpt_amx_available's answer: -1 not asked yet, 0 no, 1 yes

}  // namespace

extern "C" int mmgpt_amx_available(void) {
  if (gTiles >= 0) return gTiles;
  unsigned a = 0, b = 0, c = 0, d = 0;
  // CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
  const bool cpu = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24));
  gTiles = cpu && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0 ? 1 : 0;
  return gTiles;
}

extern "C" int mmgpt_matmul_amx(const float* A, const float* B, float* C,
                                const mmgpt::MatmulArgs* p, int nt) {
  // Declined (the caller runs the float32 GEMM): no tiles, or products too small to fill a tile
  // (decoding's one-row products, whose packing would cost more than the product).
  if (gTiles != 1 || p->m < 16 || p->n < 16 || p->k < 16) return 0;
  const int64_t mp = roundUp(p->m, kBlock), np = roundUp(p->n, kBlock), kp = roundUp(p->k, kBlock);
  const int64_t aWords = mp * kp / 2, bWords = kp / 2 * np;
  uint32_t* Ap = (uint32_t*)grow(&tlsPacked, (aWords + bWords) * 4);
  if (!Ap) return 0;
  uint32_t* Bp = Ap + aWords;
  const double flops = 2.0 * (double)p->m * (double)p->n * (double)p->k;
  const int team = nt > 1 && flops >= 2e6 ? nt : 1;
  TileConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
#pragma omp parallel num_threads(team)
  {
    _tile_loadconfig(&cfg);
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    for (int64_t b = 0; b < p->batch; b++) {
      productTeam(A + b * p->strideA, B + b * p->strideB, C + b * p->strideC, p, Ap, Bp, tid, nth);
#pragma omp barrier
    }
    _tile_release();
  }
  return 1;
}

#else
extern "C" int mmgpt_amx_available(void) { return 0; }
extern "C" int mmgpt_matmul_amx(const float*, const float*, float*, const mmgpt::MatmulArgs*,
                                int) {
  return 0;
}
#endif

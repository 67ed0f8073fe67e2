// WebAssembly SIMD128 build of the CPU kernels (native/src/kernels.inl): the third instruction
// set of the same source, for the wasm backend (src/engine/backends/wasm.ts) in Node and in a
// browser. Compiled by build-wasm.js with em++ -O3 -msimd128 -fopenmp-simd, one thread: omp.h
// beside this file stands in for OpenMP, every `#pragma omp parallel` is ignored and every
// `#pragma omp simd` loop is vectorised as in the x86 builds.
//
// GEMM micro-kernel: a 4 x 8 tile of C in 8 v128 accumulators (two per row), plain multiply +
// add (relaxed-SIMD FMA is not available to this toolchain's engines), so bound by the vector
// multiply and add ports, not by its loads: larger tiles (5 x 8, 6 x 8, 3 x 12) measured slower.
// The engine that compiles the wasm to machine code keeps one of x86-64's 16 vector registers
// for itself; the 8 accumulators, 2 B vectors and a broadcast fit the rest. The depth loop is
// written plainly (one step per iteration, a 32-bit counter, pointers stepped): unrolled in the
// source, clang hoists every step's loads ahead and spills.
//
// The GEMM driver of this build is its own (gemmWasm below, in the table in place of
// kernels.inl's kMatmul for m > 4): the x86 driver's choices, reading op(A) in place and keeping
// an A panel while sweeping B panels, are made for many threads and AVX registers. Here, on one
// thread, it is the BLIS loop order (Goto & van de Geijn 2008; Van Zee & van de Geijn 2015):
// op(B) packed per (kc x nc) block, op(A) per (mc x kc) block, and for each B micro-panel (in
// L1) a sweep over the A micro-panels (from L2). Both operands are packed reading their source
// in address order (depth rows of a transposed A, of a plain B) or by 4 x 4 SIMD transposes (a
// plain A, a transposed B), so that a weight gradient's X^T reads as fast as a forward's X: the
// sources are activations far bigger than the caches, streamed once.
#include <stdint.h>
#include <string.h>
#include <wasm_simd128.h>

#include <cmath>  // std::isfinite in kernels.inl (emscripten's math.h does not declare it)

#include "kernels.h"

namespace {

/**
 * memcpy as kernels.inl calls it (its unqualified calls find this one first): with bulk memory a
 * memcpy of unknown size is a memory.copy, which the engine runs out of line, costly for the
 * 4-32 bytes kernels.inl's GEMM packing copies per depth step (a row of an A panel, of a B
 * panel; that GEMM still serves nearestCode's distance products here) and for short rows of
 * copyBlock. Those are copied inline here; constant sizes (vload/vstore) and long copies go to
 * the builtin.
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

const int kMR = 4;  // the packing transposes below are 4 x 4
const int kNR = 8;

/** C[i, 0:cols] += bias[0:cols] for the rows i < rows of a tile (cols <= kNR). */
inline void addBiasRows(float* C, int64_t ldc, int rows, int cols, const float* bias) {
  for (int i = 0; i < rows; i++) {
    float* c = C + i * ldc;
    if (cols == kNR) {
      wasm_v128_store(c, wasm_f32x4_add(wasm_v128_load(c), wasm_v128_load(bias)));
      wasm_v128_store(c + 4, wasm_f32x4_add(wasm_v128_load(c + 4), wasm_v128_load(bias + 4)));
    } else {
      for (int j = 0; j < cols; j++) c[j] = c[j] + bias[j];
    }
  }
}

template <int R, int kAKind>
void ukernel(int64_t kc, const float* __restrict Ap, int64_t lda, const float* __restrict Bp,
             float* __restrict C, int64_t ldc, int cols, float alpha, int beta,
             const float* __restrict bias) {
  v128_t c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    c0[i] = wasm_f32x4_splat(0.0f);
    c1[i] = wasm_f32x4_splat(0.0f);
  }
  // op(A)[i, p] at a[i * rowStep] after p depth steps of depthStep (see kernels.inl ukernelRows).
  const int64_t depthStep = kAKind == 0 ? kMR : kAKind == 1 ? 1 : lda;
  const int64_t rowStep = kAKind == 1 ? lda : 1;
  const float* a = Ap;
  const float* b = Bp;
  const int steps = (int)kc;
  for (int p = 0; p < steps; p++) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      const v128_t av = wasm_v128_load32_splat(a + i * rowStep);
      c0[i] = wasm_f32x4_add(c0[i], wasm_f32x4_mul(av, b0));
      c1[i] = wasm_f32x4_add(c1[i], wasm_f32x4_mul(av, b1));
    }
    a += depthStep;
    b += kNR;
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
  // The bias, added to the stored (rounded) product as a separate add would, in a pass of its
  // own over the tile just written (in L1): folded into the loop above, it kept clang from
  // holding the accumulators in registers (the product ran at a third of its rate).
  if (bias) addBiasRows(C, ldc, R, cols, bias);
}

}  // namespace

// kernels.inl's own GEMM, which still serves nearestCode's distance products here, packs op(A)
// too: read in place, A costs the engine an address computation per row and step. (The fused
// attention calls the micro-kernel on its operands in place, kinds 1 and 2.)
#define MMGPT_PACK_A 1
// One thread: kernels.inl's per-thread scratch buffers are plain globals (wasm-ld refuses
// thread-local storage in a module without atomics once bulk memory is on).
#pragma clang diagnostic ignored "-Wkeyword-macro"
#define __thread
#define MMGPT_VL 4
#define MMGPT_HOOKS_WASM 1  // SIMD128 intrinsics where clang's own choice is slow in V8
#define MMGPT_ISA_NAME "wasm-simd128"
#define MMGPT_TABLE_FN mmgpt_kernels_wasm_inl  // wrapped below, with this build's GEMM driver
#include "kernels.inl"

// ---- the GEMM driver of this build --------------------------------------------------------------

namespace {

const int64_t kWasmKC = 256;  // depth of a block: a B micro-panel, kWasmKC * kNR floats, in L1
// ... and of a block of a plain A (op(A) = A, packed by the transposes along its rows): deeper,
// so that its rows are read whole (the input gradient of the vocabulary head, [1824x1058] @
// [128x1058]^T: one depth block), where 256-float segments of 4 rows at a time restart the
// hardware prefetcher at every row; its B micro-panel then fills most of a 48 KiB L1.
const int64_t kWasmKCPlainA = 1152;
const int64_t kWasmMC = 128;  // rows of a packed A block (kWasmMC * kWasmKC floats: 128 KiB, L2)
// ... and of a transposed A (op(A) = A^T, packed along A's rows): up to 512 rows of op(A), so
// that the depth rows of A (a weight gradient's X, [1824x512]) are read whole.
const int64_t kWasmMCTransA = 512;
// Columns of a packed B block, swept once per A block from L2 or L3: wide, so that packing a plain
// B (a weight gradient's dY) reads whole rows of it, one long stream for the hardware prefetcher
// where narrower blocks restart it at every row segment.
const int64_t kWasmNC = 2048;

Scratch wasmPackA = {nullptr, 0};
Scratch wasmPackB = {nullptr, 0};

/**
 * Floats from one packed panel (width x kc) to the next: an odd number of 64-byte lines, so that
 * the row-ordered packing below, which writes one row of every panel in turn, spreads its
 * stores over all L1 sets (panels 4 KiB apart, at kc = 128, all land in one).
 */
inline int64_t panelFloats(int64_t width, int64_t kc) {
  return (ceilDiv(width * kc, 16) | 1) * 16;
}

/** 4 x 4 transpose of the rows r0..r3 (one row of the result per column of the input). */
inline void transpose4(v128_t& r0, v128_t& r1, v128_t& r2, v128_t& r3) {
  const v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
  const v128_t t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
  const v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
  const v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
  r0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  r1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  r2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  r3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}

/**
 * Packs rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into kMR-row panels: panel ip at
 * Ap + ip*panelFloats(kMR, kc) holds op(A)[i0 + ip*kMR + i, p0 + p] at p*kMR + i (a ragged last
 * panel's missing rows are never read: ukernelRows runs fewer rows).
 */
void packAWasm(const float* A, const GemmItem& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
               float* Ap) {
  const int64_t full = mc / kMR, panels = ceilDiv(mc, kMR), stride = panelFloats(kMR, kc);
  if (g.transA) {  // op(A)[i, p] = A[p * lda + i]: A's depth rows in address order
    for (int64_t p = 0; p < kc; p++) {
      const float* src = A + (p0 + p) * g.lda + i0;
      for (int64_t ip = 0; ip < full; ip++) {
        wasm_v128_store(Ap + ip * stride + p * kMR, wasm_v128_load(src + ip * kMR));
      }
      for (int64_t i = full * kMR; i < mc; i++) Ap[full * stride + p * kMR + i % kMR] = src[i];
    }
    return;
  }
  for (int64_t ip = 0; ip < panels; ip++) {  // op(A)[i, p] = A[i * lda + p]: transposed 4 x 4
    const int rows = (int)min64(kMR, mc - ip * kMR);
    const float* src = A + (i0 + ip * kMR) * g.lda + p0;
    float* dst = Ap + ip * stride;
    int64_t p = 0;
    if (rows == kMR) {
      for (; p + 4 <= kc; p += 4) {
        v128_t r0 = wasm_v128_load(src + p), r1 = wasm_v128_load(src + g.lda + p);
        v128_t r2 = wasm_v128_load(src + 2 * g.lda + p), r3 = wasm_v128_load(src + 3 * g.lda + p);
        transpose4(r0, r1, r2, r3);
        wasm_v128_store(dst + p * kMR, r0);
        wasm_v128_store(dst + p * kMR + 4, r1);
        wasm_v128_store(dst + p * kMR + 8, r2);
        wasm_v128_store(dst + p * kMR + 12, r3);
      }
    }
    for (int i = 0; i < rows; i++) {
      for (int64_t q = p; q < kc; q++) dst[q * kMR + i] = src[i * g.lda + q];
    }
  }
}

/**
 * Packs columns [j0, j0+nc) x depth [p0, p0+kc) of op(B) into kNR-column panels: panel jp at
 * Bp + jp*panelFloats(kNR, kc) holds op(B)[p0 + p, j0 + jp*kNR + j] at p*kNR + j, zero-padded to
 * kNR columns.
 */
void packBWasm(const float* B, const GemmItem& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc,
               float* Bp) {
  const int64_t full = nc / kNR, panels = ceilDiv(nc, kNR), stride = panelFloats(kNR, kc);
  if (!g.transB) {  // op(B)[p, j] = B[p * ldb + j]: B's depth rows in address order
    for (int64_t p = 0; p < kc; p++) {
      const float* src = B + (p0 + p) * g.ldb + j0;
      for (int64_t jp = 0; jp < full; jp++) {
        float* dst = Bp + jp * stride + p * kNR;
        wasm_v128_store(dst, wasm_v128_load(src + jp * kNR));
        wasm_v128_store(dst + 4, wasm_v128_load(src + jp * kNR + 4));
      }
      if (full < panels) {
        float* dst = Bp + full * stride + p * kNR;
        for (int j = 0; j < kNR; j++) dst[j] = full * kNR + j < nc ? src[full * kNR + j] : 0.0f;
      }
    }
    return;
  }
  for (int64_t jp = 0; jp < panels; jp++) {  // op(B)[p, j] = B[j * ldb + p]: two 4 x 4 per step
    const int cols = (int)min64(kNR, nc - jp * kNR);
    const float* src = B + (j0 + jp * kNR) * g.ldb + p0;
    float* dst = Bp + jp * stride;
    int64_t p = 0;
    if (cols == kNR) {
      for (; p + 4 <= kc; p += 4) {
        v128_t r[kNR];
#pragma GCC unroll 8
        for (int j = 0; j < kNR; j++) r[j] = wasm_v128_load(src + j * g.ldb + p);
        transpose4(r[0], r[1], r[2], r[3]);
        transpose4(r[4], r[5], r[6], r[7]);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
          wasm_v128_store(dst + (p + q) * kNR, r[q]);
          wasm_v128_store(dst + (p + q) * kNR + 4, r[4 + q]);
        }
      }
    }
    for (; p < kc; p++) {
      for (int j = 0; j < kNR; j++) dst[p * kNR + j] = j < cols ? src[j * g.ldb + p] : 0.0f;
    }
  }
}

/** C = alpha op(A) op(B) (+ C) (+ bias) for one product, on this thread (BLIS loop order, see top). */
void gemmWasm(const float* A, const float* B, float* C, const GemmItem& g) {
  const int64_t kcBlock = blockSize(g.k, g.transA ? kWasmKC : kWasmKCPlainA, 1);
  const int64_t mcBlock = blockSize(g.m, g.transA ? kWasmMCTransA : kWasmMC, kMR);
  const int64_t ncBlock = blockSize(g.n, kWasmNC, kNR);
  float* Ap = scratch(&wasmPackA, mcBlock / kMR * panelFloats(kMR, kcBlock));
  float* Bp = scratch(&wasmPackB, ncBlock / kNR * panelFloats(kNR, kcBlock));
  for (int64_t jc = 0; jc < g.n; jc += ncBlock) {
    const int64_t nc = min64(ncBlock, g.n - jc), nPanels = ceilDiv(nc, kNR);
    for (int64_t pc = 0; pc < g.k; pc += kcBlock) {
      const int64_t kc = min64(kcBlock, g.k - pc);
      const int beta = pc == 0 ? g.beta : 1;
      const float* biasRow = pc + kc == g.k ? g.bias : nullptr;  // once, after the last block
      const int64_t aStride = panelFloats(kMR, kc), bStride = panelFloats(kNR, kc);
      packBWasm(B, g, jc, nc, pc, kc, Bp);
      for (int64_t ic = 0; ic < g.m; ic += mcBlock) {
        const int64_t mc = min64(mcBlock, g.m - ic), mPanels = ceilDiv(mc, kMR);
        packAWasm(A, g, ic, mc, pc, kc, Ap);
        for (int64_t jp = 0; jp < nPanels; jp++) {  // a B micro-panel, kept in L1 ...
          const float* bPanel = Bp + jp * bStride;
          const int cols = (int)min64(kNR, nc - jp * kNR);
          const float* bias = biasRow ? biasRow + jc + jp * kNR : nullptr;
          for (int64_t ip = 0; ip < mPanels; ip++) {  // ... for every A micro-panel of the block
            const int64_t i0 = ic + ip * kMR;
            ukernelRows<kMR>((int)min64(kMR, mc - ip * kMR), 0, kc, Ap + ip * aStride, 0, bPanel,
                             C + i0 * g.ldc + jc + jp * kNR, g.ldc, cols, g.alpha, beta, bias);
          }
        }
      }
    }
  }
}

/** The table's matmul: gemmWasm per item, kernels.inl's kMatmul for m <= kSmallM and k = 0. */
void kMatmulWasm(const float* A, const float* B, float* C, const MatmulArgs* p, int nt) {
  if (p->m <= kSmallM || p->k == 0 || p->n == 0) {
    kMatmul(A, B, C, p, nt);
    return;
  }
  GemmItem g;
  g.m = p->m;
  g.n = p->n;
  g.k = p->k;
  g.transA = p->transA;
  g.transB = p->transB;
  g.lda = p->transA ? p->m : p->k;
  g.ldb = p->transB ? p->k : p->n;
  g.ldc = p->n;
  g.alpha = (float)p->alpha;
  g.beta = p->accumulate ? 1 : 0;
  g.bias = p->bias;
  for (int64_t b = 0; b < p->batch; b++) {
    gemmWasm(A + b * p->strideA, B + b * p->strideB, C + b * p->strideC, g);
  }
}

}  // namespace

extern "C" const mmgpt::KernelTable* mmgpt_kernels_wasm(void) {
  static KernelTable table = [] {
    KernelTable t = *mmgpt_kernels_wasm_inl();
    t.matmul = kMatmulWasm;
    return t;
  }();
  return &table;
}

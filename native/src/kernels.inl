// The CPU kernels of the Backend interface (src/engine/backend.ts), written once and compiled
// once per instruction set by kernels_{avx512,avx2,base}.cc, each of which defines, before
// including this file:
//   MMGPT_VL          floats per SIMD vector (16, 8 or 4), the width of `vf` below;
//   MMGPT_TABLE_FN    the extern "C" function returning this build's KernelTable;
//   MMGPT_ISA_NAME    the path's name ("avx512", "avx2", "baseline");
//   kMR, kNR and `template <int R, int kAKind> void ukernel(...)`: the GEMM register tile and
//                     micro-kernel, C[R x kNR] (+)= alpha * op(A)[R x kc] @ Bpanel[kc x kNR]
//                     (+ bias[kNR] when its bias pointer is not null: the last depth block's
//                     store; kAKind: where op(A) is read from, see ukernelRows);
//   MMGPT_HOOKS_AVX512 / MMGPT_HOOKS_AVX2 (optional): use that ISA's masked loads (and scalef);
//   MMGPT_HOOKS_WASM (optional): SIMD128 intrinsics where clang's own choice is slow in V8.
// The reference semantics are the js backend's (src/engine/backends/js.ts): reductions that the
// reference does in float64 are float64 here too where that costs little (sums, layerNorm
// statistics, softmax/cross-entropy denominators, Adam), elementwise maths with exact float32
// equivalents is done so (binary ops, neg, square, relu) and transcendental functions use the
// vectorised exp/tanh below (<= 2 ulp) instead of libm's float64 ones.
//
// Notable choices: the GEMM follows the BLIS/GotoBLAS blocking (Goto & van de Geijn, "Anatomy
// of high-performance matrix multiplication", 2008): op(B) is packed per (kc x nc) block into
// kNR-wide column panels shared by all threads, which the micro-kernel sweeps from L2. op(A) is
// not packed: the micro-kernel only broadcasts single elements of it, so it reads A in place
// (row- or column-major), which measured faster than packing on every shape of the model (up
// to 40% on attention's small items; packing remains behind MMGPT_PACK_A=1). Batched products
// with many small items run one item per thread; big items share their micro-tiles among the
// threads, claimed dynamically. m <= 4 (decoding) skips packing altogether.
// Everything lives in an anonymous namespace and no std template is used (see kernels.h).

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

namespace {

using mmgpt::AdamArgs;
using mmgpt::ConvGeom;
using mmgpt::KernelTable;
using mmgpt::MatmulArgs;

const int VL = MMGPT_VL;
typedef float vf __attribute__((vector_size(MMGPT_VL * 4)));
typedef int32_t vi __attribute__((vector_size(MMGPT_VL * 4)));
typedef uint32_t vu __attribute__((vector_size(MMGPT_VL * 4)));
// VL doubles as two register-wide halves: a 2-register GCC vector type would live in memory.
typedef float vfh __attribute__((vector_size(MMGPT_VL * 2)));
typedef double vdh __attribute__((vector_size(MMGPT_VL * 4)));
struct vd {
  vdh lo, hi;
};
inline vd operator+(vd a, vd b) { return {a.lo + b.lo, a.hi + b.hi}; }
inline vd operator-(vd a, vd b) { return {a.lo - b.lo, a.hi - b.hi}; }
inline vd operator*(vd a, vd b) { return {a.lo * b.lo, a.hi * b.hi}; }
inline vd& operator+=(vd& a, vd b) {
  a.lo += b.lo;
  a.hi += b.hi;
  return a;
}
#if MMGPT_VL == 16
#define MMGPT_LO 0, 1, 2, 3, 4, 5, 6, 7
#define MMGPT_HI 8, 9, 10, 11, 12, 13, 14, 15
#elif MMGPT_VL == 8
#define MMGPT_LO 0, 1, 2, 3
#define MMGPT_HI 4, 5, 6, 7
#elif MMGPT_VL == 4
#define MMGPT_LO 0, 1
#define MMGPT_HI 2, 3
#else
#error "MMGPT_VL must be 4, 8 or 16"
#endif

// Work below these sizes (elements) runs on one thread: a fork/join costs ~1-5 us.
const int64_t kParMemory = 1 << 17;     // pure memory traffic (copies, fills, axpy)
const int64_t kParCompute = 1 << 14;    // a few flops per element (exp, layerNorm rows)

// ---- small helpers -------------------------------------------------------------------------

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline vf vload(const float* p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, vf v) { memcpy(p, &v, sizeof v); }
inline vf vsplat(float s) {
  vf v;
#pragma GCC unroll 16  // clang (the wasm build) leaves the loop, storing one lane at a time
  for (int i = 0; i < VL; i++) v[i] = s;
  return v;
}

// A VL x VL block transposed in registers (packing a transposed B, mirroring a symmetric C):
// stage S exchanges the off-diagonal S x S sub-blocks of every 2S x 2S block, between rows q and
// q + S (two-input shuffles); the stages S = VL/2, ..., 1 together transpose. Row q of the
// block is read from src + q * lds and row q of its transpose written to dst + q * ldd.
#if MMGPT_VL == 16
#define MMGPT_TR8_LO 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define MMGPT_TR8_HI 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define MMGPT_TR4_LO 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define MMGPT_TR4_HI 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define MMGPT_TR2_LO 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define MMGPT_TR2_HI 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define MMGPT_TR1_LO 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define MMGPT_TR1_HI 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#elif MMGPT_VL == 8
#define MMGPT_TR4_LO 0, 1, 2, 3, 8, 9, 10, 11
#define MMGPT_TR4_HI 4, 5, 6, 7, 12, 13, 14, 15
#define MMGPT_TR2_LO 0, 1, 8, 9, 4, 5, 12, 13
#define MMGPT_TR2_HI 2, 3, 10, 11, 6, 7, 14, 15
#define MMGPT_TR1_LO 0, 8, 2, 10, 4, 12, 6, 14
#define MMGPT_TR1_HI 1, 9, 3, 11, 5, 13, 7, 15
#else
#define MMGPT_TR2_LO 0, 1, 4, 5
#define MMGPT_TR2_HI 2, 3, 6, 7
#define MMGPT_TR1_LO 0, 4, 2, 6
#define MMGPT_TR1_HI 1, 5, 3, 7
#endif
#define MMGPT_TRANSPOSE_STAGE(S)                                         \
  _Pragma("GCC unroll 16") for (int q = 0; q < VL; q++) {                \
    if (q & S) continue;                                                 \
    const vf a = r[q], b = r[q + S];                                     \
    r[q] = __builtin_shufflevector(a, b, MMGPT_TR##S##_LO);              \
    r[q + S] = __builtin_shufflevector(a, b, MMGPT_TR##S##_HI);          \
  }
/** Transposes the VL x VL block held in r[0..VL) (vector q = row q) in registers. */
__attribute__((always_inline)) inline void transposeRegs(vf* r) {
#if MMGPT_VL == 16
  MMGPT_TRANSPOSE_STAGE(8)
#endif
#if MMGPT_VL >= 8
  MMGPT_TRANSPOSE_STAGE(4)
#endif
  MMGPT_TRANSPOSE_STAGE(2)
  MMGPT_TRANSPOSE_STAGE(1)
}
inline void transposeBlock(const float* src, int64_t lds, float* dst, int64_t ldd) {
  vf r[MMGPT_VL];
#pragma GCC unroll 16
  for (int q = 0; q < VL; q++) r[q] = vload(src + q * lds);
  transposeRegs(r);
#pragma GCC unroll 16
  for (int q = 0; q < VL; q++) vstore(dst + q * ldd, r[q]);
}

// Partial vectors (row tails, n < VL): vloadPart loads p[0..n) with the other lanes set to
// `fill`, vstorePart stores lanes [0, n). Masked loads/stores where the ISA has them (no memory
// is touched past p[n-1]), else a bounce through a stack buffer.
#if defined(MMGPT_HOOKS_AVX512)
inline vf vloadPart(const float* p, int64_t n, float fill) {
  return (vf)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1u), p);
}
inline void vstorePart(float* p, vf v, int64_t n) {
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
}
#elif defined(MMGPT_HOOKS_AVX2)
inline __m256i laneMask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline vf vloadPart(const float* p, int64_t n, float fill) {
  const __m256i m = laneMask(n);
  return (vf)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), (__m256)m);
}
inline void vstorePart(float* p, vf v, int64_t n) { _mm256_maskstore_ps(p, laneMask(n), (__m256)v); }
#else
inline vf vloadPart(const float* p, int64_t n, float fill) {
  float tmp[MMGPT_VL];
  for (int i = 0; i < VL; i++) tmp[i] = i < n ? p[i] : fill;
  return vload(tmp);
}
inline void vstorePart(float* p, vf v, int64_t n) {
  float tmp[MMGPT_VL];
  vstore(tmp, v);
  for (int i = 0; i < n; i++) p[i] = tmp[i];
}
#endif
/** v with the lanes at or above n set to 0 (n may be any count). */
inline vf vkeepLanes(vf v, int64_t n) {
  vi lane;
  for (int l = 0; l < VL; l++) lane[l] = l;
  const vi keep = lane < (int32_t)min64(n, VL);
  return (vf)((vi)v & keep);
}
inline float hmax(vf v) {
  float t[MMGPT_VL];
  vstore(t, v);
#pragma GCC unroll 8
  for (int w = VL / 2; w >= 1; w /= 2) {
    for (int i = 0; i < w; i++) t[i] = t[i + w] > t[i] ? t[i + w] : t[i];
  }
  return t[0];
}
/** Sum of the lanes, as a tree (a chain of VL dependent adds costs more than a short row). */
inline double hsumd(vd v) {
  double t[MMGPT_VL / 2];
  const vdh h = v.lo + v.hi;
  memcpy(t, &h, sizeof t);
#pragma GCC unroll 8
  for (int w = VL / 4; w >= 1; w /= 2) {
    for (int i = 0; i < w; i++) t[i] += t[i + w];
  }
  return t[0];
}
inline vd widen(vf v) {
  const vfh lo = __builtin_shufflevector(v, v, MMGPT_LO);
  const vfh hi = __builtin_shufflevector(v, v, MMGPT_HI);
  return {__builtin_convertvector(lo, vdh), __builtin_convertvector(hi, vdh)};
}
inline vf narrow(vd v) {
  const vfh lo = __builtin_convertvector(v.lo, vfh), hi = __builtin_convertvector(v.hi, vfh);
  return __builtin_shufflevector(lo, hi, MMGPT_LO, MMGPT_HI);
}
inline vd vsplatd(double s) {
  vdh h;
#pragma GCC unroll 16
  for (int i = 0; i < VL / 2; i++) h[i] = s;
  return {h, h};
}
inline vd loadWide(const float* p) { return widen(vload(p)); }
inline vd vloadd(const double* p) {
  vdh lo, hi;
  memcpy(&lo, p, sizeof lo);
  memcpy(&hi, p + VL / 2, sizeof hi);
  return {lo, hi};
}
inline void vstored(double* p, vd v) {
  memcpy(p, &v.lo, sizeof v.lo);
  memcpy(p + VL / 2, &v.hi, sizeof v.hi);
}

/** sum_j a[j] b[j] in float64 (each product exact). */
inline double dotD(const float* a, const float* b, int64_t n) {
  vd acc = {};
  int64_t j = 0;
  for (; j + VL <= n; j += VL) acc += loadWide(a + j) * loadWide(b + j);
  if (j < n) acc += widen(vloadPart(a + j, n - j, 0.0f)) * widen(vloadPart(b + j, n - j, 0.0f));
  return hsumd(acc);
}
/** sum_j (a[j] - b[j])^2 in float64. */
inline double sqDistD(const float* a, const float* b, int64_t n) {
  vd acc = {};
  int64_t j = 0;
  for (; j + VL <= n; j += VL) {
    const vd diff = loadWide(a + j) - loadWide(b + j);
    acc += diff * diff;
  }
  if (j < n) {
    const vd diff = widen(vloadPart(a + j, n - j, 0.0f)) - widen(vloadPart(b + j, n - j, 0.0f));
    acc += diff * diff;
  }
  return hsumd(acc);
}

/** This thread's share [lo, hi) of [0, n), boundaries rounded to multiples of `align`. */
inline void threadRange(int64_t n, int64_t align, int64_t* lo, int64_t* hi) {
  const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
  const int64_t units = ceilDiv(n, align);
  const int64_t per = units / nth, extra = units % nth;
  const int64_t uLo = tid * per + min64(tid, extra);
  const int64_t uHi = uLo + per + (tid < extra ? 1 : 0);
  *lo = min64(n, uLo * align);
  *hi = min64(n, uHi * align);
}

inline int threadsFor(int nt, int64_t work, int64_t threshold) {
  return (nt > 1 && work >= threshold) ? nt : 1;
}

// A growable 64-byte-aligned scratch buffer per OS thread (JS thread or OpenMP worker).
// Never freed: a few hundred KiB per thread at most.
struct Scratch {
  float* ptr;
  int64_t cap;
};
__thread Scratch tlsPackA = {nullptr, 0};
__thread Scratch tlsPackB = {nullptr, 0};
__thread Scratch tlsDouble = {nullptr, 0};

inline float* scratch(Scratch* s, int64_t floats) {
  if (s->cap < floats) {
    free(s->ptr);
    void* p = nullptr;
    const int64_t cap = max64(floats, 4096);
    if (posix_memalign(&p, 64, (size_t)cap * 4) != 0) p = nullptr;
    s->ptr = (float*)p;
    s->cap = p ? cap : 0;
  }
  return s->ptr;
}

// ---- vectorised transcendental functions ------------------------------------------------------

/**
 * exp(x) to ~1 ulp: x = n ln2 + r with |r| <= ln2/2, the Cephes expf polynomial for e^r, and
 * 2^n applied by vscalefps (AVX-512) or as two exponent factors, so that results down to the
 * subnormal range stay exact. exp(NaN) = NaN, exp(+inf) = inf, exp(-inf) = 0.
 */
inline vf vexp(vf x) {
  const vf hi = vsplat(89.0f), lo = vsplat(-104.0f);
#if defined(MMGPT_HOOKS_WASM)
  // pmin/pmax, one instruction each: clang turns the comparisons below into f32x4.min/max,
  // which V8 expands to 7 x86 instructions each (NaN and signed-zero rules these constants
  // never need). pmin(x, hi) = hi < x ? hi : x: NaN passes through here too.
  x = (vf)wasm_f32x4_pmax(wasm_f32x4_pmin((v128_t)x, (v128_t)hi), (v128_t)lo);
#else
  x = x > hi ? hi : x;  // comparisons with NaN are false: NaN passes through
  x = x < lo ? lo : x;
#endif
  const vf magic = vsplat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vf t = x * 1.44269504088896341f + magic;
  const vf nf = t - magic;
  const vi n = (vi)t - (vi)magic;
  vf r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  const vf r2 = r * r;
  vf p = vsplat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
#if defined(MMGPT_HOOKS_AVX512)
  (void)n;
  // p * 2^nf with subnormal results and overflow rounded exactly.
  return (vf)_mm512_mask_scalef_ps((__m512)p, (__mmask16)0xFFFF, (__m512)p, (__m512)nf);
#else
  const vi n1 = n >> 1, n2 = n - n1;  // n in [-150, 129]: both halves are normal exponents
  const vf s1 = (vf)((n1 + 127) << 23), s2 = (vf)((n2 + 127) << 23);
  return p * s1 * s2;
#endif
}

inline vf vabs(vf x) { return (vf)((vu)x & 0x7fffffffu); }
inline vf vcopysign(vf mag, vf sign) {
  return (vf)(((vu)mag & 0x7fffffffu) | ((vu)sign & 0x80000000u));
}

/** tanh(x): the Cephes tanhf odd polynomial for |x| < 0.625, else 1 - 2 / (e^{2|x|} + 1). */
inline vf vtanh(vf x) {
  const vf z = x * x;
  vf p = vsplat(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const vf small = p * z * x + x;
  const vf ax = vabs(x);
  const vf e = vexp(ax + ax);
  const vf big = vcopysign(1.0f - 2.0f / (e + 1.0f), x);
  return ax < 0.625f ? small : big;
}

const float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
const float kGeluA = 0.044715f;

/** gelu(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). */
inline vf vgelu(vf x) {
  const vf u = kGeluC * (x + kGeluA * x * x * x);
  return x / (1.0f + vexp(-2.0f * u));
}

/** gy * gelu'(x), with s = sigmoid(2u): gelu' = s + 2 x s (1 - s) u'. */
inline vf vgeluGrad(vf x, vf gy) {
  const vf x2 = x * x;
  const vf u = kGeluC * (x + kGeluA * x2 * x);
  const vf s = 1.0f / (1.0f + vexp(-2.0f * u));
  const vf du = kGeluC * (1.0f + 3.0f * kGeluA * x2);
  return gy * (s + 2.0f * x * s * (1.0f - s) * du);
}

// Applies a vector function to [0, n) with a padded tail, split over threads.
template <class F>
inline void mapUnary(const float* x, float* out, int64_t n, int nt, F f) {
#pragma omp parallel num_threads(threadsFor(nt, n, kParCompute))
  {
    int64_t lo, hi;
    threadRange(n, VL, &lo, &hi);
    int64_t i = lo;
    for (; i + VL <= hi; i += VL) vstore(out + i, f(vload(x + i)));
    if (i < hi) vstorePart(out + i, f(vloadPart(x + i, hi - i, 0.0f)), hi - i);
  }
}

template <class F>
inline void mapBinary(const float* x, const float* y, float* out, int64_t n, int nt, F f) {
#pragma omp parallel num_threads(threadsFor(nt, n, kParCompute))
  {
    int64_t lo, hi;
    threadRange(n, VL, &lo, &hi);
    int64_t i = lo;
    for (; i + VL <= hi; i += VL) vstore(out + i, f(vload(x + i), vload(y + i)));
    if (i < hi) {
      vstorePart(out + i, f(vloadPart(x + i, hi - i, 0.0f), vloadPart(y + i, hi - i, 0.0f)),
                 hi - i);
    }
  }
}

// ---- memory and elementwise ------------------------------------------------------------------

void kFill32(uint32_t* out, int64_t n, uint32_t bits, int nt) {
#pragma omp parallel num_threads(threadsFor(nt, n, kParMemory))
  {
    int64_t lo, hi;
    threadRange(n, 16, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) out[i] = bits;
  }
}

void kCopyBlock(const uint32_t* src, uint32_t* dst, int64_t outer, int64_t srcAxis,
                int64_t srcOffset, int64_t dstAxis, int64_t dstOffset, int64_t count,
                int64_t inner, int accumulate, int nt) {
  const int64_t block = count * inner;  // contiguous elements per outer index
  const int64_t total = outer * block;
  if (total == 0) return;
#pragma omp parallel num_threads(threadsFor(nt, total, kParMemory))
  {
    int64_t lo, hi;
    threadRange(total, 16, &lo, &hi);
    int64_t e = lo;
    while (e < hi) {
      const int64_t o = e / block, off = e % block;
      const int64_t len = min64(block - off, hi - e);
      const int64_t s = (o * srcAxis + srcOffset) * inner + off;
      const int64_t d = (o * dstAxis + dstOffset) * inner + off;
      if (accumulate) {
        const float* sp = (const float*)(src + s);
        float* dp = (float*)(dst + d);
#pragma omp simd
        for (int64_t i = 0; i < len; i++) dp[i] += sp[i];
      } else {
        memcpy(dst + d, src + s, (size_t)len * 4);
      }
      e += len;
    }
  }
}

template <int OP>
inline float binOp(float x, float y) {
  if (OP == mmgpt::BIN_ADD) return x + y;
  if (OP == mmgpt::BIN_SUB) return x - y;
  if (OP == mmgpt::BIN_MUL) return x * y;
  return x / y;
}

// One run of `len` output elements with input strides sa, sb.
template <int OP>
inline void binaryRun(const float* a, const float* b, float* out, int64_t len, int64_t sa,
                      int64_t sb) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t j = 0; j < len; j++) out[j] = binOp<OP>(a[j], b[j]);
  } else if (sa == 1 && sb == 0) {
    const float bv = b[0];
#pragma omp simd
    for (int64_t j = 0; j < len; j++) out[j] = binOp<OP>(a[j], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = a[0];
#pragma omp simd
    for (int64_t j = 0; j < len; j++) out[j] = binOp<OP>(av, b[j]);
  } else {
    for (int64_t j = 0; j < len; j++) out[j] = binOp<OP>(a[j * sa], b[j * sb]);
  }
}

template <int OP>
void binaryImpl(const float* a, const float* b, float* out, int rank, const int64_t* shape,
                const int64_t* as, const int64_t* bs, int64_t total, int nt) {
  const int last = rank - 1;
  const int64_t L = shape[last];
#pragma omp parallel num_threads(threadsFor(nt, total, kParMemory))
  {
    int64_t lo, hi;
    threadRange(total, 16, &lo, &hi);
    if (lo < hi) {
      // Odometer over the outer axes, positioned at row lo / L.
      int64_t idx[mmgpt::kMaxRank];
      int64_t row = lo / L, ia = 0, ib = 0;
      for (int d = last - 1; d >= 0; d--) {
        idx[d] = row % shape[d];
        row /= shape[d];
        ia += idx[d] * as[d];
        ib += idx[d] * bs[d];
      }
      int64_t e = lo;
      while (e < hi) {
        const int64_t j0 = e % L;
        const int64_t len = min64(L - j0, hi - e);
        binaryRun<OP>(a + ia + j0 * as[last], b + ib + j0 * bs[last], out + e, len, as[last],
                      bs[last]);
        e += len;
        for (int d = last - 1; d >= 0; d--) {
          idx[d]++;
          ia += as[d];
          ib += bs[d];
          if (idx[d] < shape[d]) break;
          ia -= shape[d] * as[d];
          ib -= shape[d] * bs[d];
          idx[d] = 0;
        }
      }
    }
  }
}

void kBinary(int op, const float* a, const float* b, float* out, int rank, const int64_t* shape,
             const int64_t* aStrides, const int64_t* bStrides, int nt) {
  // Drop size-1 axes and merge axes that are contiguous in a, b and out alike.
  int64_t sh[mmgpt::kMaxRank], as[mmgpt::kMaxRank], bs[mmgpt::kMaxRank];
  int r = 0;
  int64_t total = 1;
  for (int d = 0; d < rank; d++) {
    total *= shape[d];
    if (shape[d] == 1) continue;
    if (r > 0 && as[r - 1] == aStrides[d] * shape[d] && bs[r - 1] == bStrides[d] * shape[d]) {
      sh[r - 1] *= shape[d];
      as[r - 1] = aStrides[d];
      bs[r - 1] = bStrides[d];
      continue;
    }
    sh[r] = shape[d];
    as[r] = aStrides[d];
    bs[r] = bStrides[d];
    r++;
  }
  if (total == 0) return;
  if (r == 0) {
    sh[0] = 1;
    as[0] = bs[0] = 0;
    r = 1;
  }
  switch (op) {
    case mmgpt::BIN_ADD:
      return binaryImpl<mmgpt::BIN_ADD>(a, b, out, r, sh, as, bs, total, nt);
    case mmgpt::BIN_SUB:
      return binaryImpl<mmgpt::BIN_SUB>(a, b, out, r, sh, as, bs, total, nt);
    case mmgpt::BIN_MUL:
      return binaryImpl<mmgpt::BIN_MUL>(a, b, out, r, sh, as, bs, total, nt);
    default:
      return binaryImpl<mmgpt::BIN_DIV>(a, b, out, r, sh, as, bs, total, nt);
  }
}

void kUnary(int op, const float* x, float* out, int64_t n, int nt) {
  switch (op) {
    case mmgpt::UN_EXP:
      return mapUnary(x, out, n, nt, [](vf v) { return vexp(v); });
    case mmgpt::UN_TANH:
      return mapUnary(x, out, n, nt, [](vf v) { return vtanh(v); });
    case mmgpt::UN_GELU:
      return mapUnary(x, out, n, nt, [](vf v) { return vgelu(v); });
    case mmgpt::UN_RELU:
      return mapUnary(x, out, n, nt, [](vf v) { return v > 0.0f ? v : 0.0f; });
    case mmgpt::UN_NEG:
      return mapUnary(x, out, n, nt, [](vf v) { return -v; });
    case mmgpt::UN_SQUARE:
      return mapUnary(x, out, n, nt, [](vf v) { return v * v; });
    default:
      break;
  }
  // log and sqrt: libm (sqrtf is one instruction and exact; logf is correctly rounded).
#pragma omp parallel num_threads(threadsFor(nt, n, kParCompute))
  {
    int64_t lo, hi;
    threadRange(n, VL, &lo, &hi);
    if (op == mmgpt::UN_SQRT) {
#pragma omp simd
      for (int64_t i = lo; i < hi; i++) out[i] = sqrtf(x[i]);
    } else {
      for (int64_t i = lo; i < hi; i++) out[i] = logf(x[i]);
    }
  }
}

void kUnaryBackward(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                    int nt) {
  if (op == mmgpt::UN_GELU) {
    mapBinary(x, gy, gx, n, nt, [](vf xv, vf g) { return vgeluGrad(xv, g); });
    return;
  }
#pragma omp parallel num_threads(threadsFor(nt, n, kParMemory))
  {
    int64_t lo, hi;
    threadRange(n, 16, &lo, &hi);
    // Float64 like the reference: each of these rounds exactly once on store.
    switch (op) {
      case mmgpt::UN_EXP:
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) gx[i] = (float)((double)gy[i] * y[i]);
        break;
      case mmgpt::UN_LOG:
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) gx[i] = (float)((double)gy[i] / x[i]);
        break;
      case mmgpt::UN_TANH:
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) {
          const double yv = y[i];
          gx[i] = (float)((double)gy[i] * (1.0 - yv * yv));
        }
        break;
      case mmgpt::UN_RELU:
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) gx[i] = x[i] > 0.0f ? gy[i] : 0.0f;
        break;
      case mmgpt::UN_NEG:
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) gx[i] = -gy[i];
        break;
      case mmgpt::UN_SQRT:
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) gx[i] = (float)(((double)gy[i] * 0.5) / y[i]);
        break;
      default:  // square
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) gx[i] = (float)(2.0 * x[i] * gy[i]);
        break;
    }
  }
}

void kAffine(const float* x, float* out, int64_t n, double alpha, double beta, int nt) {
#pragma omp parallel num_threads(threadsFor(nt, n, kParMemory))
  {
    int64_t lo, hi;
    threadRange(n, 16, &lo, &hi);
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) out[i] = (float)(alpha * x[i] + beta);
  }
}

void kAxpy(const float* x, float* y, int64_t n, double alpha, int nt) {
#pragma omp parallel num_threads(threadsFor(nt, n, kParMemory))
  {
    int64_t lo, hi;
    threadRange(n, 16, &lo, &hi);
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = (float)(y[i] + alpha * x[i]);
  }
}

double kSumSquares(const float* x, int64_t n, int nt) {
  double total = 0;
#pragma omp parallel for num_threads(threadsFor(nt, n, kParMemory)) reduction(+ : total) \
    schedule(static)
  for (int64_t c = 0; c < ceilDiv(n, 4096); c++) {
    const int64_t lo = c * 4096, hi = min64(n, lo + 4096);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
    total += s;
  }
  return total;
}

// ---- reductions and layout ---------------------------------------------------------------------

void kSumAxis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner,
              int accumulate, int nt) {
  const int64_t work = outer * axis * inner;
  if (inner == 1) {
#pragma omp parallel for num_threads(threadsFor(nt, work, kParMemory)) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
      const float* row = x + o * axis;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < axis; j++) s += row[j];
      out[o] = (float)(accumulate ? out[o] + s : s);
    }
    return;
  }
  // Tasks of (outer index, chunk of <= 64 inner columns), each with float64 column sums.
  const int64_t chunk = 64, chunks = ceilDiv(inner, chunk);
#pragma omp parallel for num_threads(threadsFor(nt, work, kParMemory)) schedule(static)
  for (int64_t t = 0; t < outer * chunks; t++) {
    const int64_t o = t / chunks, i0 = (t % chunks) * chunk, len = min64(chunk, inner - i0);
    double acc[64];
    for (int64_t i = 0; i < len; i++) acc[i] = 0;
    const float* base = x + o * axis * inner + i0;
    for (int64_t j = 0; j < axis; j++) {
      const float* row = base + j * inner;
#pragma omp simd
      for (int64_t i = 0; i < len; i++) acc[i] += row[i];
    }
    float* dst = out + o * inner + i0;
    for (int64_t i = 0; i < len; i++) dst[i] = (float)(accumulate ? dst[i] + acc[i] : acc[i]);
  }
}

void kBroadcastAxis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner,
                    int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, outer * axis * inner, kParMemory)) \
    schedule(static)
  for (int64_t t = 0; t < outer * axis; t++) {
    memcpy(out + t * inner, x + (t / axis) * inner, (size_t)inner * 4);
  }
}

void kPermute(const uint32_t* x, uint32_t* out, int rank, const int64_t* shape,
              const int64_t* perm, int nt) {
  int64_t xStride[mmgpt::kMaxRank];
  int64_t total = 1;
  for (int d = rank - 1; d >= 0; d--) {
    xStride[d] = total;
    total *= shape[d];
  }
  if (total == 0) return;
  // Output axes with the x-stride each one walks; drop size-1 axes, merge contiguous runs.
  int64_t sh[mmgpt::kMaxRank], walk[mmgpt::kMaxRank];
  int r = 0;
  for (int d = 0; d < rank; d++) {
    const int64_t s = shape[perm[d]], w = xStride[perm[d]];
    if (s == 1) continue;
    if (r > 0 && walk[r - 1] == w * s) {
      sh[r - 1] *= s;
      walk[r - 1] = w;
      continue;
    }
    sh[r] = s;
    walk[r] = w;
    r++;
  }
  if (r == 0) {
    out[0] = x[0];
    return;
  }
  const int last = r - 1;
  const int64_t L = sh[last], step = walk[last];
#pragma omp parallel num_threads(threadsFor(nt, total, kParMemory))
  {
    int64_t lo, hi;
    threadRange(total, 16, &lo, &hi);
    if (lo < hi) {
      int64_t idx[mmgpt::kMaxRank];
      int64_t row = lo / L, src = 0;
      for (int d = last - 1; d >= 0; d--) {
        idx[d] = row % sh[d];
        row /= sh[d];
        src += idx[d] * walk[d];
      }
      int64_t e = lo;
      while (e < hi) {
        const int64_t j0 = e % L, len = min64(L - j0, hi - e);
        const uint32_t* sp = x + src + j0 * step;
        if (step == 1) {
          memcpy(out + e, sp, (size_t)len * 4);
        } else {
          for (int64_t j = 0; j < len; j++) out[e + j] = sp[j * step];
        }
        e += len;
        for (int d = last - 1; d >= 0; d--) {
          idx[d]++;
          src += walk[d];
          if (idx[d] < sh[d]) break;
          src -= sh[d] * walk[d];
          idx[d] = 0;
        }
      }
    }
  }
}

// ---- GEMM ----------------------------------------------------------------------------------------

const int64_t kKC = 256;  // depth of a block (the A rows of a micro-tile, kMR*kKC floats, stay in L1)
const int64_t kNC = 512;  // columns of a packed B block (kKC*kNC floats: 512 KiB, in L2)
#ifndef MMGPT_PACK_A
#define MMGPT_PACK_A 0
#endif
const bool kPackA = MMGPT_PACK_A;  // 1: pack op(A) panels (BLIS style); 0: read A in place

struct GemmItem {
  int64_t m, n, k;
  int transA, transB;
  int64_t lda, ldb, ldc;
  float alpha;
  int beta;  // 1: C += alpha AB; 0: C = alpha AB
  // 1: op(B) = op(A)^T (one operand read both ways, C = alpha op(A) op(A)^T symmetric, beta 0):
  // only the tiles that reach the upper triangle are computed, then mirrorLower fills the rest.
  int upper;
  // n floats added to every row of C after the product (MatmulArgs::bias), or null: passed to the
  // micro-kernel only on the last depth block's store, so that it goes in once, after the sum.
  const float* bias = nullptr;
};

/** The bias of the columns from j0 for a store after depth block [pc, pc + kc), or null. */
inline const float* biasAt(const GemmItem& g, int64_t pc, int64_t kc, int64_t j0) {
  return g.bias && pc + kc == g.k ? g.bias + j0 : nullptr;
}

/** Packs rows [i0, i0+rows) x depth [p0, p0+kc) of op(A) as Ap[p * kMR + i]. */
inline void packA(const float* A, const GemmItem& g, int64_t i0, int rows, int64_t p0, int64_t kc,
                  float* Ap) {
  if (!g.transA) {  // op(A)[i, p] = A[i * lda + p]
    for (int i = 0; i < rows; i++) {
      const float* src = A + (i0 + i) * g.lda + p0;
      for (int64_t p = 0; p < kc; p++) Ap[p * kMR + i] = src[p];
    }
  } else {  // op(A)[i, p] = A[p * lda + i]
    for (int64_t p = 0; p < kc; p++) memcpy(Ap + p * kMR, A + (p0 + p) * g.lda + i0, rows * 4);
  }
}

/** Packs columns [j0, j0+cols) x depth [p0, p0+kc) of op(B) as Bp[p * kNR + j], zero-padded. */
inline void packB(const float* B, const GemmItem& g, int64_t j0, int cols, int64_t p0, int64_t kc,
                  float* Bp) {
  if (!g.transB) {  // op(B)[p, j] = B[p * ldb + j]
    for (int64_t p = 0; p < kc; p++) {
      float* dst = Bp + p * kNR;
      memcpy(dst, B + (p0 + p) * g.ldb + j0, (size_t)cols * 4);
      for (int j = cols; j < kNR; j++) dst[j] = 0.0f;
    }
  } else {  // op(B)[p, j] = B[j * ldb + p]: VL x VL blocks transposed in registers, then the rest
    const int colBlocks = cols / VL * VL;
    const int64_t depthBlocks = kc / VL * VL;
    for (int j = 0; j < colBlocks; j += VL) {
      const float* src = B + (j0 + j) * g.ldb + p0;
      for (int64_t p = 0; p < depthBlocks; p += VL) transposeBlock(src + p, g.ldb, Bp + p * kNR + j, kNR);
      for (int q = 0; q < VL; q++) {
        for (int64_t p = depthBlocks; p < kc; p++) Bp[p * kNR + j + q] = src[q * g.ldb + p];
      }
    }
    for (int j = colBlocks; j < cols; j++) {
      const float* src = B + (j0 + j) * g.ldb + p0;
      for (int64_t p = 0; p < kc; p++) Bp[p * kNR + j] = src[p];
    }
    if (cols < kNR) {
      for (int64_t p = 0; p < kc; p++) {
        for (int j = cols; j < kNR; j++) Bp[p * kNR + j] = 0.0f;
      }
    }
  }
}

// How the micro-kernel reads op(A)[i, p] (element i*si + p*sp of its A pointer):
// kind 0: a packed panel (sp = kMR, si = 1); kind 1: A's rows in place (sp = 1, si = lda);
// kind 2: a transposed A in place (sp = lda, si = 1).
// bias: the row added after the product at this store (see GemmItem::bias), or null.
template <int R>
inline void ukernelRows(int rows, int aKind, int64_t kc, const float* Ap, int64_t lda,
                        const float* Bp, float* C, int64_t ldc, int cols, float alpha, int beta,
                        const float* bias = nullptr) {
  if (rows == R) {
    if (aKind == 1) {
      ukernel<R, 1>(kc, Ap, lda, Bp, C, ldc, cols, alpha, beta, bias);
    } else if (aKind == 2) {
      ukernel<R, 2>(kc, Ap, lda, Bp, C, ldc, cols, alpha, beta, bias);
    } else {
      ukernel<R, 0>(kc, Ap, lda, Bp, C, ldc, cols, alpha, beta, bias);
    }
  } else if constexpr (R > 1) {
    ukernelRows<R - 1>(rows, aKind, kc, Ap, lda, Bp, C, ldc, cols, alpha, beta, bias);
  }
}

/** Balanced block size: splits `total` into ceil(total / maxBlock) blocks, rounded up to `unit`. */
inline int64_t blockSize(int64_t total, int64_t maxBlock, int64_t unit) {
  const int64_t blocks = ceilDiv(total, maxBlock);
  return ceilDiv(ceilDiv(total, blocks), unit) * unit;
}

/**
 * True when a team packs all of op(B)'s depth for a column block at once (one barrier per
 * column block, not one per depth block): a deep product (k > kKC) shared by several threads,
 * whose packed B fits kFullDepthFloats (e.g. the attention output projection's k = 512).
 */
const int64_t kFullDepthFloats = 1 << 20;  // 4 MiB of packed B
inline bool fullDepth(const GemmItem& g, int nth) {
  return nth > 1 && g.k > kKC && blockSize(g.k, kKC, 1) * ceilDiv(g.k, blockSize(g.k, kKC, 1)) *
                                         blockSize(g.n, kNC, kNR) <=
                                     kFullDepthFloats;
}
/** Floats of the team's packed-B buffer for item g. */
inline int64_t packBFloatsFor(const GemmItem& g, int nth) {
  const int64_t kcBlock = blockSize(g.k, kKC, 1), ncBlock = blockSize(g.n, kNC, kNR);
  return fullDepth(g, nth) ? kcBlock * ceilDiv(g.k, kcBlock) * ncBlock : kcBlock * ncBlock;
}

/**
 * A deep product with few rows of C (k > kKC, m < k: the weight gradients, op(A) = X^T with the
 * batch's rows as depth) and at least as many columns (n >= m; a narrow C, e.g. 512 x 128,
 * measured faster on the shared-B path), computed by a team that shares nothing but a task
 * counter. C is cut
 * into kOwnTasksPerThread blocks per thread, more column blocks than row blocks in proportion to
 * n / m (a row block packs its op(B) columns once more, a column block reads its op(A) rows
 * once more; packing is a read and a write, hence the 2); each thread packs the op(B) of the
 * block it claims into its own buffer, depth block by depth block, and sweeps it with the
 * block's rows of op(A), read in place. No barrier inside: the shared-B team meets two per depth
 * block, each waiting for the slowest thread, or (fullDepth) shares a packed B of all depth
 * blocks that no core's L2 holds. One block per thread: packing op(B) (k x n floats, each used
 * by only m rows) is the memory-bound part of these products, and every extra row block packs
 * its columns again; a split finer than the team measured slower even on a busy machine, whose
 * imbalance it was meant to absorb (bench/results/wgrad-gemm-cpu.md).
 */
const int64_t kOwnTasksPerThread = 1;
inline bool ownTasks(const GemmItem& g, int nth) {
  return nth > 1 && g.k > kKC && g.m < g.k && g.n >= g.m;
}

__thread Scratch tlsOwnB = {nullptr, 0};

void gemmOwnTasks(const float* A, const float* B, float* C, const GemmItem& g, int tid, int nth,
                  int64_t* next) {
  const int64_t kcBlock = blockSize(g.k, kKC, 1);
  const int64_t mPanels = ceilDiv(g.m, kMR), nPanels = ceilDiv(g.n, kNR);
  const int64_t target = kOwnTasksPerThread * nth;
  // cb column blocks and rb row blocks with cb * rb ~ target and cb * m ~ 2 * rb * n, each
  // block's packed B within one depth block of kNC columns; cb * rb a multiple of nth.
  int64_t cb = 1;
  while (cb < min64(nPanels, target) && cb * cb * g.m < 2 * target * g.n) cb++;
  cb = max64(cb, ceilDiv(nPanels, kNC / kNR));
  const int64_t rb = max64(1, min64(mPanels, ceilDiv(target, cb)));
  while ((cb * rb) % nth != 0 && cb < nPanels) cb++;
  const int64_t tasks = cb * rb;
  float* Bp = scratch(&tlsOwnB, kcBlock * ceilDiv(nPanels, cb) * kNR);
  if (tid == 0) *next = 0;  // nobody claims before the barrier below
#pragma omp barrier
  for (int64_t t = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED); t < tasks;
       t = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED)) {
    // Balanced blocks: column panels [jp0, jp1), row panels [ip0, ip1).
    const int64_t jp0 = nPanels * (t % cb) / cb, jp1 = nPanels * (t % cb + 1) / cb;
    const int64_t ip0 = mPanels * (t / cb) / rb, ip1 = mPanels * (t / cb + 1) / rb;
    for (int64_t pc = 0; pc < g.k; pc += kcBlock) {
      const int64_t kc = min64(kcBlock, g.k - pc);
      const int beta = pc == 0 ? g.beta : 1;
      for (int64_t jp = jp0; jp < jp1; jp++) {
        const int64_t j0 = jp * kNR;
        packB(B, g, j0, (int)min64(kNR, g.n - j0), pc, kc, Bp + (jp - jp0) * kNR * kc);
      }
      for (int64_t ip = ip0; ip < ip1; ip++) {
        const int64_t i0 = ip * kMR;
        const int rows = (int)min64(kMR, g.m - i0);
        const float* aPanel = g.transA ? A + pc * g.lda + i0 : A + i0 * g.lda + pc;
        for (int64_t jp = jp0; jp < jp1; jp++) {
          const int64_t j0 = jp * kNR;
          ukernelRows<kMR>(rows, g.transA ? 2 : 1, kc, aPanel, g.lda,
                           Bp + (jp - jp0) * kNR * kc, C + i0 * g.ldc + j0, g.ldc,
                           (int)min64(kNR, g.n - j0), g.alpha, beta, biasAt(g, pc, kc, j0));
        }
      }
    }
  }
#pragma omp barrier
}

/**
 * A deep weight gradient with a narrow C (transA, n < m, e.g. [1824x512]^T @ [1824x128]) as its
 * transpose C^T = B^T A, a wide product that gemmOwnTasks runs without barriers, into the team's
 * buffer T [n x m] (C^T there first when accumulating), then transposed into C. The products and
 * their order over the depth are those of the direct product, so C is bit-for-bit the same.
 */
inline bool swappedOwnTasks(const GemmItem& g, int nth) {
  return nth > 1 && g.transA && !g.transB && g.k > kKC && g.n < g.m && g.m < g.k;
}

/** dst[j * rows + i] = src[i * cols + j] for this thread's share of the rows i of src. */
inline void transposeShare(const float* src, float* dst, int64_t rows, int64_t cols, int tid,
                           int nth) {
  const int64_t lo = rows * tid / nth, hi = rows * (tid + 1) / nth;
  for (int64_t i0 = lo; i0 < hi; i0 += 16) {
    const int64_t i1 = min64(hi, i0 + 16);
    for (int64_t j = 0; j < cols; j++) {
      for (int64_t i = i0; i < i1; i++) dst[j * rows + i] = src[i * cols + j];
    }
  }
}

void gemmSwapped(const float* A, const float* B, float* C, const GemmItem& g, int tid, int nth,
                 float* T, int64_t* next) {
  if (g.beta) {
    transposeShare(C, T, g.m, g.n, tid, nth);
#pragma omp barrier
  }
  GemmItem s = g;  // C^T [n x m] = op(B)^T [n x k] @ op(A)^T [k x m]
  s.m = g.n;
  s.n = g.m;
  s.transA = 1;
  s.transB = 0;
  s.lda = g.ldb;
  s.ldb = g.lda;
  s.ldc = g.m;
  gemmOwnTasks(B, A, T, s, tid, nth, next);  // ends with a barrier
  transposeShare(T, C, g.n, g.m, tid, nth);
#pragma omp barrier
}

/**
 * One product C = alpha op(A) op(B) (+ C), computed by the calling team of `nth` threads
 * (thread `tid`); nth = 1 runs it alone. Bp is the team's shared packed-B buffer and `next`
 * the team's shared task counter: threads claim micro-tile tasks dynamically, so a thread that
 * is descheduled or slow (a busy machine) does not hold the others up.
 */
void gemmItem(const float* A, const float* B, float* C, const GemmItem& g, int tid, int nth,
              float* Bp, int64_t* next) {
  const int64_t kcBlock = blockSize(g.k, kKC, 1);
  const int64_t ncBlock = blockSize(g.n, kNC, kNR);
  const int64_t kBlocks = ceilDiv(g.k, kcBlock);
  const bool deep = fullDepth(g, nth);
  float* Ap = scratch(&tlsPackA, kMR * kKC);
  const int64_t mPanels = ceilDiv(g.m, kMR);
  // op(A) is broadcast straight from A (one element at a time, so any layout will do): packing
  // measured slower on every shape of the model, by up to 40% on attention's small items.
  const int aKind = kPackA ? 0 : g.transA ? 2 : 1;
  for (int64_t jc = 0; jc < g.n; jc += ncBlock) {
    const int64_t nc = min64(ncBlock, g.n - jc);
    const int64_t nPanels = ceilDiv(nc, kNR);
    // Tasks: one row panel each when there are >= 8 per thread (balance under dynamic
    // claiming), else row panels x groups of column panels.
    int64_t groups = 1;
    if (nth > 1 && mPanels < 8 * nth) groups = min64(nPanels, ceilDiv(8 * nth, mPanels));
    const int64_t perGroup = ceilDiv(nPanels, groups);
    const int64_t tasks = mPanels * groups;
    // Depth blocks packed per round: all of them (deep), else one.
    const int64_t round = deep ? kBlocks : 1;
    for (int64_t pb0 = 0; pb0 < kBlocks; pb0 += round) {
      {  // pack depth blocks [pb0, pb0 + round) of op(B), split over the team
        const int64_t units = round * nPanels;
        const int64_t lo = units * tid / nth, hi = units * (tid + 1) / nth;
        for (int64_t u = lo; u < hi; u++) {
          const int64_t pb = pb0 + u / nPanels, jp = u % nPanels;
          const int64_t pc = pb * kcBlock, kc = min64(kcBlock, g.k - pc);
          const int64_t j0 = jc + jp * kNR;
          packB(B, g, j0, (int)min64(kNR, g.n - j0), pc, kc,
                Bp + (pb - pb0) * kcBlock * nPanels * kNR + jp * kNR * kc);
        }
      }
      if (nth > 1) {
        if (tid == 0) *next = 0;  // nobody claims before the barrier below
#pragma omp barrier
      }
      int64_t packedPanel = -1, packedDepth = -1;
      for (int64_t t = nth > 1 ? __atomic_fetch_add(next, 1, __ATOMIC_RELAXED) : 0; t < tasks;
           t = nth > 1 ? __atomic_fetch_add(next, 1, __ATOMIC_RELAXED) : t + 1) {
        const int64_t ip = t / groups, grp = t % groups;
        const int64_t i0 = ip * kMR;
        const int rows = (int)min64(kMR, g.m - i0);
        const int64_t jpEnd = min64(nPanels, (grp + 1) * perGroup);
        for (int64_t pb = pb0; pb < pb0 + round; pb++) {
          const int64_t pc = pb * kcBlock, kc = min64(kcBlock, g.k - pc);
          const int beta = pc == 0 ? g.beta : 1;
          const float* aPanel = g.transA ? A + pc * g.lda + i0 : A + i0 * g.lda + pc;
          if (aKind == 0 && (ip != packedPanel || pb != packedDepth)) {
            packA(A, g, i0, rows, pc, kc, Ap);
            packedPanel = ip;
            packedDepth = pb;
          }
          const float* bBlock = Bp + (pb - pb0) * kcBlock * nPanels * kNR;
          // upper: the tiles wholly left of the diagonal (j0 + kNR <= i0) are mirrored, not computed.
          const int64_t jpFirst = g.upper && i0 > jc ? (i0 - jc) / kNR : 0;
          for (int64_t jp = max64(grp * perGroup, jpFirst); jp < jpEnd; jp++) {
            const int64_t j0 = jc + jp * kNR;
            ukernelRows<kMR>(rows, aKind, kc, aKind ? aPanel : Ap, g.lda, bBlock + jp * kNR * kc,
                             C + i0 * g.ldc + j0, g.ldc, (int)min64(kNR, g.n - j0), g.alpha,
                             beta, biasAt(g, pc, kc, j0));
          }
        }
      }
      if (nth > 1) {
#pragma omp barrier
      }
    }
  }
}

// Rows of C at or below this count skip packing: packing op(B) costs as much memory traffic as
// multiplying a few rows by it in place (decoding with a KV cache multiplies one row at a time).
const int64_t kSmallM = 4;

/** c[0:width] = alpha * acc (+ c if beta) (+ bias[0:width] if bias: after the rounded product). */
inline void storeRow(float* c, vf acc, int64_t width, float alpha, int beta, const float* bias) {
  vf r = acc * alpha;
  if (width == VL) {
    if (beta) r += vload(c);
    if (bias) r = r + vload(bias);
    vstore(c, r);
  } else {
    if (beta) r += vloadPart(c, width, 0.0f);
    if (bias) r = r + vloadPart(bias, width, 0.0f);
    vstorePart(c, r, width);
  }
}

/** Lane l: the sum over p = l (mod VL) of a[p] b[p], p in [0, k) (kFull = k rounded down to VL). */
inline vf dotLanes(const float* a, const float* b, int64_t k, int64_t kFull) {
  vf acc = {};
  for (int64_t p = 0; p < kFull; p += VL) acc += vload(a + p) * vload(b + p);
  if (kFull < k) acc += vloadPart(a + kFull, k - kFull, 0.0f) * vloadPart(b + kFull, k - kFull, 0.0f);
  return acc;
}

/**
 * crow[j, j + NV VL) = alpha sum_p arow[p] B[p, j + ...] (+ crow if beta) (+ bias) for blocks of
 * NV full vectors of columns from j0 while one fits before hi (NV independent sums, one per
 * vector, each over p in order); returns the first column left.
 */
template <int NV>
inline int64_t smallMBlocks(const float* arow, const float* B, float* crow, const GemmItem& g,
                            int64_t j0, int64_t hi) {
  for (; j0 + NV * VL <= hi; j0 += NV * VL) {
    vf acc[NV] = {};
    for (int64_t p = 0; p < g.k; p++) {
      const float* b = B + p * g.ldb + j0;
      const vf av = vsplat(arow[p]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[v] += av * vload(b + v * VL);
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      const int64_t j = j0 + v * VL;
      storeRow(crow + j, acc[v], VL, g.alpha, g.beta, g.bias ? g.bias + j : nullptr);
    }
  }
  return j0;
}

/**
 * C = alpha op(A) op(B) (+ C) (+ bias) for m <= kSmallM, reading B in place; thread `tid` of
 * `nth` computes its share of the columns.
 */
void gemmSmallM(const float* A, const float* B, float* C, const GemmItem& g, int tid, int nth) {
  int64_t lo, hi;
  {
    const int64_t units = ceilDiv(g.n, 4 * VL);
    lo = min64(g.n, units * tid / nth * 4 * VL);
    hi = min64(g.n, units * (tid + 1) / nth * 4 * VL);
  }
  if (lo >= hi) return;
  float* rowCopy = scratch(&tlsPackA, g.k + VL);
  const float* bias = g.bias;
  for (int64_t i = 0; i < g.m; i++) {
    // Row i of op(A), contiguous: A's own row, or gathered from a transposed A.
    const float* arow = A + i * g.lda;
    if (g.transA) {
      for (int64_t p = 0; p < g.k; p++) rowCopy[p] = A[p * g.lda + i];
      arow = rowCopy;
    }
    float* crow = C + i * g.ldc;
    if (!g.transB) {  // crow[j] = sum_p arow[p] B[p, j]
      // 4, then 2 vectors of columns in flight (2: a narrow C, attention's p @ v in a decode step).
      int64_t j0 = smallMBlocks<2>(arow, B, crow, g, smallMBlocks<4>(arow, B, crow, g, lo, hi), hi);
      for (; j0 < hi; j0 += VL) {
        const int64_t width = min64(VL, hi - j0);
        vf acc = {};
        for (int64_t p = 0; p < g.k; p++) {
          const float* b = B + p * g.ldb + j0;
          acc += vsplat(arow[p]) * (width == VL ? vload(b) : vloadPart(b, width, 0.0f));
        }
        storeRow(crow + j0, acc, width, g.alpha, g.beta, bias ? bias + j0 : nullptr);
      }
    } else {  // crow[j] = dot(arow, B[j, :]): vector partial sums over p, then its lanes in order
      const int64_t kFull = g.k / VL * VL;
      int64_t j = lo;
      // VL columns at a time: their partial-sum vectors transposed in registers, so that vector
      // adds sum every column's lanes at once, in the order of the one-column loop below (the
      // same bits; a lane-by-lane sum per column cost more than its products). With a bias, the
      // one-column loop (its second rounding stays a separate add there).
      for (; !bias && j + VL <= hi; j += VL) {
        vf r[MMGPT_VL];
#pragma GCC unroll 16
        for (int q = 0; q < VL; q++) r[q] = dotLanes(arow, B + (j + q) * g.ldb, g.k, kFull);
        transposeRegs(r);
        vf s = {};
#pragma GCC unroll 16
        for (int l = 0; l < VL; l++) s += r[l];
        if (g.beta) {
          float t[MMGPT_VL];
          vstore(t, s);
          for (int q = 0; q < VL; q++) crow[j + q] = g.alpha * t[q] + crow[j + q];
        } else {
          vstore(crow + j, s * g.alpha);
        }
      }
      for (; j < hi; j++) {
        const vf acc = dotLanes(arow, B + j * g.ldb, g.k, kFull);
        float s = 0;
#pragma GCC unroll 16
        for (int l = 0; l < VL; l++) s += acc[l];
        const float r = g.beta ? g.alpha * s + crow[j] : g.alpha * s;
        crow[j] = bias ? r + bias[j] : r;
      }
    }
  }
}

/**
 * C[i, j] = C[j, i] for j < i: the lower triangle of a symmetric product (GemmItem::upper) from
 * its upper one, this thread's share of the rows, in blocks of 16 x 16 (both sides in cache).
 * Element (j, i) of op(A) op(A)^T sums the same products in the same order as element (i, j),
 * so the mirrored C is bit for bit the one the full product would write.
 */
void mirrorLower(float* C, int64_t m, int64_t ldc, int tid, int nth) {
  const int64_t blocks = ceilDiv(m, 16);
  // Row block r has r + 1 blocks to fill: split the triangle's blocks evenly over the threads.
  const int64_t total = blocks * (blocks + 1) / 2;
  const int64_t lo = total * tid / nth, hi = total * (tid + 1) / nth;
  int64_t r = 0, before = 0;  // row block of block index lo, and the blocks above it
  while (before + r + 1 <= lo) before += ++r;
  for (int64_t u = lo; u < hi; u++) {
    if (u - before > r) before += ++r;
    const int64_t c = u - before;  // column block <= r
    const int64_t i1 = min64(m, (r + 1) * 16), j1 = min64(m, (c + 1) * 16);
    if (c < r && i1 - r * 16 == 16 && j1 - c * 16 == 16) {  // whole blocks: VL x VL transposes
      for (int64_t bi = 0; bi < 16; bi += VL) {
        for (int64_t bj = 0; bj < 16; bj += VL) {
          const int64_t i = r * 16 + bi, j = c * 16 + bj;
          transposeBlock(C + j * ldc + i, ldc, C + i * ldc + j, ldc);
        }
      }
      continue;
    }
    for (int64_t i = r * 16; i < i1; i++) {
      const int64_t jEnd = c == r ? i : j1;
      for (int64_t j = c * 16; j < jEnd; j++) C[i * ldc + j] = C[j * ldc + i];
    }
  }
}

/** Dispatches one product to the packed or the small-m path. */
inline void gemmAny(const float* A, const float* B, float* C, const GemmItem& g, int tid, int nth,
                    float* Bp, int64_t* next) {
  if (g.upper) {  // the shared-B path (the only one that skips tiles), then the mirror
    gemmItem(A, B, C, g, tid, nth, Bp, next);  // ends with a barrier when nth > 1
    mirrorLower(C, g.m, g.ldc, tid, nth);
    if (nth > 1) {
#pragma omp barrier
    }
  } else if (g.m <= kSmallM) {
    gemmSmallM(A, B, C, g, tid, nth);
    if (nth > 1) {
#pragma omp barrier
    }
  } else if (ownTasks(g, nth)) {
    gemmOwnTasks(A, B, C, g, tid, nth, next);
  } else if (swappedOwnTasks(g, nth) && !g.bias) {  // (its C^T store has no row bias)
    gemmSwapped(A, B, C, g, tid, nth, Bp, next);
  } else {
    gemmItem(A, B, C, g, tid, nth, Bp, next);
  }
}

// The floating-point operations from which one product is shared by the team: below it, waking
// the other threads and meeting them at the packing barrier costs more than they save (a decode
// step's products of a few rows, e.g. 18 x 128 x 384). Many small items (a decode step's
// attention) are dealt out to the threads whole, with no barrier: they are shared from far less.
const double kTeamFlops = 8e6;
const double kItemsTeamFlops = 4e5;

void kMatmul(const float* A, const float* B, float* C, const MatmulArgs* p, int nt) {
  const int64_t batch = p->batch, m = p->m, n = p->n, k = p->k;
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // op(A) @ op(B) is all zeros: C = alpha * 0 (+ C) (+ bias)
    for (int64_t b = 0; b < batch; b++) {
      float* c = C + b * p->strideC;
      for (int64_t i = 0; i < m * n; i++) {
        const float r = p->accumulate ? c[i] : 0.0f;
        c[i] = p->bias ? r + p->bias[i % n] : r;
      }
    }
    return;
  }
  GemmItem g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.transA = p->transA;
  g.transB = p->transB;
  g.lda = p->transA ? m : k;
  g.ldb = p->transB ? k : n;
  g.ldc = n;
  g.alpha = (float)p->alpha;
  g.beta = p->accumulate ? 1 : 0;
  g.bias = p->bias;
  // One operand read both ways: C = alpha op(A) op(A)^T is symmetric (its upper triangle is
  // computed, then mirrored). Not when accumulating or adding a bias: C may not be symmetric.
  g.upper = A == B && p->strideA == p->strideB && p->transA != p->transB && m == n &&
            m > kSmallM && !p->accumulate && !p->bias;
  const double itemFlops = 2.0 * (double)m * (double)n * (double)k;
  const double minFlops = batch > 1 ? kItemsTeamFlops : kTeamFlops;
  const int team = (nt > 1 && itemFlops * (double)batch >= minFlops) ? nt : 1;
  // Items may run concurrently only when their C blocks are disjoint.
  const bool disjoint = batch == 1 || p->strideC >= m * n;
  const bool perItem = team > 1 && batch > 1 && disjoint &&
                       (batch >= 4 * team || batch % team == 0 || itemFlops < 4e6);
  if (perItem) {
    const int64_t chunk = max64(1, batch / (8 * team));
#pragma omp parallel for num_threads(team) schedule(dynamic, chunk)
    for (int64_t b = 0; b < batch; b++) {
      float* Bp = scratch(&tlsPackB, packBFloatsFor(g, 1));
      gemmAny(A + b * p->strideA, B + b * p->strideB, C + b * p->strideC, g, 0, 1, Bp, nullptr);
    }
    return;
  }
  // The calling thread's buffer, shared by the team: packed B, or C^T (gemmSwapped).
  float* Bp = scratch(&tlsPackB, max64(packBFloatsFor(g, team), swappedOwnTasks(g, team) ? m * n : 0));
  if (team == 1) {
    for (int64_t b = 0; b < batch; b++) {
      gemmAny(A + b * p->strideA, B + b * p->strideB, C + b * p->strideC, g, 0, 1, Bp, nullptr);
    }
    return;
  }
  int64_t next = 0;  // the team's task counter
#pragma omp parallel num_threads(team)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    for (int64_t b = 0; b < batch; b++) {
      gemmAny(A + b * p->strideA, B + b * p->strideB, C + b * p->strideC, g, tid, nth, Bp, &next);
    }
  }
}

// ---- embeddings ------------------------------------------------------------------------------------

void kGather(const float* table, const int32_t* idx, float* out, int64_t rows, int64_t d, int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, rows * d, kParMemory)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    memcpy(out + r * d, table + (int64_t)idx[r] * d, (size_t)d * 4);
  }
}

void kScatterAdd(const float* g, const int32_t* idx, float* gTable, int64_t rows, int64_t d,
                 int nt) {
  // Threads own column ranges, so every element still receives its rows in order.
  const int team = threadsFor(nt, (d >= 32 ? rows * d : 0), kParMemory);
#pragma omp parallel num_threads(team)
  {
    int64_t lo, hi;
    threadRange(d, 16, &lo, &hi);
    for (int64_t r = 0; r < rows; r++) {
      float* dst = gTable + (int64_t)idx[r] * d;
      const float* src = g + r * d;
#pragma omp simd
      for (int64_t j = lo; j < hi; j++) dst[j] += src[j];
    }
  }
}

// ---- fused normalisation, softmax, cross-entropy --------------------------------------------------

/**
 * LayerNorm of R consecutive rows x [R, d] into y, their means and rstds into mean[0, R) and
 * rstd[0, R): float64 statistics (two-pass variance), each pass over all R rows, so that the rows'
 * independent chains of sums, square roots and divisions are in flight together. A row's
 * operations do not depend on R: kLNRows rows at a time give the bits of one at a time (one row
 * at a time waited on each row's reductions: ~1.3x slower on the 128-wide rows of the model).
 */
const int kLNRows = 4;
template <int R>
inline void layerNormRows(const float* x, const float* w, const float* b, float* y, float* mean,
                          float* rstd, int64_t d, double eps) {
  const int64_t full = d / VL * VL;
  vd acc[R];
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) acc[q] = vd{};
  for (int64_t j = 0; j < full; j += VL) {
#pragma GCC unroll 4
    for (int q = 0; q < R; q++) acc[q] += loadWide(x + q * d + j);
  }
  double mu[R], rs[R];
  vd vmu[R], vrs[R];
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    if (full < d) acc[q] += widen(vloadPart(x + q * d + full, d - full, 0.0f));
    mu[q] = hsumd(acc[q]) / (double)d;
    vmu[q] = vsplatd(mu[q]);
    acc[q] = vd{};
  }
  for (int64_t j = 0; j < full; j += VL) {
#pragma GCC unroll 4
    for (int q = 0; q < R; q++) {
      const vd diff = loadWide(x + q * d + j) - vmu[q];
      acc[q] += diff * diff;
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    const float* xr = x + q * d;
    double sq = hsumd(acc[q]);
    for (int64_t j = full; j < d; j++) sq += (xr[j] - mu[q]) * (xr[j] - mu[q]);
    rs[q] = 1.0 / sqrt(sq / (double)d + eps);  // two-pass variance
    vrs[q] = vsplatd(rs[q]);
  }
  for (int64_t j = 0; j < full; j += VL) {
    const vd wj = loadWide(w + j), bj = loadWide(b + j);
#pragma GCC unroll 4
    for (int q = 0; q < R; q++) {
      vstore(y + q * d + j, narrow((loadWide(x + q * d + j) - vmu[q]) * vrs[q] * wj + bj));
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    for (int64_t j = full; j < d; j++) {
      y[q * d + j] = (float)((x[q * d + j] - mu[q]) * rs[q] * w[j] + b[j]);
    }
    mean[q] = (float)mu[q];
    rstd[q] = (float)rs[q];
  }
}

void kLayerNorm(const float* x, const float* w, const float* b, float* out, float* mean,
                float* rstd, int64_t rows, int64_t d, double eps, int nt) {
  const int64_t groups = rows / kLNRows;
#pragma omp parallel num_threads(threadsFor(nt, rows * d, kParCompute))
  {
#pragma omp for schedule(static) nowait
    for (int64_t gi = 0; gi < groups; gi++) {
      const int64_t r = gi * kLNRows;
      layerNormRows<kLNRows>(x + r * d, w, b, out + r * d, mean + r, rstd + r, d, eps);
    }
#pragma omp for schedule(static)
    for (int64_t r = groups * kLNRows; r < rows; r++) {
      layerNormRows<1>(x + r * d, w, b, out + r * d, mean + r, rstd + r, d, eps);
    }
  }
}

// h = x + r (float32, as kBinary's add), then LayerNorm of each h row while it is in cache.
void kAddLayerNorm(const float* x, const float* res, const float* w, const float* b, float* h,
                   float* out, float* mean, float* rstd, int64_t rows, int64_t d, double eps,
                   int nt) {
  const auto add = [&](int64_t r0, int64_t r1) {  // h = x + res for rows [r0, r1)
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      const float* rr = res + r * d;
      float* hr = h + r * d;
      int64_t j = 0;
      for (; j + VL <= d; j += VL) vstore(hr + j, vload(xr + j) + vload(rr + j));
      for (; j < d; j++) hr[j] = xr[j] + rr[j];
    }
  };
  const int64_t groups = rows / kLNRows;
#pragma omp parallel num_threads(threadsFor(nt, rows * d, kParCompute))
  {
#pragma omp for schedule(static) nowait
    for (int64_t gi = 0; gi < groups; gi++) {
      const int64_t r = gi * kLNRows;
      add(r, r + kLNRows);
      layerNormRows<kLNRows>(h + r * d, w, b, out + r * d, mean + r, rstd + r, d, eps);
    }
#pragma omp for schedule(static)
    for (int64_t r = groups * kLNRows; r < rows; r++) {
      add(r, r + 1);
      layerNormRows<1>(h + r * d, w, b, out + r * d, mean + r, rstd + r, d, eps);
    }
  }
}

/**
 * The rows' part of kLayerNormBackward for R consecutive rows at once (as layerNormRows: a row's
 * operations do not depend on R, the rows' reductions are in flight together): gx of each row,
 * and each row's terms of gw and gb added into gwAcc and gbAcc in row order, as one row at a time
 * would add them.
 */
template <int R>
inline void layerNormBackwardRows(const float* x, const float* w, const float* mean,
                                  const float* rstd, const float* gy, float* gx, double* gwAcc,
                                  double* gbAcc, int64_t d) {
  const int64_t full = d / VL * VL;
  double mu[R], rs[R], sumDx[R], sumDxX[R];
  vd vmu[R], vrs[R], accD[R], accDX[R];
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    mu[q] = mean[q];
    rs[q] = rstd[q];
    vmu[q] = vsplatd(mu[q]);
    vrs[q] = vsplatd(rs[q]);
    accD[q] = accDX[q] = vd{};
  }
  for (int64_t j = 0; j < full; j += VL) {
    const vd wj = loadWide(w + j);
    vd gw = vloadd(gwAcc + j), gb = vloadd(gbAcc + j);
#pragma GCC unroll 4
    for (int q = 0; q < R; q++) {
      const vd xhat = (loadWide(x + q * d + j) - vmu[q]) * vrs[q];
      const vd g = loadWide(gy + q * d + j);
      const vd dxhat = g * wj;
      accD[q] += dxhat;
      accDX[q] += dxhat * xhat;
      gw = gw + g * xhat;
      gb = gb + g;
    }
    vstored(gwAcc + j, gw);
    vstored(gbAcc + j, gb);
  }
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    sumDx[q] = hsumd(accD[q]);
    sumDxX[q] = hsumd(accDX[q]);
    for (int64_t j = full; j < d; j++) {
      const double xhat = (x[q * d + j] - mu[q]) * rs[q];
      const double g = gy[q * d + j];
      const double dxhat = g * w[j];
      sumDx[q] += dxhat;
      sumDxX[q] += dxhat * xhat;
      gwAcc[j] += g * xhat;
      gbAcc[j] += g;
    }
  }
  vd vmeanD[R], vmeanDX[R];
  double meanD[R], meanDX[R];
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    meanD[q] = sumDx[q] / (double)d;
    meanDX[q] = sumDxX[q] / (double)d;
    vmeanD[q] = vsplatd(meanD[q]);
    vmeanDX[q] = vsplatd(meanDX[q]);
  }
  for (int64_t j = 0; j < full; j += VL) {
    const vd wj = loadWide(w + j);
#pragma GCC unroll 4
    for (int q = 0; q < R; q++) {
      const vd xhat = (loadWide(x + q * d + j) - vmu[q]) * vrs[q];
      const vd dxhat = loadWide(gy + q * d + j) * wj;
      vstore(gx + q * d + j, narrow(vrs[q] * (dxhat - vmeanD[q] - xhat * vmeanDX[q])));
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < R; q++) {
    for (int64_t j = full; j < d; j++) {
      const double xhat = (x[q * d + j] - mu[q]) * rs[q];
      const double dxhat = (double)gy[q * d + j] * w[j];
      gx[q * d + j] = (float)(rs[q] * (dxhat - meanD[q] - xhat * meanDX[q]));
    }
  }
}

void kLayerNormBackward(const float* x, const float* w, const float* mean, const float* rstd,
                        const float* gy, float* gx, float* gw, float* gb, int64_t rows, int64_t d,
                        int nt) {
  // xhat = (x - mean) * rstd; dxhat = gy * w;
  // gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)); gw += sum gy xhat; gb += sum gy.
  const int team = threadsFor(nt, rows * d, kParCompute);
  // Per-thread float64 partial sums of gw and gb, combined in thread order at the end.
  double* partial = (double*)scratch(&tlsDouble, 2 * (int64_t)team * 2 * d);
#pragma omp parallel num_threads(team)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    double* gwAcc = partial + (int64_t)tid * 2 * d;
    double* gbAcc = gwAcc + d;
    for (int64_t j = 0; j < d; j++) gwAcc[j] = gbAcc[j] = 0;
    const int64_t lo = rows * tid / nth, hi = rows * (tid + 1) / nth;
    int64_t r = lo;
    for (; r + kLNRows <= hi; r += kLNRows) {
      layerNormBackwardRows<kLNRows>(x + r * d, w, mean + r, rstd + r, gy + r * d, gx + r * d,
                                     gwAcc, gbAcc, d);
    }
    for (; r < hi; r++) {
      layerNormBackwardRows<1>(x + r * d, w, mean + r, rstd + r, gy + r * d, gx + r * d, gwAcc,
                               gbAcc, d);
    }
  }
  for (int64_t j = 0; j < d; j++) {
    double sw = 0, sb = 0;
    for (int t = 0; t < team; t++) {
      sw += partial[(int64_t)t * 2 * d + j];
      sb += partial[(int64_t)t * 2 * d + d + j];
    }
    gw[j] = (float)sw;
    gb[j] = (float)sb;
  }
}

/**
 * One softmax row over its first `visible` columns (the rest are set to exactly 0): writes
 * out[j] = exp(x[j] - max) / sum and returns log(sum) + max (the log-sum-exp). The sum is
 * accumulated in 2 x VL float32 lanes and finished in float64.
 */
inline double softmaxRow(const float* x, float* out, int64_t n, int64_t visible) {
  if (visible == 0) {
    for (int64_t j = 0; j < n; j++) out[j] = 0.0f;
    return -INFINITY;
  }
  const float ninf = -INFINITY;
  vf vmax = vsplat(ninf);
  int64_t j = 0;
  for (; j + VL <= visible; j += VL) {
    const vf v = vload(x + j);
    vmax = v > vmax ? v : vmax;  // NaN is skipped here but still propagates through exp below
  }
  if (j < visible) {
    const vf v = vloadPart(x + j, visible - j, ninf);
    vmax = v > vmax ? v : vmax;
  }
  const float mx = hmax(vmax);
  const vf vm = vsplat(mx);
  vf sum0 = {}, sum1 = {};
  j = 0;
  for (; j + 2 * VL <= visible; j += 2 * VL) {
    const vf e0 = vexp(vload(x + j) - vm), e1 = vexp(vload(x + j + VL) - vm);
    vstore(out + j, e0);
    vstore(out + j + VL, e1);
    sum0 += e0;
    sum1 += e1;
  }
  for (; j + VL <= visible; j += VL) {
    const vf e = vexp(vload(x + j) - vm);
    vstore(out + j, e);
    sum0 += e;
  }
  if (j < visible) {
    // The lanes past the row get exp(0), then 0: exp(-inf) would pass through a subnormal
    // intermediate, a microcode assist per row on Intel cores.
    const vf e = vkeepLanes(vexp(vloadPart(x + j, visible - j, mx) - vm), visible - j);
    vstorePart(out + j, e, visible - j);
    sum1 += e;
  }
  const double sum = hsumd(widen(sum0) + widen(sum1));
  const vf vinv = vsplat((float)(1.0 / sum));
  j = 0;
  for (; j + VL <= visible; j += VL) vstore(out + j, vload(out + j) * vinv);
  if (j < visible) vstorePart(out + j, vloadPart(out + j, visible - j, 0.0f) * vinv, visible - j);
  for (j = visible; j < n; j++) out[j] = 0.0f;
  return log(sum) + mx;
}

void kSoftmax(const float* x, float* out, int64_t rows, int64_t n, int64_t tq, int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, rows * n, kParCompute)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t visible = n;
    if (tq > 0) visible = max64(0, min64(n, r % tq + (n - tq) + 1));
    softmaxRow(x + r * n, out + r * n, n, visible);
  }
}

void kSoftmaxBackward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n,
                      int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, rows * n, kParCompute)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * n;
    const float* gr = gy + r * n;
    float* gxr = gx + r * n;
    const double dot = dotD(gr, yr, n);
    const vd vdot = vsplatd(dot);
    int64_t j = 0;
    for (; j + VL <= n; j += VL) {
      vstore(gxr + j, narrow(loadWide(yr + j) * (loadWide(gr + j) - vdot)));
    }
    for (; j < n; j++) gxr[j] = (float)(yr[j] * (gr[j] - dot));
  }
}

void kCrossEntropy(const float* logits, const int32_t* targets, float* probs, float* losses,
                   int64_t rows, int64_t v, int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, rows * v, kParCompute)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* lr = logits + r * v;
    const double lse = softmaxRow(lr, probs + r * v, v, v);
    const int32_t t = targets[r];
    losses[r] = t < 0 ? 0.0f : (float)(lse - lr[t]);
  }
}

void kCrossEntropyBackward(const float* probs, const int32_t* targets, const float* gLoss,
                           float* gLogits, int64_t rows, int64_t v, int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, rows * v, kParMemory)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* pr = probs + r * v;
    float* gr = gLogits + r * v;
    const int32_t t = targets[r];
    if (t < 0) {
      for (int64_t j = 0; j < v; j++) gr[j] = 0.0f;
      continue;
    }
    // g * p in float32 rounds exactly like the reference's float64 product rounded on store.
    const float g = gLoss[r];
    const vf vg = vsplat(g);
    int64_t j = 0;
    for (; j + VL <= v; j += VL) vstore(gr + j, vg * vload(pr + j));
    for (; j < v; j++) gr[j] = g * pr[j];
    gr[t] = (float)((double)g * ((double)pr[t] - 1.0));
  }
}

// Softmax, loss and gradient of the mean cross-entropy, one row at a time while it is in cache.
void kCrossEntropyMean(const float* logits, const int32_t* targets, float* losses, float* loss,
                       float* gLogits, int64_t rows, int64_t v, int nt) {
  int64_t count = 0;
  for (int64_t r = 0; r < rows; r++) count += targets[r] >= 0;
  if (count == 0) count = 1;
  const float s = (float)(1.0 / (double)count);
#pragma omp parallel for num_threads(threadsFor(nt, rows * v, kParCompute)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* lr = logits + r * v;
    float* gr = gLogits + r * v;
    const double lse = softmaxRow(lr, gr, v, v);  // the float32 probabilities, in gr
    const int32_t t = targets[r];
    if (t < 0) {
      losses[r] = 0.0f;
      for (int64_t j = 0; j < v; j++) gr[j] = 0.0f;
      continue;
    }
    losses[r] = (float)(lse - lr[t]);
    const float pt = gr[t];
    // s * p in float32 rounds like the reference's float64 product rounded on store.
    const vf vs = vsplat(s);
    int64_t j = 0;
    for (; j + VL <= v; j += VL) vstore(gr + j, vs * vload(gr + j));
    for (; j < v; j++) gr[j] = s * gr[j];
    gr[t] = (float)((double)s * ((double)pt - 1.0));
  }
  double total = 0;
  for (int64_t r = 0; r < rows; r++) total += losses[r];
  loss[0] = (float)(total / (double)count);
}

void kBiasGelu(const float* x, const float* bias, float* out, int64_t rows, int64_t n, int nt) {
#pragma omp parallel for num_threads(threadsFor(nt, rows * n, kParCompute)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * n;
    float* yr = out + r * n;
    int64_t j = 0;
    for (; j + VL <= n; j += VL) vstore(yr + j, vgelu(vload(xr + j) + vload(bias + j)));
    if (j < n) {
      const vf t = vloadPart(xr + j, n - j, 0.0f) + vloadPart(bias + j, n - j, 0.0f);
      vstorePart(yr + j, vgelu(t), n - j);
    }
  }
}

// One pass: every thread a fixed block of rows, gx row by row (fully vectorised) and its column
// sums added at once into the thread's float64 partial gBias (n doubles, in L1), so gx is never
// read back from memory; the partials are combined in thread order. (Interleaving rows and
// column tasks over the whole array walked it with a row-sized stride and ran ~5x slower; the
// two-pass form read gx back from L3.)
void kBiasGeluBackward(const float* x, const float* bias, const float* gy, float* gx, float* gBias,
                       int64_t rows, int64_t n, int nt) {
  const int team = threadsFor(nt, rows * n, kParCompute);
  const int64_t stride = ceilDiv(n, VL) * VL;  // a partial per thread, VL-aligned
  double* partial = (double*)scratch(&tlsDouble, 2 * (int64_t)team * stride);
#pragma omp parallel num_threads(team)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    double* acc = partial + (int64_t)tid * stride;
    for (int64_t j = 0; j < n; j++) acc[j] = 0;
    const int64_t lo = rows * tid / nth, hi = rows * (tid + 1) / nth;
    for (int64_t r = lo; r < hi; r++) {
      const float* xr = x + r * n;
      const float* gyr = gy + r * n;
      float* gxr = gx + r * n;
      int64_t j = 0;
      for (; j + VL <= n; j += VL) {
        const vf g = vgeluGrad(vload(xr + j) + vload(bias + j), vload(gyr + j));
        vstore(gxr + j, g);
        vstored(acc + j, vloadd(acc + j) + widen(g));
      }
      if (j < n) {
        const int64_t w = n - j;
        const vf t = vloadPart(xr + j, w, 0.0f) + vloadPart(bias + j, w, 0.0f);
        const vf g = vgeluGrad(t, vloadPart(gyr + j, w, 0.0f));
        vstorePart(gxr + j, g, w);
        for (int64_t l = 0; l < w; l++) acc[j + l] += g[l];
      }
    }
  }
  for (int64_t j = 0; j < n; j++) {
    double s = 0;
    for (int t = 0; t < team; t++) s += partial[(int64_t)t * stride + j];
    gBias[j] = (float)s;
  }
}

// ---- randomness ----------------------------------------------------------------------------------

void kDropoutMask(float* out, int64_t n, double p, uint32_t seed, int nt) {
  const float keep = (float)(1.0 / (1.0 - p));
  // u = (h >> 8) / 2^24 exactly, so u >= p  <=>  (h >> 8) >= ceil(p * 2^24): an integer test.
  // (h >> 8) < 2^24, so p >= 1 or NaN (u >= p false) keeps nothing and p <= 0 keeps everything.
  uint32_t threshold = 1u << 24;
  if (p <= 0.0) threshold = 0;
  else if (p < 1.0) threshold = (uint32_t)ceil(p * 16777216.0);
#pragma omp parallel num_threads(threadsFor(nt, n, kParMemory))
  {
    int64_t lo, hi;
    threadRange(n, 16, &lo, &hi);
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) {
      // dropoutUniform of backend.ts, all arithmetic mod 2^32.
      uint32_t h = ((uint32_t)i * 0x9e3779b1u) ^ seed;
      h = (h ^ (h >> 16)) * 0x85ebca6bu;
      h = (h ^ (h >> 13)) * 0xc2b2ae35u;
      h = h ^ (h >> 16);
      out[i] = (h >> 8) >= threshold ? keep : 0.0f;
    }
  }
}

// ---- convolution ------------------------------------------------------------------------------------

void kIm2col(const float* x, float* cols, const ConvGeom* gp, int nt) {
  const ConvGeom g = *gp;
  const int64_t colLen = g.ho * g.wo, planes = g.n * g.c;
#pragma omp parallel for num_threads(threadsFor(nt, planes * g.kh * g.kw * colLen, kParMemory)) \
    schedule(static)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float* plane = x + pl * g.h * g.w;
    float* rowOut = cols + pl * g.kh * g.kw * colLen;
    for (int64_t ky = 0; ky < g.kh; ky++) {
      for (int64_t kx = 0; kx < g.kw; kx++, rowOut += colLen) {
        for (int64_t oy = 0; oy < g.ho; oy++) {
          float* dst = rowOut + oy * g.wo;
          const int64_t iy = oy * g.stride - g.pad + ky;
          if (iy < 0 || iy >= g.h) {
            for (int64_t ox = 0; ox < g.wo; ox++) dst[ox] = 0.0f;
            continue;
          }
          const float* src = plane + iy * g.w;
          for (int64_t ox = 0; ox < g.wo; ox++) {
            const int64_t ix = ox * g.stride - g.pad + kx;
            dst[ox] = (ix >= 0 && ix < g.w) ? src[ix] : 0.0f;
          }
        }
      }
    }
  }
}

void kCol2im(const float* cols, float* x, const ConvGeom* gp, int nt) {
  const ConvGeom g = *gp;
  const int64_t colLen = g.ho * g.wo, planes = g.n * g.c, hw = g.h * g.w;
  // One input plane per task; its contributions summed in float64 in the reference's order.
#pragma omp parallel for num_threads(threadsFor(nt, planes * g.kh * g.kw * colLen, kParMemory)) \
    schedule(static)
  for (int64_t pl = 0; pl < planes; pl++) {
    double* acc = (double*)scratch(&tlsDouble, 2 * hw);
    for (int64_t e = 0; e < hw; e++) acc[e] = 0;
    const float* rowIn = cols + pl * g.kh * g.kw * colLen;
    for (int64_t ky = 0; ky < g.kh; ky++) {
      for (int64_t kx = 0; kx < g.kw; kx++, rowIn += colLen) {
        for (int64_t oy = 0; oy < g.ho; oy++) {
          const int64_t iy = oy * g.stride - g.pad + ky;
          if (iy < 0 || iy >= g.h) continue;
          double* dst = acc + iy * g.w;
          const float* src = rowIn + oy * g.wo;
          for (int64_t ox = 0; ox < g.wo; ox++) {
            const int64_t ix = ox * g.stride - g.pad + kx;
            if (ix >= 0 && ix < g.w) dst[ix] += src[ox];
          }
        }
      }
    }
    float* plane = x + pl * hw;
    for (int64_t e = 0; e < hw; e++) plane[e] = (float)(plane[e] + acc[e]);
  }
}

// ---- vector quantisation --------------------------------------------------------------------------

/** The exhaustive search of one row: the lowest index of the least float64 squared distance. */
inline void nearestCodeRow(const float* zr, const float* codebook, int64_t k, int64_t d,
                           int32_t* idx, float* dist) {
  int32_t best = 0;
  double bestDist = INFINITY;
  for (int64_t code = 0; code < k; code++) {
    const double sq = sqDistD(zr, codebook + code * d, d);
    if (sq < bestDist) {
      bestDist = sq;
      best = (int32_t)code;
    }
  }
  *idx = best;
  *dist = (float)bestDist;
}

__thread Scratch tlsNearest = {nullptr, 0};

/**
 * Nearest code of each row, exactly as the exhaustive float64 search (nearestCodeRow) finds it,
 * but screened by a float32 GEMM: for a block of rows, dots = z . codebook^T, and
 * a_c = |c|^2 - 2 z.c differs from |z - c|^2 - |z|^2 by at most e_c, a bound on the float32 dot
 * product's rounding (8 (d + 2) 2^-24 |z| |c|, several times the classical gamma_d |z| |c|) plus
 * a relative 1e-9 of |z|^2 + |c|^2 for the float64 sums. Only the codes with a_c - e_c <= min
 * (a + e) can be nearest; each is measured exactly (sqDistD), in index order, so the result
 * (index, lowest on exact ties, and distance) equals the exhaustive search's. About 40 GEMM
 * flops per row and code instead of float64 differences; non-finite rows (or a codebook with a
 * non-finite row) take the exhaustive path.
 */
void kNearestCode(const float* z, const float* codebook, int32_t* idx, float* dist, int64_t rows,
                  int64_t k, int64_t d, int nt) {
  const int64_t kBlockRows = 64;
  bool screened = k >= 32 && rows >= 8 && d >= 4;
  double* norms = nullptr;  // [2k]: |c|^2 then |c|
  if (screened) {
    norms = (double*)malloc((size_t)(2 * k) * sizeof(double));
    if (norms == nullptr) screened = false;
  }
  if (screened) {
    for (int64_t c = 0; c < k && screened; c++) {
      double s = 0.0;
      const float* cr = codebook + c * d;
      for (int64_t j = 0; j < d; j++) s += (double)cr[j] * (double)cr[j];
      if (!std::isfinite(s)) screened = false;
      norms[c] = s;
      norms[k + c] = sqrt(s);
    }
  }
  if (!screened) {
    free(norms);
#pragma omp parallel for num_threads(threadsFor(nt, rows * k * d, kParCompute)) schedule(static)
    for (int64_t r = 0; r < rows; r++) nearestCodeRow(z + r * d, codebook, k, d, idx + r, dist + r);
    return;
  }
  const double gamma = 8.0 * (double)(d + 2) * 0x1p-24;
  const int64_t blocks = ceilDiv(rows, kBlockRows);
#pragma omp parallel for num_threads(threadsFor(nt, rows * k * d, kParCompute)) schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t r0 = b * kBlockRows, m = min64(kBlockRows, rows - r0);
    GemmItem g;
    g.m = m;
    g.n = k;
    g.k = d;
    g.transA = 0;
    g.transB = 1;
    g.lda = d;
    g.ldb = d;
    g.ldc = k;
    g.alpha = 1.0f;
    g.beta = 0;
    g.upper = 0;
    float* dots = scratch(&tlsNearest, m * k);
    float* Bp = scratch(&tlsPackB, packBFloatsFor(g, 1));
    gemmAny(z + r0 * d, codebook, dots, g, 0, 1, Bp, nullptr);
    for (int64_t i = 0; i < m; i++) {
      const int64_t r = r0 + i;
      const float* zr = z + r * d;
      double z2 = 0.0;
      for (int64_t j = 0; j < d; j++) z2 += (double)zr[j] * (double)zr[j];
      if (!std::isfinite(z2)) {
        nearestCodeRow(zr, codebook, k, d, idx + r, dist + r);
        continue;
      }
      const double zn = sqrt(z2);
      const float* dr = dots + i * k;
      // a_c and its bound e_c, as in the comment above.
      const auto screen = [&](int64_t c, double* a, double* e) {
        *a = norms[c] - 2.0 * (double)dr[c];
        *e = gamma * zn * norms[k + c] + 1e-9 * (z2 + norms[c]);
      };
      double upper = INFINITY;
      for (int64_t c = 0; c < k; c++) {
        double a, e;
        screen(c, &a, &e);
        if (a + e < upper) upper = a + e;
      }
      int32_t best = -1;
      double bestDist = INFINITY;
      for (int64_t c = 0; c < k; c++) {
        double a, e;
        screen(c, &a, &e);
        if (!(a - e <= upper)) continue;
        const double sq = sqDistD(zr, codebook + c * d, d);
        if (sq < bestDist) {
          bestDist = sq;
          best = (int32_t)c;
        }
      }
      if (best < 0) {
        nearestCodeRow(zr, codebook, k, d, idx + r, dist + r);  // (not reached with finite data)
        continue;
      }
      idx[r] = best;
      dist[r] = (float)bestDist;
    }
  }
  free(norms);
}

// ---- optimiser --------------------------------------------------------------------------------------

void kAdam(float* p, const float* g, float* m, float* v, int64_t n, const AdamArgs* a, int nt) {
  const double lr = a->lr, b1 = a->beta1, b2 = a->beta2, eps = a->eps, scale = a->gradScale;
  const double wdL2 = a->decoupled ? 0.0 : a->weightDecay;
  const double wdDecoupled = a->decoupled ? a->weightDecay : 0.0;
  const double bias1 = 1.0 - pow(b1, a->step), bias2 = 1.0 - pow(b2, a->step);
#pragma omp parallel num_threads(threadsFor(nt, n, kParMemory / 4))
  {
    int64_t lo, hi;
    threadRange(n, 16, &lo, &hi);
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) {
      const double param = p[i];
      const double grad = scale * g[i] + wdL2 * param;
      const double mNew = b1 * m[i] + (1.0 - b1) * grad;
      const double vNew = b2 * v[i] + (1.0 - b2) * grad * grad;
      m[i] = (float)mNew;
      v[i] = (float)vNew;
      const double mHat = mNew / bias1, vHat = vNew / bias2;
      p[i] = (float)(param - lr * (mHat / (sqrt(vHat) + eps) + wdDecoupled * param));
    }
  }
}

// Global-norm clipping (per-tensor float64 sums added in tensor order, as the optimiser did on
// the host) and the Adam update of every tensor, in one call.
void kAdamMulti(float* const* p, const float* const* g, float* const* m, float* const* v,
                const int64_t* sizes, const double* weightDecays, int64_t count,
                const AdamArgs* base, double clipNorm, float* normOut, int nt) {
  double gradScale = 1.0;
  normOut[0] = 0.0f;
  if (clipNorm > 0) {
    double sum = 0;
    for (int64_t i = 0; i < count; i++) sum += kSumSquares(g[i], sizes[i], nt);
    const double norm = sqrt(sum);
    normOut[0] = (float)norm;
    if (norm > clipNorm) gradScale = clipNorm / (norm + 1e-6);
  }
  for (int64_t i = 0; i < count; i++) {
    AdamArgs a = *base;
    a.weightDecay = weightDecays[i];
    a.gradScale = gradScale;
    kAdam(p[i], g[i], m[i], v[i], sizes[i], &a, nt);
  }
}

#include "attention.inl"

const KernelTable kTable = {
    MMGPT_ISA_NAME,
    kMR,
    kNR,
    kFill32,
    kCopyBlock,
    kBinary,
    kUnary,
    kUnaryBackward,
    kAffine,
    kAxpy,
    kSumSquares,
    kSumAxis,
    kBroadcastAxis,
    kPermute,
    kMatmul,
    kGather,
    kScatterAdd,
    kLayerNorm,
    kLayerNormBackward,
    kSoftmax,
    kSoftmaxBackward,
    kCrossEntropy,
    kCrossEntropyBackward,
    kDropoutMask,
    kIm2col,
    kCol2im,
    kNearestCode,
    kAdam,
    kCrossEntropyMean,
    kBiasGelu,
    kBiasGeluBackward,
    kAddLayerNorm,
    kAdamMulti,
    kAttention,
    kAttentionBackward,
};

}  // namespace

extern "C" const mmgpt::KernelTable* MMGPT_TABLE_FN(void) { return &kTable; }

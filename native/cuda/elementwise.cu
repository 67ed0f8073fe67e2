// CUDA kernels of the Backend interface (src/engine/backend.ts): fill, copyBlock, binary,
// unary (+ backward), affine, axpy, sumSquares, sumAxis, broadcastAxis, permute, dropoutMask, adam;
// the fused biasGelu (+ backward) and adamMulti (multi-tensor Adam with the global-norm clip);
// copyBlockAt (cuda only: copyBlock at an offset read from the device, for captured decode steps).
//
// Reference: backends/js.ts (the oracle). Precision follows it: elementwise maths is done in
// float64 and rounded once on store (so binary ops, neg, square, sqrt, relu are bit-identical
// and exp/log/tanh/gelu agree to the last bit but for rare double-rounding cases); every
// reduction accumulates in float64 (sumSquares, sumAxis).
//
// Notable choices:
// - binary and permute first merge axes that are contiguous in every operand and drop size-1
//   axes on the host, so most calls run as rank 1-3; index maths is 32-bit when every offset
//   fits (else int64), grid-stride loops cover any size.
// - Reductions are deterministic: fixed partitions whose partial sums are combined in a fixed
//   order (no atomics), so a run repeats bit for bit. sumAxis splits long axes over blocks
//   (partials in the workspace, combined in order by a second kernel) to fill the device.

#include <math.h>

#include "common.cuh"

using namespace mmgpt_cuda;

namespace {

const double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
const double kGeluA = 0.044715;

/** True when 32-bit index maths is safe for every offset below `limit`. */
inline bool fits32(int64_t limit) { return limit < ((int64_t)1 << 31); }

/** Sum of a block's values (blockDim.x a multiple of 32, <= 1024); valid in warp 0. */
__device__ double blockSum(double v, double* smem32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warpSum(v);
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  double t = (lane < warps) ? smem32[lane] : 0.0;
  if (warp == 0) t = warpSum(t);
  __syncthreads();  // smem32 may be reused by the caller
  return t;
}

// ---- fill, copyBlock ------------------------------------------------------------------------

__global__ void kFill32(uint32_t* out, int64_t n, uint32_t bits) {
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) out[i] = bits;
}

template <typename I>
__global__ void kCopyBlock(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, I total,
                           I block, I srcAxis, I srcOffset, I dstAxis, I dstOffset, I inner,
                           int accumulate) {
  for (I i = globalIndex<I>(); i < total; i += globalStride<I>()) {
    const I o = i / block, e = i - o * block;
    const I s = (o * srcAxis + srcOffset) * inner + e;
    const I d = (o * dstAxis + dstOffset) * inner + e;
    if (accumulate) {
      reinterpret_cast<float*>(dst)[d] += reinterpret_cast<const float*>(src)[s];
    } else {
      dst[d] = src[s];
    }
  }
}

// copyBlock with the destination offset read from the device (every thread reads the same word):
// an offset outside [0, dstAxis - count] writes nothing and is recorded as a bad index.
__global__ void kCopyBlockAt(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst,
                             int64_t total, int64_t block, int64_t srcAxis, int64_t srcOffset,
                             int64_t dstAxis, const int32_t* __restrict__ dstOffset, int64_t count,
                             int64_t inner, unsigned long long* bad) {
  const int32_t at = *dstOffset;
  if (at < 0 || (int64_t)at + count > dstAxis) {
    if (globalIndex<int64_t>() == 0) recordBadIndex(bad, 0, at);
    return;
  }
  for (int64_t i = globalIndex<int64_t>(); i < total; i += globalStride<int64_t>()) {
    const int64_t o = i / block, e = i - o * block;
    dst[(o * dstAxis + at) * inner + e] = src[(o * srcAxis + srcOffset) * inner + e];
  }
}

// ---- binary -----------------------------------------------------------------------------------

struct Strided {
  int rank;
  int64_t shape[MMGPT_CUDA_MAX_RANK];
  int64_t a[MMGPT_CUDA_MAX_RANK];
  int64_t b[MMGPT_CUDA_MAX_RANK];
};

template <typename I>
__global__ void kBinary(int op, const float* __restrict__ a, const float* __restrict__ b,
                        float* __restrict__ out, I n, Strided s) {
  for (I i = globalIndex<I>(); i < n; i += globalStride<I>()) {
    I rem = i, ia = 0, ib = 0;
    for (int d = s.rank - 1; d > 0; --d) {
      const I len = (I)s.shape[d];
      const I q = rem / len;
      const I idx = rem - q * len;
      rem = q;
      ia += idx * (I)s.a[d];
      ib += idx * (I)s.b[d];
    }
    ia += rem * (I)s.a[0];
    ib += rem * (I)s.b[0];
    const float x = a[ia], y = b[ib];
    float r;
    switch (op) {
      case mmgpt::BIN_ADD: r = x + y; break;
      case mmgpt::BIN_SUB: r = x - y; break;
      case mmgpt::BIN_MUL: r = x * y; break;
      default: r = x / y; break;  // IEEE division (no fast math)
    }
    out[i] = r;
  }
}

// ---- unary ---------------------------------------------------------------------------------------

__device__ __forceinline__ double unaryForward(int op, double x) {
  switch (op) {
    case mmgpt::UN_EXP: return exp(x);
    case mmgpt::UN_LOG: return log(x);
    case mmgpt::UN_TANH: return tanh(x);
    case mmgpt::UN_RELU: return x > 0.0 ? x : 0.0;
    case mmgpt::UN_GELU: return 0.5 * x * (1.0 + tanh(kGeluC * (x + kGeluA * x * x * x)));
    case mmgpt::UN_NEG: return -x;
    case mmgpt::UN_SQRT: return sqrt(x);
    default: return x * x;  // UN_SQUARE
  }
}

__device__ __forceinline__ double unaryGrad(int op, double x, double y, double gy) {
  switch (op) {
    case mmgpt::UN_EXP: return gy * y;
    case mmgpt::UN_LOG: return gy / x;
    case mmgpt::UN_TANH: return gy * (1.0 - y * y);
    case mmgpt::UN_RELU: return x > 0.0 ? gy : 0.0;
    case mmgpt::UN_GELU: {
      const double x2 = x * x;
      const double t = tanh(kGeluC * (x + kGeluA * x2 * x));
      const double dInner = kGeluC * (1.0 + 3.0 * kGeluA * x2);
      return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dInner);
    }
    case mmgpt::UN_NEG: return -gy;
    case mmgpt::UN_SQRT: return (gy * 0.5) / y;
    default: return 2.0 * x * gy;  // UN_SQUARE
  }
}

__global__ void kUnary(int op, const float* __restrict__ x, float* __restrict__ out, int64_t n) {
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    out[i] = (float)unaryForward(op, (double)x[i]);
  }
}

__global__ void kUnaryBackward(int op, const float* __restrict__ x, const float* __restrict__ y,
                               const float* __restrict__ gy, float* __restrict__ gx, int64_t n) {
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    gx[i] = (float)unaryGrad(op, (double)x[i], (double)y[i], (double)gy[i]);
  }
}

// out may alias x: each element is read before it is written by the same thread.
__global__ void kAffine(const float* x, float* out, int64_t n, double alpha, double beta) {
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    out[i] = (float)(alpha * (double)x[i] + beta);
  }
}

__global__ void kAxpy(const float* __restrict__ x, float* __restrict__ y, int64_t n, double alpha) {
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    y[i] = (float)((double)y[i] + alpha * (double)x[i]);
  }
}

// ---- sumSquares: per-block partials, then one block combines them in order --------------------

__global__ void kSumSquaresPartial(const float* __restrict__ x, int64_t n, double* partial) {
  __shared__ double smem[32];
  double acc = 0.0;
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    const double v = (double)x[i];
    acc += v * v;  // exact: a float squared fits in a double
  }
  acc = blockSum(acc, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void kSumPartials(const double* __restrict__ partial, int count, double* out) {
  __shared__ double smem[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = blockSum(acc, smem);
  if (threadIdx.x == 0) *out = acc;
}

// ---- sumAxis ------------------------------------------------------------------------------------

// inner >= 32: block (32, 8) sums 32 adjacent columns i over the axis chunk [s*chunk, +chunk);
// the 8 row lanes are combined in order. partial == null: writes out; else partial[o, s, i].
__global__ void kSumAxisCols(const float* __restrict__ x, float* __restrict__ out,
                             double* __restrict__ partial, int64_t outer, int64_t axis,
                             int64_t inner, int64_t chunk, int accumulate) {
  __shared__ double smem[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = (int64_t)blockIdx.x * 32 + tx;
  const int64_t s = blockIdx.y, splits = gridDim.y;
  const int64_t j0 = s * chunk;
  const int64_t j1 = j0 + chunk < axis ? j0 + chunk : axis;
  for (int64_t o = blockIdx.z; o < outer; o += gridDim.z) {
    double acc = 0.0;
    if (i < inner) {
      const float* base = x + o * axis * inner + i;
      for (int64_t j = j0 + ty; j < j1; j += 8) acc += (double)base[j * inner];
    }
    smem[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && i < inner) {
      double t = 0.0;
#pragma unroll
      for (int r = 0; r < 8; r++) t += smem[r][tx];
      if (partial != nullptr) {
        partial[(o * splits + s) * inner + i] = t;
      } else {
        const int64_t q = o * inner + i;
        out[q] = accumulate ? (float)((double)out[q] + t) : (float)t;
      }
    }
    __syncthreads();
  }
}

__global__ void kSumAxisFinish(const double* __restrict__ partial, float* __restrict__ out,
                               int64_t outer, int64_t splits, int64_t inner, int accumulate) {
  const int64_t total = outer * inner;
  for (int64_t q = globalIndex<int64_t>(); q < total; q += globalStride<int64_t>()) {
    const int64_t o = q / inner, i = q - o * inner;
    double t = 0.0;
    for (int64_t s = 0; s < splits; s++) t += partial[(o * splits + s) * inner + i];
    out[q] = accumulate ? (float)((double)out[q] + t) : (float)t;
  }
}

// inner < 32: one warp per output (o, i), lanes striding over the axis.
__global__ void kSumAxisWarp(const float* __restrict__ x, float* __restrict__ out, int64_t outer,
                             int64_t axis, int64_t inner, int accumulate) {
  const int lane = threadIdx.x & 31;
  const int64_t warpsPerGrid = (int64_t)gridDim.x * (blockDim.x >> 5);
  const int64_t total = outer * inner;
  for (int64_t q = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); q < total;
       q += warpsPerGrid) {
    const int64_t o = q / inner, i = q - o * inner;
    const float* base = x + o * axis * inner + i;
    double acc = 0.0;
    for (int64_t j = lane; j < axis; j += 32) acc += (double)base[j * inner];
    acc = warpSum(acc);
    if (lane == 0) out[q] = accumulate ? (float)((double)out[q] + acc) : (float)acc;
  }
}

// inner < 32 and a long axis: one block per output.
__global__ void kSumAxisBlock(const float* __restrict__ x, float* __restrict__ out, int64_t outer,
                              int64_t axis, int64_t inner, int accumulate) {
  __shared__ double smem[32];
  const int64_t total = outer * inner;
  for (int64_t q = blockIdx.x; q < total; q += gridDim.x) {
    const int64_t o = q / inner, i = q - o * inner;
    const float* base = x + o * axis * inner + i;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < axis; j += blockDim.x) acc += (double)base[j * inner];
    acc = blockSum(acc, smem);
    if (threadIdx.x == 0) out[q] = accumulate ? (float)((double)out[q] + acc) : (float)acc;
  }
}

template <typename I>
__global__ void kBroadcastAxis(const float* __restrict__ x, float* __restrict__ out, I total,
                               I axisInner, I inner) {
  for (I i = globalIndex<I>(); i < total; i += globalStride<I>()) {
    const I o = i / axisInner;
    const I ii = i - (i / inner) * inner;
    out[i] = x[o * inner + ii];
  }
}

// ---- permute: out[i] = x[sum_d idx_d(i) * walk[d]] over the (merged) output shape -------------

struct Walk {
  int rank;
  int64_t shape[MMGPT_CUDA_MAX_RANK];
  int64_t walk[MMGPT_CUDA_MAX_RANK];
};

template <typename I>
__global__ void kPermute(const uint32_t* __restrict__ x, uint32_t* __restrict__ out, I n, Walk w) {
  for (I i = globalIndex<I>(); i < n; i += globalStride<I>()) {
    I rem = i, src = 0;
    for (int d = w.rank - 1; d > 0; --d) {
      const I len = (I)w.shape[d];
      const I q = rem / len;
      src += (rem - q * len) * (I)w.walk[d];
      rem = q;
    }
    src += rem * (I)w.walk[0];
    out[i] = x[src];
  }
}

// ---- dropout, adam ---------------------------------------------------------------------------------

// seedParam: the seed in a graph's parameter block (null: `seed`).
__global__ void kDropoutMask(float* __restrict__ out, int64_t n, uint32_t threshold, uint32_t seed,
                             const double* __restrict__ seedParam, float keep) {
  if (seedParam != nullptr) seed = (uint32_t)seedParam[0];
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    // dropoutUniform of backend.ts, all arithmetic mod 2^32.
    uint32_t h = ((uint32_t)i * 0x9e3779b1u) ^ seed;
    h = (h ^ (h >> 16)) * 0x85ebca6bu;
    h = (h ^ (h >> 13)) * 0xc2b2ae35u;
    h = h ^ (h >> 16);
    out[i] = (h >> 8) >= threshold ? keep : 0.0f;
  }
}

struct AdamConsts {
  double lr, b1, b2, eps, scale, wdL2, wdDecoupled, bias1, bias2;
};

// hyper: [lr, bias1, bias2] in a graph's parameter block (null: those of c).
__global__ void kAdam(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                      float* __restrict__ v, int64_t n, AdamConsts c,
                      const double* __restrict__ hyper) {
  if (hyper != nullptr) {
    c.lr = hyper[0];
    c.bias1 = hyper[1];
    c.bias2 = hyper[2];
  }
  for (int64_t i = globalIndex<int64_t>(); i < n; i += globalStride<int64_t>()) {
    const double param = p[i];
    const double grad = c.scale * (double)g[i] + c.wdL2 * param;
    const double mNew = c.b1 * (double)m[i] + (1.0 - c.b1) * grad;
    const double vNew = c.b2 * (double)v[i] + (1.0 - c.b2) * grad * grad;
    m[i] = (float)mNew;
    v[i] = (float)vNew;
    const double mHat = mNew / c.bias1, vHat = vNew / c.bias2;
    p[i] = (float)(param - c.lr * (mHat / (sqrt(vHat) + c.eps) + c.wdDecoupled * param));
  }
}

// ---- fused: bias + GeLU, multi-tensor Adam with the global-norm clip -------------------------------

__global__ void kBiasGelu(const float* __restrict__ x, const float* __restrict__ bias,
                          float* __restrict__ out, int64_t total, int64_t n) {
  for (int64_t i = globalIndex<int64_t>(); i < total; i += globalStride<int64_t>()) {
    const float t = x[i] + bias[i % n];  // float32, as binary add
    out[i] = (float)unaryForward(mmgpt::UN_GELU, (double)t);
  }
}

__global__ void kBiasGeluBackward(const float* __restrict__ x, const float* __restrict__ bias,
                                  const float* __restrict__ gy, float* __restrict__ gx,
                                  int64_t total, int64_t n) {
  for (int64_t i = globalIndex<int64_t>(); i < total; i += globalStride<int64_t>()) {
    const float t = x[i] + bias[i % n];
    gx[i] = (float)unaryGrad(mmgpt::UN_GELU, (double)t, 0.0, (double)gy[i]);
  }
}

// Tensors per multi-tensor launch: their pointers travel as one kernel argument (< 4 KiB), so a
// step needs no pointer table in device memory and no host-to-device copy.
const int kMultiMax = 24;
// Elements per block of the multi-tensor kernels (each block works inside one tensor).
const int64_t kMultiBlockElems = 4096;

struct MultiTensors {
  float* p[kMultiMax];
  const float* g[kMultiMax];
  float* m[kMultiMax];
  float* v[kMultiMax];
  int64_t n[kMultiMax];
  double wd[kMultiMax];
  int blockStart[kMultiMax + 1];  // tensor t owns blocks [blockStart[t], blockStart[t + 1])
  int count;
};

/** The tensor of block b and the first element of its range. */
__device__ __forceinline__ int multiTensorOf(const MultiTensors& t, int b, int64_t* start) {
  int i = 0;
  while (i + 1 < t.count && b >= t.blockStart[i + 1]) i++;
  *start = (int64_t)(b - t.blockStart[i]) * kMultiBlockElems;
  return i;
}

// partial[first + b] = the sum of squares of block b's gradient range (float64).
__global__ void kMultiSumSquares(MultiTensors t, double* __restrict__ partial) {
  __shared__ double smem[32];
  int64_t start;
  const int i = multiTensorOf(t, blockIdx.x, &start);
  const int64_t end = start + kMultiBlockElems < t.n[i] ? start + kMultiBlockElems : t.n[i];
  double acc = 0.0;
  for (int64_t e = start + threadIdx.x; e < end; e += blockDim.x) {
    const double v = (double)t.g[i][e];
    acc += v * v;
  }
  acc = blockSum(acc, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// norm = sqrt(sum of the partials); scale[0] = the clip's gradient scale; normOut[0] = norm.
__global__ void kMultiNormFinish(const double* __restrict__ partial, int count, double clipNorm,
                                 double* __restrict__ scale, float* __restrict__ normOut) {
  __shared__ double smem[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = blockSum(acc, smem);
  if (threadIdx.x == 0) {
    const double norm = sqrt(acc);
    normOut[0] = (float)norm;
    scale[0] = norm > clipNorm ? clipNorm / (norm + 1e-6) : 1.0;
  }
}

// Adam on block b's range; the gradient scale comes from the device (null: 1), and so do
// [lr, bias1, bias2] in a captured graph (hyper; null: those of c).
__global__ void kAdamMulti(MultiTensors t, AdamConsts c, const double* __restrict__ scale,
                           const double* __restrict__ hyper) {
  if (hyper != nullptr) {
    c.lr = hyper[0];
    c.bias1 = hyper[1];
    c.bias2 = hyper[2];
  }
  int64_t start;
  const int i = multiTensorOf(t, blockIdx.x, &start);
  const int64_t end = start + kMultiBlockElems < t.n[i] ? start + kMultiBlockElems : t.n[i];
  const double gs = scale != nullptr ? scale[0] : 1.0;
  const double wdL2 = c.wdL2 != 0.0 ? t.wd[i] : 0.0;
  const double wdDecoupled = c.wdDecoupled != 0.0 ? t.wd[i] : 0.0;
  float* p = t.p[i];
  const float* g = t.g[i];
  float* m = t.m[i];
  float* v = t.v[i];
  for (int64_t e = start + threadIdx.x; e < end; e += blockDim.x) {
    const double param = p[e];
    const double grad = gs * (double)g[e] + wdL2 * param;
    const double mNew = c.b1 * (double)m[e] + (1.0 - c.b1) * grad;
    const double vNew = c.b2 * (double)v[e] + (1.0 - c.b2) * grad * grad;
    m[e] = (float)mNew;
    v[e] = (float)vNew;
    const double mHat = mNew / c.bias1, vHat = vNew / c.bias2;
    p[e] = (float)(param - c.lr * (mHat / (sqrt(vHat) + c.eps) + wdDecoupled * param));
  }
}

/** Groups tensors [first, first + count) into `t`; returns its number of blocks. */
int packMulti(MultiTensors* t, float* const* p, const float* const* g, float* const* m,
              float* const* v, const int64_t* sizes, const double* weightDecays, int64_t first,
              int count) {
  int blocks = 0;
  t->count = count;
  for (int i = 0; i < count; i++) {
    const int64_t k = first + i;
    t->p[i] = p[k];
    t->g[i] = g[k];
    t->m[i] = m[k];
    t->v[i] = v[k];
    t->n[i] = sizes[k];
    t->wd[i] = weightDecays[k];
    t->blockStart[i] = blocks;
    blocks += (int)((sizes[k] + kMultiBlockElems - 1) / kMultiBlockElems);
  }
  t->blockStart[count] = blocks;
  return blocks;
}

}  // namespace

extern "C" {

int mmgpt_cuda_bias_gelu(const float* x, const float* bias, float* out, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  if (total <= 0) return 0;
  kBiasGelu<<<blocksFor(total), kThreads, 0, gStream>>>(x, bias, out, total, n);
  MMGPT_CHECK_LAUNCH("biasGelu");
  return 0;
}

int mmgpt_cuda_bias_gelu_backward(const float* x, const float* bias, const float* gy, float* gx,
                                  float* gBias, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  if (total > 0) {
    kBiasGeluBackward<<<blocksFor(total), kThreads, 0, gStream>>>(x, bias, gy, gx, total, n);
    MMGPT_CHECK_LAUNCH("biasGeluBackward");
  }
  // gBias: the column sums of gx (sumAxis's deterministic reduction), written.
  return mmgpt_cuda_sum_axis(gx, gBias, 1, rows, n, 0);
}

int mmgpt_cuda_adam_multi(float* const* p, const float* const* g, float* const* m,
                          float* const* v, const int64_t* sizes, const double* weightDecays,
                          int64_t count, const mmgpt::AdamArgs* a, double clipNorm,
                          float* normOut) {
  AdamConsts c;
  c.lr = a->lr;
  c.b1 = a->beta1;
  c.b2 = a->beta2;
  c.eps = a->eps;
  c.scale = 1.0;
  // Flags: which form of weight decay (the per-tensor values travel in MultiTensors.wd).
  c.wdL2 = a->decoupled ? 0.0 : 1.0;
  c.wdDecoupled = a->decoupled ? 1.0 : 0.0;
  c.bias1 = adamBiasCorrection(a->beta1, a->step);
  c.bias2 = adamBiasCorrection(a->beta2, a->step);
  const double* hyper = graphAdamParams(a->lr, a->beta1, a->beta2);  // null outside a capture
  int64_t totalBlocks = 0;
  for (int64_t i = 0; i < count; i++) {
    totalBlocks += (sizes[i] + kMultiBlockElems - 1) / kMultiBlockElems;
  }
  if (totalBlocks > (1 << 30)) return setError(2, "adamMulti: too many elements");
  // Workspace: [totalBlocks partial sums | the gradient scale].
  double* partial = static_cast<double*>(workspace((size_t)(totalBlocks + 1) * sizeof(double)));
  if (partial == nullptr) return 1;
  double* scale = partial + totalBlocks;
  MultiTensors t;
  if (clipNorm > 0) {
    int64_t offset = 0;
    for (int64_t first = 0; first < count; first += kMultiMax) {
      const int n = (int)(count - first < kMultiMax ? count - first : kMultiMax);
      const int blocks = packMulti(&t, p, g, m, v, sizes, weightDecays, first, n);
      if (blocks > 0) {
        kMultiSumSquares<<<(unsigned)blocks, kThreads, 0, gStream>>>(t, partial + offset);
        MMGPT_CHECK_LAUNCH("adamMulti (norm)");
      }
      offset += blocks;
    }
    kMultiNormFinish<<<1, 1024, 0, gStream>>>(partial, (int)totalBlocks, clipNorm, scale, normOut);
    MMGPT_CHECK_LAUNCH("adamMulti (norm combine)");
  } else {
    if (int rc = mmgpt_cuda_fill32(reinterpret_cast<uint32_t*>(normOut), 1, 0u)) return rc;
  }
  for (int64_t first = 0; first < count; first += kMultiMax) {
    const int n = (int)(count - first < kMultiMax ? count - first : kMultiMax);
    const int blocks = packMulti(&t, p, g, m, v, sizes, weightDecays, first, n);
    if (blocks == 0) continue;
    kAdamMulti<<<(unsigned)blocks, kThreads, 0, gStream>>>(t, c, clipNorm > 0 ? scale : nullptr,
                                                          hyper);
    MMGPT_CHECK_LAUNCH("adamMulti");
  }
  return 0;
}

int mmgpt_cuda_fill32(uint32_t* out, int64_t n, uint32_t bits) {
  if (n <= 0) return 0;
  kFill32<<<blocksFor(n), kThreads, 0, gStream>>>(out, n, bits);
  MMGPT_CHECK_LAUNCH("fill");
  return 0;
}

int mmgpt_cuda_copy_block(const uint32_t* src, uint32_t* dst, int64_t outer, int64_t srcAxis,
                          int64_t srcOffset, int64_t dstAxis, int64_t dstOffset, int64_t count,
                          int64_t inner, int accumulate) {
  const int64_t block = count * inner, total = outer * block;
  if (total <= 0) return 0;
  const int64_t span = outer * (srcAxis > dstAxis ? srcAxis : dstAxis) * inner;
  if (fits32(span)) {
    kCopyBlock<uint32_t><<<blocksFor(total), kThreads, 0, gStream>>>(
        src, dst, (uint32_t)total, (uint32_t)block, (uint32_t)srcAxis, (uint32_t)srcOffset,
        (uint32_t)dstAxis, (uint32_t)dstOffset, (uint32_t)inner, accumulate);
  } else {
    kCopyBlock<int64_t><<<blocksFor(total), kThreads, 0, gStream>>>(
        src, dst, total, block, srcAxis, srcOffset, dstAxis, dstOffset, inner, accumulate);
  }
  MMGPT_CHECK_LAUNCH("copyBlock");
  return 0;
}

int mmgpt_cuda_copy_block_at(const uint32_t* src, uint32_t* dst, int64_t outer, int64_t srcAxis,
                             int64_t srcOffset, int64_t dstAxis, const int32_t* dstOffset,
                             int64_t count, int64_t inner) {
  const int64_t block = count * inner, total = outer * block;
  unsigned long long* bad = beginIndexCheck();
  if (bad == nullptr) return 1;
  kCopyBlockAt<<<blocksFor(total), kThreads, 0, gStream>>>(src, dst, total, block, srcAxis,
                                                           srcOffset, dstAxis, dstOffset, count,
                                                           inner, bad);
  MMGPT_CHECK_LAUNCH("copyBlockAt");
  return endIndexCheck(bad, CHECK_OFFSET, "copyBlockAt", dstAxis - count);
}

int mmgpt_cuda_binary(int op, const float* a, const float* b, float* out, int rank,
                      const int64_t* shape, const int64_t* aStrides, const int64_t* bStrides) {
  int64_t n = 1;
  for (int d = 0; d < rank; d++) n *= shape[d];
  if (n == 0) return 0;
  // Merge axes from the innermost outwards: axis d folds into the current one when it steps
  // exactly over it in both operands; size-1 axes vanish. Kept outermost-first in `s`.
  int64_t sh[64], sa[64], sb[64];
  int r = 0;
  for (int d = rank - 1; d >= 0; d--) {
    if (shape[d] == 1) continue;
    if (r > 0 && aStrides[d] == sa[r - 1] * sh[r - 1] && bStrides[d] == sb[r - 1] * sh[r - 1]) {
      sh[r - 1] *= shape[d];
      continue;
    }
    if (r == 64) return setError(2, "binary: rank %d is too large", rank);
    sh[r] = shape[d];
    sa[r] = aStrides[d];
    sb[r] = bStrides[d];
    r++;
  }
  if (r > MMGPT_CUDA_MAX_RANK) {
    return setError(2,
                    "binary: after merging contiguous axes the rank is %d; the cuda backend "
                    "supports at most %d",
                    r, MMGPT_CUDA_MAX_RANK);
  }
  Strided s;
  if (r == 0) {  // every axis has size 1: one element at offset 0
    s.rank = 1;
    s.shape[0] = 1;
    s.a[0] = 0;
    s.b[0] = 0;
  } else {
    s.rank = r;
    for (int d = 0; d < r; d++) {  // reverse into outermost-first order
      s.shape[d] = sh[r - 1 - d];
      s.a[d] = sa[r - 1 - d];
      s.b[d] = sb[r - 1 - d];
    }
  }
  int64_t spanA = 1, spanB = 1;
  for (int d = 0; d < s.rank; d++) {
    spanA += (s.shape[d] - 1) * s.a[d];
    spanB += (s.shape[d] - 1) * s.b[d];
  }
  if (fits32(n) && fits32(spanA) && fits32(spanB)) {
    kBinary<uint32_t><<<blocksFor(n), kThreads, 0, gStream>>>(op, a, b, out, (uint32_t)n, s);
  } else {
    kBinary<int64_t><<<blocksFor(n), kThreads, 0, gStream>>>(op, a, b, out, n, s);
  }
  MMGPT_CHECK_LAUNCH("binary");
  return 0;
}

int mmgpt_cuda_unary(int op, const float* x, float* out, int64_t n) {
  if (n <= 0) return 0;
  kUnary<<<blocksFor(n), kThreads, 0, gStream>>>(op, x, out, n);
  MMGPT_CHECK_LAUNCH("unary");
  return 0;
}

int mmgpt_cuda_unary_backward(int op, const float* x, const float* y, const float* gy, float* gx,
                              int64_t n) {
  if (n <= 0) return 0;
  kUnaryBackward<<<blocksFor(n), kThreads, 0, gStream>>>(op, x, y, gy, gx, n);
  MMGPT_CHECK_LAUNCH("unaryBackward");
  return 0;
}

int mmgpt_cuda_affine(const float* x, float* out, int64_t n, double alpha, double beta) {
  if (n <= 0) return 0;
  kAffine<<<blocksFor(n), kThreads, 0, gStream>>>(x, out, n, alpha, beta);
  MMGPT_CHECK_LAUNCH("affine");
  return 0;
}

int mmgpt_cuda_axpy(const float* x, float* y, int64_t n, double alpha) {
  if (n <= 0) return 0;
  kAxpy<<<blocksFor(n), kThreads, 0, gStream>>>(x, y, n, alpha);
  MMGPT_CHECK_LAUNCH("axpy");
  return 0;
}

int mmgpt_cuda_sum_squares(const float* x, int64_t n, double* result) {
  *result = 0.0;
  if (n <= 0) return 0;
  int64_t blocks = (n + 4 * kThreads - 1) / (4 * kThreads);
  if (blocks > 1024) blocks = 1024;
  double* partial = static_cast<double*>(workspace((size_t)(blocks + 1) * sizeof(double)));
  if (partial == nullptr) return 1;
  kSumSquaresPartial<<<(unsigned)blocks, kThreads, 0, gStream>>>(x, n, partial);
  MMGPT_CHECK_LAUNCH("sumSquares");
  kSumPartials<<<1, 1024, 0, gStream>>>(partial, (int)blocks, partial + blocks);
  MMGPT_CHECK_LAUNCH("sumSquares (combine)");
  double* host = hostScalar();
  if (int rc = checkCall(cudaMemcpyAsync(host, partial + blocks, sizeof(double),
                                         cudaMemcpyDeviceToHost, gStream),
                         "cudaMemcpyAsync (sumSquares)")) {
    return rc;
  }
  if (int rc = syncStream("sumSquares")) return rc;
  *result = *host;
  return 0;
}

int mmgpt_cuda_sum_axis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner,
                        int accumulate) {
  const int64_t outputs = outer * inner;
  if (outputs == 0) return 0;
  if (axis == 0) {  // empty sums: 0, or out unchanged
    if (accumulate) return 0;
    return mmgpt_cuda_fill32(reinterpret_cast<uint32_t*>(out), outputs, 0u);
  }
  if (inner >= 32) {
    const int64_t colBlocks = (inner + 31) / 32;
    const int64_t outerGrid = outer < 65535 ? outer : 65535;
    const int64_t target = 2 * (int64_t)gNumSMs;
    int64_t splits = 1;
    if (colBlocks * outerGrid < target && axis >= 256) {
      splits = (target + colBlocks * outerGrid - 1) / (colBlocks * outerGrid);
      const int64_t maxSplits = (axis + 127) / 128;  // >= 128 rows per block
      if (splits > maxSplits) splits = maxSplits;
      if (splits > 64) splits = 64;
    }
    const int64_t chunk = (axis + splits - 1) / splits;
    splits = (axis + chunk - 1) / chunk;  // no empty chunks
    const dim3 grid((unsigned)colBlocks, (unsigned)splits, (unsigned)outerGrid);
    if (splits == 1) {
      kSumAxisCols<<<grid, dim3(32, 8), 0, gStream>>>(x, out, nullptr, outer, axis, inner, chunk,
                                                      accumulate);
      MMGPT_CHECK_LAUNCH("sumAxis");
      return 0;
    }
    double* partial =
        static_cast<double*>(workspace((size_t)(outer * splits * inner) * sizeof(double)));
    if (partial == nullptr) return 1;
    kSumAxisCols<<<grid, dim3(32, 8), 0, gStream>>>(x, out, partial, outer, axis, inner, chunk,
                                                    accumulate);
    MMGPT_CHECK_LAUNCH("sumAxis (partials)");
    kSumAxisFinish<<<blocksFor(outputs), kThreads, 0, gStream>>>(partial, out, outer, splits,
                                                                 inner, accumulate);
    MMGPT_CHECK_LAUNCH("sumAxis (combine)");
    return 0;
  }
  if (axis >= 1024) {
    const unsigned blocks = (unsigned)(outputs < kMaxBlocks ? outputs : kMaxBlocks);
    kSumAxisBlock<<<blocks, kThreads, 0, gStream>>>(x, out, outer, axis, inner, accumulate);
  } else {
    const int warpsPerBlock = kThreads / 32;
    kSumAxisWarp<<<blocksFor(outputs, warpsPerBlock), kThreads, 0, gStream>>>(x, out, outer, axis,
                                                                              inner, accumulate);
  }
  MMGPT_CHECK_LAUNCH("sumAxis");
  return 0;
}

int mmgpt_cuda_broadcast_axis(const float* x, float* out, int64_t outer, int64_t axis,
                              int64_t inner) {
  const int64_t total = outer * axis * inner;
  if (total == 0) return 0;
  if (fits32(total)) {
    kBroadcastAxis<uint32_t><<<blocksFor(total), kThreads, 0, gStream>>>(
        x, out, (uint32_t)total, (uint32_t)(axis * inner), (uint32_t)inner);
  } else {
    kBroadcastAxis<int64_t><<<blocksFor(total), kThreads, 0, gStream>>>(x, out, total,
                                                                        axis * inner, inner);
  }
  MMGPT_CHECK_LAUNCH("broadcastAxis");
  return 0;
}

int mmgpt_cuda_permute(const uint32_t* x, uint32_t* out, int rank, const int64_t* shape,
                       const int64_t* perm) {
  int64_t n = 1;
  for (int d = 0; d < rank; d++) n *= shape[d];
  if (n == 0) return 0;
  if (rank > 64) return setError(2, "permute: rank %d is too large", rank);
  // Row-major strides of x.
  int64_t xStride[64];
  int64_t st = 1;
  for (int d = rank - 1; d >= 0; d--) {
    xStride[d] = st;
    st *= shape[d];
  }
  // Walk the output axes (input axis perm[d]), skipping size-1 axes; an output axis whose input
  // axis directly follows the previous kept one's (perm[d] == previous + 1, with only size-1
  // axes between them in x) merges into it: together they are one contiguous run of x.
  Walk w;
  w.rank = 0;
  int64_t prevAxis = -2;
  for (int d = 0; d < rank; d++) {
    const int64_t p = perm[d];
    if (shape[p] == 1) continue;
    bool adjacent = w.rank > 0 && p > prevAxis;
    for (int64_t q = prevAxis + 1; adjacent && q < p; q++) adjacent = shape[q] == 1;
    if (adjacent) {
      w.shape[w.rank - 1] *= shape[p];
      w.walk[w.rank - 1] = xStride[p];
    } else {
      if (w.rank == MMGPT_CUDA_MAX_RANK) {
        return setError(2,
                        "permute: after merging contiguous axes the rank exceeds %d (the cuda "
                        "backend's limit)",
                        MMGPT_CUDA_MAX_RANK);
      }
      w.shape[w.rank] = shape[p];
      w.walk[w.rank] = xStride[p];
      w.rank++;
    }
    prevAxis = p;
  }
  if (w.rank == 0) {
    w.rank = 1;
    w.shape[0] = 1;
    w.walk[0] = 0;
  }
  if (fits32(n)) {
    kPermute<uint32_t><<<blocksFor(n), kThreads, 0, gStream>>>(x, out, (uint32_t)n, w);
  } else {
    kPermute<int64_t><<<blocksFor(n), kThreads, 0, gStream>>>(x, out, n, w);
  }
  MMGPT_CHECK_LAUNCH("permute");
  return 0;
}

int mmgpt_cuda_dropout_mask(float* out, int64_t n, double p, uint32_t seed) {
  if (n <= 0) return 0;
  const float keep = (float)(1.0 / (1.0 - p));
  // u = (h >> 8) / 2^24 exactly, so u >= p  <=>  (h >> 8) >= ceil(p * 2^24); p >= 1 or NaN
  // keeps nothing, p <= 0 keeps everything (the cpu kernel's integer test).
  uint32_t threshold = 1u << 24;
  if (p <= 0.0) {
    threshold = 0;
  } else if (p < 1.0) {
    threshold = (uint32_t)ceil(p * 16777216.0);
  }
  const double* seedParam = graphSeedParam(seed);  // null outside a capture
  kDropoutMask<<<blocksFor(n), kThreads, 0, gStream>>>(out, n, threshold, seed, seedParam, keep);
  MMGPT_CHECK_LAUNCH("dropoutMask");
  return 0;
}

int mmgpt_cuda_adam(float* p, const float* g, float* m, float* v, int64_t n,
                    const mmgpt::AdamArgs* a) {
  if (n <= 0) return 0;
  AdamConsts c;
  c.lr = a->lr;
  c.b1 = a->beta1;
  c.b2 = a->beta2;
  c.eps = a->eps;
  c.scale = a->gradScale;
  c.wdL2 = a->decoupled ? 0.0 : a->weightDecay;
  c.wdDecoupled = a->decoupled ? a->weightDecay : 0.0;
  c.bias1 = adamBiasCorrection(a->beta1, a->step);
  c.bias2 = adamBiasCorrection(a->beta2, a->step);
  const double* hyper = graphAdamParams(a->lr, a->beta1, a->beta2);  // null outside a capture
  kAdam<<<blocksFor(n), kThreads, 0, gStream>>>(p, g, m, v, n, c, hyper);
  MMGPT_CHECK_LAUNCH("adam");
  return 0;
}

}  // extern "C"

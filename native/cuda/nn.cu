// CUDA kernels for the network pieces of the Backend interface (src/engine/backend.ts): gather,
// scatterAdd, layerNorm (+ backward), softmax (+ backward, causal mask), crossEntropy
// (+ backward), im2col, col2im and nearestCode; the fused crossEntropyMean and addLayerNorm.
//
// Reference: backends/js.ts. The row kernels follow llm.c's CUDA layernorm/softmax kernels: one
// warp per row, lanes striding over the columns, butterfly shuffles for the row sums (so every
// lane holds the identical total). Statistics, softmax denominators and log-sum-exp are float64
// with float64 exp (as in the reference), rounded once on store.
//
// Determinism (no floating-point atomics anywhere, so a run repeats bit for bit):
// - scatterAdd: one block per (table row, 128 columns) scans all indices in chunks, compacts the
//   rows that hit its table row in index order (warp ballots + prefix counts) and adds their
//   gradients in that order into a register: exactly the reference's sequential float32 sums.
//   Costs O(vocab * rows) index reads (from L2), cheap at the model's sizes (1058 x 1824).
// - layerNormBackward: gw/gb are column sums over rows: blocks of 32 columns x 8 row lanes over
//   fixed row chunks write float64 partials, a second kernel adds them in chunk order.
// - col2im: one thread per image element sums its (ky, kx) contributions in the reference's order.
// Index errors (gather/scatterAdd out of range, crossEntropy target >= v) are recorded on the
// device (lowest bad row and its value) and reported by the host (see runtime.cu).

#include <math.h>

#include "common.cuh"

using namespace mmgpt_cuda;

namespace {

const int kWarpsPerBlock = kThreads / 32;

__device__ __forceinline__ int64_t globalWarp() {
  return (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
}
__device__ __forceinline__ int64_t warpsInGrid() {
  return (int64_t)gridDim.x * (blockDim.x >> 5);
}

// ---- embeddings ------------------------------------------------------------------------------------

// One thread per out element; every row's index is checked, even when d == 0.
__global__ void kGather(const float* __restrict__ table, const int32_t* __restrict__ idx,
                        float* __restrict__ out, int64_t rows, int64_t d, int64_t vocab,
                        unsigned long long* bad) {
  forEachRowElement(rows, d, [&](int64_t i, int64_t r, int64_t j) {
    const int32_t t = idx[r];
    if (t < 0 || t >= vocab) {
      if (j == 0) recordBadIndex(bad, r, t);
    } else if (j < d) {
      out[i] = table[(int64_t)t * d + j];
    }
  });
}

const int kScatterThreads = 128;

__global__ void __launch_bounds__(kScatterThreads)
    kScatterAdd(const float* __restrict__ g, const int32_t* __restrict__ idx,
                float* __restrict__ gTable, int64_t rows, int64_t d, int64_t vocab,
                unsigned long long* bad) {
  __shared__ int hits[kScatterThreads];  // chunk-relative rows that hit this table row, in order
  __shared__ int warpHits[kScatterThreads / 32];
  const int64_t v = blockIdx.x;
  const int64_t col = (int64_t)blockIdx.y * kScatterThreads + threadIdx.x;
  const bool owns = v < vocab && col < d;
  const bool checker = blockIdx.x == 0 && blockIdx.y == 0;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc = owns ? gTable[v * d + col] : 0.0f;
  for (int64_t c0 = 0; c0 < rows; c0 += kScatterThreads) {
    const int64_t r = c0 + threadIdx.x;
    bool hit = false;
    if (r < rows) {
      const int32_t t = idx[r];
      hit = (int64_t)t == v;
      if (checker && (t < 0 || t >= vocab)) recordBadIndex(bad, r, t);
    }
    const unsigned mask = __ballot_sync(0xffffffffu, hit);
    if (lane == 0) warpHits[warp] = __popc(mask);
    __syncthreads();
    int before = 0, count = 0;
#pragma unroll
    for (int w = 0; w < kScatterThreads / 32; w++) {
      const int c = warpHits[w];
      if (w < warp) before += c;
      count += c;
    }
    if (hit) hits[before + __popc(mask & ((1u << lane) - 1u))] = threadIdx.x;
    __syncthreads();
    if (owns) {
      for (int q = 0; q < count; q++) acc += g[(c0 + hits[q]) * d + col];
    }
    __syncthreads();  // hits and warpHits are rewritten by the next chunk
  }
  if (owns) gTable[v * d + col] = acc;
}

// ---- layerNorm -------------------------------------------------------------------------------------

// res != null (addLayerNorm): x + res is written to h first and normalised; each lane reads back
// only the columns it wrote itself.
__global__ void kLayerNorm(const float* __restrict__ x, const float* __restrict__ res,
                           float* __restrict__ h, const float* __restrict__ w,
                           const float* __restrict__ b, float* __restrict__ out,
                           float* __restrict__ mean, float* __restrict__ rstd, int64_t rows,
                           int64_t d, double eps) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = globalWarp(); row < rows; row += warpsInGrid()) {
    const float* xr = x + row * d;
    if (res != nullptr) {
      const float* rr = res + row * d;
      float* hr = h + row * d;
      for (int64_t j = lane; j < d; j += 32) hr[j] = xr[j] + rr[j];
      xr = hr;
    }
    double sum = 0.0;
    for (int64_t j = lane; j < d; j += 32) sum += (double)xr[j];
    const double mu = warpSum(sum) / (double)d;
    double sq = 0.0;  // two-pass variance
    for (int64_t j = lane; j < d; j += 32) {
      const double diff = (double)xr[j] - mu;
      sq += diff * diff;
    }
    const double rs = 1.0 / sqrt(warpSum(sq) / (double)d + eps);
    float* outr = out + row * d;
    for (int64_t j = lane; j < d; j += 32) {
      outr[j] = (float)(((double)xr[j] - mu) * rs * (double)w[j] + (double)b[j]);
    }
    if (lane == 0) {
      mean[row] = (float)mu;
      rstd[row] = (float)rs;
    }
  }
}

__global__ void kLayerNormBackwardX(const float* __restrict__ x, const float* __restrict__ w,
                                    const float* __restrict__ mean,
                                    const float* __restrict__ rstd, const float* __restrict__ gy,
                                    float* __restrict__ gx, int64_t rows, int64_t d) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = globalWarp(); row < rows; row += warpsInGrid()) {
    const float* xr = x + row * d;
    const float* gyr = gy + row * d;
    const double mu = mean[row], rs = rstd[row];
    // gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = gy * w.
    double sumD = 0.0, sumDX = 0.0;
    for (int64_t j = lane; j < d; j += 32) {
      const double xhat = ((double)xr[j] - mu) * rs;
      const double dxhat = (double)gyr[j] * (double)w[j];
      sumD += dxhat;
      sumDX += dxhat * xhat;
    }
    const double meanD = warpSum(sumD) / (double)d;
    const double meanDX = warpSum(sumDX) / (double)d;
    float* gxr = gx + row * d;
    for (int64_t j = lane; j < d; j += 32) {
      const double xhat = ((double)xr[j] - mu) * rs;
      const double dxhat = (double)gyr[j] * (double)w[j];
      gxr[j] = (float)(rs * (dxhat - meanD - xhat * meanDX));
    }
  }
}

// gw[j] = sum_r gy[r, j] * xhat[r, j], gb[j] = sum_r gy[r, j]: block (32, 8) covers 32 columns
// and the row chunk blockIdx.y; partials[2][chunks][d] or, with one chunk, straight into gw/gb.
__global__ void kLayerNormBackwardParams(const float* __restrict__ x,
                                         const float* __restrict__ mean,
                                         const float* __restrict__ rstd,
                                         const float* __restrict__ gy, float* __restrict__ gw,
                                         float* __restrict__ gb, double* __restrict__ partial,
                                         int64_t rows, int64_t d, int64_t chunk) {
  __shared__ double sw[8][33], sb[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = (int64_t)blockIdx.x * 32 + tx;
  const int64_t chunks = gridDim.y, s = blockIdx.y;
  const int64_t r0 = s * chunk;
  const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
  double accW = 0.0, accB = 0.0;
  if (j < d) {
    for (int64_t r = r0 + ty; r < r1; r += 8) {
      const double g = (double)gy[r * d + j];
      const double xhat = ((double)x[r * d + j] - (double)mean[r]) * (double)rstd[r];
      accW += g * xhat;
      accB += g;
    }
  }
  sw[ty][tx] = accW;
  sb[ty][tx] = accB;
  __syncthreads();
  if (ty == 0 && j < d) {
    double tw = 0.0, tb = 0.0;
#pragma unroll
    for (int q = 0; q < 8; q++) {
      tw += sw[q][tx];
      tb += sb[q][tx];
    }
    if (partial != nullptr) {
      partial[s * d + j] = tw;
      partial[(chunks + s) * d + j] = tb;
    } else {
      gw[j] = (float)tw;
      gb[j] = (float)tb;
    }
  }
}

__global__ void kLayerNormBackwardParamsFinish(const double* __restrict__ partial,
                                               float* __restrict__ gw, float* __restrict__ gb,
                                               int64_t d, int64_t chunks) {
  for (int64_t j = globalIndex<int64_t>(); j < d; j += globalStride<int64_t>()) {
    double tw = 0.0, tb = 0.0;
    for (int64_t s = 0; s < chunks; s++) {
      tw += partial[s * d + j];
      tb += partial[(chunks + s) * d + j];
    }
    gw[j] = (float)tw;
    gb[j] = (float)tb;
  }
}

// ---- softmax, cross-entropy --------------------------------------------------------------------------

/** Largest x[0..count) over the warp (-inf if none; NaN never wins, as in the reference). */
__device__ __forceinline__ float rowMax(const float* xr, int64_t count, int lane) {
  float mx = -INFINITY;
  for (int64_t j = lane; j < count; j += 32) {
    const float v = xr[j];
    if (v > mx) mx = v;
  }
  return warpMax(mx);
}

/** The row's max over x[0..count) and sum of exp(x - max) in float64 (one warp; every lane). */
struct RowExpSum {
  double mx, sum;
};
__device__ __forceinline__ RowExpSum rowExpSum(const float* xr, int64_t count, int lane) {
  const double mx = (double)rowMax(xr, count, lane);
  double sum = 0.0;
  for (int64_t j = lane; j < count; j += 32) sum += exp((double)xr[j] - mx);
  return {mx, warpSum(sum)};
}

__global__ void kSoftmax(const float* __restrict__ x, float* __restrict__ out, int64_t rows,
                         int64_t n, int64_t causalTq) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = globalWarp(); row < rows; row += warpsInGrid()) {
    // Columns [0, visible) are kept, the rest are exactly 0.
    int64_t visible = n;
    if (causalTq > 0) {
      visible = row % causalTq + (n - causalTq) + 1;
      if (visible < 0) visible = 0;
      if (visible > n) visible = n;
    }
    const float* xr = x + row * n;
    float* outr = out + row * n;
    const RowExpSum e = rowExpSum(xr, visible, lane);
    const double mx = e.mx, sum = e.sum;
    const double inv = visible > 0 ? 1.0 / sum : 0.0;
    for (int64_t j = lane; j < n; j += 32) {
      outr[j] = j < visible ? (float)(exp((double)xr[j] - mx) * inv) : 0.0f;
    }
  }
}

__global__ void kSoftmaxBackward(const float* __restrict__ y, const float* __restrict__ gy,
                                 float* __restrict__ gx, int64_t rows, int64_t n) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = globalWarp(); row < rows; row += warpsInGrid()) {
    const float* yr = y + row * n;
    const float* gyr = gy + row * n;
    double dot = 0.0;
    for (int64_t j = lane; j < n; j += 32) dot += (double)gyr[j] * (double)yr[j];
    dot = warpSum(dot);
    float* gxr = gx + row * n;
    for (int64_t j = lane; j < n; j += 32) gxr[j] = (float)((double)yr[j] * ((double)gyr[j] - dot));
  }
}

__global__ void kCrossEntropy(const float* __restrict__ logits, const int32_t* __restrict__ targets,
                              float* __restrict__ probs, float* __restrict__ losses, int64_t rows,
                              int64_t v, unsigned long long* bad) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = globalWarp(); row < rows; row += warpsInGrid()) {
    const int32_t target = targets[row];
    if (target >= v && lane == 0) recordBadIndex(bad, row, target);
    const float* lr = logits + row * v;
    float* pr = probs + row * v;
    const RowExpSum e = rowExpSum(lr, v, lane);
    const double mx = e.mx, sum = e.sum;
    const double inv = 1.0 / sum;
    for (int64_t j = lane; j < v; j += 32) pr[j] = (float)(exp((double)lr[j] - mx) * inv);
    if (lane == 0) {
      // -log softmax[target] = log(sum exp(l - max)) + max - l[target]
      losses[row] =
          (target < 0 || target >= v) ? 0.0f : (float)(log(sum) + mx - (double)lr[target]);
    }
  }
}

// The mean cross-entropy's forward and backward (llm.c's fused classifier): one warp per row
// writes the row's loss and gLogits = s * (softmax - onehot), s = float32(1 / count); every warp
// counts the rows that are not ignored itself (rows int32 reads from L2: no extra launch).
__global__ void kCrossEntropyMean(const float* __restrict__ logits,
                                  const int32_t* __restrict__ targets, float* __restrict__ losses,
                                  float* __restrict__ gLogits, int64_t rows, int64_t v,
                                  unsigned long long* bad) {
  const int lane = threadIdx.x & 31;
  if (globalWarp() >= rows) return;
  double counted = 0.0;
  for (int64_t r = lane; r < rows; r += 32) counted += targets[r] >= 0 ? 1.0 : 0.0;
  counted = warpSum(counted);
  const double s = (double)(float)(1.0 / (counted > 0.0 ? counted : 1.0));
  for (int64_t row = globalWarp(); row < rows; row += warpsInGrid()) {
    const int32_t target = targets[row];
    if (target >= v && lane == 0) recordBadIndex(bad, row, target);
    const float* lr = logits + row * v;
    float* gr = gLogits + row * v;
    if (target < 0 || target >= v) {
      for (int64_t j = lane; j < v; j += 32) gr[j] = 0.0f;
      if (lane == 0) losses[row] = 0.0f;
      continue;
    }
    const RowExpSum e = rowExpSum(lr, v, lane);
    const double mx = e.mx, sum = e.sum;
    const double inv = 1.0 / sum;
    for (int64_t j = lane; j < v; j += 32) {
      const double p = (double)(float)(exp((double)lr[j] - mx) * inv);
      gr[j] = (float)(s * (p - (j == target ? 1.0 : 0.0)));
    }
    if (lane == 0) losses[row] = (float)(log(sum) + mx - (double)lr[target]);
  }
}

// loss[0] = sum(losses) / count in float64, by one block (deterministic order).
__global__ void kCrossEntropyMeanFinish(const float* __restrict__ losses,
                                        const int32_t* __restrict__ targets, int64_t rows,
                                        float* __restrict__ loss) {
  __shared__ double smemSum[32], smemCount[32];
  double sum = 0.0, counted = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    sum += (double)losses[r];
    counted += targets[r] >= 0 ? 1.0 : 0.0;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  sum = warpSum(sum);
  counted = warpSum(counted);
  if (lane == 0) {
    smemSum[warp] = sum;
    smemCount[warp] = counted;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0, count = 0.0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) {
      total += smemSum[i];
      count += smemCount[i];
    }
    loss[0] = (float)(total / (count > 0.0 ? count : 1.0));
  }
}

// One thread per gLogits element; every row's target is checked, even when v == 0.
__global__ void kCrossEntropyBackward(const float* __restrict__ probs,
                                      const int32_t* __restrict__ targets,
                                      const float* __restrict__ gLoss, float* __restrict__ gLogits,
                                      int64_t rows, int64_t v, unsigned long long* bad) {
  forEachRowElement(rows, v, [&](int64_t i, int64_t r, int64_t j) {
    const int32_t target = targets[r];
    if (target >= v) {
      if (j == 0) recordBadIndex(bad, r, target);
    } else if (j < v) {
      if (target < 0) {
        gLogits[i] = 0.0f;
      } else {
        const double onehot = j == target ? 1.0 : 0.0;
        gLogits[i] = (float)((double)gLoss[r] * ((double)probs[i] - onehot));
      }
    }
  });
}

// ---- convolution -----------------------------------------------------------------------------------------

// cols [n, c*kh*kw, ho*wo], row (ci*kh + ky)*kw + kx; one thread per cols element.
__global__ void kIm2col(const float* __restrict__ x, float* __restrict__ cols, mmgpt::ConvGeom g) {
  const int64_t total = g.n * g.c * g.kh * g.kw * g.ho * g.wo;
  for (int64_t i = globalIndex<int64_t>(); i < total; i += globalStride<int64_t>()) {
    int64_t t = i;
    const int64_t ox = t % g.wo;
    t /= g.wo;
    const int64_t oy = t % g.ho;
    t /= g.ho;
    const int64_t kx = t % g.kw;
    t /= g.kw;
    const int64_t ky = t % g.kh;
    t /= g.kh;  // t = img * c + ci
    const int64_t iy = oy * g.stride - g.pad + ky;
    const int64_t ix = ox * g.stride - g.pad + kx;
    cols[i] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? x[(t * g.h + iy) * g.w + ix] : 0.0f;
  }
}

// x [n, c, h, w] += the scatter of cols: one thread per x element, (ky, kx) in the reference's order.
__global__ void kCol2im(const float* __restrict__ cols, float* __restrict__ x, mmgpt::ConvGeom g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  const int64_t colLen = g.ho * g.wo;
  for (int64_t i = globalIndex<int64_t>(); i < total; i += globalStride<int64_t>()) {
    int64_t t = i;
    const int64_t ix = t % g.w;
    t /= g.w;
    const int64_t iy = t % g.h;
    t /= g.h;  // t = img * c + ci
    const float* colPlane = cols + t * g.kh * g.kw * colLen;
    double acc = 0.0;
    for (int64_t ky = 0; ky < g.kh; ky++) {
      const int64_t sy = iy + g.pad - ky;  // = oy * stride
      if (sy < 0 || sy % g.stride != 0) continue;
      const int64_t oy = sy / g.stride;
      if (oy >= g.ho) continue;
      for (int64_t kx = 0; kx < g.kw; kx++) {
        const int64_t sx = ix + g.pad - kx;
        if (sx < 0 || sx % g.stride != 0) continue;
        const int64_t ox = sx / g.stride;
        if (ox >= g.wo) continue;
        acc += (double)colPlane[(ky * g.kw + kx) * colLen + oy * g.wo + ox];
      }
    }
    x[i] = (float)((double)x[i] + acc);
  }
}

// ---- nearestCode: one block per row; each thread scans codes tid, tid + 128, ... ----------------

const int kCodeThreads = 128;

__global__ void __launch_bounds__(kCodeThreads)
    kNearestCode(const float* __restrict__ z, const float* __restrict__ codebook,
                 int32_t* __restrict__ idx, float* __restrict__ dist, int64_t rows, int64_t k,
                 int64_t d) {
  __shared__ double bestDist[kCodeThreads];
  __shared__ int64_t bestCode[kCodeThreads];
  const int tid = threadIdx.x;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* zr = z + row * d;
    double best = INFINITY;
    int64_t code = INT64_MAX;  // none yet
    for (int64_t c = tid; c < k; c += kCodeThreads) {
      const float* cr = codebook + c * d;
      double sq = 0.0;
      for (int64_t j = 0; j < d; j++) {
        const double diff = (double)zr[j] - (double)cr[j];
        sq += diff * diff;
      }
      if (sq < best) {  // codes ascend per thread: the lowest index wins ties
        best = sq;
        code = c;
      }
    }
    bestDist[tid] = best;
    bestCode[tid] = code;
    __syncthreads();
    for (int s = kCodeThreads / 2; s > 0; s >>= 1) {
      if (tid < s) {
        const double od = bestDist[tid + s];
        const int64_t oc = bestCode[tid + s];
        if (od < bestDist[tid] || (od == bestDist[tid] && oc < bestCode[tid])) {
          bestDist[tid] = od;
          bestCode[tid] = oc;
        }
      }
      __syncthreads();
    }
    if (tid == 0) {
      // No finite distance (the reference keeps index 0 with distance +inf).
      const bool none = bestCode[0] == INT64_MAX;
      idx[row] = none ? 0 : (int32_t)bestCode[0];
      dist[row] = none ? INFINITY : (float)bestDist[0];
    }
    __syncthreads();  // bestDist/bestCode are rewritten for the next row
  }
}

inline unsigned warpBlocks(int64_t rows) { return blocksFor(rows, kWarpsPerBlock); }

}  // namespace

extern "C" {

int mmgpt_cuda_gather(const float* table, const int32_t* idx, float* out, int64_t rows, int64_t d,
                      int64_t vocab) {
  if (rows == 0) return 0;
  unsigned long long* bad = beginIndexCheck();
  if (bad == nullptr) return 1;
  kGather<<<blocksFor(rows * (d > 0 ? d : 1)), kThreads, 0, gStream>>>(table, idx, out, rows, d,
                                                                       vocab, bad);
  MMGPT_CHECK_LAUNCH("gather");
  return endIndexCheck(bad, CHECK_GATHER, "gather", vocab);
}

int mmgpt_cuda_scatter_add(const float* g, const int32_t* idx, float* gTable, int64_t rows,
                           int64_t d, int64_t vocab) {
  if (rows == 0) return 0;
  const int64_t colBlocks = d > 0 ? (d + kScatterThreads - 1) / kScatterThreads : 1;
  if (colBlocks > 65535) return setError(2, "scatterAdd: d = %lld is too large", (long long)d);
  unsigned long long* bad = beginIndexCheck();
  if (bad == nullptr) return 1;
  const dim3 grid((unsigned)(vocab > 0 ? vocab : 1), (unsigned)colBlocks);
  kScatterAdd<<<grid, kScatterThreads, 0, gStream>>>(g, idx, gTable, rows, d, vocab, bad);
  MMGPT_CHECK_LAUNCH("scatterAdd");
  return endIndexCheck(bad, CHECK_SCATTER, "scatterAdd", vocab);
}

int mmgpt_cuda_layer_norm(const float* x, const float* w, const float* b, float* out, float* mean,
                          float* rstd, int64_t rows, int64_t d, double eps) {
  if (rows == 0) return 0;
  kLayerNorm<<<warpBlocks(rows), kThreads, 0, gStream>>>(x, nullptr, nullptr, w, b, out, mean,
                                                         rstd, rows, d, eps);
  MMGPT_CHECK_LAUNCH("layerNorm");
  return 0;
}

int mmgpt_cuda_add_layer_norm(const float* x, const float* r, const float* w, const float* b,
                              float* h, float* out, float* mean, float* rstd, int64_t rows,
                              int64_t d, double eps) {
  if (rows == 0) return 0;
  kLayerNorm<<<warpBlocks(rows), kThreads, 0, gStream>>>(x, r, h, w, b, out, mean, rstd, rows, d,
                                                         eps);
  MMGPT_CHECK_LAUNCH("addLayerNorm");
  return 0;
}

int mmgpt_cuda_layer_norm_backward(const float* x, const float* w, const float* mean,
                                   const float* rstd, const float* gy, float* gx, float* gw,
                                   float* gb, int64_t rows, int64_t d) {
  if (d == 0) return 0;
  if (rows == 0) {  // empty sums: gw = gb = 0 (written, not accumulated)
    if (int rc = mmgpt_cuda_fill32(reinterpret_cast<uint32_t*>(gw), d, 0u)) return rc;
    return mmgpt_cuda_fill32(reinterpret_cast<uint32_t*>(gb), d, 0u);
  }
  kLayerNormBackwardX<<<warpBlocks(rows), kThreads, 0, gStream>>>(x, w, mean, rstd, gy, gx, rows,
                                                                  d);
  MMGPT_CHECK_LAUNCH("layerNormBackward (gx)");
  const int64_t colBlocks = (d + 31) / 32;
  // Row chunks of >= 64 rows, enough blocks to fill the device, at most 256 chunks.
  int64_t chunks = (2 * (int64_t)gNumSMs + colBlocks - 1) / colBlocks;
  const int64_t maxChunks = (rows + 63) / 64;
  if (chunks > maxChunks) chunks = maxChunks;
  if (chunks > 256) chunks = 256;
  if (chunks < 1) chunks = 1;
  const int64_t chunk = (rows + chunks - 1) / chunks;
  chunks = (rows + chunk - 1) / chunk;
  double* partial = nullptr;
  if (chunks > 1) {
    partial = static_cast<double*>(workspace((size_t)(2 * chunks * d) * sizeof(double)));
    if (partial == nullptr) return 1;
  }
  kLayerNormBackwardParams<<<dim3((unsigned)colBlocks, (unsigned)chunks), dim3(32, 8), 0,
                             gStream>>>(x, mean, rstd, gy, gw, gb, partial, rows, d, chunk);
  MMGPT_CHECK_LAUNCH("layerNormBackward (gw, gb)");
  if (chunks > 1) {
    kLayerNormBackwardParamsFinish<<<blocksFor(d), kThreads, 0, gStream>>>(partial, gw, gb, d,
                                                                          chunks);
    MMGPT_CHECK_LAUNCH("layerNormBackward (gw, gb combine)");
  }
  return 0;
}

int mmgpt_cuda_softmax(const float* x, float* out, int64_t rows, int64_t n, int64_t causalTq) {
  if (rows == 0 || n == 0) return 0;
  kSoftmax<<<warpBlocks(rows), kThreads, 0, gStream>>>(x, out, rows, n, causalTq);
  MMGPT_CHECK_LAUNCH("softmax");
  return 0;
}

int mmgpt_cuda_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows,
                                int64_t n) {
  if (rows == 0 || n == 0) return 0;
  kSoftmaxBackward<<<warpBlocks(rows), kThreads, 0, gStream>>>(y, gy, gx, rows, n);
  MMGPT_CHECK_LAUNCH("softmaxBackward");
  return 0;
}

int mmgpt_cuda_cross_entropy(const float* logits, const int32_t* targets, float* probs,
                             float* losses, int64_t rows, int64_t v) {
  if (rows == 0) return 0;
  unsigned long long* bad = beginIndexCheck();
  if (bad == nullptr) return 1;
  kCrossEntropy<<<warpBlocks(rows), kThreads, 0, gStream>>>(logits, targets, probs, losses, rows,
                                                            v, bad);
  MMGPT_CHECK_LAUNCH("crossEntropy");
  return endIndexCheck(bad, CHECK_TARGET, "crossEntropy", v);
}

int mmgpt_cuda_cross_entropy_backward(const float* probs, const int32_t* targets,
                                      const float* gLoss, float* gLogits, int64_t rows,
                                      int64_t v) {
  if (rows == 0) return 0;
  unsigned long long* bad = beginIndexCheck();
  if (bad == nullptr) return 1;
  kCrossEntropyBackward<<<blocksFor(rows * (v > 0 ? v : 1)), kThreads, 0, gStream>>>(
      probs, targets, gLoss, gLogits, rows, v, bad);
  MMGPT_CHECK_LAUNCH("crossEntropyBackward");
  return endIndexCheck(bad, CHECK_TARGET, "crossEntropyBackward", v);
}

int mmgpt_cuda_cross_entropy_mean(const float* logits, const int32_t* targets, float* losses,
                                  float* loss, float* gLogits, int64_t rows, int64_t v) {
  if (rows == 0) {
    kCrossEntropyMeanFinish<<<1, 32, 0, gStream>>>(losses, targets, 0, loss);
    MMGPT_CHECK_LAUNCH("crossEntropyMean (mean)");
    return 0;
  }
  unsigned long long* bad = beginIndexCheck();
  if (bad == nullptr) return 1;
  kCrossEntropyMean<<<warpBlocks(rows), kThreads, 0, gStream>>>(logits, targets, losses, gLogits,
                                                                rows, v, bad);
  MMGPT_CHECK_LAUNCH("crossEntropyMean");
  kCrossEntropyMeanFinish<<<1, 1024, 0, gStream>>>(losses, targets, rows, loss);
  MMGPT_CHECK_LAUNCH("crossEntropyMean (mean)");
  return endIndexCheck(bad, CHECK_TARGET, "crossEntropyMean", v);
}

int mmgpt_cuda_im2col(const float* x, float* cols, const mmgpt::ConvGeom* g) {
  const int64_t total = g->n * g->c * g->kh * g->kw * g->ho * g->wo;
  if (total == 0) return 0;
  kIm2col<<<blocksFor(total), kThreads, 0, gStream>>>(x, cols, *g);
  MMGPT_CHECK_LAUNCH("im2col");
  return 0;
}

int mmgpt_cuda_col2im(const float* cols, float* x, const mmgpt::ConvGeom* g) {
  const int64_t total = g->n * g->c * g->h * g->w;
  if (total == 0) return 0;
  if (g->stride < 1) return setError(2, "col2im: stride must be >= 1");
  kCol2im<<<blocksFor(total), kThreads, 0, gStream>>>(cols, x, *g);
  MMGPT_CHECK_LAUNCH("col2im");
  return 0;
}

int mmgpt_cuda_nearest_code(const float* z, const float* codebook, int32_t* idx, float* dist,
                            int64_t rows, int64_t k, int64_t d) {
  if (rows == 0) return 0;
  const unsigned blocks = (unsigned)(rows < kMaxBlocks ? rows : kMaxBlocks);
  kNearestCode<<<blocks, kCodeThreads, 0, gStream>>>(z, codebook, idx, dist, rows, k, d);
  MMGPT_CHECK_LAUNCH("nearestCode");
  return 0;
}

}  // extern "C"

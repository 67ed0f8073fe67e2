// SGEMM for the Backend's matmul (src/engine/backend.ts): C = alpha * op(A) @ op(B) (+ C)
// (+ bias, a row of n floats), batched with element strides (0 broadcasts an operand), on CUDA
// cores in float32.
//
// Reference: the classic shared-memory tiling with register blocking (Volkov & Demmel 2008;
// the CUTLASS "SIMT" SGEMM; Simon Boehm's "How to optimize a CUDA matmul kernel"). cuBLAS is not
// used (absent on the development machine). Each 256-thread block computes a 64x64 tile of C,
// each thread a 4x4 micro-tile kept in registers; op(A) and op(B) are staged through shared
// memory 16 deep in k, read back as float4 (A is stored k-major so both operands are). The
// global loads of each layout (plain or transposed) are arranged so that consecutive threads read
// consecutive addresses; ragged edges load zeros.
//
// Modes (chosen on the host):
// - batched: grid.z walks the batch items, one C per item;
// - strideC = 0 with accumulate: every item adds into the same C, in item order, inside one block
//   per tile (the js reference's sequential semantics, deterministic); without accumulate only
//   the last item counts, so only it is computed;
// - split-K (batch 1, few tiles, long k, e.g. weight gradients [128 x 384] over k = B*T): the k
//   range is split over blocks that write partial tiles to the workspace; a second kernel sums
//   them in split order (deterministic, no atomics) and applies alpha and accumulate.
// Accumulation is float32 FMA (like the cpu backend); the epilogue computes alpha * acc + C in
// float64 and rounds once, then adds the bias (if any) in float32: the bits of the product
// followed by a separate add.

#include "common.cuh"

using namespace mmgpt_cuda;

namespace {

const int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4, GEMM_THREADS = 256;

enum GemmMode { MODE_BATCHED = 0, MODE_SEQUENTIAL = 1, MODE_SPLITK = 2 };

struct GemmParams {
  const float* A;
  const float* B;
  float* C;
  float* partial;  // MODE_SPLITK: [splits, m, n]
  int m, n, k;
  int transA, transB;
  int64_t strideA, strideB, strideC;
  int batch;
  int mode;
  int kChunk;  // MODE_SPLITK: k range per split, a multiple of BK
  double alpha;
  int accumulate;
  const float* bias;  // [n] or null
};

static_assert(BM == BN, "stageTile stages both operands into tiles of one shape");

struct Tiles {
  __align__(16) float As[BK][BM + 4];  // As[kk][i] = op(A)[m0 + i, k0 + kk]
  __align__(16) float Bs[BK][BN + 4];  // Bs[kk][j] = op(B)[k0 + kk, n0 + j]
};

/**
 * Stages op(X)[g0:g0+64, k0:k0+16] of one operand into S[kk][i] (zeros outside `count` rows and
 * below kEnd), where op(X) is [count, k]: X itself when kContiguous (X is [count, k]: 16 threads
 * read 16 consecutive k of one row), else X transposed (X is [k, count]: 64 threads read 64
 * consecutive entries of one k). A is op(A) [m, k] (kContiguous = !transA); B enters as op(B)^T
 * [n, k] (kContiguous = transB), so both tiles are k-major.
 */
__device__ __forceinline__ void stageTile(float (&S)[BK][BM + 4], const float* __restrict__ X,
                                          bool kContiguous, int g0, int count, int k, int k0,
                                          int kEnd) {
  const int tid = threadIdx.x;
  if (kContiguous) {
    const int kk = tid & 15;
    const int gk = k0 + kk;
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int i = (tid >> 4) + 16 * r;
      const int gi = g0 + i;
      S[kk][i] = (gi < count && gk < kEnd) ? X[(int64_t)gi * k + gk] : 0.0f;
    }
  } else {
    const int i = tid & 63;
    const int gi = g0 + i;
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int kk = (tid >> 6) + 4 * r;
      const int gk = k0 + kk;
      S[kk][i] = (gi < count && gk < kEnd) ? X[(int64_t)gk * count + gi] : 0.0f;
    }
  }
}

/** acc += op(A)[m0:m0+64, kBegin:kEnd] @ op(B)[kBegin:kEnd, n0:n0+64] for this thread's 4x4. */
__device__ __forceinline__ void tileProduct(const GemmParams& p, const float* __restrict__ A,
                                            const float* __restrict__ B, int m0, int n0,
                                            int kBegin, int kEnd, float (&acc)[TM][TN],
                                            Tiles& t) {
  const int tid = threadIdx.x;
  const int tx = tid & 15, ty = tid >> 4;
  for (int k0 = kBegin; k0 < kEnd; k0 += BK) {
    stageTile(t.As, A, !p.transA, m0, p.m, p.k, k0, kEnd);  // As[kk][i] = op(A)[m0 + i, k0 + kk]
    stageTile(t.Bs, B, p.transB, n0, p.n, p.k, k0, kEnd);   // Bs[kk][j] = op(B)[k0 + kk, n0 + j]
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
      const float4 a4 = *reinterpret_cast<const float4*>(&t.As[kk][ty * TM]);
      const float4 b4 = *reinterpret_cast<const float4*>(&t.Bs[kk][tx * TN]);
      const float a[TM] = {a4.x, a4.y, a4.z, a4.w};
      const float b[TN] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
      for (int i = 0; i < TM; i++) {
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();  // the tiles are overwritten by the next k step
  }
}

/** acc = 0. */
__device__ __forceinline__ void clearAcc(float (&acc)[TM][TN]) {
#pragma unroll
  for (int i = 0; i < TM; i++)
#pragma unroll
    for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;
}

/** v + bias[col] (a float32 add of the rounded product), or v without a bias. */
__device__ __forceinline__ float addBias(float v, const float* __restrict__ bias, int col) {
  return bias != nullptr ? v + bias[col] : v;
}

/** f(i, j, offset) for each element (row0 + i, col0 + j) of this thread's 4x4 inside [m, n]. */
template <class F>
__device__ __forceinline__ void forEachOwned(int row0, int col0, int m, int n, F f) {
#pragma unroll
  for (int i = 0; i < TM; i++) {
    const int r = row0 + i;
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < TN; j++) {
      const int c = col0 + j;
      if (c < n) f(i, j, (int64_t)r * n + c);
    }
  }
}

__global__ void __launch_bounds__(GEMM_THREADS) kGemm(GemmParams p) {
  __shared__ Tiles tiles;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int row0 = m0 + ty * TM, col0 = n0 + tx * TN;
  float acc[TM][TN];

  if (p.mode == MODE_SPLITK) {
    const int split = blockIdx.z;
    const int kBegin = split * p.kChunk;
    const int kEnd = min(p.k, kBegin + p.kChunk);
    clearAcc(acc);
    tileProduct(p, p.A, p.B, m0, n0, kBegin, kEnd, acc, tiles);
    float* out = p.partial + (int64_t)split * p.m * p.n;
    forEachOwned(row0, col0, p.m, p.n, [&](int i, int j, int64_t at) { out[at] = acc[i][j]; });
    return;
  }

  if (p.mode == MODE_SEQUENTIAL) {
    // One C for all items: C = alpha * P_0 + C, then alpha * P_1 + that, ... in item order.
    float cReg[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++) {
#pragma unroll
      for (int j = 0; j < TN; j++) {
        const int r = row0 + i, c = col0 + j;
        cReg[i][j] = (r < p.m && c < p.n) ? p.C[(int64_t)r * p.n + c] : 0.0f;
      }
    }
    for (int bi = 0; bi < p.batch; bi++) {
      clearAcc(acc);
      tileProduct(p, p.A + bi * p.strideA, p.B + bi * p.strideB, m0, n0, 0, p.k, acc, tiles);
#pragma unroll
      for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++)
          cReg[i][j] = addBias((float)(p.alpha * (double)acc[i][j] + (double)cReg[i][j]),
                               col0 + j < p.n ? p.bias : nullptr, col0 + j);  // (edges: unread)
    }
    forEachOwned(row0, col0, p.m, p.n, [&](int i, int j, int64_t at) { p.C[at] = cReg[i][j]; });
    return;
  }

  // MODE_BATCHED: items blockIdx.z, blockIdx.z + gridDim.z, ...
  for (int bi = blockIdx.z; bi < p.batch; bi += gridDim.z) {
    clearAcc(acc);
    tileProduct(p, p.A + bi * p.strideA, p.B + bi * p.strideB, m0, n0, 0, p.k, acc, tiles);
    float* C = p.C + bi * p.strideC;
    forEachOwned(row0, col0, p.m, p.n, [&](int i, int j, int64_t at) {
      const double prod = p.alpha * (double)acc[i][j];
      C[at] = addBias(p.accumulate ? (float)(prod + (double)C[at]) : (float)prod, p.bias, col0 + j);
    });
  }
}

/** C[i] = alpha * sum_s partial[s][i] (+ C[i]) (+ bias[i % n]), summing the splits in order. */
__global__ void kSplitKCombine(const float* __restrict__ partial, float* __restrict__ C,
                               int64_t size, int splits, double alpha, int accumulate,
                               const float* __restrict__ bias, int n) {
  for (int64_t i = globalIndex<int64_t>(); i < size; i += globalStride<int64_t>()) {
    double sum = 0.0;
    for (int s = 0; s < splits; s++) sum += (double)partial[(int64_t)s * size + i];
    const double prod = alpha * sum;
    C[i] = addBias(accumulate ? (float)(prod + (double)C[i]) : (float)prod, bias, (int)(i % n));
  }
}

}  // namespace

extern "C" int mmgpt_cuda_matmul(const float* a, const float* b, float* c,
                                 const mmgpt::MatmulArgs* args) {
  const mmgpt::MatmulArgs& q = *args;
  if (q.batch == 0 || q.m == 0 || q.n == 0) return 0;
  const int64_t limit = (int64_t)1 << 31;
  if (q.m >= limit || q.n >= limit || q.k >= limit || q.batch >= limit) {
    return setError(2, "matmul: m, n, k and batch must each be below 2^31");
  }
  if (q.batch > 1 && q.strideC != 0 && q.strideC < q.m * q.n) {
    return setError(2,
                    "matmul: strideC (%lld) must be 0 or at least m*n (%lld): the cuda backend "
                    "computes batch items in parallel",
                    (long long)q.strideC, (long long)(q.m * q.n));
  }
  GemmParams p;
  p.A = a;
  p.B = b;
  p.C = c;
  p.partial = nullptr;
  p.m = (int)q.m;
  p.n = (int)q.n;
  p.k = (int)q.k;
  p.transA = q.transA;
  p.transB = q.transB;
  p.strideA = q.strideA;
  p.strideB = q.strideB;
  p.strideC = q.strideC;
  p.batch = (int)q.batch;
  p.mode = MODE_BATCHED;
  p.kChunk = 0;
  p.alpha = q.alpha;
  p.accumulate = q.accumulate;
  p.bias = q.bias;

  if (q.strideC == 0 && q.batch > 1) {
    if (!q.accumulate) {
      // Every item overwrites the same C: only the last one is visible.
      p.A = a + (q.batch - 1) * q.strideA;
      p.B = b + (q.batch - 1) * q.strideB;
      p.batch = 1;
    } else {
      p.mode = MODE_SEQUENTIAL;
    }
  }

  const int64_t tilesN = (q.n + BN - 1) / BN, tilesM = (q.m + BM - 1) / BM;
  if (tilesM > 65535) return setError(2, "matmul: m = %lld is too large", (long long)q.m);
  const dim3 block(GEMM_THREADS);

  if (p.mode == MODE_BATCHED && p.batch == 1) {
    const int64_t tiles = tilesN * tilesM;
    int64_t splits = 1;
    if (tiles < gNumSMs && q.k >= 512) {
      splits = (2 * (int64_t)gNumSMs + tiles - 1) / tiles;
      if (splits > q.k / 256) splits = q.k / 256;  // >= 256 of k per split
      if (splits > 32) splits = 32;
    }
    if (splits > 1) {
      int64_t chunk = (q.k + splits - 1) / splits;
      chunk = (chunk + BK - 1) / BK * BK;
      splits = (q.k + chunk - 1) / chunk;
      const int64_t size = q.m * q.n;
      float* partial = static_cast<float*>(workspace((size_t)(splits * size) * sizeof(float)));
      if (partial == nullptr) return 1;
      p.mode = MODE_SPLITK;
      p.partial = partial;
      p.kChunk = (int)chunk;
      kGemm<<<dim3((unsigned)tilesN, (unsigned)tilesM, (unsigned)splits), block, 0, gStream>>>(p);
      MMGPT_CHECK_LAUNCH("matmul (split-k)");
      kSplitKCombine<<<blocksFor(size), kThreads, 0, gStream>>>(partial, c, size, (int)splits,
                                                                q.alpha, q.accumulate, q.bias,
                                                                (int)q.n);
      MMGPT_CHECK_LAUNCH("matmul (split-k combine)");
      return 0;
    }
  }
  const unsigned gz = p.mode == MODE_SEQUENTIAL ? 1u : (unsigned)(p.batch < 65535 ? p.batch : 65535);
  kGemm<<<dim3((unsigned)tilesN, (unsigned)tilesM, gz), block, 0, gStream>>>(p);
  MMGPT_CHECK_LAUNCH(p.mode == MODE_SEQUENTIAL ? "matmul (strideC = 0)" : "matmul");
  return 0;
}

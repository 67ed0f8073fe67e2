// Shared pieces of the CUDA kernels (native/cuda/*.cu): the one stream, error reporting, the
// launch check, the workspace, index-check records and small device helpers.
//
// Notable choices: all host state lives in runtime.cu and is reached through the functions
// declared here (no device globals shared across files, so no relocatable device code is
// needed). Every kernel is launched on gStream and followed by MMGPT_CHECK_LAUNCH("name"),
// which turns a launch error into a nonzero return with the kernel's name in the message.
// Loops are grid-stride over int64 indices so any size works with a bounded grid.

#ifndef MMGPT_CUDA_COMMON_CUH
#define MMGPT_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_api.h"

namespace mmgpt_cuda {

// ---- host state (runtime.cu) -------------------------------------------------------------------
extern cudaStream_t gStream;
/** Streaming multiprocessors of the device (sizes grids of reductions and split-K). */
extern int gNumSMs;

/** Sets the error message (printf-style) and returns `code` (1: CUDA error, 2: range error). */
int setError(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/** Records a launch of `kernel`; returns nonzero with a message if the launch failed. */
int checkLaunch(const char* kernel);
/** Returns nonzero with a message if `e` is an error; `what` names the call. */
int checkCall(cudaError_t e, const char* what);
/** Waits for the stream; reports asynchronous kernel errors and pending index checks. */
int syncStream(const char* what);

/**
 * A device scratch area of at least `bytes` for the kernel now being queued (valid until the
 * next call: growing it frees the old area in stream order). Null with an error on failure.
 */
void* workspace(size_t bytes);
/** A pinned host double the device can write (cudaMemcpyAsync target for scalar results). */
double* hostScalar();

// Index checks (gather, scatterAdd, crossEntropy, copyBlockAt's device offset): the kernel
// atomicMin's (row << 32 | value) of the first bad row into a 64-bit slot that starts at ~0;
// endIndexCheck reads it back (limit: the vocabulary, table rows, classes, or the largest offset).
enum IndexCheckKind { CHECK_GATHER = 0, CHECK_SCATTER = 1, CHECK_TARGET = 2, CHECK_OFFSET = 3 };
/** A zeroed-to-~0 device slot for one kernel's bad-index record (null with an error on failure). */
unsigned long long* beginIndexCheck();
/**
 * Checks the slot now (sync checks on: waits for the stream) or at the next synchronisation
 * (off). Returns 2 with the cpu backend's message if an index was out of range.
 */
int endIndexCheck(unsigned long long* slot, IndexCheckKind kind, const char* fn, int64_t limit);

// ---- CUDA graphs (runtime.cu) ----------------------------------------------------------------
// While a graph is captured (mmgpt_cuda_graph_begin .. end) the kernels are recorded, not run,
// with their argument values frozen. The per-step host values of a training step (Adam's rate
// and bias corrections, dropout seeds) therefore come from the graph's parameter block instead:
// the kernels take a device pointer that is null outside a capture, and the block is rewritten
// before every replay.

/** True while the stream is being captured into a graph. */
bool capturing();
/** 1 - beta^step: Adam's bias correction (one function for eager steps and graph replays). */
double adamBiasCorrection(double beta, double step);
/**
 * During a capture: the device address of [lr, bias1, bias2] in the graph's parameter block
 * (rewritten from the replay's rate and step); null outside a capture or when the block is full
 * (then the capture fails at its end).
 */
const double* graphAdamParams(double lr, double beta1, double beta2);
/** During a capture: the device address of a dropout seed in the parameter block; else null. */
const double* graphSeedParam(uint32_t seed);

// ---- launch helpers ----------------------------------------------------------------------------
const int kThreads = 256;
const int64_t kMaxBlocks = 1 << 20;

inline unsigned blocksFor(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > kMaxBlocks) b = kMaxBlocks;
  if (b < 1) b = 1;
  return (unsigned)b;
}

// ---- device helpers ------------------------------------------------------------------------------

/** This thread's first index and the grid's stride in a grid-stride loop (I: int or int64_t). */
template <typename I>
__device__ __forceinline__ I globalIndex() {
  return (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
}
template <typename I>
__device__ __forceinline__ I globalStride() {
  return (I)gridDim.x * (I)blockDim.x;
}

/**
 * f(i, r, j) for every element (row r, column j) of a [rows, cols] array, i = r * cols + j: a
 * grid-stride loop over rows * max(cols, 1), so that every row is visited (with j = 0 >= cols)
 * even when cols == 0 and a kernel checking each row's index still checks it.
 */
template <class F>
__device__ __forceinline__ void forEachRowElement(int64_t rows, int64_t cols, F f) {
  const int64_t stride = cols > 0 ? cols : 1;
  const int64_t total = rows * stride;
  for (int64_t i = globalIndex<int64_t>(); i < total; i += globalStride<int64_t>()) {
    const int64_t r = i / stride;
    f(i, r, i - r * stride);
  }
}

/** Butterfly sum over the 32 lanes: every lane gets the same value (a + b == b + a exactly). */
__device__ __forceinline__ double warpSum(double v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

/** Records a bad index in a check slot: the lowest row wins, with its value. */
__device__ __forceinline__ void recordBadIndex(unsigned long long* slot, int64_t row,
                                               int32_t value) {
  const unsigned long long rec =
      ((unsigned long long)(uint64_t)row << 32) | (unsigned long long)(uint32_t)value;
  atomicMin(slot, rec);
}

}  // namespace mmgpt_cuda

#define MMGPT_CHECK_LAUNCH(name)                                   \
  do {                                                             \
    if (int rc_ = ::mmgpt_cuda::checkLaunch(name)) return rc_;     \
  } while (0)

#endif  // MMGPT_CUDA_COMMON_CUH

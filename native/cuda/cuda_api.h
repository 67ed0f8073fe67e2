// The C interface between the N-API glue (addon_cuda.cc, compiled by the host C++ compiler) and
// the CUDA kernels (*.cu, compiled by nvcc): one function per Backend kernel
// (src/engine/backend.ts), plus device setup, memory and error reporting.
//
// Notable choices: plain C types only, so the glue needs no CUDA headers and compiles (to a stub)
// where nvcc is absent. Every function returns 0 on success; on failure it returns nonzero and
// mmgpt_cuda_error() holds a message naming the kernel and the CUDA error. Arguments are checked
// by the glue first (types, sizes, buffer lengths), so these functions trust them. Everything is
// queued on one stream, so work runs in call order; only downloads, sumSquares, the index checks
// (see mmgpt_cuda_set_sync_checks) and mmgpt_cuda_sync wait for the device.

#ifndef MMGPT_CUDA_API_H
#define MMGPT_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "../src/kernels.h"  // MatmulArgs, AdamArgs, ConvGeom (PODs shared with the cpu kernels)

// binary/permute: the largest rank accepted after merging contiguous axes (the engine uses <= 5).
#define MMGPT_CUDA_MAX_RANK 8

extern "C" {

struct MmgptCudaInfo {
  char name[256];
  int device;
  int computeMajor, computeMinor;
  int multiProcessors;
  size_t totalMemory;
  int runtimeVersion, driverVersion;
  int memoryPools;  // 1: stream-ordered allocator (cudaMallocAsync) in use, 0: cudaMalloc
};

struct MmgptCudaStats {
  double allocs, frees, liveBuffers, liveBytes, peakBytes;
  double uploads, uploadBytes, downloads, downloadBytes, launches, syncs;
  double graphLaunches;  // replays of captured graphs (their kernels are not in `launches`)
};

struct MmgptCudaGraphInfo {
  double nodes;        // kernels, memsets and copies of the graph
  double adamUpdates;  // Adam updates whose rate and bias corrections each launch sets
  double seeds;        // dropout masks whose seeds each launch sets
  double indexChecks;  // device index checks of its kernels
  double uploadBytes;  // host data its captured uploads copy again at every launch
};

/** The message of the last failure (static storage; valid until the next failing call). */
const char* mmgpt_cuda_error(void);

/**
 * Finds a device and initialises it once (device MMGPT_CUDA_DEVICE or 0, one stream, error
 * record, workspace). Returns 0 if usable; else nonzero with the reason in mmgpt_cuda_error().
 * The result is cached: later calls return the same answer without touching the driver again.
 */
int mmgpt_cuda_init(void);
int mmgpt_cuda_info(MmgptCudaInfo* info);
void mmgpt_cuda_stats(MmgptCudaStats* stats);
/** The compute capabilities compiled into the kernels, e.g. "sm_80 sm_90 compute_90". */
const char* mmgpt_cuda_built_archs(void);
/** 1: gather/scatterAdd/crossEntropy check indices before returning (default); 0: at next sync. */
void mmgpt_cuda_set_sync_checks(int on);
int mmgpt_cuda_get_sync_checks(void);

// ---- memory ---------------------------------------------------------------------------------
int mmgpt_cuda_alloc(void** ptr, size_t bytes, int zeroFill);
int mmgpt_cuda_free(void* ptr, size_t bytes);
/** mmgpt_cuda_free for the garbage collector: during a capture, after it ends (not refused). */
int mmgpt_cuda_release(void* ptr, size_t bytes);
int mmgpt_cuda_upload(void* dst, const void* src, size_t bytes);
int mmgpt_cuda_download(void* dst, const void* src, size_t bytes);
int mmgpt_cuda_sync(void);
/** Copies host data into an existing buffer (during a capture: from the graph's pinned arena). */
int mmgpt_cuda_write(void* dst, const void* src, size_t bytes);

// ---- CUDA graphs (runtime.cu) -----------------------------------------------------------------
/** Starts capturing the stream (reads pending index checks first). */
int mmgpt_cuda_graph_begin(void);
/** Ends the capture: *graph is the instantiated graph, or null with the reason on failure. */
int mmgpt_cuda_graph_end(void** graph);
/** Ends a capture in progress, if any, discarding it (after an exception inside the capture). */
int mmgpt_cuda_graph_abort(void);
int mmgpt_cuda_graph_info(const void* graph, MmgptCudaGraphInfo* info);
/**
 * Queues one replay: the graph's Adam updates use rate `lr` at 1-based `step` (ignored if it
 * has none), its dropout masks the `seedCount` seeds in capture order.
 */
int mmgpt_cuda_graph_launch(void* graph, double lr, double step, const uint32_t* seeds,
                            int64_t seedCount);
/** The dropout seeds the capture saw, in order (at most `capacity`); returns their count. */
int64_t mmgpt_cuda_graph_seeds(const void* graph, uint32_t* out, int64_t capacity);
/** Waits for the stream and frees the graph. */
int mmgpt_cuda_graph_destroy(void* graph);

// ---- elementwise ----------------------------------------------------------------------------
int mmgpt_cuda_fill32(uint32_t* out, int64_t n, uint32_t bits);
int mmgpt_cuda_copy_block(const uint32_t* src, uint32_t* dst, int64_t outer, int64_t srcAxis,
                          int64_t srcOffset, int64_t dstAxis, int64_t dstOffset, int64_t count,
                          int64_t inner, int accumulate);
/**
 * copyBlock (no accumulate) whose destination offset is read from the device: dstOffset[0]. A
 * captured decode step writes its KV-cache slot where the replay's position says. An offset
 * outside 0..dstAxis-count writes nothing and is reported like a bad index.
 */
int mmgpt_cuda_copy_block_at(const uint32_t* src, uint32_t* dst, int64_t outer, int64_t srcAxis,
                             int64_t srcOffset, int64_t dstAxis, const int32_t* dstOffset,
                             int64_t count, int64_t inner);
int mmgpt_cuda_binary(int op, const float* a, const float* b, float* out, int rank,
                      const int64_t* shape, const int64_t* aStrides, const int64_t* bStrides);
int mmgpt_cuda_unary(int op, const float* x, float* out, int64_t n);
int mmgpt_cuda_unary_backward(int op, const float* x, const float* y, const float* gy, float* gx,
                              int64_t n);
int mmgpt_cuda_affine(const float* x, float* out, int64_t n, double alpha, double beta);
int mmgpt_cuda_axpy(const float* x, float* y, int64_t n, double alpha);
int mmgpt_cuda_sum_squares(const float* x, int64_t n, double* result);

// ---- reductions and layout --------------------------------------------------------------------
int mmgpt_cuda_sum_axis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner,
                        int accumulate);
int mmgpt_cuda_broadcast_axis(const float* x, float* out, int64_t outer, int64_t axis,
                              int64_t inner);
int mmgpt_cuda_permute(const uint32_t* x, uint32_t* out, int rank, const int64_t* shape,
                       const int64_t* perm);

// ---- linear algebra -----------------------------------------------------------------------------
int mmgpt_cuda_matmul(const float* a, const float* b, float* c, const mmgpt::MatmulArgs* p);

// ---- embeddings (bad indices: nonzero return, message like the cpu backend's) ---------------------
int mmgpt_cuda_gather(const float* table, const int32_t* idx, float* out, int64_t rows, int64_t d,
                      int64_t vocab);
int mmgpt_cuda_scatter_add(const float* g, const int32_t* idx, float* gTable, int64_t rows,
                           int64_t d, int64_t vocab);

// ---- fused normalisation, softmax, cross-entropy ---------------------------------------------------
int mmgpt_cuda_layer_norm(const float* x, const float* w, const float* b, float* out, float* mean,
                          float* rstd, int64_t rows, int64_t d, double eps);
int mmgpt_cuda_layer_norm_backward(const float* x, const float* w, const float* mean,
                                   const float* rstd, const float* gy, float* gx, float* gw,
                                   float* gb, int64_t rows, int64_t d);
int mmgpt_cuda_softmax(const float* x, float* out, int64_t rows, int64_t n, int64_t causalTq);
int mmgpt_cuda_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows,
                                int64_t n);
int mmgpt_cuda_cross_entropy(const float* logits, const int32_t* targets, float* probs,
                             float* losses, int64_t rows, int64_t v);
int mmgpt_cuda_cross_entropy_backward(const float* probs, const int32_t* targets,
                                      const float* gLoss, float* gLogits, int64_t rows, int64_t v);

// ---- randomness, convolution, vector quantisation, optimiser ----------------------------------------
int mmgpt_cuda_dropout_mask(float* out, int64_t n, double p, uint32_t seed);
int mmgpt_cuda_im2col(const float* x, float* cols, const mmgpt::ConvGeom* g);
int mmgpt_cuda_col2im(const float* cols, float* x, const mmgpt::ConvGeom* g);
int mmgpt_cuda_nearest_code(const float* z, const float* codebook, int32_t* idx, float* dist,
                            int64_t rows, int64_t k, int64_t d);
int mmgpt_cuda_adam(float* p, const float* g, float* m, float* v, int64_t n,
                    const mmgpt::AdamArgs* a);

// Fused training-step kernels (backend.ts: crossEntropyMean, biasGelu, addLayerNorm, adamMulti).
int mmgpt_cuda_cross_entropy_mean(const float* logits, const int32_t* targets, float* losses,
                                  float* loss, float* gLogits, int64_t rows, int64_t v);
int mmgpt_cuda_bias_gelu(const float* x, const float* bias, float* out, int64_t rows, int64_t n);
int mmgpt_cuda_bias_gelu_backward(const float* x, const float* bias, const float* gy, float* gx,
                                  float* gBias, int64_t rows, int64_t n);
int mmgpt_cuda_add_layer_norm(const float* x, const float* r, const float* w, const float* b,
                              float* h, float* out, float* mean, float* rstd, int64_t rows,
                              int64_t d, double eps);
/** Host arrays of `count` device pointers, sizes and weight decays; nothing is read back. */
int mmgpt_cuda_adam_multi(float* const* p, const float* const* g, float* const* m,
                          float* const* v, const int64_t* sizes, const double* weightDecays,
                          int64_t count, const mmgpt::AdamArgs* a, double clipNorm,
                          float* normOut);
// Fused causal self-attention, t <= 64 (backend.ts: attention, attentionBackward; attention.cu).
int mmgpt_cuda_attention(const float* qkv, float* out, float* probs, int64_t batch, int64_t t,
                         int64_t heads, int64_t headSize, double scale);
int mmgpt_cuda_attention_backward(const float* qkv, const float* probs, const float* gy,
                                  float* gQkv, int64_t batch, int64_t t, int64_t heads,
                                  int64_t headSize, double scale);

}  // extern "C"

#endif  // MMGPT_CUDA_API_H

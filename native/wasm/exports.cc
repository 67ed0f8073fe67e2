// The C entry points of the WebAssembly kernels (mmgpt_kernels.wasm), called by the wasm backend
// (src/engine/backends/wasm.ts) through the raw WebAssembly API: one extern "C" function per
// kernel of the KernelTable (kernels.h), plus malloc/calloc/free for the backend's buffers.
//
// Arguments are plain wasm values: pointers into the module's memory (i32), flags and op codes
// (i32), and sizes and scalars as doubles (f64: a JS number passes through unchanged, where an
// int64 would need a BigInt). Nothing is checked here: the TypeScript side checks every call as
// the cpu addon's bindings do (native/src/kernel_bindings.h) before it reaches this layer.
// Shapes, strides and per-tensor lists arrive as arrays of doubles in wasm memory and are
// converted to the int64 arrays the kernels take. Every kernel runs on one thread (nt = 1).

#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

// The wasm build's table (kernels_wasm.cc; kernels.h declares the x86 builds' only).
extern "C" const mmgpt::KernelTable* mmgpt_kernels_wasm(void);

using mmgpt::AdamArgs;
using mmgpt::ConvGeom;
using mmgpt::KernelTable;
using mmgpt::MatmulArgs;

namespace {

const KernelTable* table() {
  static const KernelTable* t = mmgpt_kernels_wasm();
  return t;
}

inline int64_t i64(double d) { return (int64_t)d; }

/** Copies `count` doubles (integers below 2^53) into int64s. */
inline void toInt64(const double* src, int count, int64_t* dst) {
  for (int i = 0; i < count; i++) dst[i] = (int64_t)src[i];
}

inline ConvGeom geometry(double n, double c, double h, double w, double kh, double kw,
                         double stride, double pad, double ho, double wo) {
  ConvGeom g;
  g.n = i64(n);
  g.c = i64(c);
  g.h = i64(h);
  g.w = i64(w);
  g.kh = i64(kh);
  g.kw = i64(kw);
  g.stride = i64(stride);
  g.pad = i64(pad);
  g.ho = i64(ho);
  g.wo = i64(wo);
  return g;
}

}  // namespace

#define MMGPT_EXPORT extern "C" __attribute__((used, visibility("default")))

// ---- information -------------------------------------------------------------------------------

/** The GEMM register tile: rows (which = 0) or columns (which = 1) of C per micro-kernel call. */
MMGPT_EXPORT int mmgpt_gemm_tile(int which) {
  return which == 0 ? table()->gemmMr : table()->gemmNr;
}

// ---- memory and elementwise --------------------------------------------------------------------

MMGPT_EXPORT void mmgpt_fill32(uint32_t* out, double n, uint32_t bits) {
  table()->fill32(out, i64(n), bits, 1);
}

MMGPT_EXPORT void mmgpt_copy_block(const uint32_t* src, uint32_t* dst, double outer,
                                   double srcAxis, double srcOffset, double dstAxis,
                                   double dstOffset, double count, double inner, int accumulate) {
  table()->copyBlock(src, dst, i64(outer), i64(srcAxis), i64(srcOffset), i64(dstAxis),
                     i64(dstOffset), i64(count), i64(inner), accumulate, 1);
}

MMGPT_EXPORT void mmgpt_binary(int op, const float* a, const float* b, float* out, int rank,
                               const double* shape, const double* aStrides,
                               const double* bStrides) {
  int64_t sh[mmgpt::kMaxRank], as[mmgpt::kMaxRank], bs[mmgpt::kMaxRank];
  toInt64(shape, rank, sh);
  toInt64(aStrides, rank, as);
  toInt64(bStrides, rank, bs);
  table()->binary(op, a, b, out, rank, sh, as, bs, 1);
}

MMGPT_EXPORT void mmgpt_unary(int op, const float* x, float* out, double n) {
  table()->unary(op, x, out, i64(n), 1);
}

MMGPT_EXPORT void mmgpt_unary_backward(int op, const float* x, const float* y, const float* gy,
                                       float* gx, double n) {
  table()->unaryBackward(op, x, y, gy, gx, i64(n), 1);
}

MMGPT_EXPORT void mmgpt_affine(const float* x, float* out, double n, double alpha, double beta) {
  table()->affine(x, out, i64(n), alpha, beta, 1);
}

MMGPT_EXPORT void mmgpt_axpy(const float* x, float* y, double n, double alpha) {
  table()->axpy(x, y, i64(n), alpha, 1);
}

MMGPT_EXPORT double mmgpt_sum_squares(const float* x, double n) {
  return table()->sumSquares(x, i64(n), 1);
}

// ---- reductions and layout ---------------------------------------------------------------------

MMGPT_EXPORT void mmgpt_sum_axis(const float* x, float* out, double outer, double axis,
                                 double inner, int accumulate) {
  table()->sumAxis(x, out, i64(outer), i64(axis), i64(inner), accumulate, 1);
}

MMGPT_EXPORT void mmgpt_broadcast_axis(const float* x, float* out, double outer, double axis,
                                       double inner) {
  table()->broadcastAxis(x, out, i64(outer), i64(axis), i64(inner), 1);
}

/** As the cpu addon's permute: nothing to move for an empty shape, one element for rank 0. */
MMGPT_EXPORT void mmgpt_permute(const uint32_t* x, uint32_t* out, int rank, const double* shape,
                                const double* perm) {
  int64_t sh[mmgpt::kMaxRank], pm[mmgpt::kMaxRank];
  toInt64(shape, rank, sh);
  toInt64(perm, rank, pm);
  for (int d = 0; d < rank; d++) {
    if (sh[d] == 0) return;
  }
  if (rank == 0) {
    out[0] = x[0];
    return;
  }
  table()->permute(x, out, rank, sh, pm, 1);
}

// ---- linear algebra ----------------------------------------------------------------------------

MMGPT_EXPORT void mmgpt_matmul(const float* a, const float* b, float* c, double batch, double m,
                               double n, double k, int transA, int transB, double strideA,
                               double strideB, double strideC, double alpha, int accumulate,
                               const float* bias) {
  MatmulArgs p;
  p.batch = i64(batch);
  p.m = i64(m);
  p.n = i64(n);
  p.k = i64(k);
  p.transA = transA;
  p.transB = transB;
  p.strideA = i64(strideA);
  p.strideB = i64(strideB);
  p.strideC = i64(strideC);
  p.alpha = alpha;
  p.accumulate = accumulate;
  p.bias = bias;  // null (offset 0) when there is none: the module's address 0 is never a buffer
  table()->matmul(a, b, c, &p, 1);
}

// ---- embeddings --------------------------------------------------------------------------------

MMGPT_EXPORT void mmgpt_gather(const float* tbl, const int32_t* idx, float* out, double rows,
                               double d) {
  table()->gather(tbl, idx, out, i64(rows), i64(d), 1);
}

MMGPT_EXPORT void mmgpt_scatter_add(const float* g, const int32_t* idx, float* gTable,
                                    double rows, double d) {
  table()->scatterAdd(g, idx, gTable, i64(rows), i64(d), 1);
}

// ---- normalisation, softmax, cross-entropy -----------------------------------------------------

MMGPT_EXPORT void mmgpt_layer_norm(const float* x, const float* w, const float* b, float* out,
                                   float* mean, float* rstd, double rows, double d, double eps) {
  table()->layerNorm(x, w, b, out, mean, rstd, i64(rows), i64(d), eps, 1);
}

MMGPT_EXPORT void mmgpt_layer_norm_backward(const float* x, const float* w, const float* mean,
                                            const float* rstd, const float* gy, float* gx,
                                            float* gw, float* gb, double rows, double d) {
  table()->layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, i64(rows), i64(d), 1);
}

MMGPT_EXPORT void mmgpt_softmax(const float* x, float* out, double rows, double n,
                                double causalTq) {
  table()->softmax(x, out, i64(rows), i64(n), i64(causalTq), 1);
}

MMGPT_EXPORT void mmgpt_softmax_backward(const float* y, const float* gy, float* gx, double rows,
                                         double n) {
  table()->softmaxBackward(y, gy, gx, i64(rows), i64(n), 1);
}

MMGPT_EXPORT void mmgpt_cross_entropy(const float* logits, const int32_t* targets, float* probs,
                                      float* losses, double rows, double v) {
  table()->crossEntropy(logits, targets, probs, losses, i64(rows), i64(v), 1);
}

MMGPT_EXPORT void mmgpt_cross_entropy_backward(const float* probs, const int32_t* targets,
                                               const float* gLoss, float* gLogits, double rows,
                                               double v) {
  table()->crossEntropyBackward(probs, targets, gLoss, gLogits, i64(rows), i64(v), 1);
}

// ---- randomness, convolution, vector quantisation, optimiser -----------------------------------

MMGPT_EXPORT void mmgpt_dropout_mask(float* out, double n, double p, uint32_t seed) {
  table()->dropoutMask(out, i64(n), p, seed, 1);
}

MMGPT_EXPORT void mmgpt_im2col(const float* x, float* cols, double n, double c, double h,
                               double w, double kh, double kw, double stride, double pad,
                               double ho, double wo) {
  const ConvGeom g = geometry(n, c, h, w, kh, kw, stride, pad, ho, wo);
  table()->im2col(x, cols, &g, 1);
}

MMGPT_EXPORT void mmgpt_col2im(const float* cols, float* x, double n, double c, double h,
                               double w, double kh, double kw, double stride, double pad,
                               double ho, double wo) {
  const ConvGeom g = geometry(n, c, h, w, kh, kw, stride, pad, ho, wo);
  table()->col2im(cols, x, &g, 1);
}

MMGPT_EXPORT void mmgpt_nearest_code(const float* z, const float* codebook, int32_t* idx,
                                     float* dist, double rows, double k, double d) {
  table()->nearestCode(z, codebook, idx, dist, i64(rows), i64(k), i64(d), 1);
}

MMGPT_EXPORT void mmgpt_adam(float* p, const float* g, float* m, float* v, double n, double lr,
                             double beta1, double beta2, double eps, double weightDecay,
                             int decoupled, double step, double gradScale) {
  AdamArgs a;
  a.lr = lr;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.eps = eps;
  a.weightDecay = weightDecay;
  a.decoupled = decoupled;
  a.step = step;
  a.gradScale = gradScale;
  table()->adam(p, g, m, v, i64(n), &a, 1);
}

// ---- fused training-step kernels ---------------------------------------------------------------

MMGPT_EXPORT void mmgpt_cross_entropy_mean(const float* logits, const int32_t* targets,
                                           float* losses, float* loss, float* gLogits,
                                           double rows, double v) {
  table()->crossEntropyMean(logits, targets, losses, loss, gLogits, i64(rows), i64(v), 1);
}

MMGPT_EXPORT void mmgpt_bias_gelu(const float* x, const float* bias, float* out, double rows,
                                  double n) {
  table()->biasGelu(x, bias, out, i64(rows), i64(n), 1);
}

MMGPT_EXPORT void mmgpt_bias_gelu_backward(const float* x, const float* bias, const float* gy,
                                           float* gx, float* gBias, double rows, double n) {
  table()->biasGeluBackward(x, bias, gy, gx, gBias, i64(rows), i64(n), 1);
}

MMGPT_EXPORT void mmgpt_attention(const float* qkv, float* out, float* probs, double batch,
                                 double t, double heads, double headSize, double scale) {
  table()->attention(qkv, out, probs, i64(batch), i64(t), i64(heads), i64(headSize), scale, 1);
}

MMGPT_EXPORT void mmgpt_attention_backward(const float* qkv, const float* probs, const float* gy,
                                          float* gQkv, double batch, double t, double heads,
                                          double headSize, double scale) {
  table()->attentionBackward(qkv, probs, gy, gQkv, i64(batch), i64(t), i64(heads), i64(headSize),
                             scale, 1);
}

MMGPT_EXPORT void mmgpt_add_layer_norm(const float* x, const float* r, const float* w,
                                       const float* b, float* h, float* out, float* mean,
                                       float* rstd, double rows, double d, double eps) {
  table()->addLayerNorm(x, r, w, b, h, out, mean, rstd, i64(rows), i64(d), eps, 1);
}

/**
 * params, grads, m and v: `count` pointers each; sizes and weightDecays: `count` doubles each.
 * Returns 0, or -1 when the int64 copy of the sizes cannot be allocated (nothing was updated).
 */
MMGPT_EXPORT int mmgpt_adam_multi(float* const* params, const float* const* grads,
                                  float* const* m, float* const* v, const double* sizes,
                                  const double* weightDecays, int count, double lr, double beta1,
                                  double beta2, double eps, int decoupled, double step,
                                  double clipNorm, float* normOut) {
  int64_t* n = (int64_t*)malloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
  if (n == nullptr) return -1;
  toInt64(sizes, count, n);
  AdamArgs a;
  a.lr = lr;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.eps = eps;
  a.weightDecay = 0;
  a.decoupled = decoupled;
  a.step = step;
  a.gradScale = 1;
  table()->adamMulti(params, grads, m, v, n, weightDecays, count, &a, clipNorm, normOut, 1);
  free(n);
  return 0;
}

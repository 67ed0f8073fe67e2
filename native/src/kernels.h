// The kernel table shared by the N-API glue (addon.cc) and the per-ISA kernel builds.
//
// Every numeric kernel of the Backend interface (src/engine/backend.ts) is compiled three times
// from one source, kernels.inl: for AVX-512 (kernels_avx512.cc), AVX2+FMA (kernels_avx2.cc) and
// the x86-64 / generic baseline (kernels_base.cc). Each build exports one `KernelTable` of plain
// function pointers; addon.cc picks a table at load time with __builtin_cpu_supports.
//
// Notable choices: this header is plain C-compatible PODs only (no std types), so the ISA
// translation units never instantiate shared inline templates that the linker could merge
// across ISAs (an AVX-512 copy of std::min silently used on an AVX2 machine). Sizes are int64
// element counts; arguments are validated by the bindings (kernel_bindings.h, addon.cc) before a
// kernel runs, so kernels assume them valid. `nt` is the number of OpenMP threads a kernel may
// use.

#ifndef MMGPT_KERNELS_H
#define MMGPT_KERNELS_H

#include <stdint.h>

namespace mmgpt {

enum BinaryOpCode { BIN_ADD = 0, BIN_SUB = 1, BIN_MUL = 2, BIN_DIV = 3 };
enum UnaryOpCode {
  UN_EXP = 0,
  UN_LOG = 1,
  UN_TANH = 2,
  UN_RELU = 3,
  UN_GELU = 4,
  UN_NEG = 5,
  UN_SQRT = 6,
  UN_SQUARE = 7
};

struct MatmulArgs {
  int64_t batch, m, n, k;
  int transA, transB;
  int64_t strideA, strideB, strideC;
  double alpha;
  int accumulate;
  // A row of n floats added to every row of every item's C after the product (and after + C
  // when accumulating), or null: C = (alpha op(A) op(B) (+ C)) + bias, each step rounded to
  // float32, i.e. the bits of the product followed by a separate add.
  const float* bias;
};

struct AdamArgs {
  double lr, beta1, beta2, eps, weightDecay;
  int decoupled;
  double step, gradScale;
};

struct ConvGeom {
  int64_t n, c, h, w, kh, kw, stride, pad, ho, wo;
};

// The largest tensor rank binary/permute accept (the engine uses <= 5).
static const int kMaxRank = 16;

struct KernelTable {
  const char* name;  // "avx512", "avx2" or "scalar"
  // GEMM register tile (rows x columns of C per micro-kernel call), for reporting.
  int gemmMr, gemmNr;

  void (*fill32)(uint32_t* out, int64_t n, uint32_t bits, int nt);
  void (*copyBlock)(const uint32_t* src, uint32_t* dst, int64_t outer, int64_t srcAxis,
                    int64_t srcOffset, int64_t dstAxis, int64_t dstOffset, int64_t count,
                    int64_t inner, int accumulate, int nt);
  void (*binary)(int op, const float* a, const float* b, float* out, int rank,
                 const int64_t* shape, const int64_t* aStrides, const int64_t* bStrides, int nt);
  void (*unary)(int op, const float* x, float* out, int64_t n, int nt);
  void (*unaryBackward)(int op, const float* x, const float* y, const float* gy, float* gx,
                        int64_t n, int nt);
  void (*affine)(const float* x, float* out, int64_t n, double alpha, double beta, int nt);
  void (*axpy)(const float* x, float* y, int64_t n, double alpha, int nt);
  double (*sumSquares)(const float* x, int64_t n, int nt);
  void (*sumAxis)(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner,
                  int accumulate, int nt);
  void (*broadcastAxis)(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner,
                        int nt);
  void (*permute)(const uint32_t* x, uint32_t* out, int rank, const int64_t* shape,
                  const int64_t* perm, int nt);
  void (*matmul)(const float* a, const float* b, float* c, const MatmulArgs* p, int nt);
  void (*gather)(const float* table, const int32_t* idx, float* out, int64_t rows, int64_t d,
                 int nt);
  void (*scatterAdd)(const float* g, const int32_t* idx, float* gTable, int64_t rows, int64_t d,
                     int nt);
  void (*layerNorm)(const float* x, const float* w, const float* b, float* out, float* mean,
                    float* rstd, int64_t rows, int64_t d, double eps, int nt);
  void (*layerNormBackward)(const float* x, const float* w, const float* mean, const float* rstd,
                            const float* gy, float* gx, float* gw, float* gb, int64_t rows,
                            int64_t d, int nt);
  void (*softmax)(const float* x, float* out, int64_t rows, int64_t n, int64_t causalTq, int nt);
  void (*softmaxBackward)(const float* y, const float* gy, float* gx, int64_t rows, int64_t n,
                          int nt);
  void (*crossEntropy)(const float* logits, const int32_t* targets, float* probs, float* losses,
                       int64_t rows, int64_t v, int nt);
  void (*crossEntropyBackward)(const float* probs, const int32_t* targets, const float* gLoss,
                               float* gLogits, int64_t rows, int64_t v, int nt);
  void (*dropoutMask)(float* out, int64_t n, double p, uint32_t seed, int nt);
  void (*im2col)(const float* x, float* cols, const ConvGeom* g, int nt);
  void (*col2im)(const float* cols, float* x, const ConvGeom* g, int nt);
  void (*nearestCode)(const float* z, const float* codebook, int32_t* idx, float* dist,
                      int64_t rows, int64_t k, int64_t d, int nt);
  void (*adam)(float* p, const float* g, float* m, float* v, int64_t n, const AdamArgs* a,
               int nt);
  // Fused training-step kernels (backend.ts: crossEntropyMean, biasGelu, ..., adamMulti).
  void (*crossEntropyMean)(const float* logits, const int32_t* targets, float* losses,
                           float* loss, float* gLogits, int64_t rows, int64_t v, int nt);
  void (*biasGelu)(const float* x, const float* bias, float* out, int64_t rows, int64_t n, int nt);
  void (*biasGeluBackward)(const float* x, const float* bias, const float* gy, float* gx,
                           float* gBias, int64_t rows, int64_t n, int nt);
  void (*addLayerNorm)(const float* x, const float* r, const float* w, const float* b, float* h,
                       float* out, float* mean, float* rstd, int64_t rows, int64_t d, double eps,
                       int nt);
  void (*adamMulti)(float* const* p, const float* const* g, float* const* m, float* const* v,
                    const int64_t* sizes, const double* weightDecays, int64_t count,
                    const AdamArgs* base, double clipNorm, float* normOut, int nt);
  // Fused causal self-attention, t <= 64 (backend.ts: attention, attentionBackward).
  void (*attention)(const float* qkv, float* out, float* probs, int64_t batch, int64_t t,
                    int64_t heads, int64_t headSize, double scale, int nt);
  void (*attentionBackward)(const float* qkv, const float* probs, const float* gy, float* gQkv,
                            int64_t batch, int64_t t, int64_t heads, int64_t headSize,
                            double scale, int nt);
};

}  // namespace mmgpt

extern "C" {
// Each returns null when that ISA was not compiled in (non-x86 builds).
const mmgpt::KernelTable* mmgpt_kernels_avx512(void);
const mmgpt::KernelTable* mmgpt_kernels_avx2(void);
const mmgpt::KernelTable* mmgpt_kernels_scalar(void);
}

#endif  // MMGPT_KERNELS_H

// The N-API entry points of the Backend kernels (src/engine/backend.ts), written once for both
// native backends: the cpu glue (addon.cc, typed arrays) and the cuda glue (cuda/addon_cuda.cc,
// device buffers) each instantiate them with their own backend type B.
//
// Every binding reads and checks its arguments in a fixed order (sizes, then buffers against the
// lengths the sizes imply, then the remaining numbers and flags), so both backends throw the same
// TypeError / RangeError for the same bad call, then hands plain pointers and sizes to B's kernel.
// MMGPT_KERNEL_BINDINGS is the one list of them (JS name, binding); exportKernels sets them all.
//
// What B provides:
// - `B::Args`, derived from ArgsBase (napi_args.h), constructed as (info, fn, nargs), with
//   f32 / i32 (i, name, minLength) -> float* / int32_t*, any32 (i, name, minLength) -> Words,
//   f32Value (value, name, minLength) -> float* for an element of a list argument, and
//   length(i): the elements of argument i (already checked to be a buffer);
// - one static function per kernel, named like the KernelTable member (kernels.h), taking
//   (const B::Args&, the kernel's arguments); the arguments are the KernelTable's without the
//   thread count, plus the vocabulary size for gather and scatterAdd. sumSquares returns the
//   sum. Checks only one backend needs (the cpu backend checks indices and targets on the host
//   before the kernel runs; the cuda kernels check them on the device) live in these functions.
//
// Adding a kernel: a binding here and a line in MMGPT_KERNEL_BINDINGS, then the kernel function
// in each backend (one line where it only forwards).

#ifndef MMGPT_KERNEL_BINDINGS_H
#define MMGPT_KERNEL_BINDINGS_H

#include <napi.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "kernels.h"
#include "napi_args.h"

namespace mmgpt {
namespace napi {

// ---- shared argument helpers --------------------------------------------------------------------

/** 1 + the largest offset that `shape` with `strides` reaches (0 for an empty shape). */
inline int64_t spanOf(const ArgsBase& c, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& strides) {
  for (int64_t s : shape) {
    if (s == 0) return 0;
  }
  int64_t last = 0;
  for (size_t d = 0; d < shape.size(); d++) last = c.add(last, c.mul(shape[d] - 1, strides[d]));
  return last + 1;
}

/** The product of a shape's sizes (overflow-checked). */
inline int64_t elementsOf(const ArgsBase& c, const std::vector<int64_t>& shape) {
  int64_t size = 1;
  for (int64_t s : shape) size = c.mul(size, s);
  return size;
}

/** The convolution geometry: the ten sizes n, c, h, w, kh, kw, stride, pad, ho, wo from `first`. */
inline ConvGeom convGeometry(const ArgsBase& c, size_t first) {
  ConvGeom g;
  g.n = c.size(first, "n");
  g.c = c.size(first + 1, "c");
  g.h = c.size(first + 2, "h");
  g.w = c.size(first + 3, "w");
  g.kh = c.size(first + 4, "kh");
  g.kw = c.size(first + 5, "kw");
  g.stride = c.size(first + 6, "stride");
  g.pad = c.size(first + 7, "pad");
  g.ho = c.size(first + 8, "ho");
  g.wo = c.size(first + 9, "wo");
  return g;
}

/** Elements of an image batch [n, c, h, w] and of its columns [n, c*kh*kw, ho*wo]. */
inline int64_t imageElements(const ArgsBase& c, const ConvGeom& g) {
  return c.mul(c.mul(g.n, g.c), c.mul(g.h, g.w));
}
inline int64_t columnElements(const ArgsBase& c, const ConvGeom& g) {
  return c.mul(c.mul(c.mul(g.n, g.c), c.mul(g.kh, g.kw)), c.mul(g.ho, g.wo));
}

/** Adam's step is 1-based (the bias corrections divide by 1 - beta^step). */
inline void checkStep(const ArgsBase& c, double step) {
  if (!(step >= 1)) c.rangeError("step is 1-based, got " + std::to_string(step));
}

// ---- memory and elementwise ---------------------------------------------------------------------

template <class B>
Napi::Value Fill(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "fill", 3);
  const int64_t n = c.size(1, "n");
  const Words out = c.any32(0, "out", n);
  const double value = c.number(2, "value");
  uint32_t bits;
  if (out.isFloat) {
    const float f = (float)value;
    memcpy(&bits, &f, 4);
  } else {
    bits = toUint32(value);  // ToInt32 and ToUint32 share their bit pattern
  }
  B::fill32(c, out.data, n, bits);
  return c.env().Undefined();
}

template <class B>
Napi::Value CopyBlock(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "copyBlock", 10);
  const int64_t outer = c.size(2, "outer"), srcAxis = c.size(3, "srcAxis"),
                srcOffset = c.size(4, "srcOffset"), dstAxis = c.size(5, "dstAxis"),
                dstOffset = c.size(6, "dstOffset"), count = c.size(7, "count"),
                inner = c.size(8, "inner");
  const bool accumulate = c.flag(9, "accumulate");
  if (c.add(srcOffset, count) > srcAxis || c.add(dstOffset, count) > dstAxis) {
    c.rangeError("range out of bounds (src " + std::to_string(srcOffset) + "+" +
                 std::to_string(count) + " of " + std::to_string(srcAxis) + ", dst " +
                 std::to_string(dstOffset) + "+" + std::to_string(count) + " of " +
                 std::to_string(dstAxis) + ")");
  }
  const int64_t srcLen = c.mul(c.mul(outer, srcAxis), inner);
  const int64_t dstLen = c.mul(c.mul(outer, dstAxis), inner);
  // accumulate adds floats: both must be float32; a copy moves either dtype, the same in both.
  const Words src = accumulate ? Words{(uint32_t*)c.f32(0, "src", srcLen), true}
                               : c.any32(0, "src", srcLen);
  const Words dst = accumulate ? Words{(uint32_t*)c.f32(1, "dst", dstLen), true}
                               : c.any32(1, "dst", dstLen);
  if (src.isFloat != dst.isFloat) c.typeError("src and dst must have the same dtype");
  B::copyBlock(c, src.data, dst.data, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner,
               accumulate ? 1 : 0);
  return c.env().Undefined();
}

template <class B>
Napi::Value Binary(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "binary", 7);
  const int op = opCode(c, c.str(0, "op"), false);
  const std::vector<int64_t> shape = c.ints(4, "shape"), as = c.ints(5, "aStrides"),
                             bs = c.ints(6, "bStrides");
  if (shape.empty() || as.size() != shape.size() || bs.size() != shape.size()) {
    c.rangeError("shape and strides need one rank >= 1, got ranks " +
                 std::to_string(shape.size()) + " / " + std::to_string(as.size()) + " / " +
                 std::to_string(bs.size()));
  }
  const int64_t size = elementsOf(c, shape);
  const float* a = c.f32(1, "a", spanOf(c, shape, as));
  const float* b = c.f32(2, "b", spanOf(c, shape, bs));
  float* out = c.f32(3, "out", size);
  B::binary(c, op, a, b, out, (int)shape.size(), shape.data(), as.data(), bs.data());
  return c.env().Undefined();
}

template <class B>
Napi::Value Unary(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "unary", 4);
  const int op = opCode(c, c.str(0, "op"), true);
  const int64_t n = c.size(3, "n");
  const float* x = c.f32(1, "x", n);
  float* out = c.f32(2, "out", n);
  B::unary(c, op, x, out, n);
  return c.env().Undefined();
}

template <class B>
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "unaryBackward", 6);
  const int op = opCode(c, c.str(0, "op"), true);
  const int64_t n = c.size(5, "n");
  const float* x = c.f32(1, "x", n);
  const float* y = c.f32(2, "y", n);
  const float* gy = c.f32(3, "gy", n);
  float* gx = c.f32(4, "gx", n);
  B::unaryBackward(c, op, x, y, gy, gx, n);
  return c.env().Undefined();
}

template <class B>
Napi::Value Affine(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "affine", 5);
  const int64_t n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* out = c.f32(1, "out", n);
  B::affine(c, x, out, n, c.number(3, "alpha"), c.number(4, "beta"));
  return c.env().Undefined();
}

template <class B>
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "axpy", 4);
  const int64_t n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* y = c.f32(1, "y", n);
  B::axpy(c, x, y, n, c.number(3, "alpha"));
  return c.env().Undefined();
}

template <class B>
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "sumSquares", 2);
  const int64_t n = c.size(1, "n");
  const float* x = c.f32(0, "x", n);
  return Napi::Number::New(c.env(), B::sumSquares(c, x, n));
}

// ---- reductions and layout ----------------------------------------------------------------------

template <class B>
Napi::Value SumAxis(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "sumAxis", 6);
  const int64_t outer = c.size(2, "outer"), axis = c.size(3, "axis"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(c.mul(outer, axis), inner));
  float* out = c.f32(1, "out", c.mul(outer, inner));
  B::sumAxis(c, x, out, outer, axis, inner, c.flag(5, "accumulate") ? 1 : 0);
  return c.env().Undefined();
}

template <class B>
Napi::Value BroadcastAxis(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "broadcastAxis", 5);
  const int64_t outer = c.size(2, "outer"), axis = c.size(3, "axis"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(outer, inner));
  float* out = c.f32(1, "out", c.mul(c.mul(outer, axis), inner));
  B::broadcastAxis(c, x, out, outer, axis, inner);
  return c.env().Undefined();
}

template <class B>
Napi::Value Permute(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "permute", 5);
  const std::vector<int64_t> shape = c.ints(2, "shape"), perm = c.ints(3, "perm");
  const bool wantFloat = c.isFloatDtype(4);
  const size_t rank = shape.size();
  bool ok = perm.size() == rank;
  std::vector<bool> seen(rank, false);
  for (size_t d = 0; ok && d < rank; d++) {
    if (perm[d] >= (int64_t)rank || seen[perm[d]]) {
      ok = false;
    } else {
      seen[perm[d]] = true;
    }
  }
  if (!ok) {
    std::string p;
    for (size_t d = 0; d < perm.size(); d++) p += (d ? "," : "") + std::to_string(perm[d]);
    c.rangeError("perm [" + p + "] is not a permutation of 0.." + std::to_string((int)rank - 1));
  }
  const int64_t size = elementsOf(c, shape);
  const Words x = c.any32(0, "x", size);
  const Words out = c.any32(1, "out", size);
  if (x.isFloat != wantFloat || out.isFloat != wantFloat) {
    c.typeError(std::string("x and out must both hold ") + (wantFloat ? "float32" : "int32"));
  }
  B::permute(c, x.data, out.data, (int)rank, shape.data(), perm.data());
  return c.env().Undefined();
}

// ---- linear algebra -----------------------------------------------------------------------------

template <class B>
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "matmul", 15);
  MatmulArgs p;
  p.batch = c.size(3, "batch");
  p.m = c.size(4, "m");
  p.n = c.size(5, "n");
  p.k = c.size(6, "k");
  p.transA = c.flag(7, "transA") ? 1 : 0;
  p.transB = c.flag(8, "transB") ? 1 : 0;
  p.strideA = c.size(9, "strideA");
  p.strideB = c.size(10, "strideB");
  p.strideC = c.size(11, "strideC");
  p.alpha = c.number(12, "alpha");
  p.accumulate = c.flag(13, "accumulate") ? 1 : 0;
  if (p.batch == 0 || p.m == 0 || p.n == 0) return c.env().Undefined();
  const int64_t last = p.batch - 1;
  const float* a = c.f32(0, "A", c.add(c.mul(last, p.strideA), c.mul(p.m, p.k)));
  const float* b = c.f32(1, "B", c.add(c.mul(last, p.strideB), c.mul(p.k, p.n)));
  float* out = c.f32(2, "C", c.add(c.mul(last, p.strideC), c.mul(p.m, p.n)));
  p.bias = c.isNull(14) ? nullptr : c.f32(14, "bias", p.n);  // null: no bias
  B::matmul(c, a, b, out, &p);
  return c.env().Undefined();
}

// ---- embeddings ---------------------------------------------------------------------------------

template <class B>
Napi::Value Gather(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "gather", 6);
  const int64_t rows = c.size(3, "rows"), d = c.size(4, "d"), vocab = c.size(5, "vocab");
  const float* table = c.f32(0, "table", c.mul(vocab, d));
  const int32_t* idx = c.i32(1, "idx", rows);
  float* out = c.f32(2, "out", c.mul(rows, d));
  B::gather(c, table, idx, out, rows, d, vocab);
  return c.env().Undefined();
}

template <class B>
Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "scatterAdd", 5);
  const int64_t rows = c.size(3, "rows"), d = c.size(4, "d");
  const float* g = c.f32(0, "g", c.mul(rows, d));
  const int32_t* idx = c.i32(1, "idx", rows);
  float* table = c.f32(2, "gTable", 0);
  const int64_t vocab = d > 0 ? c.length(2) / d : 0;
  B::scatterAdd(c, g, idx, table, rows, d, vocab);
  return c.env().Undefined();
}

// ---- normalisation, softmax, cross-entropy ------------------------------------------------------

template <class B>
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "layerNorm", 9);
  const int64_t rows = c.size(6, "rows"), d = c.size(7, "d");
  const int64_t size = c.mul(rows, d);
  const float* x = c.f32(0, "x", size);
  const float* w = c.f32(1, "w", d);
  const float* b = c.f32(2, "b", d);
  float* out = c.f32(3, "out", size);
  float* mean = c.f32(4, "mean", rows);
  float* rstd = c.f32(5, "rstd", rows);
  B::layerNorm(c, x, w, b, out, mean, rstd, rows, d, c.number(8, "eps"));
  return c.env().Undefined();
}

template <class B>
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "layerNormBackward", 10);
  const int64_t rows = c.size(8, "rows"), d = c.size(9, "d");
  const int64_t size = c.mul(rows, d);
  const float* x = c.f32(0, "x", size);
  const float* w = c.f32(1, "w", d);
  const float* mean = c.f32(2, "mean", rows);
  const float* rstd = c.f32(3, "rstd", rows);
  const float* gy = c.f32(4, "gy", size);
  float* gx = c.f32(5, "gx", size);
  float* gw = c.f32(6, "gw", d);
  float* gb = c.f32(7, "gb", d);
  B::layerNormBackward(c, x, w, mean, rstd, gy, gx, gw, gb, rows, d);
  return c.env().Undefined();
}

template <class B>
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "softmax", 5);
  const int64_t rows = c.size(2, "rows"), n = c.size(3, "n"), tq = c.size(4, "causalTq");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  float* out = c.f32(1, "out", size);
  B::softmax(c, x, out, rows, n, tq);
  return c.env().Undefined();
}

template <class B>
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "softmaxBackward", 5);
  const int64_t rows = c.size(3, "rows"), n = c.size(4, "n");
  const int64_t size = c.mul(rows, n);
  const float* y = c.f32(0, "y", size);
  const float* gy = c.f32(1, "gy", size);
  float* gx = c.f32(2, "gx", size);
  B::softmaxBackward(c, y, gy, gx, rows, n);
  return c.env().Undefined();
}

template <class B>
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "crossEntropy", 6);
  const int64_t rows = c.size(4, "rows"), v = c.size(5, "v");
  const int64_t size = c.mul(rows, v);
  const float* logits = c.f32(0, "logits", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  float* probs = c.f32(2, "probs", size);
  float* losses = c.f32(3, "losses", rows);
  B::crossEntropy(c, logits, targets, probs, losses, rows, v);
  return c.env().Undefined();
}

template <class B>
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "crossEntropyBackward", 6);
  const int64_t rows = c.size(4, "rows"), v = c.size(5, "v");
  const int64_t size = c.mul(rows, v);
  const float* probs = c.f32(0, "probs", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  const float* gLoss = c.f32(2, "gLoss", rows);
  float* gLogits = c.f32(3, "gLogits", size);
  B::crossEntropyBackward(c, probs, targets, gLoss, gLogits, rows, v);
  return c.env().Undefined();
}

// ---- randomness, convolution, vector quantisation, optimiser ------------------------------------

template <class B>
Napi::Value DropoutMask(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "dropoutMask", 4);
  const int64_t n = c.size(1, "n");
  float* out = c.f32(0, "out", n);
  const double p = c.number(2, "p");
  B::dropoutMask(c, out, n, p, toUint32(c.number(3, "seed")));
  return c.env().Undefined();
}

template <class B>
Napi::Value Im2col(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "im2col", 12);
  const ConvGeom g = convGeometry(c, 2);
  const float* x = c.f32(0, "x", imageElements(c, g));
  float* cols = c.f32(1, "cols", columnElements(c, g));
  B::im2col(c, x, cols, &g);
  return c.env().Undefined();
}

template <class B>
Napi::Value Col2im(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "col2im", 12);
  const ConvGeom g = convGeometry(c, 2);
  const float* cols = c.f32(0, "cols", columnElements(c, g));
  float* x = c.f32(1, "x", imageElements(c, g));
  B::col2im(c, cols, x, &g);
  return c.env().Undefined();
}

template <class B>
Napi::Value NearestCode(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "nearestCode", 7);
  const int64_t rows = c.size(4, "rows"), k = c.size(5, "k"), d = c.size(6, "d");
  const float* z = c.f32(0, "z", c.mul(rows, d));
  const float* codebook = c.f32(1, "codebook", c.mul(k, d));
  int32_t* idx = c.i32(2, "idx", rows);
  float* dist = c.f32(3, "dist", rows);
  if (k < 1) c.rangeError("the codebook needs at least one row, got k = " + std::to_string(k));
  B::nearestCode(c, z, codebook, idx, dist, rows, k, d);
  return c.env().Undefined();
}

template <class B>
Napi::Value Adam(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "adam", 13);
  const int64_t n = c.size(4, "n");
  float* p = c.f32(0, "p", n);
  const float* g = c.f32(1, "g", n);
  float* m = c.f32(2, "m", n);
  float* v = c.f32(3, "v", n);
  AdamArgs a;
  a.lr = c.number(5, "lr");
  a.beta1 = c.number(6, "beta1");
  a.beta2 = c.number(7, "beta2");
  a.eps = c.number(8, "eps");
  a.weightDecay = c.number(9, "weightDecay");
  a.decoupled = c.flag(10, "decoupled") ? 1 : 0;
  a.step = c.number(11, "step");
  a.gradScale = c.number(12, "gradScale");
  checkStep(c, a.step);
  B::adam(c, p, g, m, v, n, &a);
  return c.env().Undefined();
}

// ---- fused training-step kernels ----------------------------------------------------------------

template <class B>
Napi::Value CrossEntropyMean(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "crossEntropyMean", 7);
  const int64_t rows = c.size(5, "rows"), v = c.size(6, "v");
  const int64_t size = c.mul(rows, v);
  const float* logits = c.f32(0, "logits", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  float* losses = c.f32(2, "losses", rows);
  float* loss = c.f32(3, "loss", 1);
  float* gLogits = c.f32(4, "gLogits", size);
  B::crossEntropyMean(c, logits, targets, losses, loss, gLogits, rows, v);
  return c.env().Undefined();
}

template <class B>
Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "biasGelu", 5);
  const int64_t rows = c.size(3, "rows"), n = c.size(4, "n");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  const float* bias = c.f32(1, "bias", n);
  float* out = c.f32(2, "out", size);
  B::biasGelu(c, x, bias, out, rows, n);
  return c.env().Undefined();
}

template <class B>
Napi::Value BiasGeluBackward(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "biasGeluBackward", 7);
  const int64_t rows = c.size(5, "rows"), n = c.size(6, "n");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  const float* bias = c.f32(1, "bias", n);
  const float* gy = c.f32(2, "gy", size);
  float* gx = c.f32(3, "gx", size);
  float* gBias = c.f32(4, "gBias", n);
  B::biasGeluBackward(c, x, bias, gy, gx, gBias, rows, n);
  return c.env().Undefined();
}

template <class B>
Napi::Value AddLayerNorm(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "addLayerNorm", 11);
  const int64_t rows = c.size(8, "rows"), d = c.size(9, "d");
  const int64_t size = c.mul(rows, d);
  const float* x = c.f32(0, "x", size);
  const float* r = c.f32(1, "r", size);
  const float* w = c.f32(2, "w", d);
  const float* b = c.f32(3, "b", d);
  float* h = c.f32(4, "h", size);
  float* out = c.f32(5, "out", size);
  float* mean = c.f32(6, "mean", rows);
  float* rstd = c.f32(7, "rstd", rows);
  B::addLayerNorm(c, x, r, w, b, h, out, mean, rstd, rows, d, c.number(10, "eps"));
  return c.env().Undefined();
}

template <class B>
Napi::Value AdamMulti(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "adamMulti", 14);
  int64_t count = -1;
  const Napi::Array ps = c.list(0, "params", &count, "params");
  const Napi::Array gs = c.list(1, "grads", &count, "params");
  const Napi::Array ms = c.list(2, "m", &count, "params");
  const Napi::Array vs = c.list(3, "v", &count, "params");
  const Napi::Array sizes = c.list(4, "sizes", &count, "params");
  const Napi::Array wds = c.list(5, "weightDecays", &count, "params");
  std::vector<float*> p(count), m(count), v(count);
  std::vector<const float*> g(count);
  std::vector<int64_t> n(count);
  std::vector<double> wd(count);
  for (uint32_t i = 0; i < (uint32_t)count; i++) {
    const std::string at = "[" + std::to_string(i) + "]";
    n[i] = c.sizeAt(sizes, i, "sizes");
    wd[i] = c.numberAt(wds, i, "weightDecays");
    p[i] = c.f32Value(ps.Get(i), "params" + at, n[i]);
    g[i] = c.f32Value(gs.Get(i), "grads" + at, n[i]);
    m[i] = c.f32Value(ms.Get(i), "m" + at, n[i]);
    v[i] = c.f32Value(vs.Get(i), "v" + at, n[i]);
  }
  AdamArgs a;
  a.lr = c.number(6, "lr");
  a.beta1 = c.number(7, "beta1");
  a.beta2 = c.number(8, "beta2");
  a.eps = c.number(9, "eps");
  a.weightDecay = 0;
  a.decoupled = c.flag(10, "decoupled") ? 1 : 0;
  a.step = c.number(11, "step");
  a.gradScale = 1;
  const double clipNorm = c.number(12, "clipNorm");
  float* normOut = c.f32(13, "normOut", 1);
  checkStep(c, a.step);
  B::adamMulti(c, p.data(), g.data(), m.data(), v.data(), n.data(), wd.data(), count, &a,
               clipNorm, normOut);
  return c.env().Undefined();
}

/** The sizes of attention / attentionBackward from argument `first` on: batch, t, heads, headSize. */
inline void attentionSizes(const ArgsBase& c, int first, int64_t* batch, int64_t* t,
                           int64_t* heads, int64_t* hs) {
  *batch = c.size(first, "batch");
  *t = c.size(first + 1, "t");
  *heads = c.size(first + 2, "heads");
  *hs = c.size(first + 3, "headSize");
  if (*t > 64) c.rangeError("t must be <= 64, got " + std::to_string(*t));
}

template <class B>
Napi::Value Attention(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "attention", 8);
  int64_t batch, t, heads, hs;
  attentionSizes(c, 3, &batch, &t, &heads, &hs);
  const int64_t rows = c.mul(batch, t), width = c.mul(heads, hs);
  const float* qkv = c.f32(0, "qkv", c.mul(c.mul(rows, 3), width));
  float* out = c.f32(1, "out", c.mul(rows, width));
  float* probs = c.f32(2, "probs", c.mul(c.mul(batch, heads), c.mul(t, t)));
  B::attention(c, qkv, out, probs, batch, t, heads, hs, c.number(7, "scale"));
  return c.env().Undefined();
}

template <class B>
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  typename B::Args c(info, "attentionBackward", 9);
  int64_t batch, t, heads, hs;
  attentionSizes(c, 4, &batch, &t, &heads, &hs);
  const int64_t rows = c.mul(batch, t), width = c.mul(heads, hs);
  const int64_t qkvSize = c.mul(c.mul(rows, 3), width);
  const float* qkv = c.f32(0, "qkv", qkvSize);
  const float* probs = c.f32(1, "probs", c.mul(c.mul(batch, heads), c.mul(t, t)));
  const float* gy = c.f32(2, "gy", c.mul(rows, width));
  float* gQkv = c.f32(3, "gQkv", qkvSize);
  B::attentionBackward(c, qkv, probs, gy, gQkv, batch, t, heads, hs, c.number(8, "scale"));
  return c.env().Undefined();
}

// ---- the list -----------------------------------------------------------------------------------

/** Every kernel entry point: X(JS name, binding), in the order the addons export them. */
#define MMGPT_KERNEL_BINDINGS(X)                 \
  X("fill", Fill)                                \
  X("copyBlock", CopyBlock)                      \
  X("binary", Binary)                            \
  X("unary", Unary)                              \
  X("unaryBackward", UnaryBackward)              \
  X("affine", Affine)                            \
  X("axpy", Axpy)                                \
  X("sumSquares", SumSquares)                    \
  X("sumAxis", SumAxis)                          \
  X("broadcastAxis", BroadcastAxis)              \
  X("permute", Permute)                          \
  X("matmul", Matmul)                            \
  X("gather", Gather)                            \
  X("scatterAdd", ScatterAdd)                    \
  X("layerNorm", LayerNorm)                      \
  X("layerNormBackward", LayerNormBackward)      \
  X("softmax", Softmax)                          \
  X("softmaxBackward", SoftmaxBackward)          \
  X("crossEntropy", CrossEntropy)                \
  X("crossEntropyBackward", CrossEntropyBackward) \
  X("dropoutMask", DropoutMask)                  \
  X("im2col", Im2col)                            \
  X("col2im", Col2im)                            \
  X("nearestCode", NearestCode)                  \
  X("adam", Adam)                                \
  X("crossEntropyMean", CrossEntropyMean)        \
  X("biasGelu", BiasGelu)                        \
  X("biasGeluBackward", BiasGeluBackward)        \
  X("addLayerNorm", AddLayerNorm)                \
  X("adamMulti", AdamMulti)                      \
  X("attention", Attention)                      \
  X("attentionBackward", AttentionBackward)

/** Sets every kernel entry point of backend B on `target`. */
template <class B>
void exportKernels(Napi::Env env, Napi::Object target) {
#define MMGPT_EXPORT_KERNEL(name, binding) \
  target.Set(name, Napi::Function::New(env, binding<B>, name));
  MMGPT_KERNEL_BINDINGS(MMGPT_EXPORT_KERNEL)
#undef MMGPT_EXPORT_KERNEL
}

}  // namespace napi
}  // namespace mmgpt

#endif  // MMGPT_KERNEL_BINDINGS_H

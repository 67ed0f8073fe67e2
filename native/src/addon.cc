// mmgpt_native: the N-API entry points of the native CPU backend (src/engine/backends/cpu.ts).
//
// One JS function per kernel of the Backend interface (src/engine/backend.ts), taking the
// Float32Array / Int32Array buffers themselves (the kernels read and write their memory in
// place: no copies) and plain numbers. Every call checks its arguments first (types, integer
// sizes, buffer lengths, index ranges) and throws a JS TypeError/RangeError whose message says
// what was wrong, so a bad call never reaches a kernel; the messages follow the js backend's.
//
// Notable choices: the kernels are compiled three times (kernels_{avx512,avx2,base}.cc) and the
// table used is picked once at load with __builtin_cpu_supports (setSimdPath can force a
// supported one, for tests and benchmarks). Threads: OpenMP, OMP_NUM_THREADS respected at load,
// setNumThreads(n) afterwards; every parallel region names its thread count explicitly, so the
// setting holds whichever JS thread calls.

#include <math.h>
#include <napi.h>
#include <omp.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "kernels.h"
#include "napi_args.h"

namespace mmgpt {
// The CUDA backend's entry points (native/cuda/addon_cuda.cc): `exports.cuda`.
void registerCuda(Napi::Env env, Napi::Object exports);
}  // namespace mmgpt

namespace {

const mmgpt::KernelTable* gTable = nullptr;
int gThreads = 1;

// ---- argument checking (the shared checks: napi_args.h) ---------------------------------------

using mmgpt::napi::opCode;
using mmgpt::napi::toUint32;

/** ArgsBase plus the cpu backend's buffers: Float32Array / Int32Array, read in place. */
class Call : public mmgpt::napi::ArgsBase {
 public:
  Call(const Napi::CallbackInfo& info, const char* fn, size_t nargs)
      : ArgsBase(info, fn, nargs, "") {
    static_assert(ArgsBase::kMaxRank == (uint32_t)mmgpt::kMaxRank, "one rank limit");
  }

  /** A typed array of the given kind with at least minLength elements: its data pointer. */
  void* array(size_t i, const char* name, napi_typedarray_type type, int64_t minLength) const {
    return arrayValue(info_[i], name, type, minLength);
  }
  /** Like array, for a value that is not itself an argument (an element of an array argument). */
  void* arrayValue(const Napi::Value& value, const std::string& name, napi_typedarray_type type,
                   int64_t minLength) const {
    napi_typedarray_type actual;
    size_t length = 0;
    void* data = nullptr;
    if (!value.IsTypedArray() ||
        napi_get_typedarray_info(info_.Env(), value, &actual, &length, &data, nullptr,
                                 nullptr) != napi_ok ||
        actual != type) {
      typeError(name + " must be " + typeName(type) + ", got " + describe(value));
    }
    if ((int64_t)length < minLength) {
      rangeError(name + " has " + std::to_string(length) +
                 " elements but the kernel needs at least " + std::to_string(minLength));
    }
    return data;
  }
  float* f32(size_t i, const char* name, int64_t minLength) const {
    return static_cast<float*>(array(i, name, napi_float32_array, minLength));
  }
  int32_t* i32(size_t i, const char* name, int64_t minLength) const {
    return static_cast<int32_t*>(array(i, name, napi_int32_array, minLength));
  }
  /** A Float32Array or Int32Array (4-byte elements); *isFloat says which. */
  uint32_t* any32(size_t i, const char* name, int64_t minLength, bool* isFloat) const {
    const Napi::Value v = info_[i];
    if (v.IsTypedArray()) {
      const napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
      if (t == napi_float32_array || t == napi_int32_array) {
        *isFloat = t == napi_float32_array;
        return static_cast<uint32_t*>(array(i, name, t, minLength));
      }
    }
    typeError(std::string(name) + " must be a Float32Array or Int32Array, got " + describe(v));
  }
  /** Length of a typed array of 4-byte elements (for checks that depend on it). */
  int64_t lengthOf(size_t i) const { return (int64_t)info_[i].As<Napi::TypedArray>().ElementLength(); }

 private:
  static const char* typeName(napi_typedarray_type t) {
    return t == napi_float32_array ? "a Float32Array" : "an Int32Array";
  }
};

// ---- memory and elementwise --------------------------------------------------------------------

Napi::Value Fill(const Napi::CallbackInfo& info) {
  Call c(info, "fill", 3);
  const int64_t n = c.size(1, "n");
  bool isFloat = false;
  uint32_t* out = c.any32(0, "out", n, &isFloat);
  const double value = c.number(2, "value");
  uint32_t bits;
  if (isFloat) {
    const float f = (float)value;
    memcpy(&bits, &f, 4);
  } else {
    bits = toUint32(value);  // ToInt32 and ToUint32 share their bit pattern
  }
  gTable->fill32(out, n, bits, gThreads);
  return c.env().Undefined();
}

Napi::Value CopyBlock(const Napi::CallbackInfo& info) {
  Call c(info, "copyBlock", 10);
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
  const uint32_t* src;
  uint32_t* dst;
  if (accumulate) {
    src = (const uint32_t*)c.f32(0, "src", srcLen);
    dst = (uint32_t*)c.f32(1, "dst", dstLen);
  } else {
    bool srcFloat = false, dstFloat = false;
    src = c.any32(0, "src", srcLen, &srcFloat);
    dst = c.any32(1, "dst", dstLen, &dstFloat);
    if (srcFloat != dstFloat) c.typeError("src and dst must have the same dtype");
  }
  gTable->copyBlock(src, dst, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner,
                    accumulate ? 1 : 0, gThreads);
  return c.env().Undefined();
}

/** 1 + the largest offset that `shape` with `strides` reaches (0 for an empty shape). */
int64_t spanOf(const Call& c, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& strides) {
  int64_t last = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 0) return 0;
  }
  for (size_t d = 0; d < shape.size(); d++) last = c.add(last, c.mul(shape[d] - 1, strides[d]));
  return last + 1;
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Call c(info, "binary", 7);
  const int op = opCode(c, c.str(0, "op"), false);
  const std::vector<int64_t> shape = c.ints(4, "shape"), as = c.ints(5, "aStrides"),
                             bs = c.ints(6, "bStrides");
  if (shape.empty() || as.size() != shape.size() || bs.size() != shape.size()) {
    c.rangeError("shape and strides need one rank >= 1, got ranks " +
                 std::to_string(shape.size()) + " / " + std::to_string(as.size()) + " / " +
                 std::to_string(bs.size()));
  }
  int64_t size = 1;
  for (int64_t s : shape) size = c.mul(size, s);
  const float* a = c.f32(1, "a", spanOf(c, shape, as));
  const float* b = c.f32(2, "b", spanOf(c, shape, bs));
  float* out = c.f32(3, "out", size);
  gTable->binary(op, a, b, out, (int)shape.size(), shape.data(), as.data(), bs.data(), gThreads);
  return c.env().Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Call c(info, "unary", 4);
  const int op = opCode(c, c.str(0, "op"), true);
  const int64_t n = c.size(3, "n");
  const float* x = c.f32(1, "x", n);
  float* out = c.f32(2, "out", n);
  gTable->unary(op, x, out, n, gThreads);
  return c.env().Undefined();
}

Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  Call c(info, "unaryBackward", 6);
  const int op = opCode(c, c.str(0, "op"), true);
  const int64_t n = c.size(5, "n");
  const float* x = c.f32(1, "x", n);
  const float* y = c.f32(2, "y", n);
  const float* gy = c.f32(3, "gy", n);
  float* gx = c.f32(4, "gx", n);
  gTable->unaryBackward(op, x, y, gy, gx, n, gThreads);
  return c.env().Undefined();
}

Napi::Value Affine(const Napi::CallbackInfo& info) {
  Call c(info, "affine", 5);
  const int64_t n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* out = c.f32(1, "out", n);
  gTable->affine(x, out, n, c.number(3, "alpha"), c.number(4, "beta"), gThreads);
  return c.env().Undefined();
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Call c(info, "axpy", 4);
  const int64_t n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* y = c.f32(1, "y", n);
  gTable->axpy(x, y, n, c.number(3, "alpha"), gThreads);
  return c.env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Call c(info, "sumSquares", 2);
  const int64_t n = c.size(1, "n");
  const float* x = c.f32(0, "x", n);
  return Napi::Number::New(c.env(), gTable->sumSquares(x, n, gThreads));
}

// ---- reductions and layout ----------------------------------------------------------------------

Napi::Value SumAxis(const Napi::CallbackInfo& info) {
  Call c(info, "sumAxis", 6);
  const int64_t outer = c.size(2, "outer"), axis = c.size(3, "axis"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(c.mul(outer, axis), inner));
  float* out = c.f32(1, "out", c.mul(outer, inner));
  gTable->sumAxis(x, out, outer, axis, inner, c.flag(5, "accumulate") ? 1 : 0, gThreads);
  return c.env().Undefined();
}

Napi::Value BroadcastAxis(const Napi::CallbackInfo& info) {
  Call c(info, "broadcastAxis", 5);
  const int64_t outer = c.size(2, "outer"), axis = c.size(3, "axis"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(outer, inner));
  float* out = c.f32(1, "out", c.mul(c.mul(outer, axis), inner));
  gTable->broadcastAxis(x, out, outer, axis, inner, gThreads);
  return c.env().Undefined();
}

Napi::Value Permute(const Napi::CallbackInfo& info) {
  Call c(info, "permute", 5);
  const std::vector<int64_t> shape = c.ints(2, "shape"), perm = c.ints(3, "perm");
  const std::string dtype = c.str(4, "dtype");
  if (dtype != "float32" && dtype != "int32") {
    c.typeError("dtype must be 'float32' or 'int32', got '" + dtype + "'");
  }
  const size_t rank = shape.size();
  bool ok = perm.size() == rank;
  std::vector<bool> seen(rank, false);
  for (size_t d = 0; ok && d < rank; d++) {
    if (perm[d] >= (int64_t)rank || seen[perm[d]]) ok = false;
    else seen[perm[d]] = true;
  }
  if (!ok) {
    std::string p;
    for (size_t d = 0; d < perm.size(); d++) p += (d ? "," : "") + std::to_string(perm[d]);
    c.rangeError("perm [" + p + "] is not a permutation of 0.." + std::to_string((int)rank - 1));
  }
  int64_t size = 1;
  for (int64_t s : shape) size = c.mul(size, s);
  bool xFloat = false, outFloat = false;
  const uint32_t* x = c.any32(0, "x", size, &xFloat);
  uint32_t* out = c.any32(1, "out", size, &outFloat);
  const bool wantFloat = dtype == "float32";
  if (xFloat != wantFloat || outFloat != wantFloat) {
    c.typeError("x and out must both hold " + dtype);
  }
  if (size == 0) return c.env().Undefined();
  if (rank == 0) {
    out[0] = x[0];
    return c.env().Undefined();
  }
  gTable->permute(x, out, (int)rank, shape.data(), perm.data(), gThreads);
  return c.env().Undefined();
}

// ---- linear algebra ------------------------------------------------------------------------------

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Call c(info, "matmul", 14);
  mmgpt::MatmulArgs p;
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
  gTable->matmul(a, b, out, &p, gThreads);
  return c.env().Undefined();
}

// ---- embeddings -----------------------------------------------------------------------------------

Napi::Value Gather(const Napi::CallbackInfo& info) {
  Call c(info, "gather", 6);
  const int64_t rows = c.size(3, "rows"), d = c.size(4, "d"), vocab = c.size(5, "vocab");
  const float* table = c.f32(0, "table", c.mul(vocab, d));
  const int32_t* idx = c.i32(1, "idx", rows);
  float* out = c.f32(2, "out", c.mul(rows, d));
  for (int64_t r = 0; r < rows; r++) {
    if (idx[r] < 0 || idx[r] >= vocab) {
      c.rangeError("index " + std::to_string(idx[r]) + " at row " + std::to_string(r) +
                   " is out of range for a vocabulary of size " + std::to_string(vocab) +
                   " (accepted: 0.." + std::to_string(vocab - 1) + ")");
    }
  }
  gTable->gather(table, idx, out, rows, d, gThreads);
  return c.env().Undefined();
}

Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  Call c(info, "scatterAdd", 5);
  const int64_t rows = c.size(3, "rows"), d = c.size(4, "d");
  const float* g = c.f32(0, "g", c.mul(rows, d));
  const int32_t* idx = c.i32(1, "idx", rows);
  float* gTableBuf = c.f32(2, "gTable", 0);
  const int64_t vocab = d > 0 ? c.lengthOf(2) / d : 0;
  for (int64_t r = 0; r < rows; r++) {
    if (idx[r] < 0 || idx[r] >= vocab) {
      c.rangeError("index " + std::to_string(idx[r]) + " at row " + std::to_string(r) +
                   " is out of range for a table of " + std::to_string(vocab) + " rows");
    }
  }
  gTable->scatterAdd(g, idx, gTableBuf, rows, d, gThreads);
  return c.env().Undefined();
}

// ---- fused normalisation and attention pieces ------------------------------------------------------

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Call c(info, "layerNorm", 9);
  const int64_t rows = c.size(6, "rows"), d = c.size(7, "d");
  const int64_t size = c.mul(rows, d);
  const float* x = c.f32(0, "x", size);
  const float* w = c.f32(1, "w", d);
  const float* b = c.f32(2, "b", d);
  float* out = c.f32(3, "out", size);
  float* mean = c.f32(4, "mean", rows);
  float* rstd = c.f32(5, "rstd", rows);
  gTable->layerNorm(x, w, b, out, mean, rstd, rows, d, c.number(8, "eps"), gThreads);
  return c.env().Undefined();
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Call c(info, "layerNormBackward", 10);
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
  gTable->layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, d, gThreads);
  return c.env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Call c(info, "softmax", 5);
  const int64_t rows = c.size(2, "rows"), n = c.size(3, "n"), tq = c.size(4, "causalTq");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  float* out = c.f32(1, "out", size);
  gTable->softmax(x, out, rows, n, tq, gThreads);
  return c.env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  Call c(info, "softmaxBackward", 5);
  const int64_t rows = c.size(3, "rows"), n = c.size(4, "n");
  const int64_t size = c.mul(rows, n);
  const float* y = c.f32(0, "y", size);
  const float* gy = c.f32(1, "gy", size);
  float* gx = c.f32(2, "gx", size);
  gTable->softmaxBackward(y, gy, gx, rows, n, gThreads);
  return c.env().Undefined();
}

void checkTargets(const Call& c, const int32_t* targets, int64_t rows, int64_t v) {
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] >= v) {
      c.rangeError("target " + std::to_string(targets[r]) + " at row " + std::to_string(r) +
                   " is out of range for " + std::to_string(v) + " classes (accepted: 0.." +
                   std::to_string(v - 1) + ", or negative to ignore)");
    }
  }
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Call c(info, "crossEntropy", 6);
  const int64_t rows = c.size(4, "rows"), v = c.size(5, "v");
  const int64_t size = c.mul(rows, v);
  const float* logits = c.f32(0, "logits", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  float* probs = c.f32(2, "probs", size);
  float* losses = c.f32(3, "losses", rows);
  checkTargets(c, targets, rows, v);
  gTable->crossEntropy(logits, targets, probs, losses, rows, v, gThreads);
  return c.env().Undefined();
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Call c(info, "crossEntropyBackward", 6);
  const int64_t rows = c.size(4, "rows"), v = c.size(5, "v");
  const int64_t size = c.mul(rows, v);
  const float* probs = c.f32(0, "probs", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  const float* gLoss = c.f32(2, "gLoss", rows);
  float* gLogits = c.f32(3, "gLogits", size);
  checkTargets(c, targets, rows, v);
  gTable->crossEntropyBackward(probs, targets, gLoss, gLogits, rows, v, gThreads);
  return c.env().Undefined();
}

// ---- randomness, convolution, vector quantisation, optimiser ----------------------------------------

Napi::Value DropoutMask(const Napi::CallbackInfo& info) {
  Call c(info, "dropoutMask", 4);
  const int64_t n = c.size(1, "n");
  float* out = c.f32(0, "out", n);
  const double p = c.number(2, "p");
  gTable->dropoutMask(out, n, p, toUint32(c.number(3, "seed")), gThreads);
  return c.env().Undefined();
}

mmgpt::ConvGeom geometry(const Call& c, size_t first) {
  mmgpt::ConvGeom g;
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

Napi::Value Im2col(const Napi::CallbackInfo& info) {
  Call c(info, "im2col", 12);
  const mmgpt::ConvGeom g = geometry(c, 2);
  const float* x = c.f32(0, "x", c.mul(c.mul(g.n, g.c), c.mul(g.h, g.w)));
  float* cols =
      c.f32(1, "cols", c.mul(c.mul(c.mul(g.n, g.c), c.mul(g.kh, g.kw)), c.mul(g.ho, g.wo)));
  gTable->im2col(x, cols, &g, gThreads);
  return c.env().Undefined();
}

Napi::Value Col2im(const Napi::CallbackInfo& info) {
  Call c(info, "col2im", 12);
  const mmgpt::ConvGeom g = geometry(c, 2);
  const float* cols =
      c.f32(0, "cols", c.mul(c.mul(c.mul(g.n, g.c), c.mul(g.kh, g.kw)), c.mul(g.ho, g.wo)));
  float* x = c.f32(1, "x", c.mul(c.mul(g.n, g.c), c.mul(g.h, g.w)));
  gTable->col2im(cols, x, &g, gThreads);
  return c.env().Undefined();
}

Napi::Value NearestCode(const Napi::CallbackInfo& info) {
  Call c(info, "nearestCode", 7);
  const int64_t rows = c.size(4, "rows"), k = c.size(5, "k"), d = c.size(6, "d");
  const float* z = c.f32(0, "z", c.mul(rows, d));
  const float* codebook = c.f32(1, "codebook", c.mul(k, d));
  int32_t* idx = c.i32(2, "idx", rows);
  float* dist = c.f32(3, "dist", rows);
  if (k < 1) c.rangeError("the codebook needs at least one row, got k = " + std::to_string(k));
  gTable->nearestCode(z, codebook, idx, dist, rows, k, d, gThreads);
  return c.env().Undefined();
}

Napi::Value Adam(const Napi::CallbackInfo& info) {
  Call c(info, "adam", 13);
  const int64_t n = c.size(4, "n");
  float* p = c.f32(0, "p", n);
  const float* g = c.f32(1, "g", n);
  float* m = c.f32(2, "m", n);
  float* v = c.f32(3, "v", n);
  mmgpt::AdamArgs a;
  a.lr = c.number(5, "lr");
  a.beta1 = c.number(6, "beta1");
  a.beta2 = c.number(7, "beta2");
  a.eps = c.number(8, "eps");
  a.weightDecay = c.number(9, "weightDecay");
  a.decoupled = c.flag(10, "decoupled") ? 1 : 0;
  a.step = c.number(11, "step");
  a.gradScale = c.number(12, "gradScale");
  if (!(a.step >= 1)) c.rangeError("step is 1-based, got " + std::to_string(a.step));
  gTable->adam(p, g, m, v, n, &a, gThreads);
  return c.env().Undefined();
}

// ---- configuration -----------------------------------------------------------------------------------

struct Path {
  const char* name;
  const mmgpt::KernelTable* table;
  bool supported;
};

std::vector<Path> paths() {
  bool avx512 = false, avx2 = false;
#if defined(__x86_64__)
  __builtin_cpu_init();
  avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  std::vector<Path> out;
  // Fastest first.
  out.push_back({"avx512", mmgpt_kernels_avx512(), avx512});
  out.push_back({"avx2", mmgpt_kernels_avx2(), avx2});
  out.push_back({"baseline", mmgpt_kernels_scalar(), true});
  for (Path& p : out) p.supported = p.supported && p.table != nullptr;
  return out;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Call c(info, "setNumThreads", 1);
  const int64_t n = c.size(0, "n");
  if (n < 1 || n > 1024) c.rangeError("n must be in 1..1024, got " + std::to_string(n));
  gThreads = (int)n;
  return c.env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), gThreads);
}

Napi::Value SimdPath(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), gTable->name);
}

Napi::Value AvailableSimdPaths(const Napi::CallbackInfo& info) {
  Napi::Array arr = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const Path& p : paths()) {
    if (p.supported) arr.Set(i++, Napi::String::New(info.Env(), p.name));
  }
  return arr;
}

Napi::Value SetSimdPath(const Napi::CallbackInfo& info) {
  Call c(info, "setSimdPath", 1);
  const std::string want = c.str(0, "path");
  std::string names;
  for (const Path& p : paths()) {
    if (want == p.name) {
      if (!p.supported) {
        c.rangeError("SIMD path '" + want + "' is not supported by this processor or build");
      }
      gTable = p.table;
      return c.env().Undefined();
    }
    names += (names.empty() ? "" : ", ") + std::string(p.name);
  }
  c.rangeError("unknown SIMD path '" + want + "' (accepted: " + names + ")");
}

Napi::Value CrossEntropyMean(const Napi::CallbackInfo& info) {
  Call c(info, "crossEntropyMean", 7);
  const int64_t rows = c.size(5, "rows"), v = c.size(6, "v");
  const int64_t size = c.mul(rows, v);
  const float* logits = c.f32(0, "logits", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  float* losses = c.f32(2, "losses", rows);
  float* loss = c.f32(3, "loss", 1);
  float* gLogits = c.f32(4, "gLogits", size);
  checkTargets(c, targets, rows, v);
  gTable->crossEntropyMean(logits, targets, losses, loss, gLogits, rows, v, gThreads);
  return c.env().Undefined();
}

Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
  Call c(info, "biasGelu", 5);
  const int64_t rows = c.size(3, "rows"), n = c.size(4, "n");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  const float* bias = c.f32(1, "bias", n);
  float* out = c.f32(2, "out", size);
  gTable->biasGelu(x, bias, out, rows, n, gThreads);
  return c.env().Undefined();
}

Napi::Value BiasGeluBackward(const Napi::CallbackInfo& info) {
  Call c(info, "biasGeluBackward", 7);
  const int64_t rows = c.size(5, "rows"), n = c.size(6, "n");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  const float* bias = c.f32(1, "bias", n);
  const float* gy = c.f32(2, "gy", size);
  float* gx = c.f32(3, "gx", size);
  float* gBias = c.f32(4, "gBias", n);
  gTable->biasGeluBackward(x, bias, gy, gx, gBias, rows, n, gThreads);
  return c.env().Undefined();
}

Napi::Value AddLayerNorm(const Napi::CallbackInfo& info) {
  Call c(info, "addLayerNorm", 11);
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
  gTable->addLayerNorm(x, r, w, b, h, out, mean, rstd, rows, d, c.number(10, "eps"), gThreads);
  return c.env().Undefined();
}

Napi::Value AdamMulti(const Napi::CallbackInfo& info) {
  Call c(info, "adamMulti", 14);
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
    p[i] = static_cast<float*>(c.arrayValue(ps.Get(i), "params" + at, napi_float32_array, n[i]));
    g[i] = static_cast<float*>(c.arrayValue(gs.Get(i), "grads" + at, napi_float32_array, n[i]));
    m[i] = static_cast<float*>(c.arrayValue(ms.Get(i), "m" + at, napi_float32_array, n[i]));
    v[i] = static_cast<float*>(c.arrayValue(vs.Get(i), "v" + at, napi_float32_array, n[i]));
  }
  mmgpt::AdamArgs a;
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
  if (!(a.step >= 1)) c.rangeError("step is 1-based, got " + std::to_string(a.step));
  gTable->adamMulti(p.data(), g.data(), m.data(), v.data(), n.data(), wd.data(), count, &a,
                    clipNorm, normOut, gThreads);
  return c.env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", gTable->name);
  o.Set("threads", gThreads);
  o.Set("maxThreads", omp_get_num_procs());
  Napi::Array tile = Napi::Array::New(env, 2);
  tile.Set(0u, gTable->gemmMr);
  tile.Set(1u, gTable->gemmNr);
  o.Set("gemmTile", tile);
  o.Set("openmp", _OPENMP);
#if defined(__VERSION__)
  o.Set("compiler", __VERSION__);
#endif
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (const Path& p : paths()) {
    if (p.supported) {
      gTable = p.table;
      break;
    }
  }
  gThreads = omp_get_max_threads();  // OMP_NUM_THREADS, else the number of processors
  if (gThreads < 1) gThreads = 1;
#define MMGPT_EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  MMGPT_EXPORT("fill", Fill);
  MMGPT_EXPORT("copyBlock", CopyBlock);
  MMGPT_EXPORT("binary", Binary);
  MMGPT_EXPORT("unary", Unary);
  MMGPT_EXPORT("unaryBackward", UnaryBackward);
  MMGPT_EXPORT("affine", Affine);
  MMGPT_EXPORT("axpy", Axpy);
  MMGPT_EXPORT("sumSquares", SumSquares);
  MMGPT_EXPORT("sumAxis", SumAxis);
  MMGPT_EXPORT("broadcastAxis", BroadcastAxis);
  MMGPT_EXPORT("permute", Permute);
  MMGPT_EXPORT("matmul", Matmul);
  MMGPT_EXPORT("gather", Gather);
  MMGPT_EXPORT("scatterAdd", ScatterAdd);
  MMGPT_EXPORT("layerNorm", LayerNorm);
  MMGPT_EXPORT("layerNormBackward", LayerNormBackward);
  MMGPT_EXPORT("softmax", Softmax);
  MMGPT_EXPORT("softmaxBackward", SoftmaxBackward);
  MMGPT_EXPORT("crossEntropy", CrossEntropy);
  MMGPT_EXPORT("crossEntropyBackward", CrossEntropyBackward);
  MMGPT_EXPORT("dropoutMask", DropoutMask);
  MMGPT_EXPORT("im2col", Im2col);
  MMGPT_EXPORT("col2im", Col2im);
  MMGPT_EXPORT("nearestCode", NearestCode);
  MMGPT_EXPORT("adam", Adam);
  MMGPT_EXPORT("crossEntropyMean", CrossEntropyMean);
  MMGPT_EXPORT("biasGelu", BiasGelu);
  MMGPT_EXPORT("biasGeluBackward", BiasGeluBackward);
  MMGPT_EXPORT("addLayerNorm", AddLayerNorm);
  MMGPT_EXPORT("adamMulti", AdamMulti);
  MMGPT_EXPORT("setNumThreads", SetNumThreads);
  MMGPT_EXPORT("getNumThreads", GetNumThreads);
  MMGPT_EXPORT("simdPath", SimdPath);
  MMGPT_EXPORT("availableSimdPaths", AvailableSimdPaths);
  MMGPT_EXPORT("setSimdPath", SetSimdPath);
  MMGPT_EXPORT("info", Info);
#undef MMGPT_EXPORT
  mmgpt::registerCuda(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mmgpt_native, Init)

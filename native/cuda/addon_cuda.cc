// N-API entry points of the CUDA backend (src/engine/backends/cuda.ts): `exports.cuda` of the
// mmgpt_native addon, registered by addon.cc's Init through mmgpt::registerCuda.
//
// Compiled by the host C++ compiler in every build. With MMGPT_WITH_CUDA (binding.gyp defines it
// where nvcc was found) it wraps the kernels of native/cuda/*.cu (C interface: cuda_api.h);
// without it `cuda.built` is false and `cuda.available()` says why, so the CPU addon is unchanged.
//
// Buffers are small JS objects wrapping a device allocation (napi_wrap + a type tag, so a foreign
// object or a Float32Array is rejected with a clear TypeError): { size, dtype } are readable for
// debugging. `free` releases the device memory at once (a second free is a no-op, using a freed
// buffer is an Error); a buffer the engine never frees is released when it is garbage collected.
// Every call checks its arguments like the cpu glue (types, integer sizes, buffer lengths and
// dtypes) and throws TypeError / RangeError with the cpu backend's messages; CUDA failures throw
// an Error naming the kernel. Index checks (gather, scatterAdd, crossEntropy) happen on the device.

#include <math.h>
#include <napi.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "../src/napi_args.h"
#include "cuda_api.h"

namespace mmgpt {
void registerCuda(Napi::Env env, Napi::Object exports);
}

namespace {

#ifdef MMGPT_WITH_CUDA

enum DType { F32 = 0, I32 = 1, ANY = -1 };

struct DevBuf {
  void* ptr;
  int64_t size;  // elements (4 bytes each)
  int dtype;
  bool freed;
};

const napi_type_tag kBufTag = {0x6d6d677074637564ULL, 0x6465766275660001ULL};
bool gShuttingDown = false;

const char* dtypeName(int dtype) { return dtype == F32 ? "float32" : "int32"; }

void releaseBuf(DevBuf* b) {
  if (!b->freed) {
    b->freed = true;
    if (!gShuttingDown) mmgpt_cuda_free(b->ptr, (size_t)b->size * 4);
  }
}

void finalizeBuf(napi_env, void* data, void*) {
  DevBuf* b = static_cast<DevBuf*>(data);
  releaseBuf(b);
  delete b;
}

const char* const kHostNote = " (host memory; cuda buffers come from alloc/upload)";

std::string describe(const Napi::Value& v) { return mmgpt::napi::describe(v, kHostNote); }
using mmgpt::napi::numStr;
using mmgpt::napi::opCode;
using mmgpt::napi::toUint32;

/** Throws the pending CUDA error: RangeError for argument/index errors (rc 2), else Error. */
void check(Napi::Env env, int rc) {
  if (rc == 0) return;
  if (rc == 2) throw Napi::RangeError::New(env, mmgpt_cuda_error());
  throw Napi::Error::New(env, mmgpt_cuda_error());
}

/** ArgsBase (napi_args.h, shared with the cpu glue) plus cuda buffer handles. */
class Args : public mmgpt::napi::ArgsBase {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn, size_t nargs)
      : ArgsBase(info, fn, nargs, kHostNote) {}

  /** A live cuda buffer of the given dtype (ANY: either) with at least minLength elements. */
  DevBuf* buf(size_t i, const char* name, int dtype, int64_t minLength) const {
    return bufValue(info_[i], name, dtype, minLength);
  }
  /** Like buf, for a value that is not itself an argument (an element of an array argument). */
  DevBuf* bufValue(const Napi::Value& value, const std::string& name, int dtype,
                   int64_t minLength) const {
    DevBuf* b = unwrap(value);
    if (b == nullptr) {
      typeError(std::string(name) + " must be a cuda buffer, got " + describe(value));
    }
    if (b->freed) typeError(std::string(name) + " was already freed");
    if (dtype != ANY && b->dtype != dtype) {
      typeError(std::string(name) + " must hold " + dtypeName(dtype) + ", got " +
                dtypeName(b->dtype));
    }
    if (b->size < minLength) {
      rangeError(std::string(name) + " has " + std::to_string(b->size) +
                 " elements but the kernel needs at least " + std::to_string(minLength));
    }
    return b;
  }
  float* f32(size_t i, const char* name, int64_t minLength) const {
    return static_cast<float*>(buf(i, name, F32, minLength)->ptr);
  }
  int32_t* i32(size_t i, const char* name, int64_t minLength) const {
    return static_cast<int32_t*>(buf(i, name, I32, minLength)->ptr);
  }

  int dtype(size_t i) const {
    const std::string s = str(i, "dtype");
    if (s == "float32") return F32;
    if (s == "int32") return I32;
    typeError("dtype must be 'float32' or 'int32', got '" + s + "'");
  }
  static DevBuf* unwrap(const Napi::Value& v) {
    if (!v.IsObject() || v.IsTypedArray() || v.IsArray()) return nullptr;
    napi_env env = v.Env();
    bool tagged = false;
    if (napi_check_object_type_tag(env, v, &kBufTag, &tagged) != napi_ok || !tagged) {
      return nullptr;
    }
    void* data = nullptr;
    if (napi_unwrap(env, v, &data) != napi_ok) return nullptr;
    return static_cast<DevBuf*>(data);
  }
};

/** A JS handle for a new device buffer (zero-filled unless zeroFill is false). */
Napi::Object newBuf(Napi::Env env, int64_t size, int dtype, bool zeroFill) {
  void* ptr = nullptr;
  check(env, mmgpt_cuda_alloc(&ptr, (size_t)size * 4, zeroFill ? 1 : 0));
  DevBuf* b = new DevBuf{ptr, size, dtype, false};
  Napi::Object obj = Napi::Object::New(env);
  obj.DefineProperties({
      Napi::PropertyDescriptor::Value("size", Napi::Number::New(env, (double)size), napi_enumerable),
      Napi::PropertyDescriptor::Value("dtype", Napi::String::New(env, dtypeName(dtype)),
                                      napi_enumerable),
  });
  if (napi_type_tag_object(env, obj, &kBufTag) != napi_ok ||
      napi_wrap(env, obj, b, finalizeBuf, nullptr, nullptr) != napi_ok) {
    releaseBuf(b);
    delete b;
    throw Napi::Error::New(env, "cuda: wrapping a device buffer failed");
  }
  return obj;
}

// ---- device, memory ------------------------------------------------------------------------------

Napi::Value Available(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const int rc = mmgpt_cuda_init();
  o.Set("available", rc == 0);
  if (rc != 0) o.Set("reason", mmgpt_cuda_error());
  return o;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MmgptCudaInfo d;
  check(env, mmgpt_cuda_info(&d));
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", d.name);
  o.Set("device", d.device);
  o.Set("computeCapability", std::to_string(d.computeMajor) + "." + std::to_string(d.computeMinor));
  o.Set("multiProcessors", d.multiProcessors);
  o.Set("totalMemoryBytes", (double)d.totalMemory);
  o.Set("runtimeVersion", d.runtimeVersion);
  o.Set("driverVersion", d.driverVersion);
  o.Set("memoryPools", d.memoryPools != 0);
  o.Set("archs", mmgpt_cuda_built_archs());
  o.Set("syncChecks", mmgpt_cuda_get_sync_checks() != 0);
  return o;
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MmgptCudaStats s;
  mmgpt_cuda_stats(&s);
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocs", s.allocs);
  o.Set("frees", s.frees);
  o.Set("liveBuffers", s.liveBuffers);
  o.Set("liveBytes", s.liveBytes);
  o.Set("peakBytes", s.peakBytes);
  o.Set("uploads", s.uploads);
  o.Set("uploadBytes", s.uploadBytes);
  o.Set("downloads", s.downloads);
  o.Set("downloadBytes", s.downloadBytes);
  o.Set("launches", s.launches);
  o.Set("syncs", s.syncs);
  return o;
}

Napi::Value SetSyncChecks(const Napi::CallbackInfo& info) {
  Args c(info, "setSyncChecks", 1);
  mmgpt_cuda_set_sync_checks(c.flag(0, "on") ? 1 : 0);
  return c.env().Undefined();
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Args c(info, "alloc", 2);
  const int64_t size = c.size(0, "size");
  const int dtype = c.dtype(1);
  if (size > ((int64_t)1 << 40)) c.rangeError("size " + std::to_string(size) + " is too large");
  return newBuf(c.env(), size, dtype, true);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Args c(info, "free", 1);
  DevBuf* b = Args::unwrap(info[0]);
  if (b == nullptr) c.typeError("buf must be a cuda buffer, got " + describe(info[0]));
  if (!b->freed) {
    b->freed = true;
    check(c.env(), mmgpt_cuda_free(b->ptr, (size_t)b->size * 4));
  }
  return c.env().Undefined();
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Args c(info, "upload", 1);
  const Napi::Value v = info[0];
  int dtype = -1;
  if (v.IsTypedArray()) {
    const napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
    if (t == napi_float32_array) dtype = F32;
    if (t == napi_int32_array) dtype = I32;
  }
  if (dtype < 0) c.typeError("data must be a Float32Array or Int32Array, got " + describe(v));
  napi_typedarray_type type;
  size_t length = 0;
  void* src = nullptr;
  if (napi_get_typedarray_info(c.env(), v, &type, &length, &src, nullptr, nullptr) != napi_ok) {
    c.typeError("data: reading the typed array failed");
  }
  const int64_t size = (int64_t)length;
  Napi::Object obj = newBuf(c.env(), size, dtype, false);
  check(c.env(), mmgpt_cuda_upload(Args::unwrap(obj)->ptr, src, (size_t)size * 4));
  return obj;
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  Args c(info, "download", 3);
  const int64_t size = c.size(1, "size");
  const int dtype = c.dtype(2);
  DevBuf* b = Args::unwrap(info[0]);
  if (b == nullptr) c.typeError("buffer must be a cuda buffer, got " + describe(info[0]));
  if (b->freed) c.typeError("buffer was already freed");
  if (b->dtype != dtype) {
    c.typeError(std::string("buffer holds ") + dtypeName(b->dtype) + " but dtype '" +
                dtypeName(dtype) + "' was given");
  }
  if (b->size < size) {
    c.rangeError("download of " + std::to_string(size) + " elements from a buffer of " +
                 std::to_string(b->size));
  }
  Napi::Env env = c.env();
  if (dtype == F32) {
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)size);
    check(env, mmgpt_cuda_download(out.Data(), b->ptr, (size_t)size * 4));
    return out;
  }
  Napi::Int32Array out = Napi::Int32Array::New(env, (size_t)size);
  check(env, mmgpt_cuda_download(out.Data(), b->ptr, (size_t)size * 4));
  return out;
}

Napi::Value Sync(const Napi::CallbackInfo& info) {
  check(info.Env(), mmgpt_cuda_sync());
  return info.Env().Undefined();
}

// ---- elementwise ------------------------------------------------------------------------------------

Napi::Value Fill(const Napi::CallbackInfo& info) {
  Args c(info, "fill", 3);
  const int64_t n = c.size(1, "n");
  DevBuf* out = c.buf(0, "out", ANY, n);
  const double value = c.number(2, "value");
  uint32_t bits;
  if (out->dtype == F32) {
    const float f = (float)value;
    memcpy(&bits, &f, 4);
  } else {
    bits = toUint32(value);
  }
  check(c.env(), mmgpt_cuda_fill32(static_cast<uint32_t*>(out->ptr), n, bits));
  return c.env().Undefined();
}

Napi::Value CopyBlock(const Napi::CallbackInfo& info) {
  Args c(info, "copyBlock", 10);
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
  DevBuf* src = c.buf(0, "src", accumulate ? F32 : ANY, srcLen);
  DevBuf* dst = c.buf(1, "dst", accumulate ? F32 : ANY, dstLen);
  if (src->dtype != dst->dtype) c.typeError("src and dst must have the same dtype");
  check(c.env(), mmgpt_cuda_copy_block(static_cast<const uint32_t*>(src->ptr),
                                       static_cast<uint32_t*>(dst->ptr), outer, srcAxis,
                                       srcOffset, dstAxis, dstOffset, count, inner,
                                       accumulate ? 1 : 0));
  return c.env().Undefined();
}

int64_t spanOf(const Args& c, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& strides) {
  for (int64_t s : shape) {
    if (s == 0) return 0;
  }
  int64_t last = 0;
  for (size_t d = 0; d < shape.size(); d++) last = c.add(last, c.mul(shape[d] - 1, strides[d]));
  return last + 1;
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Args c(info, "binary", 7);
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
  check(c.env(), mmgpt_cuda_binary(op, a, b, out, (int)shape.size(), shape.data(), as.data(),
                                   bs.data()));
  return c.env().Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Args c(info, "unary", 4);
  const int op = opCode(c, c.str(0, "op"), true);
  const int64_t n = c.size(3, "n");
  const float* x = c.f32(1, "x", n);
  float* out = c.f32(2, "out", n);
  check(c.env(), mmgpt_cuda_unary(op, x, out, n));
  return c.env().Undefined();
}

Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  Args c(info, "unaryBackward", 6);
  const int op = opCode(c, c.str(0, "op"), true);
  const int64_t n = c.size(5, "n");
  const float* x = c.f32(1, "x", n);
  const float* y = c.f32(2, "y", n);
  const float* gy = c.f32(3, "gy", n);
  float* gx = c.f32(4, "gx", n);
  check(c.env(), mmgpt_cuda_unary_backward(op, x, y, gy, gx, n));
  return c.env().Undefined();
}

Napi::Value Affine(const Napi::CallbackInfo& info) {
  Args c(info, "affine", 5);
  const int64_t n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* out = c.f32(1, "out", n);
  check(c.env(), mmgpt_cuda_affine(x, out, n, c.number(3, "alpha"), c.number(4, "beta")));
  return c.env().Undefined();
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Args c(info, "axpy", 4);
  const int64_t n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* y = c.f32(1, "y", n);
  check(c.env(), mmgpt_cuda_axpy(x, y, n, c.number(3, "alpha")));
  return c.env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args c(info, "sumSquares", 2);
  const int64_t n = c.size(1, "n");
  const float* x = c.f32(0, "x", n);
  double result = 0.0;
  check(c.env(), mmgpt_cuda_sum_squares(x, n, &result));
  return Napi::Number::New(c.env(), result);
}

// ---- reductions and layout ------------------------------------------------------------------------

Napi::Value SumAxis(const Napi::CallbackInfo& info) {
  Args c(info, "sumAxis", 6);
  const int64_t outer = c.size(2, "outer"), axis = c.size(3, "axis"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(c.mul(outer, axis), inner));
  float* out = c.f32(1, "out", c.mul(outer, inner));
  check(c.env(),
        mmgpt_cuda_sum_axis(x, out, outer, axis, inner, c.flag(5, "accumulate") ? 1 : 0));
  return c.env().Undefined();
}

Napi::Value BroadcastAxis(const Napi::CallbackInfo& info) {
  Args c(info, "broadcastAxis", 5);
  const int64_t outer = c.size(2, "outer"), axis = c.size(3, "axis"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(outer, inner));
  float* out = c.f32(1, "out", c.mul(c.mul(outer, axis), inner));
  check(c.env(), mmgpt_cuda_broadcast_axis(x, out, outer, axis, inner));
  return c.env().Undefined();
}

Napi::Value Permute(const Napi::CallbackInfo& info) {
  Args c(info, "permute", 5);
  const std::vector<int64_t> shape = c.ints(2, "shape"), perm = c.ints(3, "perm");
  const int dtype = c.dtype(4);
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
  int64_t size = 1;
  for (int64_t s : shape) size = c.mul(size, s);
  DevBuf* x = c.buf(0, "x", ANY, size);
  DevBuf* out = c.buf(1, "out", ANY, size);
  if (x->dtype != dtype || out->dtype != dtype) {
    c.typeError(std::string("x and out must both hold ") + dtypeName(dtype));
  }
  check(c.env(), mmgpt_cuda_permute(static_cast<const uint32_t*>(x->ptr),
                                    static_cast<uint32_t*>(out->ptr), (int)rank, shape.data(),
                                    perm.data()));
  return c.env().Undefined();
}

// ---- linear algebra ---------------------------------------------------------------------------------

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Args c(info, "matmul", 14);
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
  check(c.env(), mmgpt_cuda_matmul(a, b, out, &p));
  return c.env().Undefined();
}

// ---- embeddings -------------------------------------------------------------------------------------

Napi::Value Gather(const Napi::CallbackInfo& info) {
  Args c(info, "gather", 6);
  const int64_t rows = c.size(3, "rows"), d = c.size(4, "d"), vocab = c.size(5, "vocab");
  const float* table = c.f32(0, "table", c.mul(vocab, d));
  const int32_t* idx = c.i32(1, "idx", rows);
  float* out = c.f32(2, "out", c.mul(rows, d));
  check(c.env(), mmgpt_cuda_gather(table, idx, out, rows, d, vocab));
  return c.env().Undefined();
}

Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  Args c(info, "scatterAdd", 5);
  const int64_t rows = c.size(3, "rows"), d = c.size(4, "d");
  const float* g = c.f32(0, "g", c.mul(rows, d));
  const int32_t* idx = c.i32(1, "idx", rows);
  DevBuf* table = c.buf(2, "gTable", F32, 0);
  const int64_t vocab = d > 0 ? table->size / d : 0;
  check(c.env(),
        mmgpt_cuda_scatter_add(g, idx, static_cast<float*>(table->ptr), rows, d, vocab));
  return c.env().Undefined();
}

// ---- fused normalisation and attention pieces ---------------------------------------------------------

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Args c(info, "layerNorm", 9);
  const int64_t rows = c.size(6, "rows"), d = c.size(7, "d");
  const int64_t size = c.mul(rows, d);
  const float* x = c.f32(0, "x", size);
  const float* w = c.f32(1, "w", d);
  const float* b = c.f32(2, "b", d);
  float* out = c.f32(3, "out", size);
  float* mean = c.f32(4, "mean", rows);
  float* rstd = c.f32(5, "rstd", rows);
  check(c.env(), mmgpt_cuda_layer_norm(x, w, b, out, mean, rstd, rows, d, c.number(8, "eps")));
  return c.env().Undefined();
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Args c(info, "layerNormBackward", 10);
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
  check(c.env(), mmgpt_cuda_layer_norm_backward(x, w, mean, rstd, gy, gx, gw, gb, rows, d));
  return c.env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Args c(info, "softmax", 5);
  const int64_t rows = c.size(2, "rows"), n = c.size(3, "n"), tq = c.size(4, "causalTq");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  float* out = c.f32(1, "out", size);
  check(c.env(), mmgpt_cuda_softmax(x, out, rows, n, tq));
  return c.env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  Args c(info, "softmaxBackward", 5);
  const int64_t rows = c.size(3, "rows"), n = c.size(4, "n");
  const int64_t size = c.mul(rows, n);
  const float* y = c.f32(0, "y", size);
  const float* gy = c.f32(1, "gy", size);
  float* gx = c.f32(2, "gx", size);
  check(c.env(), mmgpt_cuda_softmax_backward(y, gy, gx, rows, n));
  return c.env().Undefined();
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Args c(info, "crossEntropy", 6);
  const int64_t rows = c.size(4, "rows"), v = c.size(5, "v");
  const int64_t size = c.mul(rows, v);
  const float* logits = c.f32(0, "logits", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  float* probs = c.f32(2, "probs", size);
  float* losses = c.f32(3, "losses", rows);
  check(c.env(), mmgpt_cuda_cross_entropy(logits, targets, probs, losses, rows, v));
  return c.env().Undefined();
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Args c(info, "crossEntropyBackward", 6);
  const int64_t rows = c.size(4, "rows"), v = c.size(5, "v");
  const int64_t size = c.mul(rows, v);
  const float* probs = c.f32(0, "probs", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  const float* gLoss = c.f32(2, "gLoss", rows);
  float* gLogits = c.f32(3, "gLogits", size);
  check(c.env(), mmgpt_cuda_cross_entropy_backward(probs, targets, gLoss, gLogits, rows, v));
  return c.env().Undefined();
}

// ---- randomness, convolution, vector quantisation, optimiser ------------------------------------------

Napi::Value DropoutMask(const Napi::CallbackInfo& info) {
  Args c(info, "dropoutMask", 4);
  const int64_t n = c.size(1, "n");
  float* out = c.f32(0, "out", n);
  const double p = c.number(2, "p");
  check(c.env(), mmgpt_cuda_dropout_mask(out, n, p, toUint32(c.number(3, "seed"))));
  return c.env().Undefined();
}

mmgpt::ConvGeom geometry(const Args& c, size_t first) {
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
  Args c(info, "im2col", 12);
  const mmgpt::ConvGeom g = geometry(c, 2);
  const float* x = c.f32(0, "x", c.mul(c.mul(g.n, g.c), c.mul(g.h, g.w)));
  float* cols =
      c.f32(1, "cols", c.mul(c.mul(c.mul(g.n, g.c), c.mul(g.kh, g.kw)), c.mul(g.ho, g.wo)));
  check(c.env(), mmgpt_cuda_im2col(x, cols, &g));
  return c.env().Undefined();
}

Napi::Value Col2im(const Napi::CallbackInfo& info) {
  Args c(info, "col2im", 12);
  const mmgpt::ConvGeom g = geometry(c, 2);
  const float* cols =
      c.f32(0, "cols", c.mul(c.mul(c.mul(g.n, g.c), c.mul(g.kh, g.kw)), c.mul(g.ho, g.wo)));
  float* x = c.f32(1, "x", c.mul(c.mul(g.n, g.c), c.mul(g.h, g.w)));
  check(c.env(), mmgpt_cuda_col2im(cols, x, &g));
  return c.env().Undefined();
}

Napi::Value NearestCode(const Napi::CallbackInfo& info) {
  Args c(info, "nearestCode", 7);
  const int64_t rows = c.size(4, "rows"), k = c.size(5, "k"), d = c.size(6, "d");
  const float* z = c.f32(0, "z", c.mul(rows, d));
  const float* codebook = c.f32(1, "codebook", c.mul(k, d));
  int32_t* idx = c.i32(2, "idx", rows);
  float* dist = c.f32(3, "dist", rows);
  if (k < 1) c.rangeError("the codebook needs at least one row, got k = " + std::to_string(k));
  if (k > 2147483647) c.rangeError("k must be below 2^31");
  check(c.env(), mmgpt_cuda_nearest_code(z, codebook, idx, dist, rows, k, d));
  return c.env().Undefined();
}

Napi::Value Adam(const Napi::CallbackInfo& info) {
  Args c(info, "adam", 13);
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
  check(c.env(), mmgpt_cuda_adam(p, g, m, v, n, &a));
  return c.env().Undefined();
}

// ---- fused training-step kernels -------------------------------------------------------------------

Napi::Value CrossEntropyMean(const Napi::CallbackInfo& info) {
  Args c(info, "crossEntropyMean", 7);
  const int64_t rows = c.size(5, "rows"), v = c.size(6, "v");
  const int64_t size = c.mul(rows, v);
  const float* logits = c.f32(0, "logits", size);
  const int32_t* targets = c.i32(1, "targets", rows);
  float* losses = c.f32(2, "losses", rows);
  float* loss = c.f32(3, "loss", 1);
  float* gLogits = c.f32(4, "gLogits", size);
  check(c.env(), mmgpt_cuda_cross_entropy_mean(logits, targets, losses, loss, gLogits, rows, v));
  return c.env().Undefined();
}

Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
  Args c(info, "biasGelu", 5);
  const int64_t rows = c.size(3, "rows"), n = c.size(4, "n");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  const float* bias = c.f32(1, "bias", n);
  float* out = c.f32(2, "out", size);
  check(c.env(), mmgpt_cuda_bias_gelu(x, bias, out, rows, n));
  return c.env().Undefined();
}

Napi::Value BiasGeluBackward(const Napi::CallbackInfo& info) {
  Args c(info, "biasGeluBackward", 7);
  const int64_t rows = c.size(5, "rows"), n = c.size(6, "n");
  const int64_t size = c.mul(rows, n);
  const float* x = c.f32(0, "x", size);
  const float* bias = c.f32(1, "bias", n);
  const float* gy = c.f32(2, "gy", size);
  float* gx = c.f32(3, "gx", size);
  float* gBias = c.f32(4, "gBias", n);
  check(c.env(), mmgpt_cuda_bias_gelu_backward(x, bias, gy, gx, gBias, rows, n));
  return c.env().Undefined();
}

Napi::Value AddLayerNorm(const Napi::CallbackInfo& info) {
  Args c(info, "addLayerNorm", 11);
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
  check(c.env(), mmgpt_cuda_add_layer_norm(x, r, w, b, h, out, mean, rstd, rows, d,
                                           c.number(10, "eps")));
  return c.env().Undefined();
}

Napi::Value AdamMulti(const Napi::CallbackInfo& info) {
  Args c(info, "adamMulti", 14);
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
    p[i] = static_cast<float*>(c.bufValue(ps.Get(i), "params" + at, F32, n[i])->ptr);
    g[i] = static_cast<float*>(c.bufValue(gs.Get(i), "grads" + at, F32, n[i])->ptr);
    m[i] = static_cast<float*>(c.bufValue(ms.Get(i), "m" + at, F32, n[i])->ptr);
    v[i] = static_cast<float*>(c.bufValue(vs.Get(i), "v" + at, F32, n[i])->ptr);
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
  check(c.env(), mmgpt_cuda_adam_multi(p.data(), g.data(), m.data(), v.data(), n.data(),
                                       wd.data(), count, &a, clipNorm, normOut));
  return c.env().Undefined();
}

void registerEntryPoints(Napi::Env env, Napi::Object cuda) {
#define MMGPT_EXPORT(name, fn) cuda.Set(name, Napi::Function::New(env, fn, name))
  MMGPT_EXPORT("available", Available);
  MMGPT_EXPORT("info", Info);
  MMGPT_EXPORT("stats", Stats);
  MMGPT_EXPORT("setSyncChecks", SetSyncChecks);
  MMGPT_EXPORT("alloc", Alloc);
  MMGPT_EXPORT("free", Free);
  MMGPT_EXPORT("upload", Upload);
  MMGPT_EXPORT("download", Download);
  MMGPT_EXPORT("sync", Sync);
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
#undef MMGPT_EXPORT
  // Buffers still alive when node tears the environment down are not handed back to a driver
  // that may be gone already: the process exit releases the device memory.
  napi_add_env_cleanup_hook(env, [](void*) { gShuttingDown = true; }, nullptr);
}

#else  // !MMGPT_WITH_CUDA

const char* const kNotBuilt =
    "built without CUDA (nvcc was not found when the addon was built, or MMGPT_CUDA=0; see "
    "native/README.md)";

Napi::Value Available(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", false);
  o.Set("reason", kNotBuilt);
  return o;
}

void registerEntryPoints(Napi::Env env, Napi::Object cuda) {
  cuda.Set("available", Napi::Function::New(env, Available, "available"));
}

#endif  // MMGPT_WITH_CUDA

}  // namespace

namespace mmgpt {

void registerCuda(Napi::Env env, Napi::Object exports) {
  Napi::Object cuda = Napi::Object::New(env);
#ifdef MMGPT_WITH_CUDA
  cuda.Set("built", true);
  cuda.Set("archs", mmgpt_cuda_built_archs());
#else
  cuda.Set("built", false);
  cuda.Set("archs", "");
#endif
  registerEntryPoints(env, cuda);
  exports.Set("cuda", cuda);
}

}  // namespace mmgpt

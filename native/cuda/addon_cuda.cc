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
// The kernel entry points are the cpu glue's bindings (kernel_bindings.h, written once for both)
// over this file's buffer reader (Args) and kernels (CudaBackend), so every call checks its
// arguments exactly like the cpu glue (types, integer sizes, buffer lengths and dtypes) and throws
// TypeError / RangeError with the cpu backend's messages; CUDA failures throw an Error naming the
// kernel. Index checks (gather, scatterAdd, crossEntropy) happen on the device.
//
// Graphs: graphBegin() starts capturing the stream, graphEnd() returns a graph handle (a wrapped
// object like a buffer, destroyed by graphDestroy or when garbage collected), graphLaunch(graph,
// lr, step, seeds) replays it, graphAbort() drops a capture an exception interrupted, and
// write(buf, data) copies host data into an existing buffer (a captured step's uploads);
// copyBlockAt is copyBlock at a destination offset read from the device (a captured decode step's
// KV-cache write).

#include <math.h>
#include <napi.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "../src/kernel_bindings.h"
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
    if (!gShuttingDown) mmgpt_cuda_release(b->ptr, (size_t)b->size * 4);
  }
}

void finalizeBuf(napi_env, void* data, void*) {
  DevBuf* b = static_cast<DevBuf*>(data);
  releaseBuf(b);
  delete b;
}

const char* const kHostNote = " (host memory; cuda buffers come from alloc/upload)";

std::string describe(const Napi::Value& v) { return mmgpt::napi::describe(v, kHostNote); }
using mmgpt::napi::Words;

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
  float* f32Value(const Napi::Value& value, const std::string& name, int64_t minLength) const {
    return static_cast<float*>(bufValue(value, name, F32, minLength)->ptr);
  }
  /** A buffer of either dtype. */
  Words any32(size_t i, const char* name, int64_t minLength) const {
    const DevBuf* b = buf(i, name, ANY, minLength);
    return {static_cast<uint32_t*>(b->ptr), b->dtype == F32};
  }
  /** Elements of argument i, a buffer already checked by buf/f32/i32. */
  int64_t length(size_t i) const { return unwrap(info_[i])->size; }

  int dtype(size_t i) const { return isFloatDtype(i) ? F32 : I32; }
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
  o.Set("graphLaunches", s.graphLaunches);
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
    check(c.env(), mmgpt_cuda_free(b->ptr, (size_t)b->size * 4));  // refused inside a capture
    b->freed = true;
  }
  return c.env().Undefined();
}

/** Host data of upload and write: a Float32Array or Int32Array, its dtype and element count. */
struct HostData {
  void* src;
  size_t length;
  int dtype;
};

HostData hostData(const Args& c, const Napi::Value& v) {
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
  return {src, length, dtype};
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Args c(info, "upload", 1);
  const HostData d = hostData(c, info[0]);
  const int64_t size = (int64_t)d.length;
  Napi::Object obj = newBuf(c.env(), size, d.dtype, false);
  check(c.env(), mmgpt_cuda_upload(Args::unwrap(obj)->ptr, d.src, (size_t)size * 4));
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

Napi::Value Write(const Napi::CallbackInfo& info) {
  Args c(info, "write", 2);
  const HostData d = hostData(c, info[1]);
  DevBuf* b = c.buf(0, "buf", d.dtype, (int64_t)d.length);
  check(c.env(), mmgpt_cuda_write(b->ptr, d.src, d.length * 4));
  return c.env().Undefined();
}

/**
 * copyBlockAt(src, dst, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner): copyBlock
 * (no accumulate) with the destination offset the first element of the int32 buffer dstOffset,
 * read by the kernel (checked on the device like an index: see cuda_api.h).
 */
Napi::Value CopyBlockAt(const Napi::CallbackInfo& info) {
  Args c(info, "copyBlockAt", 9);
  const int64_t outer = c.size(2, "outer"), srcAxis = c.size(3, "srcAxis"),
                srcOffset = c.size(4, "srcOffset"), dstAxis = c.size(5, "dstAxis"),
                count = c.size(7, "count"), inner = c.size(8, "inner");
  if (c.add(srcOffset, count) > srcAxis || count > dstAxis) {
    c.rangeError("range out of bounds (src " + std::to_string(srcOffset) + "+" +
                 std::to_string(count) + " of " + std::to_string(srcAxis) + ", dst " +
                 std::to_string(count) + " of " + std::to_string(dstAxis) + ")");
  }
  const Words src = c.any32(0, "src", c.mul(c.mul(outer, srcAxis), inner));
  const Words dst = c.any32(1, "dst", c.mul(c.mul(outer, dstAxis), inner));
  if (src.isFloat != dst.isFloat) c.typeError("src and dst must have the same dtype");
  const int32_t* at = c.i32(6, "dstOffset", 1);
  if (c.mul(outer, c.mul(count, inner)) == 0) return c.env().Undefined();
  check(c.env(), mmgpt_cuda_copy_block_at(src.data, dst.data, outer, srcAxis, srcOffset, dstAxis,
                                          at, count, inner));
  return c.env().Undefined();
}

// ---- graphs ------------------------------------------------------------------------------------

struct GraphHandle {
  void* graph;  // null once destroyed
};

const napi_type_tag kGraphTag = {0x6d6d677074637564ULL, 0x6772617068000001ULL};

void finalizeGraph(napi_env, void* data, void*) {
  GraphHandle* h = static_cast<GraphHandle*>(data);
  if (h->graph != nullptr && !gShuttingDown) mmgpt_cuda_graph_destroy(h->graph);
  delete h;
}

GraphHandle* graphArg(const Args& c, const Napi::Value& v) {
  bool tagged = false;
  void* data = nullptr;
  if (!v.IsObject() || napi_check_object_type_tag(c.env(), v, &kGraphTag, &tagged) != napi_ok ||
      !tagged || napi_unwrap(c.env(), v, &data) != napi_ok) {
    c.typeError("graph must be a cuda graph from graphEnd, got " + describe(v));
  }
  GraphHandle* h = static_cast<GraphHandle*>(data);
  if (h->graph == nullptr) c.typeError("graph was already destroyed");
  return h;
}

Napi::Value GraphBegin(const Napi::CallbackInfo& info) {
  check(info.Env(), mmgpt_cuda_graph_begin());
  return info.Env().Undefined();
}

Napi::Value GraphAbort(const Napi::CallbackInfo& info) {
  mmgpt_cuda_graph_abort();
  return info.Env().Undefined();
}

/**
 * The captured graph: { nodes, adamUpdates, seeds, indexChecks, uploadBytes, capturedSeeds (the
 * dropout seeds of the captured step) } plus its handle.
 */
Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* graph = nullptr;
  check(env, mmgpt_cuda_graph_end(&graph));
  MmgptCudaGraphInfo gi;
  mmgpt_cuda_graph_info(graph, &gi);
  GraphHandle* h = new GraphHandle{graph};
  Napi::Object obj = Napi::Object::New(env);
  const std::pair<const char*, double> fields[] = {{"nodes", gi.nodes},
                                                   {"adamUpdates", gi.adamUpdates},
                                                   {"seeds", gi.seeds},
                                                   {"indexChecks", gi.indexChecks},
                                                   {"uploadBytes", gi.uploadBytes}};
  for (const auto& f : fields) {
    obj.DefineProperty(Napi::PropertyDescriptor::Value(f.first, Napi::Number::New(env, f.second),
                                                       napi_enumerable));
  }
  std::vector<uint32_t> seeds((size_t)gi.seeds);
  mmgpt_cuda_graph_seeds(graph, seeds.data(), (int64_t)seeds.size());
  Napi::Array seedList = Napi::Array::New(env, seeds.size());
  for (size_t i = 0; i < seeds.size(); i++) seedList.Set((uint32_t)i, (double)seeds[i]);
  obj.DefineProperty(
      Napi::PropertyDescriptor::Value("capturedSeeds", seedList, napi_enumerable));
  if (napi_type_tag_object(env, obj, &kGraphTag) != napi_ok ||
      napi_wrap(env, obj, h, finalizeGraph, nullptr, nullptr) != napi_ok) {
    mmgpt_cuda_graph_destroy(graph);
    delete h;
    throw Napi::Error::New(env, "cuda: wrapping a graph failed");
  }
  return obj;
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  Args c(info, "graphLaunch", 4);
  GraphHandle* h = graphArg(c, info[0]);
  const double lr = c.number(1, "lr");
  const double step = c.number(2, "step");
  int64_t count = -1;
  const Napi::Array list = c.list(3, "seeds", &count, "");
  std::vector<uint32_t> seeds((size_t)count);
  for (uint32_t j = 0; j < (uint32_t)count; j++) {
    const double d = c.numberAt(list, j, "seeds");
    if (!(d >= 0 && d <= 4294967295.0 && d == floor(d))) {
      c.rangeError("seeds[" + std::to_string(j) + "] must be an integer in [0, 2^32), got " +
                   describe(list.Get(j)));
    }
    seeds[j] = (uint32_t)d;
  }
  check(c.env(), mmgpt_cuda_graph_launch(h->graph, lr, step, seeds.data(), count));
  return c.env().Undefined();
}

Napi::Value GraphDestroy(const Napi::CallbackInfo& info) {
  Args c(info, "graphDestroy", 1);
  GraphHandle* h = graphArg(c, info[0]);
  void* graph = h->graph;
  h->graph = nullptr;
  check(c.env(), mmgpt_cuda_graph_destroy(graph));
  return c.env().Undefined();
}

// ---- kernels (the bindings themselves: kernel_bindings.h) ----------------------------------------

/** The cuda backend for kernel_bindings.h: each kernel queues its cuda_api.h function. */
struct CudaBackend {
  using Args = ::Args;

// A kernel the binding's checks suffice for: its C function, a failure thrown as a JS error.
#define MMGPT_CUDA_KERNEL(kernel, function)            \
  template <class... A>                                \
  static void kernel(const Args& c, A... args) {       \
    check(c.env(), function(args...));                 \
  }
  MMGPT_CUDA_KERNEL(fill32, mmgpt_cuda_fill32)
  MMGPT_CUDA_KERNEL(copyBlock, mmgpt_cuda_copy_block)
  MMGPT_CUDA_KERNEL(binary, mmgpt_cuda_binary)
  MMGPT_CUDA_KERNEL(unary, mmgpt_cuda_unary)
  MMGPT_CUDA_KERNEL(unaryBackward, mmgpt_cuda_unary_backward)
  MMGPT_CUDA_KERNEL(affine, mmgpt_cuda_affine)
  MMGPT_CUDA_KERNEL(axpy, mmgpt_cuda_axpy)
  MMGPT_CUDA_KERNEL(sumAxis, mmgpt_cuda_sum_axis)
  MMGPT_CUDA_KERNEL(broadcastAxis, mmgpt_cuda_broadcast_axis)
  MMGPT_CUDA_KERNEL(permute, mmgpt_cuda_permute)
  MMGPT_CUDA_KERNEL(matmul, mmgpt_cuda_matmul)
  MMGPT_CUDA_KERNEL(gather, mmgpt_cuda_gather)
  MMGPT_CUDA_KERNEL(scatterAdd, mmgpt_cuda_scatter_add)
  MMGPT_CUDA_KERNEL(layerNorm, mmgpt_cuda_layer_norm)
  MMGPT_CUDA_KERNEL(layerNormBackward, mmgpt_cuda_layer_norm_backward)
  MMGPT_CUDA_KERNEL(softmax, mmgpt_cuda_softmax)
  MMGPT_CUDA_KERNEL(softmaxBackward, mmgpt_cuda_softmax_backward)
  MMGPT_CUDA_KERNEL(crossEntropy, mmgpt_cuda_cross_entropy)
  MMGPT_CUDA_KERNEL(crossEntropyBackward, mmgpt_cuda_cross_entropy_backward)
  MMGPT_CUDA_KERNEL(dropoutMask, mmgpt_cuda_dropout_mask)
  MMGPT_CUDA_KERNEL(im2col, mmgpt_cuda_im2col)
  MMGPT_CUDA_KERNEL(col2im, mmgpt_cuda_col2im)
  MMGPT_CUDA_KERNEL(adam, mmgpt_cuda_adam)
  MMGPT_CUDA_KERNEL(crossEntropyMean, mmgpt_cuda_cross_entropy_mean)
  MMGPT_CUDA_KERNEL(biasGelu, mmgpt_cuda_bias_gelu)
  MMGPT_CUDA_KERNEL(biasGeluBackward, mmgpt_cuda_bias_gelu_backward)
  MMGPT_CUDA_KERNEL(addLayerNorm, mmgpt_cuda_add_layer_norm)
  MMGPT_CUDA_KERNEL(adamMulti, mmgpt_cuda_adam_multi)
  MMGPT_CUDA_KERNEL(attention, mmgpt_cuda_attention)
  MMGPT_CUDA_KERNEL(attentionBackward, mmgpt_cuda_attention_backward)
#undef MMGPT_CUDA_KERNEL

  static double sumSquares(const Args& c, const float* x, int64_t n) {
    double result = 0.0;
    check(c.env(), mmgpt_cuda_sum_squares(x, n, &result));
    return result;
  }
  static void nearestCode(const Args& c, const float* z, const float* codebook, int32_t* idx,
                          float* dist, int64_t rows, int64_t k, int64_t d) {
    if (k > 2147483647) c.rangeError("k must be below 2^31");
    check(c.env(), mmgpt_cuda_nearest_code(z, codebook, idx, dist, rows, k, d));
  }
};

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
  MMGPT_EXPORT("write", Write);
  MMGPT_EXPORT("graphBegin", GraphBegin);
  MMGPT_EXPORT("graphEnd", GraphEnd);
  MMGPT_EXPORT("graphAbort", GraphAbort);
  MMGPT_EXPORT("graphLaunch", GraphLaunch);
  MMGPT_EXPORT("graphDestroy", GraphDestroy);
  MMGPT_EXPORT("copyBlockAt", CopyBlockAt);
  mmgpt::napi::exportKernels<CudaBackend>(env, cuda);
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

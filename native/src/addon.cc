// mmgpt_native: the N-API entry points of the native CPU backend (src/engine/backends/cpu.ts).
//
// One JS function per kernel of the Backend interface (src/engine/backend.ts), taking the
// Float32Array / Int32Array buffers themselves (the kernels read and write their memory in
// place: no copies) and plain numbers. Every call checks its arguments first (types, integer
// sizes, buffer lengths, index ranges) and throws a JS TypeError/RangeError whose message says
// what was wrong, so a bad call never reaches a kernel; the messages follow the js backend's.
// The bindings are written once for this glue and the cuda one (kernel_bindings.h); this file
// adds the host-side index checks, the kernel table in use and
// the configuration entry points (threads, SIMD path, matmul precision, info).
//
// Notable choices: the kernels are compiled three times (kernels_{avx512,avx2,base}.cc) and the
// table used is picked once at load with __builtin_cpu_supports (setSimdPath can force a
// supported one, for tests and benchmarks). Threads: OpenMP, OMP_NUM_THREADS respected at load,
// setNumThreads(n) afterwards; every parallel region names its thread count explicitly, so the
// setting holds whichever JS thread calls.

#include <napi.h>
#include <omp.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "kernel_bindings.h"
#include "kernels.h"
#include "napi_args.h"

namespace mmgpt {
// The CUDA backend's entry points (native/cuda/addon_cuda.cc): `exports.cuda`.
void registerCuda(Napi::Env env, Napi::Object exports);
// The host sampler's entry points (sampling.cc): `exports.sampling`.
void registerSampling(Napi::Env env, Napi::Object exports);
}  // namespace mmgpt

// The bfloat16 matmul on AMX tiles (gemm_amx.cc).
extern "C" int mmgpt_amx_available(void);
extern "C" int mmgpt_matmul_amx(const float* A, const float* B, float* C,
                                const mmgpt::MatmulArgs* p, int nt);

namespace {

const mmgpt::KernelTable* gTable = nullptr;
int gThreads = 1;
// setMatmulPrecision('bf16'): matmuls go to the AMX tiles (gemm_amx.cc) where it takes them.
bool gMatmulBf16 = false;

// ---- arguments and kernels (the bindings themselves: kernel_bindings.h) -----------------------

using mmgpt::napi::Words;

/** The cpu backend's arguments: ArgsBase plus its typed arrays, read in place (napi_args.h). */
using Call = mmgpt::napi::HostArgs;
static_assert(Call::kMaxRank == (uint32_t)mmgpt::kMaxRank, "one rank limit");

/** Index and target checks: on the host, before the kernel reads them (messages as js.ts). */
void checkIndices(const Call& c, const int32_t* idx, int64_t rows, int64_t vocab, bool gather) {
  for (int64_t r = 0; r < rows; r++) {
    if (idx[r] < 0 || idx[r] >= vocab) {
      const std::string at = "index " + std::to_string(idx[r]) + " at row " + std::to_string(r);
      if (gather) {
        c.rangeError(at + " is out of range for a vocabulary of size " + std::to_string(vocab) +
                     " (accepted: 0.." + std::to_string(vocab - 1) + ")");
      }
      c.rangeError(at + " is out of range for a table of " + std::to_string(vocab) + " rows");
    }
  }
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

/**
 * The cpu backend for kernel_bindings.h: each kernel runs the active table's (gTable) with
 * gThreads threads.
 */
struct CpuBackend {
  using Args = Call;

// A kernel the binding's checks suffice for: the table's, with the thread count appended.
#define MMGPT_CPU_KERNEL(kernel)                              \
  template <class... A>                                       \
  static void kernel(const Call&, A... args) {                \
    gTable->kernel(args..., gThreads);                        \
  }
  MMGPT_CPU_KERNEL(fill32)
  MMGPT_CPU_KERNEL(copyBlock)
  MMGPT_CPU_KERNEL(binary)
  MMGPT_CPU_KERNEL(unary)
  MMGPT_CPU_KERNEL(unaryBackward)
  MMGPT_CPU_KERNEL(affine)
  MMGPT_CPU_KERNEL(axpy)
  MMGPT_CPU_KERNEL(sumAxis)
  MMGPT_CPU_KERNEL(broadcastAxis)
  MMGPT_CPU_KERNEL(layerNorm)
  MMGPT_CPU_KERNEL(layerNormBackward)
  MMGPT_CPU_KERNEL(softmax)
  MMGPT_CPU_KERNEL(softmaxBackward)
  MMGPT_CPU_KERNEL(dropoutMask)
  MMGPT_CPU_KERNEL(im2col)
  MMGPT_CPU_KERNEL(col2im)
  MMGPT_CPU_KERNEL(nearestCode)
  MMGPT_CPU_KERNEL(adam)
  MMGPT_CPU_KERNEL(biasGelu)
  MMGPT_CPU_KERNEL(biasGeluBackward)
  MMGPT_CPU_KERNEL(addLayerNorm)
  MMGPT_CPU_KERNEL(adamMulti)
  MMGPT_CPU_KERNEL(attention)
  MMGPT_CPU_KERNEL(attentionBackward)
#undef MMGPT_CPU_KERNEL

  static void matmul(const Call&, const float* a, const float* b, float* c,
                     const mmgpt::MatmulArgs* p) {
    if (gMatmulBf16 && mmgpt_matmul_amx(a, b, c, p, gThreads)) return;
    gTable->matmul(a, b, c, p, gThreads);
  }
  static double sumSquares(const Call&, const float* x, int64_t n) {
    return gTable->sumSquares(x, n, gThreads);
  }
  static void permute(const Call&, const uint32_t* x, uint32_t* out, int rank,
                      const int64_t* shape, const int64_t* perm) {
    for (int d = 0; d < rank; d++) {
      if (shape[d] == 0) return;  // nothing to move
    }
    if (rank == 0) {
      out[0] = x[0];
      return;
    }
    gTable->permute(x, out, rank, shape, perm, gThreads);
  }
  static void gather(const Call& c, const float* table, const int32_t* idx, float* out,
                     int64_t rows, int64_t d, int64_t vocab) {
    checkIndices(c, idx, rows, vocab, true);
    gTable->gather(table, idx, out, rows, d, gThreads);
  }
  static void scatterAdd(const Call& c, const float* g, const int32_t* idx, float* table,
                         int64_t rows, int64_t d, int64_t vocab) {
    checkIndices(c, idx, rows, vocab, false);
    gTable->scatterAdd(g, idx, table, rows, d, gThreads);
  }
  static void crossEntropy(const Call& c, const float* logits, const int32_t* targets,
                           float* probs, float* losses, int64_t rows, int64_t v) {
    checkTargets(c, targets, rows, v);
    gTable->crossEntropy(logits, targets, probs, losses, rows, v, gThreads);
  }
  static void crossEntropyBackward(const Call& c, const float* probs, const int32_t* targets,
                                   const float* gLoss, float* gLogits, int64_t rows, int64_t v) {
    checkTargets(c, targets, rows, v);
    gTable->crossEntropyBackward(probs, targets, gLoss, gLogits, rows, v, gThreads);
  }
  static void crossEntropyMean(const Call& c, const float* logits, const int32_t* targets,
                               float* losses, float* loss, float* gLogits, int64_t rows,
                               int64_t v) {
    checkTargets(c, targets, rows, v);
    gTable->crossEntropyMean(logits, targets, losses, loss, gLogits, rows, v, gThreads);
  }
};

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

const char* const kPrecisions[] = {"fp32", "bf16"};

Napi::Value MatmulPrecision(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), kPrecisions[gMatmulBf16 ? 1 : 0]);
}

Napi::Value AvailableMatmulPrecisions(const Napi::CallbackInfo& info) {
  Napi::Array arr = Napi::Array::New(info.Env());
  arr.Set(0u, Napi::String::New(info.Env(), kPrecisions[0]));
  if (mmgpt_amx_available()) arr.Set(1u, Napi::String::New(info.Env(), kPrecisions[1]));
  return arr;
}

Napi::Value SetMatmulPrecision(const Napi::CallbackInfo& info) {
  Call c(info, "setMatmulPrecision", 1);
  const std::string want = c.str(0, "precision");
  if (want != kPrecisions[0] && want != kPrecisions[1]) {
    c.rangeError("unknown matmul precision '" + want + "' (accepted: " + kPrecisions[0] + ", " +
                 kPrecisions[1] + ")");
  }
  const bool bf16 = want == kPrecisions[1];
  if (bf16 && !mmgpt_amx_available()) {
    c.rangeError("matmul precision 'bf16' needs AMX-BF16 tiles, which this processor (or its "
                 "kernel) does not give this process");
  }
  gMatmulBf16 = bf16;
  return c.env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", gTable->name);
  o.Set("threads", gThreads);
  o.Set("matmul", kPrecisions[gMatmulBf16 ? 1 : 0]);
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
  mmgpt::napi::exportKernels<CpuBackend>(env, exports);
#define MMGPT_EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  MMGPT_EXPORT("setNumThreads", SetNumThreads);
  MMGPT_EXPORT("getNumThreads", GetNumThreads);
  MMGPT_EXPORT("simdPath", SimdPath);
  MMGPT_EXPORT("availableSimdPaths", AvailableSimdPaths);
  MMGPT_EXPORT("setSimdPath", SetSimdPath);
  MMGPT_EXPORT("matmulPrecision", MatmulPrecision);
  MMGPT_EXPORT("availableMatmulPrecisions", AvailableMatmulPrecisions);
  MMGPT_EXPORT("setMatmulPrecision", SetMatmulPrecision);
  MMGPT_EXPORT("info", Info);
#undef MMGPT_EXPORT
  mmgpt::registerCuda(env, exports);
  mmgpt::registerSampling(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mmgpt_native, Init)

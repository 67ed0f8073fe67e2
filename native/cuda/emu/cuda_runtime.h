// A CPU emulator of the small part of CUDA the mmgpt kernels use, for testing them on machines
// without a GPU (like the development machine). Not part of the addon: build-emu.js compiles
// native/cuda/*.cu with g++ against this header (after rewriting `k<<<grid, block>>>(args)` into
// `::emu::Launch(k, grid, block)(args)`) into a separate test addon.
//
// What it models, and how:
// - Every CUDA thread of a block is a fiber (ucontext) on one OS thread; blocks run one after
//   another. __syncthreads parks a fiber until every thread of the block has arrived; warp
//   shuffles and ballots park it until every lane of its warp has arrived. Fibers are resumed in a
//   shuffled order at each step (seeded), so a missing barrier usually shows up as a wrong
//   result. A barrier that not every thread reaches (divergence, or threads that exited) aborts
//   with a message instead of hanging.
// - __shared__ variables become function statics: one copy, shared by the block's fibers (blocks
//   never overlap).
// - Device memory is host memory with a guard page right after each allocation (electric-fence
//   style), so a kernel writing or reading past the end of a buffer crashes at once; fresh
//   allocations are filled with 0xff bytes (NaN floats) so reading memory nobody wrote shows up.
// - Launch configurations are checked against CUDA's limits (1024 threads per block, grid y/z <=
//   65535, 48 KiB static shared memory is not checked); a bad one is reported by
//   cudaGetLastError like on a GPU.
// - The runtime API calls are synchronous; streams, pools and pinned memory are no-ops.
// - Stream capture (cudaStreamBeginCapture .. cudaStreamEndCapture) records instead of running:
//   every kernel launch (its grid, block and a copy of its argument values) and every memset and
//   memcpy becomes a node of the graph, and cudaGraphLaunch replays the nodes in order. Like a
//   driver in global capture mode it refuses, during a capture, cudaMalloc / cudaFree (and the
//   stream-ordered and pinned variants, which the mmgpt runtime never captures), a stream
//   synchronisation, and a copy from or to host memory that cudaMallocHost did not allocate: the
//   call returns cudaErrorStreamCaptureUnsupported and invalidates the capture, so
//   cudaStreamEndCapture returns cudaErrorStreamCaptureInvalidated and no graph.
// What it cannot find: real concurrency effects (memory-model races between blocks, atomics
// contention), performance, and differences of the GPU's math library (the host libm is used).

#ifndef MMGPT_CUDA_EMU_RUNTIME_H
#define MMGPT_CUDA_EMU_RUNTIME_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

using std::max;
using std::min;

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorIllegalState = 401,
};
typedef struct CUstream_st* cudaStream_t;
typedef struct CUmemPool_st* cudaMemPool_t;
typedef struct CUgraph_st* cudaGraph_t;
typedef struct CUgraphExec_st* cudaGraphExec_t;
typedef struct CUgraphNode_st* cudaGraphNode_t;
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaDeviceAttr { cudaDevAttrMemoryPoolsSupported = 115 };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
  char name[256];
  int major, minor;
  int multiProcessorCount;
  size_t totalGlobalMem;
};

namespace emu {

enum FiberState { READY = 0, BLOCK_WAIT = 1, WARP_WAIT = 2, DONE = 3 };

struct Fiber {
  ucontext_t ctx;
  FiberState state;
  unsigned linear;  // x + y * bx + z * bx * by
  uint3 idx;
};

const size_t kStackBytes = 256 * 1024;

struct Emulator {
  std::vector<Fiber> fibers;
  std::vector<void*> stacks;
  std::vector<uint64_t> warpSlots;
  ucontext_t sched;
  Fiber* current = nullptr;
  dim3 blockDim, gridDim;
  uint3 blockIdx;
  std::function<void()> body;
  cudaError_t lastError = cudaSuccess;
  std::mt19937 rng{12345};
  bool shuffle = true;
  const char* kernelName = "?";
};

/** One recorded operation of a captured stream: a kernel launch, a memset or a memcpy. */
struct GraphNode {
  enum Kind { KERNEL, MEMSET, MEMCPY } kind;
  const char* name;
  dim3 grid, block;
  std::function<void()> body;  // the kernel with a copy of its argument values
  void* dst;
  const void* src;
  size_t bytes;
  int value;
};

/** The capture in progress (one at a time, like one stream in global mode). */
struct CaptureState {
  bool active = false;
  bool invalidated = false;
  std::vector<GraphNode> nodes;
};

inline CaptureState& capture() {
  static CaptureState c;
  return c;
}

/**
 * During a capture: refuses an operation a capture cannot contain (invalidating the capture) and
 * returns the error; outside one: cudaSuccess.
 */
inline cudaError_t refuseDuringCapture() {
  CaptureState& c = capture();
  if (!c.active) return cudaSuccess;
  c.invalidated = true;
  return cudaErrorStreamCaptureUnsupported;
}

inline Emulator& state() {
  static Emulator e;
  return e;
}

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "\n[cuda emulator] %s (block %u,%u,%u of kernel %s)\n", what,
          state().blockIdx.x, state().blockIdx.y, state().blockIdx.z, state().kernelName);
  fflush(stderr);
  abort();
}

inline void fiberEntry() {
  Emulator& e = state();
  e.body();
  e.current->state = DONE;
  // Returning resumes uc_link (the scheduler).
}

inline void park(FiberState s) {
  Emulator& e = state();
  Fiber* f = e.current;
  f->state = s;
  swapcontext(&f->ctx, &e.sched);
}

/** Runs one block: all its threads as fibers, to completion. */
inline void runBlock() {
  Emulator& e = state();
  const unsigned bx = e.blockDim.x, by = e.blockDim.y;
  const unsigned n = e.blockDim.x * e.blockDim.y * e.blockDim.z;
  e.fibers.resize(n);
  while (e.stacks.size() < n) {
    void* s = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) die("cannot allocate fiber stacks");
    e.stacks.push_back(s);
  }
  e.warpSlots.assign(((n + 31) / 32) * 32, 0);
  for (unsigned t = 0; t < n; t++) {
    Fiber& f = e.fibers[t];
    f.linear = t;
    f.idx = {t % bx, (t / bx) % by, t / (bx * by)};
    f.state = READY;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = e.stacks[t];
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &e.sched;
    makecontext(&f.ctx, fiberEntry, 0);
  }
  std::vector<unsigned> order;
  order.reserve(n);
  for (;;) {
    order.clear();
    for (unsigned t = 0; t < n; t++) {
      if (e.fibers[t].state == READY) order.push_back(t);
    }
    if (order.empty()) {
      unsigned done = 0, atBlock = 0;
      for (const Fiber& f : e.fibers) {
        done += f.state == DONE;
        atBlock += f.state == BLOCK_WAIT;
      }
      if (done == n) break;
      // Warps whose every lane waits at a shuffle/ballot go on first (other warps may wait at a
      // __syncthreads meanwhile, as in blockSum); a warp with lanes in both is divergent.
      bool released = false;
      for (unsigned w = 0; w < n; w += 32) {
        unsigned waiting = 0, lanes = 0;
        for (unsigned t = w; t < w + 32 && t < n; t++) {
          lanes++;
          waiting += e.fibers[t].state == WARP_WAIT;
        }
        if (waiting == 0) continue;
        if (waiting != lanes) die("warp-synchronous operation not reached by every lane");
        for (unsigned t = w; t < w + 32 && t < n; t++) e.fibers[t].state = READY;
        released = true;
      }
      if (!released && atBlock > 0) {
        if (atBlock + done != n) die("__syncthreads not reached by every thread of the block");
        if (done > 0) die("__syncthreads after some threads of the block exited");
        for (Fiber& f : e.fibers) f.state = READY;
        released = true;
      }
      if (!released) die("deadlock");
      continue;
    }
    if (e.shuffle) std::shuffle(order.begin(), order.end(), e.rng);
    for (unsigned t : order) {
      e.current = &e.fibers[t];
      swapcontext(&e.sched, &e.current->ctx);
    }
  }
  e.current = nullptr;
}

inline void runKernel(const char* name, dim3 grid, dim3 block, std::function<void()> body) {
  Emulator& e = state();
  e.kernelName = name;
  e.blockDim = block;
  e.gridDim = grid;
  e.body = std::move(body);
  for (unsigned z = 0; z < grid.z; z++) {
    for (unsigned y = 0; y < grid.y; y++) {
      for (unsigned x = 0; x < grid.x; x++) {
        e.blockIdx = {x, y, z};
        runBlock();
      }
    }
  }
}

inline void launchImpl(const char* name, dim3 grid, dim3 block, std::function<void()> body) {
  Emulator& e = state();
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    e.lastError = cudaErrorInvalidConfiguration;
    return;
  }
  CaptureState& c = capture();
  if (c.active) {
    GraphNode n{GraphNode::KERNEL, name, grid, block, std::move(body), nullptr, nullptr, 0, 0};
    c.nodes.push_back(std::move(n));
    return;
  }
  runKernel(name, grid, block, std::move(body));
}

template <typename K>
struct Launcher {
  K* kernel;
  const char* name;
  dim3 grid, block;
  template <typename... A>
  void operator()(A... args) const {
    K* k = kernel;
    launchImpl(name, grid, block, [=]() { k(args...); });
  }
};

template <typename K>
Launcher<K> launch(K* kernel, const char* name, dim3 grid, dim3 block, size_t = 0,
                   cudaStream_t = nullptr) {
  return Launcher<K>{kernel, name, grid, block};
}

/** The calling fiber's values, written to its slot; returns after every lane of the warp did. */
inline void warpBarrier() { park(WARP_WAIT); }

template <typename T>
T shflXor(T v, int laneMask) {
  Emulator& e = state();
  const unsigned me = e.current->linear;
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  e.warpSlots[me] = bits;
  warpBarrier();
  const unsigned src = (me & ~31u) | ((me & 31u) ^ (unsigned)laneMask);
  if (src >= e.fibers.size()) die("shuffle from a lane outside the block");
  T r;
  memcpy(&r, &e.warpSlots[src], sizeof(T));
  warpBarrier();  // nobody overwrites a slot before every lane has read
  return r;
}

inline unsigned ballot(bool pred) {
  Emulator& e = state();
  const unsigned me = e.current->linear;
  e.warpSlots[me] = pred ? 1 : 0;
  warpBarrier();
  unsigned mask = 0;
  const unsigned base = me & ~31u;
  for (unsigned l = 0; l < 32 && base + l < e.fibers.size(); l++) {
    if (e.warpSlots[base + l]) mask |= 1u << l;
  }
  warpBarrier();
  return mask;
}

// ---- memory: guard page after every allocation ----------------------------------------------

struct Allocation {
  void* base;
  size_t length;
};

inline std::vector<std::pair<void*, Allocation>>& allocations() {
  static std::vector<std::pair<void*, Allocation>> a;
  return a;
}

inline void* deviceAlloc(size_t bytes) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t rounded = (bytes + 7) / 8 * 8;  // 8-byte alignment for doubles
  const size_t dataPages = (rounded + page - 1) / page;
  const size_t length = (dataPages + 1) * page;
  char* base =
      (char*)mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == (char*)MAP_FAILED) return nullptr;
  mprotect(base + dataPages * page, page, PROT_NONE);
  char* p = base + dataPages * page - rounded;
  memset(p, 0xff, rounded);
  allocations().push_back({p, {base, length}});
  return p;
}

/** Host blocks from cudaMallocHost (the only host memory a captured copy may use). */
inline std::vector<std::pair<const char*, size_t>>& pinnedBlocks() {
  static std::vector<std::pair<const char*, size_t>> b;
  return b;
}

inline bool isPinned(const void* p, size_t bytes) {
  const char* q = static_cast<const char*>(p);
  for (const auto& b : pinnedBlocks()) {
    if (q >= b.first && q + bytes <= b.first + b.second) return true;
  }
  return false;
}

inline bool isDevice(const void* p, size_t bytes) {
  const char* q = static_cast<const char*>(p);
  for (const auto& a : allocations()) {
    const char* base = static_cast<const char*>(a.first);
    const char* end = static_cast<const char*>(a.second.base) + a.second.length;
    if (q >= base && q + bytes <= end) return true;
  }
  return false;
}

inline bool deviceFree(void* p) {
  auto& a = allocations();
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i].first == p) {
      munmap(a[i].second.base, a[i].second.length);
      a[i] = a.back();
      a.pop_back();
      return true;
    }
  }
  return false;
}

}  // namespace emu

// ---- device-side intrinsics --------------------------------------------------------------------

#define threadIdx (::emu::state().current->idx)
#define blockIdx (::emu::state().blockIdx)
#define blockDim (::emu::state().blockDim)
#define gridDim (::emu::state().gridDim)

inline void __syncthreads() { ::emu::park(::emu::BLOCK_WAIT); }
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int laneMask) {
  return ::emu::shflXor(v, laneMask);
}
inline unsigned __ballot_sync(unsigned, bool pred) { return ::emu::ballot(pred); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) {
  const unsigned long long old = *a;
  if (v < old) *a = v;
  return old;
}

// ---- runtime API ---------------------------------------------------------------------------------

inline cudaError_t cudaGetDeviceCount(int* count) {
  const char* none = getenv("MMGPT_CUDA_EMU_NO_DEVICE");
  if (none != nullptr && *none == '1') {
    *count = 0;
    return cudaErrorNoDevice;
  }
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "mmgpt CUDA emulator (CPU)");
  p->major = 9;
  p->minor = 0;
  const char* sms = getenv("MMGPT_CUDA_EMU_SMS");
  p->multiProcessorCount = sms != nullptr ? atoi(sms) : 132;  // an H100's, so launch shapes match
  p->totalGlobalMem = (size_t)8 << 30;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int) {
  *pool = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) {
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return ::emu::refuseDuringCapture(); }
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = ::emu::state().lastError;
  ::emu::state().lastError = cudaSuccess;
  return e;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
  }
  return "unknown error";
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}
template <typename T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  if (cudaError_t e = ::emu::refuseDuringCapture()) return e;
  *p = (T*)::emu::deviceAlloc(bytes);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <typename T>
inline cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t) {
  return cudaMalloc(p, bytes);
}
template <typename T>
inline cudaError_t cudaMallocHost(T** p, size_t bytes) {
  if (cudaError_t e = ::emu::refuseDuringCapture()) return e;
  *p = (T*)malloc(bytes);
  if (*p == nullptr) return cudaErrorMemoryAllocation;
  ::emu::pinnedBlocks().push_back({(const char*)*p, bytes});
  return cudaSuccess;
}
inline cudaError_t cudaFreeHost(void* p) {
  if (cudaError_t e = ::emu::refuseDuringCapture()) return e;
  auto& b = ::emu::pinnedBlocks();
  for (size_t i = 0; i < b.size(); i++) {
    if (b[i].first == p) {
      b[i] = b.back();
      b.pop_back();
      free(p);
      return cudaSuccess;
    }
  }
  return p == nullptr ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaFree(void* p) {
  if (cudaError_t e = ::emu::refuseDuringCapture()) return e;
  if (p == nullptr) return cudaSuccess;
  return ::emu::deviceFree(p) ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t) {
  ::emu::CaptureState& c = ::emu::capture();
  if (c.active) {
    c.nodes.push_back({::emu::GraphNode::MEMSET, "memset", {}, {}, {}, p, nullptr, bytes, v});
    return cudaSuccess;
  }
  memset(p, v, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                                   cudaStream_t) {
  ::emu::CaptureState& c = ::emu::capture();
  if (c.active) {
    // A captured copy reads its source when the graph runs: host memory must be pinned.
    const bool dstOk = ::emu::isDevice(dst, bytes) || ::emu::isPinned(dst, bytes);
    const bool srcOk = ::emu::isDevice(src, bytes) || ::emu::isPinned(src, bytes);
    if (!dstOk || !srcOk) return ::emu::refuseDuringCapture();
    c.nodes.push_back({::emu::GraphNode::MEMCPY, "memcpy", {}, {}, {}, dst, src, bytes, 0});
    return cudaSuccess;
  }
  memcpy(dst, src, bytes);
  return cudaSuccess;
}

// ---- stream capture and graphs ---------------------------------------------------------------

struct CUgraph_st {
  std::vector<::emu::GraphNode> nodes;
};
struct CUgraphExec_st {
  std::vector<::emu::GraphNode> nodes;
};

inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  ::emu::CaptureState& c = ::emu::capture();
  if (c.active) return cudaErrorIllegalState;
  c.active = true;
  c.invalidated = false;
  c.nodes.clear();
  return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
  const ::emu::CaptureState& c = ::emu::capture();
  *status = !c.active ? cudaStreamCaptureStatusNone
                      : c.invalidated ? cudaStreamCaptureStatusInvalidated
                                      : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  ::emu::CaptureState& c = ::emu::capture();
  *graph = nullptr;
  if (!c.active) return cudaErrorIllegalState;
  c.active = false;
  if (c.invalidated) {
    c.nodes.clear();
    return cudaErrorStreamCaptureInvalidated;
  }
  *graph = new CUgraph_st{std::move(c.nodes)};
  c.nodes.clear();
  return cudaSuccess;
}
inline cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (graph == nullptr || nodes != nullptr) return cudaErrorInvalidValue;
  *count = graph->nodes.size();
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                        unsigned long long = 0) {
  if (graph == nullptr) return cudaErrorInvalidValue;
  if (cudaError_t e = ::emu::refuseDuringCapture()) return e;
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
/** Runs the recorded nodes in order, as the stream would have run them. */
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  if (exec == nullptr) return cudaErrorInvalidValue;
  if (cudaError_t e = ::emu::refuseDuringCapture()) return e;
  for (const ::emu::GraphNode& n : exec->nodes) {
    switch (n.kind) {
      case ::emu::GraphNode::KERNEL: ::emu::runKernel(n.name, n.grid, n.block, n.body); break;
      case ::emu::GraphNode::MEMSET: memset(n.dst, n.value, n.bytes); break;
      case ::emu::GraphNode::MEMCPY: memcpy(n.dst, n.src, n.bytes); break;
    }
  }
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}

#endif  // MMGPT_CUDA_EMU_RUNTIME_H

// Device setup, memory, synchronisation and error reporting of the CUDA backend.
//
// One device (MMGPT_CUDA_DEVICE, default 0), one non-blocking stream that every copy and kernel
// is queued on, so work runs in call order and the host only waits in downloads, sumSquares,
// index checks and sync(). Memory comes from the stream-ordered allocator (cudaMallocAsync /
// cudaFreeAsync) with the default pool's release threshold raised to "never", i.e. a caching
// allocator: a freed block is reused by the next allocation of the stream without a device
// synchronisation or a trip to the driver (the engine also parks freed buffers in its own pool,
// src/engine/tensor.ts). Devices without memory pools (or MMGPT_CUDA_MEMPOOL=0) fall back to
// cudaMalloc / cudaFree after a stream sync. alloc zero-fills with cudaMemsetAsync.
//
// Notable choices: initialisation is lazy and happens once, on the first call from JS, so loading
// the addon never touches the driver (the cpu backend works on machines without one: cudart is
// linked statically and loads libcuda.so.1 on demand). A failed init is remembered with its
// reason. Errors are messages in a static buffer; asynchronous kernel faults surface at the next
// synchronisation, naming the last kernel launched.
//
// CUDA graphs: mmgpt_cuda_graph_begin .. end captures the stream into a graph that
// mmgpt_cuda_graph_launch replays. A capture must not allocate, free or wait (each is refused
// with a message and fails the capture: a captured step takes its buffers from the engine's pool),
// and host data it uploads is staged in the graph's own pinned arena (read again at every replay).
// Workspace areas a live graph may use are never freed while it lives (retired instead). The
// graph's index checks record into slots 0..n-1; after a replay they are pending like an eager
// kernel's, and the slots keep the first bad row over replays until a synchronisation reads them.

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <vector>

#include "common.cuh"

#ifndef MMGPT_CUDA_ARCHS
#define MMGPT_CUDA_ARCHS "unknown"
#endif

namespace mmgpt_cuda {

cudaStream_t gStream = nullptr;
int gNumSMs = 1;

namespace {

char gMessage[2048] = "";
int gInitState = 0;  // 0: not tried, 1: ready, -1: failed (reason in gInitReason)
char gInitReason[1024] = "";
int gDevice = 0;
bool gUsePools = false;
bool gSyncChecks = true;
const char* gLastKernel = "(none)";
MmgptCudaStats gStats = {};

// Index-check slots: device records and their pinned host mirror (+ one double for scalars).
const int kSlots = 64;
unsigned long long* gSlotsDev = nullptr;
unsigned long long* gSlotsHost = nullptr;
double* gScalarHost = nullptr;
struct PendingCheck {
  IndexCheckKind kind;
  const char* fn;
  int64_t limit;
};
PendingCheck gPending[kSlots];
int gSlotsUsed = 0;

void* gWorkspace = nullptr;
size_t gWorkspaceBytes = 0;

// ---- graphs ----
const int kGraphParams = 4096;             // doubles in a graph's parameter block
const size_t kGraphArenaBytes = 1u << 20;  // pinned host bytes a graph's uploads may stage

struct GraphAdam {
  int slot;  // [lr, bias1, bias2] at params[slot..slot+2]
  double beta1, beta2;
};

struct CapturedGraph {
  cudaGraphExec_t exec = nullptr;
  size_t nodes = 0;
  double* paramsDev = nullptr;  // the parameter block the graph's kernels read
  std::vector<double> params;   // its values, uploaded before every launch
  std::vector<GraphAdam> adam;
  std::vector<int> seedSlots;
  char* arena = nullptr;  // pinned: host data of the captured uploads
  size_t arenaUsed = 0;
  std::vector<PendingCheck> checks;  // the index checks of its kernels, in slots 0..n-1
  char failure[512] = "";            // the first refused operation of the capture
};

CapturedGraph* gCapture = nullptr;  // the capture in progress
std::vector<std::pair<void*, size_t>> gDeferredFrees;  // collected during a capture
int gLiveGraphs = 0;
std::vector<void*> gRetired;  // workspace areas replaced while graphs lived
const CapturedGraph* gSlotOwner = nullptr;  // the graph whose checks are pending in slots 0..n-1

/** Marks the capture failed (the first reason wins) and returns setError(1, ...). */
int refuseInCapture(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int refuseInCapture(const char* fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (gCapture != nullptr && gCapture->failure[0] == '\0') {
    snprintf(gCapture->failure, sizeof gCapture->failure, "%s", what);
  }
  return setError(1, "cuda: %s during a graph capture (a captured step must not allocate, free "
                  "or wait for the device)", what);
}

__global__ void kProbe(int* out) { *out = 0x6d6d6770; }

int devFree(void* p) {
  if (p == nullptr) return 0;
  if (gCapture != nullptr) return refuseInCapture("freeing device memory");
  if (gUsePools) return checkCall(cudaFreeAsync(p, gStream), "cudaFreeAsync");
  // cudaFree of memory a queued kernel may still use: wait for the stream first.
  if (int rc = checkCall(cudaStreamSynchronize(gStream), "cudaStreamSynchronize")) return rc;
  return checkCall(cudaFree(p), "cudaFree");
}

int devMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (bytes == 0) return 0;
  if (gCapture != nullptr) return refuseInCapture("allocating %zu bytes", bytes);
  const cudaError_t e = gUsePools ? cudaMallocAsync(p, bytes, gStream) : cudaMalloc(p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the (non-sticky) out-of-memory error
    *p = nullptr;
    return setError(1, "cuda: allocating %zu bytes failed: %s (live: %.0f bytes in %.0f buffers)",
                    bytes, cudaGetErrorString(e), gStats.liveBytes, gStats.liveBuffers);
  }
  return 0;
}

int failInit(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int failInit(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(gInitReason, sizeof gInitReason, fmt, ap);
  va_end(ap);
  gInitState = -1;
  cudaGetLastError();
  snprintf(gMessage, sizeof gMessage, "%s", gInitReason);
  return 1;
}

/** Reads back and checks every pending index-check slot (the stream must be idle). */
int flushChecks() {
  if (gSlotsUsed == 0) return 0;
  const int used = gSlotsUsed;
  gSlotsUsed = 0;
  gSlotOwner = nullptr;
  cudaError_t e = cudaMemcpyAsync(gSlotsHost, gSlotsDev, used * sizeof(unsigned long long),
                                  cudaMemcpyDeviceToHost, gStream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(gStream);
  // Read slots go back to ~0 ("no bad index"), the state every free slot is kept in.
  if (e == cudaSuccess) {
    e = cudaMemsetAsync(gSlotsDev, 0xff, used * sizeof(unsigned long long), gStream);
  }
  if (int rc = checkCall(e, "reading index checks")) return rc;
  for (int s = 0; s < used; s++) {
    const unsigned long long rec = gSlotsHost[s];
    if (rec == ~0ULL) continue;
    const long long row = (long long)(rec >> 32);
    const int value = (int)(int32_t)(uint32_t)(rec & 0xffffffffULL);
    const PendingCheck& c = gPending[s];
    const char* late = gSyncChecks ? "" : " (detected at the next synchronisation)";
    const long long limit = (long long)c.limit;
    switch (c.kind) {
      case CHECK_GATHER:
        return setError(2,
                        "%s: index %d at row %lld is out of range for a vocabulary of size %lld "
                        "(accepted: 0..%lld)%s",
                        c.fn, value, row, limit, limit - 1, late);
      case CHECK_SCATTER:
        return setError(2, "%s: index %d at row %lld is out of range for a table of %lld rows%s",
                        c.fn, value, row, limit, late);
      case CHECK_TARGET:
        return setError(2,
                        "%s: target %d at row %lld is out of range for %lld classes (accepted: "
                        "0..%lld, or negative to ignore)%s",
                        c.fn, value, row, limit, limit - 1, late);
      case CHECK_OFFSET:
        return setError(2,
                        "%s: the offset %d read from the device is out of range (accepted: "
                        "0..%lld)%s",
                        c.fn, value, limit, late);
    }
  }
  return 0;
}

}  // namespace

int setError(int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(gMessage, sizeof gMessage, fmt, ap);
  va_end(ap);
  return code;
}

int checkCall(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return 0;
  return setError(1, "cuda: %s failed: %s (%s; last kernel launched: %s)", what,
                  cudaGetErrorString(e), cudaGetErrorName(e), gLastKernel);
}

int checkLaunch(const char* kernel) {
  if (gCapture == nullptr) gStats.launches++;
  gLastKernel = kernel;
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return 0;
  return setError(1, "cuda: launching kernel %s failed: %s (%s)", kernel, cudaGetErrorString(e),
                  cudaGetErrorName(e));
}

int syncStream(const char* what) {
  if (gCapture != nullptr) return refuseInCapture("%s waits for the device", what);
  gStats.syncs++;
  const cudaError_t e = cudaStreamSynchronize(gStream);
  if (e != cudaSuccess) {
    return setError(1,
                    "cuda: %s: a queued kernel failed: %s (%s; last kernel launched: %s). The "
                    "CUDA context is unusable now; restart the process.",
                    what, cudaGetErrorString(e), cudaGetErrorName(e), gLastKernel);
  }
  return flushChecks();
}

void* workspace(size_t bytes) {
  if (bytes <= gWorkspaceBytes) return gWorkspace;
  size_t grow = gWorkspaceBytes * 2;
  if (grow < bytes) grow = bytes;
  if (grow < (1u << 20)) grow = 1u << 20;
  if (gCapture != nullptr) {
    refuseInCapture("growing the workspace to %zu bytes", grow);
    return nullptr;
  }
  if (gLiveGraphs > 0) {
    if (gWorkspace != nullptr) gRetired.push_back(gWorkspace);  // a live graph may use it
  } else if (devFree(gWorkspace)) {
    return nullptr;
  }
  gWorkspace = nullptr;
  gWorkspaceBytes = 0;
  void* p = nullptr;
  if (devMalloc(&p, grow)) return nullptr;
  gWorkspace = p;
  gWorkspaceBytes = grow;
  return p;
}

double* hostScalar() { return gScalarHost; }

unsigned long long* beginIndexCheck() {
  if (gSlotsUsed == kSlots && syncStream("index checks")) return nullptr;
  return gSlotsDev + gSlotsUsed;  // free slots hold ~0 already
}

int endIndexCheck(unsigned long long* slot, IndexCheckKind kind, const char* fn, int64_t limit) {
  const int s = (int)(slot - gSlotsDev);
  gPending[s] = {kind, fn, limit};
  gSlotsUsed = s + 1;
  return gSyncChecks && gCapture == nullptr ? syncStream(fn) : 0;
}

bool capturing() { return gCapture != nullptr; }

double adamBiasCorrection(double beta, double step) { return 1.0 - pow(beta, step); }

namespace {
/** `count` fresh doubles of the capture's parameter block set to `values`; -1 when full. */
int graphSlots(const double* values, int count) {
  CapturedGraph* g = gCapture;
  if ((int)g->params.size() + count > kGraphParams) {
    refuseInCapture("more than %d per-step values (Adam rates, dropout seeds)", kGraphParams);
    return -1;
  }
  const int slot = (int)g->params.size();
  g->params.insert(g->params.end(), values, values + count);
  return slot;
}
}  // namespace

const double* graphAdamParams(double lr, double beta1, double beta2) {
  if (gCapture == nullptr) return nullptr;
  const double v[3] = {lr, 0.0, 0.0};
  const int slot = graphSlots(v, 3);
  if (slot < 0) return nullptr;
  gCapture->adam.push_back({slot, beta1, beta2});
  return gCapture->paramsDev + slot;
}

const double* graphSeedParam(uint32_t seed) {
  if (gCapture == nullptr) return nullptr;
  const double v = (double)seed;
  const int slot = graphSlots(&v, 1);
  if (slot < 0) return nullptr;
  gCapture->seedSlots.push_back(slot);
  return gCapture->paramsDev + slot;
}

}  // namespace mmgpt_cuda

using namespace mmgpt_cuda;

extern "C" {

const char* mmgpt_cuda_error(void) { return gMessage; }

const char* mmgpt_cuda_built_archs(void) { return MMGPT_CUDA_ARCHS; }

void mmgpt_cuda_set_sync_checks(int on) { gSyncChecks = on != 0; }
int mmgpt_cuda_get_sync_checks(void) { return gSyncChecks ? 1 : 0; }

int mmgpt_cuda_init(void) {
  if (gInitState == 1) return 0;
  if (gInitState == -1) {
    snprintf(gMessage, sizeof gMessage, "%s", gInitReason);
    return 1;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    // cudart reports a missing driver library as an "insufficient" driver: say which it is.
    void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (driver != nullptr) dlclose(driver);
    return failInit("cudaGetDeviceCount failed: %s (%s)%s", cudaGetErrorString(e),
                    cudaGetErrorName(e),
                    driver == nullptr ? "; no CUDA driver is installed (libcuda.so.1 not found)"
                                      : "");
  }
  if (count < 1) return failInit("the CUDA driver reports no device");
  const char* want = getenv("MMGPT_CUDA_DEVICE");
  gDevice = (want != nullptr && *want != '\0') ? atoi(want) : 0;
  if (gDevice < 0 || gDevice >= count) {
    return failInit("MMGPT_CUDA_DEVICE=%s but there are %d device(s)", want, count);
  }
  if ((e = cudaSetDevice(gDevice)) != cudaSuccess) {
    return failInit("cudaSetDevice(%d) failed: %s", gDevice, cudaGetErrorString(e));
  }
  cudaDeviceProp prop;
  if ((e = cudaGetDeviceProperties(&prop, gDevice)) != cudaSuccess) {
    return failInit("cudaGetDeviceProperties failed: %s", cudaGetErrorString(e));
  }
  if (prop.major < 8) {
    return failInit("device %d (%s) has compute capability %d.%d; the kernels are built for %s",
                    gDevice, prop.name, prop.major, prop.minor, MMGPT_CUDA_ARCHS);
  }
  gNumSMs = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  if ((e = cudaStreamCreateWithFlags(&gStream, cudaStreamNonBlocking)) != cudaSuccess) {
    return failInit("cudaStreamCreate failed: %s", cudaGetErrorString(e));
  }
  int pools = 0;
  cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, gDevice);
  const char* poolEnv = getenv("MMGPT_CUDA_MEMPOOL");
  if (poolEnv != nullptr && strcmp(poolEnv, "0") == 0) pools = 0;
  if (pools) {
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, gDevice) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;  // never return freed blocks to the driver: a caching allocator
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
      gUsePools = true;
    }
    cudaGetLastError();
  }
  if ((e = cudaMalloc(&gSlotsDev, kSlots * sizeof(unsigned long long))) != cudaSuccess ||
      (e = cudaMallocHost(&gSlotsHost, kSlots * sizeof(unsigned long long) + 64)) !=
          cudaSuccess) {
    return failInit("allocating the error records failed: %s", cudaGetErrorString(e));
  }
  gScalarHost = reinterpret_cast<double*>(gSlotsHost + kSlots);
  if ((e = cudaMemsetAsync(gSlotsDev, 0xff, kSlots * sizeof(unsigned long long), gStream)) !=
      cudaSuccess) {
    return failInit("clearing the error records failed: %s", cudaGetErrorString(e));
  }
  // A kernel must run: catches a device the fat binary has no code for.
  int* probe = nullptr;
  int seen = 0;
  if ((e = cudaMalloc(&probe, sizeof(int))) != cudaSuccess) {
    return failInit("cudaMalloc failed: %s", cudaGetErrorString(e));
  }
  kProbe<<<1, 1, 0, gStream>>>(probe);
  e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpyAsync(&seen, probe, sizeof seen, cudaMemcpyDeviceToHost, gStream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(gStream);
  cudaFree(probe);
  if (e != cudaSuccess || seen != 0x6d6d6770) {
    return failInit("a test kernel did not run on device %d (%s, sm_%d%d; built for %s): %s",
                    gDevice, prop.name, prop.major, prop.minor, MMGPT_CUDA_ARCHS,
                    e != cudaSuccess ? cudaGetErrorString(e) : "wrong result");
  }
  gInitState = 1;
  return 0;
}

int mmgpt_cuda_info(MmgptCudaInfo* info) {
  if (int rc = mmgpt_cuda_init()) return rc;
  memset(info, 0, sizeof *info);
  cudaDeviceProp prop;
  if (int rc = checkCall(cudaGetDeviceProperties(&prop, gDevice), "cudaGetDeviceProperties")) {
    return rc;
  }
  snprintf(info->name, sizeof info->name, "%s", prop.name);
  info->device = gDevice;
  info->computeMajor = prop.major;
  info->computeMinor = prop.minor;
  info->multiProcessors = prop.multiProcessorCount;
  info->totalMemory = prop.totalGlobalMem;
  cudaRuntimeGetVersion(&info->runtimeVersion);
  cudaDriverGetVersion(&info->driverVersion);
  info->memoryPools = gUsePools ? 1 : 0;
  return 0;
}

void mmgpt_cuda_stats(MmgptCudaStats* stats) { *stats = gStats; }

// ---- memory -----------------------------------------------------------------------------------

int mmgpt_cuda_alloc(void** ptr, size_t bytes, int zeroFill) {
  if (int rc = mmgpt_cuda_init()) return rc;
  if (int rc = devMalloc(ptr, bytes)) return rc;
  if (bytes > 0 && zeroFill) {
    if (int rc = checkCall(cudaMemsetAsync(*ptr, 0, bytes, gStream), "cudaMemsetAsync")) {
      devFree(*ptr);
      *ptr = nullptr;
      return rc;
    }
  }
  gStats.allocs++;
  gStats.liveBuffers++;
  gStats.liveBytes += (double)bytes;
  if (gStats.liveBytes > gStats.peakBytes) gStats.peakBytes = gStats.liveBytes;
  return 0;
}

int mmgpt_cuda_free(void* ptr, size_t bytes) {
  if (gInitState != 1) return 0;
  if (gCapture != nullptr) return refuseInCapture("freeing device memory");
  gStats.frees++;
  gStats.liveBuffers--;
  gStats.liveBytes -= (double)bytes;
  return devFree(ptr);
}

int mmgpt_cuda_release(void* ptr, size_t bytes) {
  if (gCapture == nullptr) return mmgpt_cuda_free(ptr, bytes);
  gDeferredFrees.push_back({ptr, bytes});
  return 0;
}

int mmgpt_cuda_upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return 0;
  gStats.uploads++;
  gStats.uploadBytes += (double)bytes;
  // From pageable memory the copy is staged before the call returns: src may change afterwards.
  return checkCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, gStream),
                   "cudaMemcpyAsync (upload)");
}

int mmgpt_cuda_write(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return 0;
  gStats.uploads++;
  gStats.uploadBytes += (double)bytes;
  CapturedGraph* g = gCapture;
  if (g == nullptr) {
    return checkCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, gStream),
                     "cudaMemcpyAsync (write)");
  }
  // Captured: the graph copies from its pinned arena at every replay.
  const size_t at = (g->arenaUsed + 15) / 16 * 16;
  if (at + bytes > kGraphArenaBytes) {
    return refuseInCapture("uploading more than %zu bytes", kGraphArenaBytes);
  }
  memcpy(g->arena + at, src, bytes);
  g->arenaUsed = at + bytes;
  return checkCall(cudaMemcpyAsync(dst, g->arena + at, bytes, cudaMemcpyHostToDevice, gStream),
                   "cudaMemcpyAsync (captured write)");
}

int mmgpt_cuda_download(void* dst, const void* src, size_t bytes) {
  if (gCapture != nullptr) return refuseInCapture("a download");
  gStats.downloads++;
  gStats.downloadBytes += (double)bytes;
  if (bytes > 0) {
    if (int rc = checkCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, gStream),
                           "cudaMemcpyAsync (download)")) {
      return rc;
    }
  }
  return syncStream("download");
}

int mmgpt_cuda_sync(void) {
  if (gInitState != 1) return 0;
  return syncStream("sync");
}

// ---- graphs -------------------------------------------------------------------------------------

namespace {

void releaseGraph(CapturedGraph* g) {
  if (g->exec != nullptr) cudaGraphExecDestroy(g->exec);
  if (g->paramsDev != nullptr) cudaFree(g->paramsDev);
  if (g->arena != nullptr) cudaFreeHost(g->arena);
  delete g;
}

/** Ends the capture in progress; returns its graph (null if the capture failed: message set). */
CapturedGraph* finishCapture(bool instantiate) {
  CapturedGraph* g = gCapture;
  gCapture = nullptr;
  // The capture registered the pending checks of kernels that did not run: the graph keeps them.
  g->checks.assign(gPending, gPending + gSlotsUsed);
  gSlotsUsed = 0;
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(gStream, &graph);
  cudaGetLastError();
  for (const auto& f : gDeferredFrees) mmgpt_cuda_free(f.first, f.second);
  gDeferredFrees.clear();
  if (g->failure[0] != '\0' || e != cudaSuccess || !instantiate) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (g->failure[0] != '\0') {
      setError(1, "cuda: graph capture failed: %s", g->failure);
    } else if (e != cudaSuccess) {
      checkCall(e, "cudaStreamEndCapture");
    }
    releaseGraph(g);
    return nullptr;
  }
  e = cudaGraphGetNodes(graph, nullptr, &g->nodes);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&g->exec, graph, 0);
  cudaGraphDestroy(graph);
  if (checkCall(e, "cudaGraphInstantiate")) {
    releaseGraph(g);
    return nullptr;
  }
  gLiveGraphs++;
  return g;
}

}  // namespace

int mmgpt_cuda_graph_begin(void) {
  if (int rc = mmgpt_cuda_init()) return rc;
  if (gCapture != nullptr) return setError(1, "cuda: a graph capture is already in progress");
  // Pending index checks are read first: the graph's checks take the slots from 0.
  if (int rc = syncStream("graph capture")) return rc;
  CapturedGraph* g = new CapturedGraph();
  cudaError_t e = cudaMalloc(&g->paramsDev, kGraphParams * sizeof(double));
  if (e == cudaSuccess) e = cudaMallocHost(&g->arena, kGraphArenaBytes);
  if (e == cudaSuccess) e = cudaStreamBeginCapture(gStream, cudaStreamCaptureModeThreadLocal);
  if (int rc = checkCall(e, "beginning a graph capture")) {
    releaseGraph(g);
    return rc;
  }
  gCapture = g;
  return 0;
}

int mmgpt_cuda_graph_end(void** graph) {
  *graph = nullptr;
  if (gCapture == nullptr) return setError(1, "cuda: no graph capture is in progress");
  CapturedGraph* g = finishCapture(true);
  if (g == nullptr) return 1;
  *graph = g;
  return 0;
}

int mmgpt_cuda_graph_abort(void) {
  if (gCapture != nullptr) finishCapture(false);
  return 0;
}

int mmgpt_cuda_graph_info(const void* graph, MmgptCudaGraphInfo* info) {
  const CapturedGraph* g = static_cast<const CapturedGraph*>(graph);
  info->nodes = (double)g->nodes;
  info->adamUpdates = (double)g->adam.size();
  info->seeds = (double)g->seedSlots.size();
  info->indexChecks = (double)g->checks.size();
  info->uploadBytes = (double)g->arenaUsed;
  return 0;
}

int64_t mmgpt_cuda_graph_seeds(const void* graph, uint32_t* out, int64_t capacity) {
  const CapturedGraph* g = static_cast<const CapturedGraph*>(graph);
  const int64_t n = (int64_t)g->seedSlots.size();
  for (int64_t i = 0; i < n && i < capacity; i++) out[i] = (uint32_t)g->params[g->seedSlots[i]];
  return n;
}

int mmgpt_cuda_graph_launch(void* graph, double lr, double step, const uint32_t* seeds,
                            int64_t seedCount) {
  CapturedGraph* g = static_cast<CapturedGraph*>(graph);
  if (gCapture != nullptr) return refuseInCapture("launching a graph");
  if (seedCount != (int64_t)g->seedSlots.size()) {
    return setError(2, "graph launch: %lld dropout seeds given, the graph draws %zu",
                    (long long)seedCount, g->seedSlots.size());
  }
  if (!g->adam.empty() && !(isfinite(lr) && isfinite(step))) {
    return setError(2, "graph launch: the graph updates with Adam: give its rate and step");
  }
  for (const GraphAdam& a : g->adam) {
    g->params[a.slot] = lr;
    g->params[a.slot + 1] = adamBiasCorrection(a.beta1, step);
    g->params[a.slot + 2] = adamBiasCorrection(a.beta2, step);
  }
  for (size_t i = 0; i < g->seedSlots.size(); i++) g->params[g->seedSlots[i]] = (double)seeds[i];
  const int checks = (int)g->checks.size();
  // Slots 0..checks-1 may hold another graph's or eager kernels' pending records: read them.
  if (checks > 0 && gSlotOwner != g && gSlotsUsed > 0) {
    if (int rc = syncStream("graph launch")) return rc;
  }
  if (!g->params.empty()) {
    // From pageable memory: staged before the call returns, so the next launch may rewrite it.
    if (int rc = checkCall(cudaMemcpyAsync(g->paramsDev, g->params.data(),
                                           g->params.size() * sizeof(double),
                                           cudaMemcpyHostToDevice, gStream),
                           "cudaMemcpyAsync (graph parameters)")) {
      return rc;
    }
  }
  if (int rc = checkCall(cudaGraphLaunch(g->exec, gStream), "cudaGraphLaunch")) return rc;
  gStats.graphLaunches++;
  gLastKernel = "(a graph)";
  if (checks > 0) {
    for (int s = 0; s < checks; s++) gPending[s] = g->checks[s];
    if (gSlotsUsed < checks) gSlotsUsed = checks;
    gSlotOwner = g;
  }
  return gSyncChecks && checks > 0 ? syncStream("graph launch") : 0;
}

int mmgpt_cuda_graph_destroy(void* graph) {
  CapturedGraph* g = static_cast<CapturedGraph*>(graph);
  // The graph may still run, and its checks may be pending: wait and read them first.
  const int rc = gInitState == 1 ? syncStream("graph destroy") : 0;
  if (gSlotOwner == g) gSlotOwner = nullptr;
  releaseGraph(g);
  if (--gLiveGraphs == 0) {
    for (void* p : gRetired) devFree(p);
    gRetired.clear();
  }
  return rc;
}

}  // extern "C"

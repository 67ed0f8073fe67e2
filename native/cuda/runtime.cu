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

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

__global__ void kProbe(int* out) { *out = 0x6d6d6770; }

int devFree(void* p) {
  if (p == nullptr) return 0;
  if (gUsePools) return checkCall(cudaFreeAsync(p, gStream), "cudaFreeAsync");
  // cudaFree of memory a queued kernel may still use: wait for the stream first.
  if (int rc = checkCall(cudaStreamSynchronize(gStream), "cudaStreamSynchronize")) return rc;
  return checkCall(cudaFree(p), "cudaFree");
}

int devMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (bytes == 0) return 0;
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
  cudaError_t e = cudaMemcpyAsync(gSlotsHost, gSlotsDev, used * sizeof(unsigned long long),
                                  cudaMemcpyDeviceToHost, gStream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(gStream);
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
  gStats.launches++;
  gLastKernel = kernel;
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return 0;
  return setError(1, "cuda: launching kernel %s failed: %s (%s)", kernel, cudaGetErrorString(e),
                  cudaGetErrorName(e));
}

int syncStream(const char* what) {
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
  if (devFree(gWorkspace)) return nullptr;
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
  unsigned long long* slot = gSlotsDev + gSlotsUsed;
  if (checkCall(cudaMemsetAsync(slot, 0xff, sizeof *slot, gStream), "cudaMemsetAsync")) {
    return nullptr;
  }
  return slot;
}

int endIndexCheck(unsigned long long* slot, IndexCheckKind kind, const char* fn, int64_t limit) {
  const int s = (int)(slot - gSlotsDev);
  gPending[s] = {kind, fn, limit};
  gSlotsUsed = s + 1;
  return gSyncChecks ? syncStream(fn) : 0;
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
  gStats.frees++;
  gStats.liveBuffers--;
  gStats.liveBytes -= (double)bytes;
  return devFree(ptr);
}

int mmgpt_cuda_upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return 0;
  gStats.uploads++;
  gStats.uploadBytes += (double)bytes;
  // From pageable memory the copy is staged before the call returns: src may change afterwards.
  return checkCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, gStream),
                   "cudaMemcpyAsync (upload)");
}

int mmgpt_cuda_download(void* dst, const void* src, size_t bytes) {
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

}  // extern "C"

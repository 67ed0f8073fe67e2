// Module entry of the CUDA-emulator test addon (build-emu.js): the same `cuda` entry points as
// mmgpt_native (addon_cuda.cc), running the kernels of native/cuda/*.cu on the CPU emulator
// (cuda_runtime.h in this folder). Only for tests on machines without a GPU; never shipped.
//
// `emulator` holds probes of the emulator's own stream capture, called straight on its runtime
// API (no mmgpt runtime in between), for test/engine/cuda_graphs.test.ts:
// - captureReplay(): a kernel, a memset and a memcpy captured, then replayed twice;
// - captureRefusals(): what a capture refuses, each in a fresh capture.

#include <cuda_runtime.h>
#include <napi.h>

#include <string>

namespace mmgpt {
void registerCuda(Napi::Env env, Napi::Object exports);
}

namespace {

__global__ void kAddScalar(float* x, int n, float v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += v;
}

Napi::Array floats(Napi::Env env, const float* x, int n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (int i = 0; i < n; i++) a.Set(i, Napi::Number::New(env, x[i]));
  return a;
}

/**
 * Captures x[0..8) += v (kernel), y[0..8) = 0 (memset), then x[0..4) = pinned (memcpy from pinned
 * host memory), with v = 1 and the pinned data [10, 20, 30, 40] at capture time. After the
 * capture v becomes 100 and the pinned data [50, 60, 70, 80]: a replay uses the kernel's copied
 * argument and reads the pinned memory anew. Reports x and y before and after each of 2 replays.
 */
Napi::Value CaptureReplay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int n = 8;
  float *x = nullptr, *y = nullptr, *pinned = nullptr;
  cudaMalloc(&x, n * sizeof(float));
  cudaMalloc(&y, n * sizeof(float));
  cudaMallocHost(&pinned, 4 * sizeof(float));
  for (int i = 0; i < n; i++) x[i] = y[i] = (float)i;  // emulated device memory is host memory
  for (int i = 0; i < 4; i++) pinned[i] = 10.0f * (float)(i + 1);
  cudaStream_t s = nullptr;
  Napi::Object out = Napi::Object::New(env);
  out.Set("begin", cudaGetErrorName(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal)));
  cudaStreamCaptureStatus status;
  cudaStreamIsCapturing(s, &status);
  out.Set("capturing", status == cudaStreamCaptureStatusActive);
  float v = 1.0f;
  ::emu::launch(kAddScalar, "kAddScalar", dim3(1), dim3(32))(x, n, v);
  cudaMemsetAsync(y, 0, n * sizeof(float), s);
  cudaMemcpyAsync(x, pinned, 4 * sizeof(float), cudaMemcpyHostToDevice, s);
  out.Set("duringCapture", floats(env, x, n));
  cudaGraph_t graph = nullptr;
  out.Set("end", cudaGetErrorName(cudaStreamEndCapture(s, &graph)));
  size_t nodes = 0;
  cudaGraphGetNodes(graph, nullptr, &nodes);
  out.Set("nodes", (double)nodes);
  cudaGraphExec_t exec = nullptr;
  out.Set("instantiate", cudaGetErrorName(cudaGraphInstantiate(&exec, graph, 0)));
  cudaGraphDestroy(graph);
  v = 100.0f;
  for (int i = 0; i < 4; i++) pinned[i] = 10.0f * (float)(i + 5);
  for (int i = 0; i < n; i++) x[i] = y[i] = (float)i;
  Napi::Array replays = Napi::Array::New(env, 2);
  for (int r = 0; r < 2; r++) {
    cudaGraphLaunch(exec, s);
    Napi::Object o = Napi::Object::New(env);
    o.Set("x", floats(env, x, n));
    o.Set("y", floats(env, y, n));
    replays.Set(r, o);
  }
  out.Set("replays", replays);
  cudaGraphExecDestroy(exec);
  cudaFree(x);
  cudaFree(y);
  cudaFreeHost(pinned);
  return out;
}

/** In a fresh capture each: the call's error, and what cudaStreamEndCapture says afterwards. */
Napi::Value CaptureRefusals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = nullptr;
  float* dev = nullptr;
  cudaMalloc(&dev, 16 * sizeof(float));
  float pageable[16] = {0};
  Napi::Object out = Napi::Object::New(env);
  auto probe = [&](const char* name, cudaError_t (*call)(float*, float*)) {
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    Napi::Object o = Napi::Object::New(env);
    o.Set("call", cudaGetErrorName(call(dev, pageable)));
    cudaGraph_t graph = nullptr;
    o.Set("end", cudaGetErrorName(cudaStreamEndCapture(s, &graph)));
    o.Set("graph", graph != nullptr);
    if (graph != nullptr) cudaGraphDestroy(graph);
    out.Set(name, o);
  };
  probe("malloc", [](float*, float*) {
    float* p = nullptr;
    return cudaMalloc(&p, 64);
  });
  probe("mallocAsync", [](float*, float*) {
    float* p = nullptr;
    return cudaMallocAsync(&p, 64, nullptr);
  });
  probe("free", [](float* d, float*) { return cudaFree(d); });
  probe("mallocHost", [](float*, float*) {
    float* p = nullptr;
    return cudaMallocHost(&p, 64);
  });
  probe("synchronize", [](float*, float*) { return cudaStreamSynchronize(nullptr); });
  probe("pageableUpload", [](float* d, float* h) {
    return cudaMemcpyAsync(d, h, 16 * sizeof(float), cudaMemcpyHostToDevice, nullptr);
  });
  probe("pageableDownload", [](float* d, float* h) {
    return cudaMemcpyAsync(h, d, 16 * sizeof(float), cudaMemcpyDeviceToHost, nullptr);
  });
  probe("deviceCopy", [](float* d, float*) {
    return cudaMemcpyAsync(d + 8, d, 8 * sizeof(float), cudaMemcpyDeviceToDevice, nullptr);
  });
  // A second begin while capturing, then the memory is still usable after the captures.
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  out.Set("nestedBegin",
          cudaGetErrorName(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal)));
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(s, &graph);
  if (graph != nullptr) cudaGraphDestroy(graph);
  out.Set("freeAfter", cudaGetErrorName(cudaFree(dev)));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mmgpt::registerCuda(env, exports);
  exports.Set("emulated", true);
  Napi::Object emulator = Napi::Object::New(env);
  emulator.Set("captureReplay", Napi::Function::New(env, CaptureReplay, "captureReplay"));
  emulator.Set("captureRefusals", Napi::Function::New(env, CaptureRefusals, "captureRefusals"));
  exports.Set("emulator", emulator);
  return exports;
}

}  // namespace

NODE_API_MODULE(mmgpt_cuda_emu, Init)

// Module entry of the CUDA-emulator test addon (build-emu.js): the same `cuda` entry points as
// mmgpt_native (addon_cuda.cc), running the kernels of native/cuda/*.cu on the CPU emulator
// (cuda_runtime.h in this folder). Only for tests on machines without a GPU; never shipped.

#include <napi.h>

namespace mmgpt {
void registerCuda(Napi::Env env, Napi::Object exports);
}

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mmgpt::registerCuda(env, exports);
  exports.Set("emulated", true);
  return exports;
}

}  // namespace

NODE_API_MODULE(mmgpt_cuda_emu, Init)

// Stand-in for the CUDA kernels when nvcc was found but failed (an unsupported host compiler, a
// broken toolkit): build-cuda.js then compiles this file with the host C++ compiler instead, so
// the addon still links and the cpu backend is unaffected; the cuda backend reports why it is
// missing ("the CUDA kernels failed to compile: ..."). MMGPT_CUDA=1 turns that failure into a
// build error instead.
//
// MMGPT_CUDA_STUB_REASON comes from stub_reason.h, written by build-cuda.js next to the object.

#include <string.h>

#include "cuda_api.h"
#include "stub_reason.h"

namespace {
int unavailable() { return 1; }
}  // namespace

extern "C" {

const char* mmgpt_cuda_error(void) { return MMGPT_CUDA_STUB_REASON; }
int mmgpt_cuda_init(void) { return unavailable(); }
int mmgpt_cuda_info(MmgptCudaInfo*) { return unavailable(); }
void mmgpt_cuda_stats(MmgptCudaStats* stats) { memset(stats, 0, sizeof *stats); }
const char* mmgpt_cuda_built_archs(void) { return "none (nvcc failed)"; }
void mmgpt_cuda_set_sync_checks(int) {}
int mmgpt_cuda_get_sync_checks(void) { return 1; }

int mmgpt_cuda_alloc(void** ptr, size_t, int) {
  *ptr = nullptr;
  return unavailable();
}
int mmgpt_cuda_free(void*, size_t) { return 0; }
int mmgpt_cuda_release(void*, size_t) { return 0; }
int mmgpt_cuda_upload(void*, const void*, size_t) { return unavailable(); }
int mmgpt_cuda_download(void*, const void*, size_t) { return unavailable(); }
int mmgpt_cuda_sync(void) { return 0; }
int mmgpt_cuda_write(void*, const void*, size_t) { return unavailable(); }

int mmgpt_cuda_graph_begin(void) { return unavailable(); }
int mmgpt_cuda_graph_end(void** graph) {
  *graph = nullptr;
  return unavailable();
}
int mmgpt_cuda_graph_abort(void) { return 0; }
int mmgpt_cuda_graph_info(const void*, MmgptCudaGraphInfo* info) {
  memset(info, 0, sizeof *info);
  return unavailable();
}
int mmgpt_cuda_graph_launch(void*, double, double, const uint32_t*, int64_t) {
  return unavailable();
}
int64_t mmgpt_cuda_graph_seeds(const void*, uint32_t*, int64_t) { return 0; }
int mmgpt_cuda_graph_destroy(void*) { return 0; }

int mmgpt_cuda_fill32(uint32_t*, int64_t, uint32_t) { return unavailable(); }
int mmgpt_cuda_copy_block(const uint32_t*, uint32_t*, int64_t, int64_t, int64_t, int64_t, int64_t,
                          int64_t, int64_t, int) {
  return unavailable();
}
int mmgpt_cuda_copy_block_at(const uint32_t*, uint32_t*, int64_t, int64_t, int64_t, int64_t,
                             const int32_t*, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_binary(int, const float*, const float*, float*, int, const int64_t*, const int64_t*,
                      const int64_t*) {
  return unavailable();
}
int mmgpt_cuda_unary(int, const float*, float*, int64_t) { return unavailable(); }
int mmgpt_cuda_unary_backward(int, const float*, const float*, const float*, float*, int64_t) {
  return unavailable();
}
int mmgpt_cuda_affine(const float*, float*, int64_t, double, double) { return unavailable(); }
int mmgpt_cuda_axpy(const float*, float*, int64_t, double) { return unavailable(); }
int mmgpt_cuda_sum_squares(const float*, int64_t, double*) { return unavailable(); }
int mmgpt_cuda_sum_axis(const float*, float*, int64_t, int64_t, int64_t, int) {
  return unavailable();
}
int mmgpt_cuda_broadcast_axis(const float*, float*, int64_t, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_permute(const uint32_t*, uint32_t*, int, const int64_t*, const int64_t*) {
  return unavailable();
}
int mmgpt_cuda_matmul(const float*, const float*, float*, const mmgpt::MatmulArgs*) {
  return unavailable();
}
int mmgpt_cuda_gather(const float*, const int32_t*, float*, int64_t, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_scatter_add(const float*, const int32_t*, float*, int64_t, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_layer_norm(const float*, const float*, const float*, float*, float*, float*,
                          int64_t, int64_t, double) {
  return unavailable();
}
int mmgpt_cuda_layer_norm_backward(const float*, const float*, const float*, const float*,
                                   const float*, float*, float*, float*, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_softmax(const float*, float*, int64_t, int64_t, int64_t) { return unavailable(); }
int mmgpt_cuda_softmax_backward(const float*, const float*, float*, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_cross_entropy(const float*, const int32_t*, float*, float*, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_cross_entropy_backward(const float*, const int32_t*, const float*, float*, int64_t,
                                      int64_t) {
  return unavailable();
}
int mmgpt_cuda_dropout_mask(float*, int64_t, double, uint32_t) { return unavailable(); }
int mmgpt_cuda_im2col(const float*, float*, const mmgpt::ConvGeom*) { return unavailable(); }
int mmgpt_cuda_col2im(const float*, float*, const mmgpt::ConvGeom*) { return unavailable(); }
int mmgpt_cuda_nearest_code(const float*, const float*, int32_t*, float*, int64_t, int64_t,
                            int64_t) {
  return unavailable();
}
int mmgpt_cuda_adam(float*, const float*, float*, float*, int64_t, const mmgpt::AdamArgs*) {
  return unavailable();
}
int mmgpt_cuda_cross_entropy_mean(const float*, const int32_t*, float*, float*, float*, int64_t,
                                  int64_t) {
  return unavailable();
}
int mmgpt_cuda_bias_gelu(const float*, const float*, float*, int64_t, int64_t) {
  return unavailable();
}
int mmgpt_cuda_bias_gelu_backward(const float*, const float*, const float*, float*, float*, int64_t,
                                  int64_t) {
  return unavailable();
}
int mmgpt_cuda_add_layer_norm(const float*, const float*, const float*, const float*, float*,
                              float*, float*, float*, int64_t, int64_t, double) {
  return unavailable();
}
int mmgpt_cuda_adam_multi(float* const*, const float* const*, float* const*, float* const*,
                          const int64_t*, const double*, int64_t, const mmgpt::AdamArgs*, double,
                          float*) {
  return unavailable();
}
int mmgpt_cuda_attention(const float*, float*, float*, int64_t, int64_t, int64_t, int64_t, double) {
  return unavailable();
}
int mmgpt_cuda_attention_backward(const float*, const float*, const float*, float*, int64_t,
                                  int64_t, int64_t, int64_t, double) {
  return unavailable();
}

}  // extern "C"

// CUDA kernels of the fused causal self-attention (backend.ts: attention, attentionBackward),
// t <= kMaxT. Reference: backends/js/attention.ts.
//
// One block per (batch item, head), one thread per query row i (forward, and the first pass of
// the backward) or per key row j (the backward's second pass). The head's q/k/v are read from
// the [batch, t, 3, heads, headSize] layout in place (through L1/L2); the backward keeps the
// softmax gradient gS [t, t] in shared memory between its two passes. The softmax is float64
// with float64 exp, as the softmax kernel; the weighted sums are float32, as the GEMM. No atomics:
// every output element is written by one thread, so a run repeats bit for bit.

#include <math.h>

#include "common.cuh"

using namespace mmgpt_cuda;

namespace {

const int kMaxT = 64;

__global__ void kAttention(const float* __restrict__ qkv, float* __restrict__ out,
                           float* __restrict__ probs, int t, int heads, int hs, double scale) {
  const int bh = blockIdx.x, b = bh / heads, h = bh % heads, i = threadIdx.x;
  if (i >= t) return;
  const int64_t c = (int64_t)heads * hs;
  const float* head = qkv + (int64_t)b * t * 3 * c + (int64_t)h * hs;
  const float* q = head + (int64_t)i * 3 * c;
  float* p = probs + ((int64_t)bh * t + i) * t;
  float mx = -INFINITY;
  for (int j = 0; j <= i; j++) {
    const float* k = head + (int64_t)j * 3 * c + c;
    float s = 0.0f;
    for (int d = 0; d < hs; d++) s += (float)((double)q[d] * scale) * k[d];
    p[j] = s;
    mx = fmaxf(mx, s);
  }
  double sum = 0.0;
  for (int j = 0; j <= i; j++) sum += exp((double)p[j] - (double)mx);
  const double inv = 1.0 / sum;
  for (int j = 0; j <= i; j++) p[j] = (float)(exp((double)p[j] - (double)mx) * inv);
  for (int j = i + 1; j < t; j++) p[j] = 0.0f;
  float* y = out + ((int64_t)b * t + i) * c + (int64_t)h * hs;
  for (int d = 0; d < hs; d++) {
    float acc = 0.0f;
    for (int j = 0; j <= i; j++) acc += p[j] * head[(int64_t)j * 3 * c + 2 * c + d];
    y[d] = acc;
  }
}

__global__ void kAttentionBackward(const float* __restrict__ qkv, const float* __restrict__ probs,
                                   const float* __restrict__ gy, float* __restrict__ gQkv, int t,
                                   int heads, int hs, double scale) {
  __shared__ float gS[kMaxT][kMaxT + 1];
  const int bh = blockIdx.x, b = bh / heads, h = bh % heads, r = threadIdx.x;
  const int64_t c = (int64_t)heads * hs;
  const float* head = qkv + (int64_t)b * t * 3 * c + (int64_t)h * hs;
  const float* gHeadY = gy + (int64_t)b * t * c + (int64_t)h * hs;
  float* gHead = gQkv + (int64_t)b * t * 3 * c + (int64_t)h * hs;
  const float* p = probs + (int64_t)bh * t * t;
  if (r < t) {  // query row i = r: gS[i, :] and gq_i
    const int i = r;
    const float* g = gHeadY + (int64_t)i * c;
    double dot = 0.0;
    for (int j = 0; j <= i; j++) {
      const float* v = head + (int64_t)j * 3 * c + 2 * c;
      float s = 0.0f;
      for (int d = 0; d < hs; d++) s += g[d] * v[d];
      gS[i][j] = s;
      dot += (double)s * (double)p[i * t + j];
    }
    for (int j = 0; j <= i; j++) gS[i][j] = (float)(p[i * t + j] * ((double)gS[i][j] - dot));
    for (int j = i + 1; j < t; j++) gS[i][j] = 0.0f;
    float* gq = gHead + (int64_t)i * 3 * c;
    for (int d = 0; d < hs; d++) {
      float acc = 0.0f;
      for (int j = 0; j <= i; j++) acc += gS[i][j] * head[(int64_t)j * 3 * c + c + d];
      gq[d] = (float)(scale * (double)acc);
    }
  }
  __syncthreads();
  if (r < t) {  // key row j = r: gk_j and gv_j
    const int j = r;
    float* gk = gHead + (int64_t)j * 3 * c + c;
    for (int d = 0; d < hs; d++) {
      float ak = 0.0f, av = 0.0f;
      for (int i = j; i < t; i++) {
        ak += gS[i][j] * (float)((double)head[(int64_t)i * 3 * c + d] * scale);
        av += p[i * t + j] * gHeadY[(int64_t)i * c + d];
      }
      gk[d] = ak;
      gk[c + d] = av;
    }
  }
}

}  // namespace

extern "C" {

int mmgpt_cuda_attention(const float* qkv, float* out, float* probs, int64_t batch, int64_t t,
                         int64_t heads, int64_t headSize, double scale) {
  if (batch == 0 || t == 0 || heads == 0) return 0;
  kAttention<<<(unsigned)(batch * heads), kMaxT, 0, gStream>>>(qkv, out, probs, (int)t,
                                                               (int)heads, (int)headSize, scale);
  MMGPT_CHECK_LAUNCH("attention");
  return 0;
}

int mmgpt_cuda_attention_backward(const float* qkv, const float* probs, const float* gy,
                                  float* gQkv, int64_t batch, int64_t t, int64_t heads,
                                  int64_t headSize, double scale) {
  if (batch == 0 || t == 0 || heads == 0) return 0;
  kAttentionBackward<<<(unsigned)(batch * heads), kMaxT, 0, gStream>>>(
      qkv, probs, gy, gQkv, (int)t, (int)heads, (int)headSize, scale);
  MMGPT_CHECK_LAUNCH("attentionBackward");
  return 0;
}

}  // extern "C"

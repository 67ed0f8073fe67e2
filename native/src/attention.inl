// Fused causal self-attention (backend.ts: attention, attentionBackward), included by
// kernels.inl inside its anonymous namespace (it uses that file's vector helpers, scratch
// buffers and softmaxRow), so it is compiled once per instruction set like every kernel.
//
// One head at a time, one head per thread: its scaled queries, transposed keys (and values, in
// the backward) are copied into the thread's scratch, and everything else of the head is read
// from and written to the [batch, t, 3, heads, headSize] layout in place, so no permute, split
// or copy pass runs. For t <= kAttnMaxT a head's data (~30 KiB at t = 58, headSize 32) stays in
// L1. Score rows are vectors over the keys (kT[d, j] is contiguous in j); the weighted sums of
// value or query rows are vectors over the head's features. Sums are float32 (like the GEMM),
// the softmax is softmaxRow (float64 denominator), the softmax backward's row dot float64.

const int64_t kAttnMaxT = 64;

__thread Scratch tlsAttn = {nullptr, 0};

/** acc[0, n) += a * x[0, n): the weighted row sums (vectorised by the compiler). */
inline void axpyRow(float* __restrict acc, const float* __restrict x, float a, int64_t n) {
  for (int64_t d = 0; d < n; d++) acc[d] += a * x[d];
}

/** s[0, n) = sum_d q[d] * kT[d * ld + 0 .. n): a row of scores over the keys. */
inline void scoreRow(float* __restrict s, const float* __restrict q, const float* __restrict kT,
                     int64_t ld, int64_t hs, int64_t n) {
  for (int64_t j = 0; j < n; j++) s[j] = 0.0f;
  for (int64_t d = 0; d < hs; d++) {
    const float a = q[d];
    const float* k = kT + d * ld;
    for (int64_t j = 0; j < n; j++) s[j] += a * k[j];
  }
}

/** The head's scaled queries qs [t, hs] and the transpose xT [hs, ld] of part `which` (1: k, 2: v). */
inline void loadHead(const float* qkv, int64_t c, int64_t t, int64_t hs, double scale, int which,
                     float* qs, float* xT, int64_t ld) {
  for (int64_t i = 0; i < t; i++) {
    const float* row = qkv + i * 3 * c;
    if (qs) {
      for (int64_t d = 0; d < hs; d++) qs[i * hs + d] = (float)((double)row[d] * scale);
    }
    for (int64_t d = 0; d < hs; d++) xT[d * ld + i] = row[which * c + d];
  }
}

void kAttention(const float* qkv, float* out, float* probs, int64_t batch, int64_t t,
                int64_t heads, int64_t hs, double scale, int nt) {
  const int64_t c = heads * hs, ld = ceilDiv(t, VL) * VL;
#pragma omp parallel for num_threads(threadsFor(nt, batch * heads * t * t * hs, kParCompute)) \
    schedule(static)
  for (int64_t bh = 0; bh < batch * heads; bh++) {
    const int64_t b = bh / heads, h = bh % heads;
    float* qs = scratch(&tlsAttn, t * hs + hs * ld + ld);
    float* kT = qs + t * hs;
    float* s = kT + hs * ld;
    const float* head = qkv + b * t * 3 * c + h * hs;
    loadHead(head, c, t, hs, scale, 1, qs, kT, ld);
    float* p = probs + bh * t * t;
    for (int64_t i = 0; i < t; i++) {
      scoreRow(s, qs + i * hs, kT, ld, hs, i + 1);
      softmaxRow(s, p + i * t, t, i + 1);
      float* y = out + (b * t + i) * c + h * hs;
      for (int64_t d = 0; d < hs; d++) y[d] = 0.0f;
      for (int64_t j = 0; j <= i; j++) axpyRow(y, head + j * 3 * c + 2 * c, p[i * t + j], hs);
    }
  }
}

void kAttentionBackward(const float* qkv, const float* probs, const float* gy, float* gQkv,
                        int64_t batch, int64_t t, int64_t heads, int64_t hs, double scale,
                        int nt) {
  const int64_t c = heads * hs, ld = ceilDiv(t, VL) * VL;
#pragma omp parallel for num_threads(threadsFor(nt, batch * heads * t * t * hs, kParCompute)) \
    schedule(static)
  for (int64_t bh = 0; bh < batch * heads; bh++) {
    const int64_t b = bh / heads, h = bh % heads;
    float* qs = scratch(&tlsAttn, t * hs + hs * ld + ld + t * ld + hs);
    float* vT = qs + t * hs;
    float* gP = vT + hs * ld;
    float* gS = gP + ld;  // [t, ld]: row i holds columns j <= i
    float* acc = gS + t * ld;
    const float* head = qkv + b * t * 3 * c + h * hs;
    float* gHead = gQkv + b * t * 3 * c + h * hs;
    loadHead(head, c, t, hs, scale, 2, qs, vT, ld);
    const float* p = probs + bh * t * t;
    for (int64_t i = 0; i < t; i++) {
      const float* g = gy + (b * t + i) * c + h * hs;
      scoreRow(gP, g, vT, ld, hs, i + 1);
      const double dot = dotD(gP, p + i * t, i + 1);
      float* gSi = gS + i * ld;
      for (int64_t j = 0; j <= i; j++) gSi[j] = (float)(p[i * t + j] * (gP[j] - dot));
      // gq_i = scale * sum_j gS_ij k_j
      for (int64_t d = 0; d < hs; d++) acc[d] = 0.0f;
      for (int64_t j = 0; j <= i; j++) axpyRow(acc, head + j * 3 * c + c, gSi[j], hs);
      float* gq = gHead + i * 3 * c;
      for (int64_t d = 0; d < hs; d++) gq[d] = (float)(scale * (double)acc[d]);
    }
    // gk_j = sum_{i >= j} gS_ij qs_i and gv_j = sum_{i >= j} p_ij gy_i, written in place.
    for (int64_t j = 0; j < t; j++) {
      float* gk = gHead + j * 3 * c + c;
      float* gv = gk + c;
      for (int64_t d = 0; d < hs; d++) gk[d] = gv[d] = 0.0f;
      for (int64_t i = j; i < t; i++) {
        axpyRow(gk, qs + i * hs, gS[i * ld + j], hs);
        axpyRow(gv, gy + (b * t + i) * c + h * hs, p[i * t + j], hs);
      }
    }
  }
}

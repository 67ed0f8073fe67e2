// Fused causal self-attention (backend.ts: attention, attentionBackward), included by
// kernels.inl inside its anonymous namespace: it uses that file's GEMM micro-kernel
// (ukernelRows), scratch buffers, softmaxRow and dotD, so it is compiled once per instruction set
// like every kernel.
//
// One head per thread at a time. Each of the head's small products (scores = qs k^T, y = p v;
// backward: gP = gy v^T, gq = gS k, gk = gS^T qs, gv = p^T gy) runs on the GEMM micro-kernel:
// its right operand is packed into kNR-wide panels in the thread's scratch, its left operand
// and the result are read and written in place, in the [batch, t, 3, heads, headSize] layout
// (so no permute, split or copy pass runs). The causal structure skips the zero blocks: score
// panels right of a row block's last row, and the depth beyond it (p is 0 there) or before it
// (the transposed products). For t <= kAttnMaxT a head's operands (~40 KiB at t = 58, headSize
// 32) stay in L1/L2. Sums are the GEMM's float32 ones; the softmax's denominator is finished in
// float64 (attnSoftmaxRow) and the softmax backward's row dot is float64, as the unfused kernels.

const int64_t kAttnMaxT = 64;
const int64_t kAttnLd = kAttnMaxT;  // row stride of the score-sized scratch matrices

__thread Scratch tlsAttn = {nullptr, 0};

/** n floats rounded up to a 64-byte line: the micro-kernel loads its B panels aligned. */
inline int64_t lineUp(int64_t n) { return ceilDiv(n, 16) * 16; }

/** Packs X [rows, cols] (row stride ldx) into kNR-wide panels (panel jp at Bp + jp*rows*kNR). */
inline void packPanels(const float* X, int64_t ldx, int64_t rows, int64_t cols, float* Bp) {
  for (int64_t j0 = 0; j0 < cols; j0 += kNR) {
    const int64_t w = min64(kNR, cols - j0);
    float* panel = Bp + (j0 / kNR) * rows * kNR;
    for (int64_t p = 0; p < rows; p++) {
      for (int64_t j = 0; j < w; j++) panel[p * kNR + j] = X[p * ldx + j0 + j];
      for (int64_t j = w; j < kNR; j++) panel[p * kNR + j] = 0.0f;
    }
  }
}

/** Packs X^T for X [cols, rows] (row stride ldx): the panels of a [rows, cols] operand. */
inline void packPanelsT(const float* X, int64_t ldx, int64_t rows, int64_t cols, float* Bp) {
  for (int64_t j0 = 0; j0 < cols; j0 += kNR) {
    const int64_t w = min64(kNR, cols - j0);
    float* panel = Bp + (j0 / kNR) * rows * kNR;
    for (int64_t p = 0; p < rows; p++) {
      for (int64_t j = 0; j < w; j++) panel[p * kNR + j] = X[(j0 + j) * ldx + p];
      for (int64_t j = w; j < kNR; j++) panel[p * kNR + j] = 0.0f;
    }
  }
}

/**
 * C[i, 0:n] = alpha * sum_{p in [p0, p1)} op(A)[i, p] Bp[p, :] for the rows i of [i0, i0 + rows)
 * (rows <= kMR). aKind as ukernelRows (1: A's rows, 2: A transposed), Bp the panels of a
 * [depth, n] operand (depth rows each).
 */
inline void blockTimesPanels(int aKind, const float* A, int64_t lda, int64_t i0, int rows,
                             int64_t p0, int64_t p1, const float* Bp, int64_t depth, int64_t n,
                             float* C, int64_t ldc, float alpha) {
  const float* a = aKind == 1 ? A + i0 * lda + p0 : A + p0 * lda + i0;
  for (int64_t j0 = 0; j0 < n; j0 += kNR) {
    const float* panel = Bp + (j0 / kNR) * depth * kNR + p0 * kNR;
    ukernelRows<kMR>(rows, aKind, p1 - p0, a, lda, panel, C + i0 * ldc + j0, ldc,
                     (int)min64(kNR, n - j0), alpha, 0);
  }
}

/**
 * softmaxRow for rows of n <= kAttnMaxT, the row in registers: p[0, n) = the softmax of
 * s[0, visible) (a float32 lane sum finished in float64), exactly 0 beyond. The masked lanes
 * never reach exp: exp(-inf) comes out of the 2^n scaling as a subnormal intermediate, which
 * costs a microcode assist per vector on Intel cores (most of the time of a short causal row).
 */
inline void attnSoftmaxRow(const float* s, float* p, int64_t n, int64_t visible) {
  const int kV = (int)(kAttnMaxT / VL);
  vf e[kAttnMaxT / VL];
  vf vmax = vsplat(-INFINITY);
#pragma GCC unroll 16
  for (int v = 0; v < kV; v++) {
    const int64_t j = v * VL;
    e[v] = j + VL <= visible ? vload(s + j)
           : j < visible     ? vloadPart(s + j, visible - j, -INFINITY)
                             : vsplat(-INFINITY);
    vmax = e[v] > vmax ? e[v] : vmax;
  }
  const float mx = hmax(vmax);
  const vf vm = vsplat(mx);
  vf sum = {};
#pragma GCC unroll 16
  for (int v = 0; v < kV; v++) {
    const int64_t j = v * VL;
    if (j >= visible) break;
    if (j + VL <= visible) {
      e[v] = vexp(e[v] - vm);
    } else {  // the lanes past the row: exp(0), then 0
      e[v] = vkeepLanes(vexp(vloadPart(s + j, visible - j, mx) - vm), visible - j);
    }
    sum += e[v];
  }
  const vf inv = vsplat((float)(1.0 / hsumd(widen(sum))));
#pragma GCC unroll 16
  for (int v = 0; v < kV; v++) {
    const int64_t j = v * VL;
    if (j >= n) break;
    const vf r = j < visible ? e[v] * inv : vsplat(0.0f);
    if (j + VL <= n) {
      vstore(p + j, r);
    } else {
      vstorePart(p + j, r, n - j);
    }
  }
}

void kAttention(const float* qkv, float* out, float* probs, int64_t batch, int64_t t,
                int64_t heads, int64_t hs, double scale, int nt) {
  const int64_t c = heads * hs, tp = ceilDiv(t, kNR) * kNR, hp = ceilDiv(hs, kNR) * kNR;
#pragma omp parallel for num_threads(threadsFor(nt, batch * heads * t * t * hs, kParCompute)) \
    schedule(static)
  for (int64_t bh = 0; bh < batch * heads; bh++) {
    const int64_t b = bh / heads, h = bh % heads;
    float* qs = scratch(&tlsAttn, lineUp(t * hs) + hs * tp + t * hp + t * kAttnLd);
    float* kPanels = qs + lineUp(t * hs);  // k^T: [hs, t] in panels
    float* vPanels = kPanels + hs * tp;    // v: [t, hs] in panels
    float* s = vPanels + t * hp;           // scores [t, kAttnLd]
    const float* head = qkv + b * t * 3 * c + h * hs;
    for (int64_t i = 0; i < t; i++) {
      for (int64_t d = 0; d < hs; d++) qs[i * hs + d] = (float)((double)head[i * 3 * c + d] * scale);
    }
    packPanelsT(head + c, 3 * c, hs, t, kPanels);
    packPanels(head + 2 * c, 3 * c, t, hs, vPanels);
    float* p = probs + bh * t * t;
    float* y = out + b * t * c + h * hs;
    for (int64_t i0 = 0; i0 < t; i0 += kMR) {
      const int rows = (int)min64(kMR, t - i0);
      const int64_t iEnd = i0 + rows;  // keys [0, iEnd) are visible to some row of the block
      blockTimesPanels(1, qs, hs, i0, rows, 0, hs, kPanels, hs, iEnd, s, kAttnLd, 1.0f);
      for (int64_t i = i0; i < iEnd; i++) attnSoftmaxRow(s + i * kAttnLd, p + i * t, t, i + 1);
      blockTimesPanels(1, p, t, i0, rows, 0, iEnd, vPanels, t, hs, y, c, 1.0f);
    }
  }
}

void kAttentionBackward(const float* qkv, const float* probs, const float* gy, float* gQkv,
                        int64_t batch, int64_t t, int64_t heads, int64_t hs, double scale,
                        int nt) {
  const int64_t c = heads * hs, tp = ceilDiv(t, kNR) * kNR, hp = ceilDiv(hs, kNR) * kNR;
#pragma omp parallel for num_threads(threadsFor(nt, batch * heads * t * t * hs, kParCompute)) \
    schedule(static)
  for (int64_t bh = 0; bh < batch * heads; bh++) {
    const int64_t b = bh / heads, h = bh % heads;
    float* qs = scratch(&tlsAttn, lineUp(t * hs) + hs * tp + 3 * t * hp + 2 * t * kAttnLd);
    float* vT = qs + lineUp(t * hs);  // v^T: [hs, t] in panels
    float* kPanels = vT + hs * tp;    // k, qs, gy: [t, hs] in panels
    float* qPanels = kPanels + t * hp;
    float* gyPanels = qPanels + t * hp;
    float* gP = gyPanels + t * hp;    // [t, kAttnLd]
    float* gS = gP + t * kAttnLd;     // [t, kAttnLd], zero right of the diagonal
    const float* head = qkv + b * t * 3 * c + h * hs;
    const float* g = gy + b * t * c + h * hs;
    float* gHead = gQkv + b * t * 3 * c + h * hs;
    const float* p = probs + bh * t * t;
    for (int64_t i = 0; i < t; i++) {
      for (int64_t d = 0; d < hs; d++) qs[i * hs + d] = (float)((double)head[i * 3 * c + d] * scale);
    }
    packPanelsT(head + 2 * c, 3 * c, hs, t, vT);
    packPanels(head + c, 3 * c, t, hs, kPanels);
    packPanels(qs, hs, t, hs, qPanels);
    packPanels(g, c, t, hs, gyPanels);
    for (int64_t i0 = 0; i0 < t; i0 += kMR) {
      const int rows = (int)min64(kMR, t - i0);
      const int64_t iEnd = i0 + rows;
      blockTimesPanels(1, g, c, i0, rows, 0, hs, vT, hs, iEnd, gP, kAttnLd, 1.0f);
      for (int64_t i = i0; i < iEnd; i++) {
        const float* pi = p + i * t;
        const float* gPi = gP + i * kAttnLd;
        float* gSi = gS + i * kAttnLd;
        const double dot = dotD(gPi, pi, i + 1);
        for (int64_t j = 0; j <= i; j++) gSi[j] = (float)(pi[j] * (gPi[j] - dot));
        for (int64_t j = i + 1; j < t; j++) gSi[j] = 0.0f;
      }
      // gq = scale * gS k over the visible keys [0, iEnd).
      blockTimesPanels(1, gS, kAttnLd, i0, rows, 0, iEnd, kPanels, t, hs, gHead, 3 * c,
                       (float)scale);
    }
    // gk = gS^T qs and gv = p^T gy: key rows j of [j0, j0 + kMR) sum over queries i >= j0.
    for (int64_t j0 = 0; j0 < t; j0 += kMR) {
      const int rows = (int)min64(kMR, t - j0);
      blockTimesPanels(2, gS, kAttnLd, j0, rows, j0, t, qPanels, t, hs, gHead + c, 3 * c, 1.0f);
      blockTimesPanels(2, p, t, j0, rows, j0, t, gyPanels, t, hs, gHead + 2 * c, 3 * c, 1.0f);
    }
  }
}

// The Backend interface: every numeric kernel the engine needs, on opaque buffers.
//
// The engine (tensor.ts, ops.ts) owns shapes, autograd and buffer lifetimes; a backend only
// moves numbers. Four backends implement this one interface: the plain-TypeScript reference
// (backends/js.ts, the oracle in tests), the native CPU addon (backends/cpu.ts), CUDA
// (backends/cuda.ts) and the CPU kernels compiled to WebAssembly (backends/wasm.ts). Model code
// never sees a backend.
//
// Conventions (every backend must follow them exactly; tests compare backends kernel by kernel):
// - All layouts are contiguous row-major. Sizes are element counts, not bytes.
// - A kernel writes every element of its output unless it says it accumulates (`+=`).
// - Output buffers are allocated by the caller (`alloc` returns zero-filled memory).
// - Inputs and outputs never alias unless a kernel says so.
// - float32 storage; reductions may accumulate in higher precision (the js backend uses float64).
// - Index buffers are int32.

export type DType = 'float32' | 'int32';

/** An opaque handle to backend memory. js/cpu: a Float32Array or Int32Array; cuda: a device pointer; wasm: a handle into its memory. */
export type Buf = object;

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
export type UnaryOp = 'exp' | 'log' | 'tanh' | 'relu' | 'gelu' | 'neg' | 'sqrt' | 'square';

export interface MatmulParams {
  /** Number of independent products. */
  batch: number;
  /** C is [m, n]; op(A) is [m, k]; op(B) is [k, n]. */
  m: number;
  n: number;
  k: number;
  /** If true, A is stored [k, m] and used transposed. */
  transA: boolean;
  /** If true, B is stored [n, k] and used transposed. */
  transB: boolean;
  /** Element offset between consecutive batch items (0 broadcasts one matrix to all batch items). */
  strideA: number;
  strideB: number;
  strideC: number;
  /** C = alpha * op(A) @ op(B) + (accumulate ? C : 0) (+ bias). */
  alpha: number;
  accumulate: boolean;
  /**
   * A row of n floats added to every row of every item's C (a Linear layer's bias), after the
   * product is rounded to float32 and stored: C = float32(alpha * op(A) @ op(B) (+ C)) + bias,
   * the bits of the product followed by `binary('add')` of the broadcast bias, in one pass over
   * C. With strideC = 0 every item adds it, in item order. Absent: no bias.
   *
   * A field of the product's parameters rather than a separate argument or kernel: like alpha
   * and accumulate it says what the product's store does, every caller without a bias is
   * unchanged, and a backend that could not fuse it would still read it in this one place.
   */
  bias?: Buf;
  /**
   * The product needs float32 operands: a backend set to a reduced-precision matmul (the cpu
   * backend's bf16, setCpuMatmulPrecision) runs this one in float32 (Muon's Newton-Schulz
   * iteration, whose polynomial amplifies rounding). Absent: the backend's setting.
   */
  fullPrecision?: boolean;
}

export interface AdamParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Weight decay; applied decoupled (AdamW: p -= lr*wd*p) when `decoupled`, else added to the gradient (Adam + L2). */
  weightDecay: number;
  decoupled: boolean;
  /** 1-based step number, used for bias correction 1 - beta^step. */
  step: number;
  /** Gradient multiplier applied before anything else (used for gradient-norm clipping). */
  gradScale: number;
}

/** The tensors of one multi-tensor Adam step (Backend.adamMulti): parallel lists. */
export interface AdamTensors {
  params: Buf[];
  grads: Buf[];
  m: Buf[];
  v: Buf[];
  sizes: number[];
  weightDecays: number[];
}

export interface Conv2dGeometry {
  /** Batch, channels, input height and width. */
  n: number;
  c: number;
  h: number;
  w: number;
  /** Kernel size, stride and zero padding (same on both axes). */
  kh: number;
  kw: number;
  stride: number;
  pad: number;
  /** Output height and width: floor((h + 2*pad - kh) / stride) + 1, and likewise for w. */
  ho: number;
  wo: number;
}

export interface Backend {
  readonly name: 'js' | 'cpu' | 'cuda' | 'wasm';

  // ---- memory --------------------------------------------------------------------------
  /** A new zero-filled buffer of `size` elements. */
  alloc(size: number, dtype: DType): Buf;
  /** Releases a buffer now; using it afterwards is undefined. (js/cpu: may be a no-op.) */
  free(buf: Buf): void;
  /** A new buffer holding a copy of `data`. */
  upload(data: Float32Array | Int32Array): Buf;
  /** A host copy of the first `size` elements of `buf`. */
  download(buf: Buf, size: number, dtype: DType): Float32Array | Int32Array;
  /** Blocks until all queued work is done (no-op for synchronous backends). */
  sync(): void;

  // ---- elementwise ---------------------------------------------------------------------
  /** out[0..n) = value. Works for both dtypes. */
  fill(out: Buf, n: number, value: number): void;
  /**
   * Strided block copy, used for slice, concat, split and their gradients. Views src as
   * [outer, srcAxis, inner] and dst as [outer, dstAxis, inner]; for o in [0, outer) copies
   * src[o, srcOffset + j, :] into dst[o, dstOffset + j, :] for j in [0, count).
   * If `accumulate`, adds instead of overwriting. float32 only when accumulating; else any dtype.
   */
  copyBlock(
    src: Buf,
    dst: Buf,
    outer: number,
    srcAxis: number,
    srcOffset: number,
    dstAxis: number,
    dstOffset: number,
    count: number,
    inner: number,
    accumulate: boolean,
  ): void;
  /**
   * out[i] = a[ia] op b[ib] over every multi-index i of `shape` (row-major), where
   * ia = sum_d i_d * aStrides[d] and ib likewise (stride 0 = broadcast along that axis).
   * shape, aStrides and bStrides have the same length (>= 1).
   */
  binary(
    op: BinaryOp,
    a: Buf,
    b: Buf,
    out: Buf,
    shape: readonly number[],
    aStrides: readonly number[],
    bStrides: readonly number[],
  ): void;
  /**
   * out[i] = f(x[i]) for i in [0, n). gelu is the tanh approximation (GPT-2 "gelu_new"):
   * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). log of a non-positive number gives -inf/NaN.
   */
  unary(op: UnaryOp, x: Buf, out: Buf, n: number): void;
  /**
   * gx[i] = gy[i] * f'(x[i]) for i in [0, n); `y` is the forward output f(x) (kernels may use
   * either: exp uses y, tanh uses y, sqrt uses y, the others use x).
   */
  unaryBackward(op: UnaryOp, x: Buf, y: Buf, gy: Buf, gx: Buf, n: number): void;
  /** out[i] = alpha * x[i] + beta. out may alias x. */
  affine(x: Buf, out: Buf, n: number, alpha: number, beta: number): void;
  /** y[i] += alpha * x[i]. */
  axpy(x: Buf, y: Buf, n: number, alpha: number): void;
  /** sum_i x[i]^2 over [0, n), accumulated in float64, returned to the host. */
  sumSquares(x: Buf, n: number): number;

  // ---- reductions and layout -----------------------------------------------------------
  /** Views x as [outer, axis, inner]: out[o, i] = sum_j x[o, j, i] (+ out[o, i] if accumulate). */
  sumAxis(x: Buf, out: Buf, outer: number, axis: number, inner: number, accumulate: boolean): void;
  /** Views out as [outer, axis, inner]: out[o, j, i] = x[o, i]. */
  broadcastAxis(x: Buf, out: Buf, outer: number, axis: number, inner: number): void;
  /**
   * out = x transposed: x has `shape`; out has shape[perm[0]], shape[perm[1]], ...;
   * out[i_0, ..., i_{r-1}] = x[j] where j_{perm[d]} = i_d. Any dtype.
   */
  permute(x: Buf, out: Buf, shape: readonly number[], perm: readonly number[], dtype: DType): void;

  // ---- linear algebra --------------------------------------------------------------------
  /** C = alpha * op(A) @ op(B) (+ C) (+ bias), batched; see MatmulParams. */
  matmul(a: Buf, b: Buf, c: Buf, p: MatmulParams): void;

  // ---- embeddings ------------------------------------------------------------------------
  /** out[r, :] = table[idx[r], :] for r in [0, rows); table is [vocab, d]. Throws on idx out of [0, vocab). */
  gather(table: Buf, idx: Buf, out: Buf, rows: number, d: number, vocab: number): void;
  /** gTable[idx[r], :] += g[r, :] for r in [0, rows) (sequential order for determinism). */
  scatterAdd(g: Buf, idx: Buf, gTable: Buf, rows: number, d: number): void;

  // ---- fused normalisation and attention pieces -----------------------------------------
  /**
   * LayerNorm over the last axis of x [rows, d]: out = (x - mean) * rstd * w + b, with
   * rstd = 1 / sqrt(var + eps) (biased variance). Saves mean[rows] and rstd[rows].
   */
  layerNorm(
    x: Buf,
    w: Buf,
    b: Buf,
    out: Buf,
    mean: Buf,
    rstd: Buf,
    rows: number,
    d: number,
    eps: number,
  ): void;
  /** Gradients of layerNorm: writes gx, gw and gb (gw, gb: sums over the rows; 0 for no rows). */
  layerNormBackward(
    x: Buf,
    w: Buf,
    mean: Buf,
    rstd: Buf,
    gy: Buf,
    gx: Buf,
    gw: Buf,
    gb: Buf,
    rows: number,
    d: number,
  ): void;
  /**
   * Row softmax of x [rows, n]. If causal: rows are grouped as [..., tq] (rows % tq is the query
   * index q) and column j is masked (probability exactly 0) when j > q + (n - tq). tq = 0 means no mask.
   */
  softmax(x: Buf, out: Buf, rows: number, n: number, causalTq: number): void;
  /** gx = y * (gy - sum_j(gy * y)) per row. */
  softmaxBackward(y: Buf, gy: Buf, gx: Buf, rows: number, n: number): void;
  /**
   * Softmax cross-entropy of logits [rows, v] against int32 targets[rows]. Writes probs [rows, v]
   * (the softmax, kept for the backward) and losses[rows] = -log softmax(logits)[target].
   * A negative target means "ignore": its loss is 0 (probs are still written).
   */
  crossEntropy(logits: Buf, targets: Buf, probs: Buf, losses: Buf, rows: number, v: number): void;
  /**
   * gLogits[r, :] = gLoss[r] * (probs[r, :] - onehot(targets[r])); rows with a negative target get 0.
   */
  crossEntropyBackward(
    probs: Buf,
    targets: Buf,
    gLoss: Buf,
    gLogits: Buf,
    rows: number,
    v: number,
  ): void;

  // ---- fused training-step kernels (fewer passes and launches; each equals its unfused chain) --
  /**
   * Mean softmax cross-entropy and its gradient in one pass over the logits (llm.c's fused
   * classifier): the forward and the backward of `crossEntropy` + mean. With count = the number
   * of rows whose target is >= 0 (1 if there are none) and s = float32(1 / count): writes
   * losses[r] = -log softmax(logits[r])[target[r]] (0 for an ignored row), loss[0] =
   * float32(sum_r losses[r] / count) (the float32 losses summed in float64: in row order on js
   * and cpu, in a fixed block order on cuda) and
   * gLogits[r, :] = s * (float32(softmax(logits[r])) - onehot(target[r])) (0 for an ignored row):
   * the gradient of loss[0]. A target >= v is an error (as crossEntropy).
   */
  crossEntropyMean(
    logits: Buf,
    targets: Buf,
    losses: Buf,
    loss: Buf,
    gLogits: Buf,
    rows: number,
    v: number,
  ): void;
  /**
   * out[r, j] = gelu(float32(x[r, j] + bias[j])) for x [rows, n], bias [n]: exactly `binary add`
   * followed by `unary gelu`, in one pass.
   */
  biasGelu(x: Buf, bias: Buf, out: Buf, rows: number, n: number): void;
  /**
   * The backward of biasGelu: with t = float32(x + bias), gx = gelu'(t) * gy (as unaryBackward)
   * and gBias[j] = sum_r gx[r, j] (float64, written, not accumulated; in row order on js, in
   * per-thread row blocks combined in thread order on cpu).
   */
  biasGeluBackward(x: Buf, bias: Buf, gy: Buf, gx: Buf, gBias: Buf, rows: number, n: number): void;
  /**
   * Residual add + LayerNorm: h = float32(x + r) (written), then layerNorm of h into out, mean
   * and rstd: exactly `binary add` followed by `layerNorm`, in one pass over the rows.
   */
  addLayerNorm(
    x: Buf,
    r: Buf,
    w: Buf,
    b: Buf,
    h: Buf,
    out: Buf,
    mean: Buf,
    rstd: Buf,
    rows: number,
    d: number,
    eps: number,
  ): void;
  /**
   * Causal self-attention of every head from the fused q/k/v projection, for t <= 64 (one head's
   * q, k, v and probabilities stay in L1). qkv is [batch, t, 3, heads, headSize]; for each batch
   * item b and head h, with q_i = float32(qkv[b, i, 0, h, :] * scale), k_j = qkv[b, j, 1, h, :],
   * v_j = qkv[b, j, 2, h, :]: s_ij = float32(q_i . k_j), probs[b, h, i, :] = the softmax of
   * s_i over j <= i (exactly 0 for j > i; as `softmax` with causalTq = t) and
   * out[b, i, h, :] = float32(sum_j probs[b, h, i, j] v_j) (out is [batch, t, heads, headSize]):
   * `permute`, `affine`, `matmul`, `softmax`, `matmul` and `permute` in one kernel, up to the
   * order of the matmul sums.
   */
  attention(
    qkv: Buf,
    out: Buf,
    probs: Buf,
    batch: number,
    t: number,
    heads: number,
    headSize: number,
    scale: number,
  ): void;
  /**
   * The backward of attention, given its qkv and probs and the gradient gy of out: writes (not
   * accumulates) gQkv [batch, t, 3, heads, headSize], with gP = float32(gy v^T),
   * gS = float32(probs * (gP - rowsum(probs * gP))) (as `softmaxBackward`),
   * gq = float32(scale * float32(gS k)), gk = float32(gS^T q) (q scaled as in attention) and
   * gv = float32(probs^T gy).
   */
  attentionBackward(
    qkv: Buf,
    probs: Buf,
    gy: Buf,
    gQkv: Buf,
    batch: number,
    t: number,
    heads: number,
    headSize: number,
    scale: number,
  ): void;
  /**
   * One Adam/AdamW step over many parameter tensors with global-norm clipping fused in, without
   * reading anything back to the host: norm = sqrt(sum_i sumSquares(g_i)) (float64, tensors in
   * order), gradScale = clipNorm > 0 && norm > clipNorm ? clipNorm / (norm + 1e-6) : 1, then
   * `adam` on every tensor i with that gradScale and weightDecay weightDecays[i]
   * (params.gradScale is ignored). normOut[0] = float32(norm) (0 when clipNorm <= 0: not computed).
   */
  adamMulti(t: AdamTensors, params: AdamParams, clipNorm: number, normOut: Buf): void;

  // ---- randomness --------------------------------------------------------------------------
  /**
   * Dropout mask: out[i] = (u(seed, i) >= p) ? 1 / (1 - p) : 0 where u is the counter-based
   * uniform in [0, 1) defined by `dropoutUniform` in backend.ts (identical on every backend).
   */
  dropoutMask(out: Buf, n: number, p: number, seed: number): void;

  // ---- convolution -------------------------------------------------------------------------
  /** x [n, c, h, w] -> cols [n, c*kh*kw, ho*wo] (row index (ci*kh + ky)*kw + kx; zero padding). */
  im2col(x: Buf, cols: Buf, g: Conv2dGeometry): void;
  /** The adjoint of im2col: x [n, c, h, w] += scatter of cols [n, c*kh*kw, ho*wo]. */
  col2im(cols: Buf, x: Buf, g: Conv2dGeometry): void;

  // ---- vector quantisation -------------------------------------------------------------------
  /**
   * For each row z[r, :] (z is [rows, d]) the index of the nearest codebook row (codebook [k, d])
   * by squared Euclidean distance, lowest index on ties; idx int32[rows], dist float32[rows]
   * holds the squared distance.
   */
  nearestCode(z: Buf, codebook: Buf, idx: Buf, dist: Buf, rows: number, k: number, d: number): void;

  // ---- optimiser -------------------------------------------------------------------------------
  /**
   * One fused Adam/AdamW update of n parameters in place. With g' = gradScale*g (+ wd*p if not
   * decoupled): m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2; mhat = m/(1-b1^step);
   * vhat = v/(1-b2^step); p -= lr * (mhat / (sqrt(vhat) + eps) + (decoupled ? wd * p : 0)).
   */
  adam(p: Buf, g: Buf, m: Buf, v: Buf, n: number, params: AdamParams): void;
}

/** The Backend methods that are kernels (every one but memory and sync): what each backend's
 * kernel table provides. */
export type KernelMethods = Omit<
  Backend,
  'name' | 'alloc' | 'free' | 'upload' | 'download' | 'sync'
>;

/**
 * The counter-based uniform used by dropout on every backend: a 32-bit integer hash of
 * (seed, i) mapped to [0, 1) with 24 bits. seed and i are treated as uint32.
 * Every backend implements exactly this function (all arithmetic mod 2^32).
 */
export function dropoutUniform(seed: number, i: number): number {
  let h = (Math.imul(i >>> 0, 0x9e3779b1) ^ (seed >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return (h >>> 8) / 16777216;
}

/** Output size of a convolution axis. */
export function convOutSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

/**
 * The sampler's per-row arithmetic in the native addon (native/src/sampling.cc), bit for bit the
 * TypeScript sampler's: src/sampling/choose.ts calls it where the addon loads.
 */
export interface HostSampler {
  /** Each row's max and sum of exp(x - max) over its V logits, in index order. */
  logSumExpParts(
    x: Float32Array,
    rows: number,
    V: number,
    max: Float64Array,
    sum: Float64Array,
  ): void;
  /**
   * Each row's token: guided (with uncond) by lc + (g - 1) (lc - lu) in float32, then chosen among
   * mask maskOf[r] (of `masks`, V bytes each; -1: skip, out -2) at temperature[r] with uniform[r];
   * out -1 where the TypeScript sampler must choose (it throws).
   */
  chooseTokens(
    logits: Float32Array,
    uncond: Float32Array | null,
    lseC: Float64Array | null,
    lseU: Float64Array | null,
    guidance: number,
    rows: number,
    V: number,
    masks: Uint8Array,
    maskOf: Int32Array,
    temperature: Float64Array,
    uniform: Float64Array,
    out: Int32Array,
  ): void;
  /**
   * out[i] = exp(x[i]) as the addon computes it, by its vector path where the processor has one
   * unless `scalar` (tests: the same bits as Math.exp).
   */
  jsExpInto(x: Float64Array, out: Float64Array, scalar: boolean): void;
}

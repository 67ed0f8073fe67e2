// The model-level ops: embedding, LayerNorm (alone and fused with the residual add), the fused
// bias + GeLU, the (causal) softmax, cross-entropy, dropout and the nearest-codebook search.

import { Tensor, empty, isUnitSeed, checkSameShape } from '../tensor';
import { fmt, record, requireFloat, sameBackend, uninit } from './common';
import { binaryRaw, mul } from './arithmetic';

// ---- embedding -------------------------------------------------------------------------------

/** Rows of `table` [vocab, d] picked by int32 `indices` [...]: output [..., d]. */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  requireFloat('embedding', table);
  if (indices.dtype !== 'int32')
    throw new Error(`embedding: indices must be int32, got ${indices.describe()}`);
  if (table.rank !== 2)
    throw new Error(`embedding: table must be [vocab, d], got ${fmt(table.shape)}`);
  const [vocab, d] = table.shape;
  const rows = indices.size;
  const out = uninit([...indices.shape, d], 'float32', table.backend);
  table.backend.gather(table.buf, indices.buf, out.buf, rows, d, vocab);
  return record(out, 'embedding', [table], (g) => {
    const gt = empty(table.shape, 'float32', table.backend);
    table.backend.scatterAdd(g.buf, indices.buf, gt.buf, rows, d);
    return [gt];
  });
}

// ---- normalisation, softmax, losses -----------------------------------------------------------

/** LayerNorm over the last axis with weight and bias [d]; eps 1e-5 as GPT-2. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const d = layerNormSize('layerNorm', x, weight, bias);
  const rows = x.size / d;
  const be = x.backend;
  const out = uninit(x.shape, 'float32', be);
  const meanT = uninit([rows], 'float32', be);
  const rstdT = uninit([rows], 'float32', be);
  be.layerNorm(x.buf, weight.buf, bias.buf, out.buf, meanT.buf, rstdT.buf, rows, d, eps);
  return recordLayerNorm(out, x, weight, bias, meanT, rstdT);
}

/** Checks LayerNorm's operands: x [..., d] with weight and bias of size d; returns d. */
function layerNormSize(op: string, x: Tensor, weight: Tensor, bias: Tensor): number {
  requireFloat(op, x, weight, bias);
  const d = x.shape[x.rank - 1];
  if (weight.size !== d || bias.size !== d) {
    throw new Error(
      `${op}: input ${fmt(x.shape)} needs weight and bias of size ${d}, got ${fmt(weight.shape)} and ${fmt(bias.shape)}`,
    );
  }
  return d;
}

/** The autodiff node of out = layerNorm(x) with its saved statistics. */
function recordLayerNorm(
  out: Tensor,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  meanT: Tensor,
  rstdT: Tensor,
): Tensor {
  const be = x.backend;
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  return record(out, 'layerNorm', [x, weight, bias], (g) => {
    const gx = uninit(x.shape, 'float32', be);
    const gw = uninit(weight.shape, 'float32', be);
    const gb = uninit(bias.shape, 'float32', be);
    be.layerNormBackward(
      x.buf,
      weight.buf,
      meanT.buf,
      rstdT.buf,
      g.buf,
      gx.buf,
      gw.buf,
      gb.buf,
      rows,
      d,
    );
    return [gx, gw, gb];
  });
}

/**
 * The residual add and the LayerNorm after it, in one kernel: sum = x + r and
 * normed = layerNorm(sum), each with the gradient rule of its unfused op (so the backward is
 * unchanged). x and r have the same shape [..., d].
 */
export function addLayerNorm(
  x: Tensor,
  r: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps = 1e-5,
): { sum: Tensor; normed: Tensor } {
  const d = layerNormSize('addLayerNorm', x, weight, bias);
  requireFloat('addLayerNorm', r);
  sameBackend('addLayerNorm', x, r, weight, bias);
  checkSameShape('addLayerNorm', x, r);
  const rows = x.size / d;
  const be = x.backend;
  const sumT = uninit(x.shape, 'float32', be);
  const out = uninit(x.shape, 'float32', be);
  const meanT = uninit([rows], 'float32', be);
  const rstdT = uninit([rows], 'float32', be);
  be.addLayerNorm(
    x.buf,
    r.buf,
    weight.buf,
    bias.buf,
    sumT.buf,
    out.buf,
    meanT.buf,
    rstdT.buf,
    rows,
    d,
    eps,
  );
  const residual = record(sumT, 'add', [x, r], (g) => [g, g]);
  return { sum: residual, normed: recordLayerNorm(out, residual, weight, bias, meanT, rstdT) };
}

/** gelu(x + bias) for x [..., n] and bias [n] in one kernel (the MLP's first Linear + GeLU). */
export function biasGelu(x: Tensor, bias: Tensor): Tensor {
  requireFloat('biasGelu', x, bias);
  sameBackend('biasGelu', x, bias);
  const n = x.shape[x.rank - 1];
  if (bias.rank !== 1 || bias.size !== n) {
    throw new Error(`biasGelu: input ${fmt(x.shape)} needs a bias [${n}], got ${fmt(bias.shape)}`);
  }
  const rows = x.size / n;
  const be = x.backend;
  const out = uninit(x.shape, 'float32', be);
  be.biasGelu(x.buf, bias.buf, out.buf, rows, n);
  return record(out, 'biasGelu', [x, bias], (g) => {
    const gx = uninit(x.shape, 'float32', be);
    const gb = uninit(bias.shape, 'float32', be);
    be.biasGeluBackward(x.buf, bias.buf, g.buf, gx.buf, gb.buf, rows, n);
    return [gx, gb];
  });
}

/** The longest sequence `causalAttention` takes (one head's data stays in a core's L1). */
export const ATTENTION_MAX_T = 64;

/**
 * Causal self-attention of `heads` heads from the fused projection qkv [B, T, 3 * C] (columns:
 * q, k, v, each heads x headSize): softmax(q k^T * scale) v per head, merged back to [B, T, C],
 * in one kernel each way (backend.ts: attention). T <= ATTENTION_MAX_T; scale defaults to
 * 1 / sqrt(headSize).
 */
export function causalAttention(qkv: Tensor, heads: number, scale?: number): Tensor {
  requireFloat('causalAttention', qkv);
  const [B, T, C3] = qkv.shape;
  if (qkv.rank !== 3 || C3 % (3 * heads) !== 0 || T > ATTENTION_MAX_T) {
    throw new Error(
      `causalAttention: needs [B, T <= ${ATTENTION_MAX_T}, 3 * heads * headSize] with ${heads} heads, got ${fmt(qkv.shape)}`,
    );
  }
  const hs = C3 / 3 / heads;
  const s = scale ?? 1 / Math.sqrt(hs);
  const be = qkv.backend;
  const out = uninit([B, T, heads * hs], 'float32', be);
  const probs = uninit([B, heads, T, T], 'float32', be);
  be.attention(qkv.buf, out.buf, probs.buf, B, T, heads, hs, s);
  record(out, 'causalAttention', [qkv], (g) => {
    const gQkv = uninit(qkv.shape, 'float32', be);
    be.attentionBackward(qkv.buf, probs.buf, g.buf, gQkv.buf, B, T, heads, hs, s);
    return [gQkv];
  });
  if (!out.requiresGrad) probs.dispose(); // no backward will read it
  return out;
}

/** Softmax over the last axis; `causal` masks key j > query q (+ offset for a KV cache). */
export function softmax(x: Tensor, opts: { causal?: boolean } = {}): Tensor {
  requireFloat('softmax', x);
  const n = x.shape[x.rank - 1];
  const rows = x.size / n;
  const tq = opts.causal ? x.shape[x.rank - 2] : 0;
  if (opts.causal && (x.rank < 2 || tq > n)) {
    throw new Error(`softmax: causal mask needs [..., tq, tk] with tq <= tk, got ${fmt(x.shape)}`);
  }
  const be = x.backend;
  const out = uninit(x.shape, 'float32', be);
  be.softmax(x.buf, out.buf, rows, n, tq);
  return record(out, 'softmax', [x], (g) => {
    const gx = uninit(x.shape, 'float32', be);
    be.softmaxBackward(out.buf, g.buf, gx.buf, rows, n);
    return [gx];
  });
}

/**
 * Softmax cross-entropy of logits [..., v] against int32 targets [...] (negative = ignore).
 * 'none' gives the per-row loss [...]; 'mean' averages over the rows that are not ignored.
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  reduction: 'mean' | 'none' = 'mean',
): Tensor {
  requireFloat('crossEntropy', logits);
  if (targets.dtype !== 'int32')
    throw new Error(`crossEntropy: targets must be int32, got ${targets.describe()}`);
  const v = logits.shape[logits.rank - 1];
  const rows = logits.size / v;
  if (targets.size !== rows || logits.shape.slice(0, -1).some((s, i) => s !== targets.shape[i])) {
    throw new Error(
      `crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)} do not match`,
    );
  }
  const be = logits.backend;
  if (reduction === 'mean') {
    // One fused kernel: the mean loss and its gradient, counted on the backend (no host read).
    const losses = uninit(targets.shape, 'float32', be);
    const loss = uninit([], 'float32', be);
    const gLogits = uninit(logits.shape, 'float32', be);
    be.crossEntropyMean(logits.buf, targets.buf, losses.buf, loss.buf, gLogits.buf, rows, v);
    losses.dispose();
    return record(loss, 'crossEntropy', [logits], (g) => [
      // [..., v]: the gradient of the mean, times g unless g is backward()'s seed 1.
      isUnitSeed(g)
        ? gLogits.shareStorage(gLogits.shape)
        : binaryRaw('mul', gLogits, g, gLogits.shape),
    ]);
  }
  const probs = uninit(logits.shape, 'float32', be);
  const losses = uninit(targets.shape, 'float32', be);
  be.crossEntropy(logits.buf, targets.buf, probs.buf, losses.buf, rows, v);
  const backward = (gLoss: Tensor): Tensor[] => {
    const gl = uninit(logits.shape, 'float32', be);
    be.crossEntropyBackward(probs.buf, targets.buf, gLoss.buf, gl.buf, rows, v);
    return [gl];
  };
  return record(losses, 'crossEntropy', [logits], backward);
}

// ---- dropout ---------------------------------------------------------------------------------

/** Inverted dropout with a counter-based mask from `seed` (identical on every backend). */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (p <= 0) return x;
  if (p >= 1) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  const mask = uninit(x.shape, 'float32', x.backend);
  x.backend.dropoutMask(mask.buf, x.size, p, seed >>> 0);
  return mul(x, mask);
}

// ---- vector quantisation ---------------------------------------------------------------------

/** Nearest codebook row for each row of z [rows, d]: int32 indices [rows] and squared distances. */
export function nearestCode(z: Tensor, codebook: Tensor): { indices: Tensor; distances: Tensor } {
  requireFloat('nearestCode', z, codebook);
  const d = z.shape[z.rank - 1];
  if (codebook.rank !== 2 || codebook.shape[1] !== d) {
    throw new Error(
      `nearestCode: z ${fmt(z.shape)} and codebook ${fmt(codebook.shape)} differ in the last dimension`,
    );
  }
  const rows = z.size / d;
  const indices = uninit(z.shape.slice(0, -1), 'int32', z.backend);
  const distances = uninit(z.shape.slice(0, -1), 'float32', z.backend);
  z.backend.nearestCode(
    z.buf,
    codebook.buf,
    indices.buf,
    distances.buf,
    rows,
    codebook.shape[0],
    d,
  );
  return { indices, distances };
}

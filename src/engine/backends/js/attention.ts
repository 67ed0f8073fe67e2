// The reference backend's fused causal self-attention (backend.ts: attention, attentionBackward):
// one head at a time, rounded to float32 where the composed ops (permute, affine, matmul,
// softmax, matmul, permute) store their results, every sum in float64.

import type { Backend } from '../../backend';
import { f32 } from './checks';

type AttentionKernel = 'attention' | 'attentionBackward';

/** The largest sequence length the fused attention kernels take. */
const MAX_T = 64;

function checkT(op: string, t: number): void {
  if (t > MAX_T) throw new Error(`js backend: ${op} takes t <= ${MAX_T}, got ${t}`);
}

/** One head's scaled queries, keys and values as [t * hs] float32 arrays. */
function headQkv(
  qkv: Float32Array,
  b: number,
  h: number,
  t: number,
  heads: number,
  hs: number,
  scale: number,
): [Float32Array, Float32Array, Float32Array] {
  const c = heads * hs;
  const q = new Float32Array(t * hs);
  const k = new Float32Array(t * hs);
  const v = new Float32Array(t * hs);
  for (let i = 0; i < t; i++) {
    const row = (b * t + i) * 3 * c + h * hs;
    for (let d = 0; d < hs; d++) {
      q[i * hs + d] = scale * qkv[row + d];
      k[i * hs + d] = qkv[row + c + d];
      v[i * hs + d] = qkv[row + 2 * c + d];
    }
  }
  return [q, k, v];
}

/** out[i, :] = sum_j a[i, j] x[j, :] for a [t, t], x [t, hs] (float64 sums). */
function rowsTimes(
  a: Float32Array,
  x: Float32Array,
  t: number,
  hs: number,
  i: number,
  d: number,
): number {
  let s = 0;
  for (let j = 0; j < t; j++) s += a[i * t + j] * x[j * hs + d];
  return s;
}

export const attentionKernels: Pick<Backend, AttentionKernel> = {
  attention(qkv, out, probs, batch, t, heads, headSize, scale) {
    checkT('attention', t);
    const hs = headSize;
    const qv = f32(qkv, 'attention qkv', batch * t * 3 * heads * hs);
    const ov = f32(out, 'attention out', batch * t * heads * hs);
    const pv = f32(probs, 'attention probs', batch * heads * t * t);
    const s = new Float32Array(t);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        const [q, k, v] = headQkv(qv, b, h, t, heads, hs, scale);
        const p = pv.subarray((b * heads + h) * t * t, (b * heads + h + 1) * t * t);
        for (let i = 0; i < t; i++) {
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let d = 0; d < hs; d++) dot += q[i * hs + d] * k[j * hs + d];
            s[j] = dot;
          }
          let max = -Infinity;
          for (let j = 0; j <= i; j++) if (s[j] > max) max = s[j];
          let sum = 0;
          for (let j = 0; j <= i; j++) sum += Math.exp(s[j] - max);
          const inv = 1 / sum;
          for (let j = 0; j < t; j++) p[i * t + j] = j <= i ? Math.exp(s[j] - max) * inv : 0;
          const o = (b * t + i) * heads * hs + h * hs;
          for (let d = 0; d < hs; d++) ov[o + d] = rowsTimes(p, v, t, hs, i, d);
        }
      }
    }
  },

  attentionBackward(qkv, probs, gy, gQkv, batch, t, heads, headSize, scale) {
    checkT('attentionBackward', t);
    const hs = headSize;
    const c = heads * hs;
    const qv = f32(qkv, 'attentionBackward qkv', batch * t * 3 * c);
    const pv = f32(probs, 'attentionBackward probs', batch * heads * t * t);
    const gyv = f32(gy, 'attentionBackward gy', batch * t * c);
    const gv = f32(gQkv, 'attentionBackward gQkv', batch * t * 3 * c);
    const gS = new Float32Array(t * t);
    const gP = new Float32Array(t);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        const [q, k, v] = headQkv(qv, b, h, t, heads, hs, scale);
        const p = pv.subarray((b * heads + h) * t * t, (b * heads + h + 1) * t * t);
        const g = new Float32Array(t * hs); // this head's gy
        for (let i = 0; i < t; i++) {
          for (let d = 0; d < hs; d++) g[i * hs + d] = gyv[(b * t + i) * c + h * hs + d];
        }
        for (let i = 0; i < t; i++) {
          let dot = 0;
          for (let j = 0; j < t; j++) {
            let s = 0;
            for (let d = 0; d < hs; d++) s += g[i * hs + d] * v[j * hs + d];
            gP[j] = s;
            dot += gP[j] * p[i * t + j];
          }
          for (let j = 0; j < t; j++) gS[i * t + j] = p[i * t + j] * (gP[j] - dot);
        }
        for (let i = 0; i < t; i++) {
          const row = (b * t + i) * 3 * c + h * hs;
          for (let d = 0; d < hs; d++) {
            gv[row + d] = scale * Math.fround(rowsTimes(gS, k, t, hs, i, d));
            let sk = 0;
            let sv = 0;
            for (let r = 0; r < t; r++) {
              sk += gS[r * t + i] * q[r * hs + d];
              sv += p[r * t + i] * g[r * hs + d];
            }
            gv[row + c + d] = sk;
            gv[row + 2 * c + d] = sv;
          }
        }
      }
    }
  },
};

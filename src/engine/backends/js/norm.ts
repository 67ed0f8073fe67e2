// The reference backend's normalisation and loss kernels: layerNorm (two-pass float64 variance)
// and its backward, the residual add + layerNorm, the (causal) row softmax and its backward, and
// softmax cross-entropy with its backward and its fused mean + gradient.

import type { Backend } from '../../backend';
import { f32, i32 } from './checks';

type NormKernel =
  | 'layerNorm'
  | 'layerNormBackward'
  | 'addLayerNorm'
  | 'softmax'
  | 'softmaxBackward'
  | 'crossEntropy'
  | 'crossEntropyBackward'
  | 'crossEntropyMean';

export const normKernels: Pick<Backend, NormKernel> = {
  layerNorm(x, w, b, out, mean, rstd, rows, d, eps) {
    const xv = f32(x, 'layerNorm x', rows * d);
    const wv = f32(w, 'layerNorm w', d);
    const bv = f32(b, 'layerNorm b', d);
    const ov = f32(out, 'layerNorm out', rows * d);
    const meanv = f32(mean, 'layerNorm mean', rows);
    const rstdv = f32(rstd, 'layerNorm rstd', rows);
    for (let r = 0; r < rows; r++) {
      const base = r * d;
      let sum = 0;
      for (let j = 0; j < d; j++) sum += xv[base + j];
      const mu = sum / d;
      let sq = 0; // two-pass variance, float64
      for (let j = 0; j < d; j++) {
        const diff = xv[base + j] - mu;
        sq += diff * diff;
      }
      const rs = 1 / Math.sqrt(sq / d + eps);
      for (let j = 0; j < d; j++) ov[base + j] = (xv[base + j] - mu) * rs * wv[j] + bv[j];
      meanv[r] = mu;
      rstdv[r] = rs;
    }
  },

  layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, d) {
    const xv = f32(x, 'layerNormBackward x', rows * d);
    const wv = f32(w, 'layerNormBackward w', d);
    const meanv = f32(mean, 'layerNormBackward mean', rows);
    const rstdv = f32(rstd, 'layerNormBackward rstd', rows);
    const gyv = f32(gy, 'layerNormBackward gy', rows * d);
    const gxv = f32(gx, 'layerNormBackward gx', rows * d);
    const gwv = f32(gw, 'layerNormBackward gw', d);
    const gbv = f32(gb, 'layerNormBackward gb', d);
    // gw/gb sums over rows in float64, added to the float32 buffers once at the end.
    const gwAcc = new Float64Array(d);
    const gbAcc = new Float64Array(d);
    for (let r = 0; r < rows; r++) {
      const base = r * d;
      const mu = meanv[r];
      const rs = rstdv[r];
      // xhat = (x - mean) * rstd; dxhat = gy * w;
      // gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
      let sumDxhat = 0;
      let sumDxhatXhat = 0;
      for (let j = 0; j < d; j++) {
        const xhat = (xv[base + j] - mu) * rs;
        const g = gyv[base + j];
        const dxhat = g * wv[j];
        sumDxhat += dxhat;
        sumDxhatXhat += dxhat * xhat;
        gwAcc[j] += g * xhat;
        gbAcc[j] += g;
      }
      const meanDxhat = sumDxhat / d;
      const meanDxhatXhat = sumDxhatXhat / d;
      for (let j = 0; j < d; j++) {
        const xhat = (xv[base + j] - mu) * rs;
        const dxhat = gyv[base + j] * wv[j];
        gxv[base + j] = rs * (dxhat - meanDxhat - xhat * meanDxhatXhat);
      }
    }
    for (let j = 0; j < d; j++) {
      gwv[j] = gwAcc[j];
      gbv[j] = gbAcc[j];
    }
  },

  addLayerNorm(x, r, w, b, h, out, mean, rstd, rows, d, eps) {
    const xv = f32(x, 'addLayerNorm x', rows * d);
    const rv = f32(r, 'addLayerNorm r', rows * d);
    const hv = f32(h, 'addLayerNorm h', rows * d);
    for (let i = 0; i < rows * d; i++) hv[i] = xv[i] + rv[i];
    normKernels.layerNorm(h, w, b, out, mean, rstd, rows, d, eps);
  },

  softmax(x, out, rows, n, causalTq) {
    const xv = f32(x, 'softmax x', rows * n);
    const ov = f32(out, 'softmax out', rows * n);
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      // Columns [0, visible) are kept; the rest are masked to exactly 0.
      const visible =
        causalTq > 0 ? Math.max(0, Math.min(n, (r % causalTq) + (n - causalTq) + 1)) : n;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) if (xv[base + j] > max) max = xv[base + j];
      let sum = 0;
      for (let j = 0; j < visible; j++) sum += Math.exp(xv[base + j] - max);
      const inv = visible > 0 ? 1 / sum : 0;
      for (let j = 0; j < visible; j++) ov[base + j] = Math.exp(xv[base + j] - max) * inv;
      for (let j = visible; j < n; j++) ov[base + j] = 0;
    }
  },

  softmaxBackward(y, gy, gx, rows, n) {
    const yv = f32(y, 'softmaxBackward y', rows * n);
    const gyv = f32(gy, 'softmaxBackward gy', rows * n);
    const gxv = f32(gx, 'softmaxBackward gx', rows * n);
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      let dot = 0;
      for (let j = 0; j < n; j++) dot += gyv[base + j] * yv[base + j];
      for (let j = 0; j < n; j++) gxv[base + j] = yv[base + j] * (gyv[base + j] - dot);
    }
  },

  crossEntropy(logits, targets, probs, losses, rows, v) {
    const lv = f32(logits, 'crossEntropy logits', rows * v);
    const tv = i32(targets, 'crossEntropy targets', rows);
    const pv = f32(probs, 'crossEntropy probs', rows * v);
    const lossv = f32(losses, 'crossEntropy losses', rows);
    for (let r = 0; r < rows; r++) {
      const base = r * v;
      const target = tv[r];
      if (target >= v) {
        throw new Error(
          `crossEntropy: target ${target} at row ${r} is out of range for ${v} classes ` +
            `(accepted: 0..${v - 1}, or negative to ignore)`,
        );
      }
      let max = -Infinity;
      for (let j = 0; j < v; j++) if (lv[base + j] > max) max = lv[base + j];
      let sum = 0;
      for (let j = 0; j < v; j++) sum += Math.exp(lv[base + j] - max);
      const inv = 1 / sum;
      for (let j = 0; j < v; j++) pv[base + j] = Math.exp(lv[base + j] - max) * inv;
      // -log softmax[target] = log(sum exp(l - max)) + max - l[target]
      lossv[r] = target < 0 ? 0 : Math.log(sum) + max - lv[base + target];
    }
  },

  crossEntropyBackward(probs, targets, gLoss, gLogits, rows, v) {
    const pv = f32(probs, 'crossEntropyBackward probs', rows * v);
    const tv = i32(targets, 'crossEntropyBackward targets', rows);
    const glv = f32(gLoss, 'crossEntropyBackward gLoss', rows);
    const gv = f32(gLogits, 'crossEntropyBackward gLogits', rows * v);
    for (let r = 0; r < rows; r++) {
      const base = r * v;
      const target = tv[r];
      if (target < 0) {
        gv.fill(0, base, base + v);
        continue;
      }
      if (target >= v) {
        throw new Error(
          `crossEntropyBackward: target ${target} at row ${r} is out of range for ${v} classes`,
        );
      }
      const g = glv[r];
      for (let j = 0; j < v; j++) gv[base + j] = g * (pv[base + j] - (j === target ? 1 : 0));
    }
  },

  crossEntropyMean(logits, targets, losses, loss, gLogits, rows, v) {
    const tv = i32(targets, 'crossEntropyMean targets', rows);
    const gv = f32(gLogits, 'crossEntropyMean gLogits', rows * v);
    const lossv = f32(losses, 'crossEntropyMean losses', rows);
    const meanv = f32(loss, 'crossEntropyMean loss', 1);
    // The forward writes the softmax into gLogits, then it becomes the gradient in place.
    normKernels.crossEntropy(logits, targets, gLogits, losses, rows, v);
    let count = 0;
    for (let r = 0; r < rows; r++) if (tv[r] >= 0) count++;
    count = Math.max(count, 1);
    const s = Math.fround(1 / count);
    let total = 0;
    for (let r = 0; r < rows; r++) {
      total += lossv[r];
      const base = r * v;
      const target = tv[r];
      if (target < 0) {
        gv.fill(0, base, base + v);
        continue;
      }
      for (let j = 0; j < v; j++) gv[base + j] = s * (gv[base + j] - (j === target ? 1 : 0));
    }
    meanv[0] = total / count;
  },
};

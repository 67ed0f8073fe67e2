// The reference backend's optimiser kernels: one fused Adam/AdamW update in float64, and the
// multi-tensor step with its global-norm clip (the per-tensor update, written out).

import type { Backend } from '../../backend';
import { elementwiseKernels } from './elementwise';
import { f32 } from './checks';

export const optimiserKernels: Pick<Backend, 'adam' | 'adamMulti'> = {
  adam(p, g, m, v, n, params) {
    const pv = f32(p, 'adam p', n);
    const gv = f32(g, 'adam g', n);
    const mv = f32(m, 'adam m', n);
    const vv = f32(v, 'adam v', n);
    const { lr, beta1, beta2, eps, weightDecay, decoupled, step, gradScale } = params;
    if (!(step >= 1)) throw new Error(`adam: step is 1-based, got ${step}`);
    const bias1 = 1 - Math.pow(beta1, step);
    const bias2 = 1 - Math.pow(beta2, step);
    for (let i = 0; i < n; i++) {
      const param = pv[i];
      const grad = gradScale * gv[i] + (decoupled ? 0 : weightDecay * param);
      const mNew = beta1 * mv[i] + (1 - beta1) * grad;
      const vNew = beta2 * vv[i] + (1 - beta2) * grad * grad;
      mv[i] = mNew;
      vv[i] = vNew;
      const mHat = mNew / bias1;
      const vHat = vNew / bias2;
      pv[i] = param - lr * (mHat / (Math.sqrt(vHat) + eps) + (decoupled ? weightDecay * param : 0));
    }
  },

  adamMulti(t, params, clipNorm, normOut) {
    const count = t.params.length;
    for (const list of [t.grads, t.m, t.v, t.sizes, t.weightDecays]) {
      if (list.length !== count)
        throw new Error(`adamMulti: ${count} parameters but a list of ${list.length}`);
    }
    const nv = f32(normOut, 'adamMulti normOut', 1);
    let gradScale = 1;
    if (clipNorm > 0) {
      let sum = 0;
      for (let i = 0; i < count; i++) sum += elementwiseKernels.sumSquares(t.grads[i], t.sizes[i]);
      const norm = Math.sqrt(sum);
      nv[0] = norm;
      if (norm > clipNorm) gradScale = clipNorm / (norm + 1e-6);
    } else {
      nv[0] = 0;
    }
    for (let i = 0; i < count; i++) {
      optimiserKernels.adam(t.params[i], t.grads[i], t.m[i], t.v[i], t.sizes[i], {
        ...params,
        weightDecay: t.weightDecays[i],
        gradScale,
      });
    }
  },
};

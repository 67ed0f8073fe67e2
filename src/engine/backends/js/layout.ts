// The reference backend's layout and linear-algebra kernels: axis sums and broadcasts, permute,
// matmul (i-k-j with a float64 row accumulator), embedding gather/scatter, im2col/col2im and the
// nearest-codebook search. Every sum accumulates in float64 and is rounded to float32 once.

import type { Backend } from '../../backend';
import { anyArray, checkDtype, f32, i32, product } from './checks';

type LayoutKernel =
  | 'sumAxis'
  | 'broadcastAxis'
  | 'permute'
  | 'matmul'
  | 'gather'
  | 'scatterAdd'
  | 'im2col'
  | 'col2im'
  | 'nearestCode';

export const layoutKernels: Pick<Backend, LayoutKernel> = {
  sumAxis(x, out, outer, axis, inner, accumulate) {
    const xv = f32(x, 'sumAxis x', outer * axis * inner);
    const ov = f32(out, 'sumAxis out', outer * inner);
    const acc = new Float64Array(inner); // one float64 sum per (o, i)
    for (let o = 0; o < outer; o++) {
      acc.fill(0);
      for (let j = 0; j < axis; j++) {
        const base = (o * axis + j) * inner;
        for (let i = 0; i < inner; i++) acc[i] += xv[base + i];
      }
      const outBase = o * inner;
      for (let i = 0; i < inner; i++) {
        ov[outBase + i] = accumulate ? ov[outBase + i] + acc[i] : acc[i];
      }
    }
  },

  broadcastAxis(x, out, outer, axis, inner) {
    const xv = f32(x, 'broadcastAxis x', outer * inner);
    const ov = f32(out, 'broadcastAxis out', outer * axis * inner);
    for (let o = 0; o < outer; o++) {
      const row = xv.subarray(o * inner, (o + 1) * inner);
      for (let j = 0; j < axis; j++) ov.set(row, (o * axis + j) * inner);
    }
  },

  permute(x, out, shape, perm, dtype) {
    const rank = shape.length;
    const seen = new Array<boolean>(rank).fill(false);
    for (const p of perm) {
      if (!Number.isInteger(p) || p < 0 || p >= rank || seen[p]) {
        throw new Error(
          `js backend: permute perm [${perm}] is not a permutation of 0..${rank - 1}`,
        );
      }
      seen[p] = true;
    }
    if (perm.length !== rank) {
      throw new Error(`js backend: permute perm [${perm}] does not match shape [${shape}]`);
    }
    const size = product(shape);
    const xv = anyArray(x, 'permute x', size);
    const ov = anyArray(out, 'permute out', size);
    checkDtype(xv, dtype, 'permute x');
    checkDtype(ov, dtype, 'permute out');
    if (size === 0) return;
    if (rank === 0) {
      ov[0] = xv[0];
      return;
    }
    // Row-major strides of x, then for each output axis d the x-stride it walks: xStrides[perm[d]].
    const xStrides = new Array<number>(rank);
    let stride = 1;
    for (let d = rank - 1; d >= 0; d--) {
      xStrides[d] = stride;
      stride *= shape[d];
    }
    const outShape = perm.map((p) => shape[p]);
    const walk = perm.map((p) => xStrides[p]);
    const last = rank - 1;
    const innerLen = outShape[last];
    const innerStep = walk[last];
    const index = new Array<number>(rank).fill(0);
    let src = 0;
    for (let o = 0; o < size; o += innerLen) {
      for (let j = 0; j < innerLen; j++) ov[o + j] = xv[src + j * innerStep];
      for (let d = last - 1; d >= 0; d--) {
        index[d]++;
        src += walk[d];
        if (index[d] < outShape[d]) break;
        src -= outShape[d] * walk[d];
        index[d] = 0;
      }
    }
  },

  matmul(a, b, c, p) {
    const { batch, m, n, k, transA, transB, strideA, strideB, strideC, alpha, accumulate } = p;
    if (batch === 0 || m === 0 || n === 0) return;
    const av = f32(a, 'matmul A', (batch - 1) * strideA + m * k);
    const bv = f32(b, 'matmul B', (batch - 1) * strideB + k * n);
    const cv = f32(c, 'matmul C', (batch - 1) * strideC + m * n);
    const bias = p.bias === undefined ? null : f32(p.bias, 'matmul bias', n);
    const aRow = new Float64Array(k); // row i of op(A)
    const acc = new Float64Array(n); // row i of op(A) @ op(B), float64
    for (let bi = 0; bi < batch; bi++) {
      const aBase = bi * strideA;
      const bBase = bi * strideB;
      const cBase = bi * strideC;
      for (let i = 0; i < m; i++) {
        // op(A)[i, kk] = transA ? A[kk, i] (A is [k, m]) : A[i, kk] (A is [m, k])
        if (transA) {
          for (let kk = 0; kk < k; kk++) aRow[kk] = av[aBase + kk * m + i];
        } else {
          for (let kk = 0; kk < k; kk++) aRow[kk] = av[aBase + i * k + kk];
        }
        if (transB) {
          // op(B)[kk, j] = B[j, kk] (B is [n, k]): a contiguous dot product per j.
          for (let j = 0; j < n; j++) {
            const bRow = bBase + j * k;
            let sum = 0;
            for (let kk = 0; kk < k; kk++) sum += aRow[kk] * bv[bRow + kk];
            acc[j] = sum;
          }
        } else {
          // op(B)[kk, j] = B[kk, j] (B is [k, n]): i-k-j order, same summation order over kk.
          acc.fill(0);
          for (let kk = 0; kk < k; kk++) {
            const aik = aRow[kk];
            const bRow = bBase + kk * n;
            for (let j = 0; j < n; j++) acc[j] += aik * bv[bRow + j];
          }
        }
        const cRow = cBase + i * n;
        if (accumulate) {
          for (let j = 0; j < n; j++) cv[cRow + j] = alpha * acc[j] + cv[cRow + j];
        } else {
          for (let j = 0; j < n; j++) cv[cRow + j] = alpha * acc[j];
        }
        // The bias on the stored (float32) product: the bits of the product, then an add.
        if (bias) for (let j = 0; j < n; j++) cv[cRow + j] += bias[j];
      }
    }
  },

  gather(table, idx, out, rows, d, vocab) {
    const tv = f32(table, 'gather table', vocab * d);
    const iv = i32(idx, 'gather idx', rows);
    const ov = f32(out, 'gather out', rows * d);
    for (let r = 0; r < rows; r++) {
      const token = iv[r];
      if (token < 0 || token >= vocab) {
        throw new Error(
          `gather: index ${token} at row ${r} is out of range for a vocabulary of size ${vocab} ` +
            `(accepted: 0..${vocab - 1})`,
        );
      }
      ov.set(tv.subarray(token * d, (token + 1) * d), r * d);
    }
  },

  scatterAdd(g, idx, gTable, rows, d) {
    const gv = f32(g, 'scatterAdd g', rows * d);
    const iv = i32(idx, 'scatterAdd idx', rows);
    const tv = f32(gTable, 'scatterAdd gTable', 0);
    const vocab = d > 0 ? Math.floor(tv.length / d) : 0;
    for (let r = 0; r < rows; r++) {
      const token = iv[r];
      if (token < 0 || token >= vocab) {
        throw new Error(
          `scatterAdd: index ${token} at row ${r} is out of range for a table of ${vocab} rows`,
        );
      }
      const tBase = token * d;
      const gBase = r * d;
      for (let j = 0; j < d; j++) tv[tBase + j] += gv[gBase + j];
    }
  },

  im2col(x, cols, g) {
    const { n, c, h, w, kh, kw, stride, pad, ho, wo } = g;
    const xv = f32(x, 'im2col x', n * c * h * w);
    const cv = f32(cols, 'im2col cols', n * c * kh * kw * ho * wo);
    const colLen = ho * wo;
    let row = 0; // global row of cols: (img * c + ci) * kh * kw + ky * kw + kx
    for (let img = 0; img < n; img++) {
      for (let ci = 0; ci < c; ci++) {
        const plane = (img * c + ci) * h * w;
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = 0; kx < kw; kx++, row++) {
            const colBase = row * colLen;
            for (let oy = 0; oy < ho; oy++) {
              const iy = oy * stride - pad + ky;
              const rowOut = colBase + oy * wo;
              if (iy < 0 || iy >= h) {
                cv.fill(0, rowOut, rowOut + wo);
                continue;
              }
              const xRow = plane + iy * w;
              for (let ox = 0; ox < wo; ox++) {
                const ix = ox * stride - pad + kx;
                cv[rowOut + ox] = ix >= 0 && ix < w ? xv[xRow + ix] : 0;
              }
            }
          }
        }
      }
    }
  },

  col2im(cols, x, g) {
    const { n, c, h, w, kh, kw, stride, pad, ho, wo } = g;
    const cv = f32(cols, 'col2im cols', n * c * kh * kw * ho * wo);
    const xv = f32(x, 'col2im x', n * c * h * w);
    const colLen = ho * wo;
    const imageSize = c * h * w;
    const acc = new Float64Array(imageSize); // one image's scatter, float64
    let row = 0;
    for (let img = 0; img < n; img++) {
      acc.fill(0);
      for (let ci = 0; ci < c; ci++) {
        const plane = ci * h * w;
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = 0; kx < kw; kx++, row++) {
            const colBase = row * colLen;
            for (let oy = 0; oy < ho; oy++) {
              const iy = oy * stride - pad + ky;
              if (iy < 0 || iy >= h) continue;
              const xRow = plane + iy * w;
              const colRow = colBase + oy * wo;
              for (let ox = 0; ox < wo; ox++) {
                const ix = ox * stride - pad + kx;
                if (ix >= 0 && ix < w) acc[xRow + ix] += cv[colRow + ox];
              }
            }
          }
        }
      }
      const xBase = img * imageSize;
      for (let e = 0; e < imageSize; e++) xv[xBase + e] += acc[e];
    }
  },

  nearestCode(z, codebook, idx, dist, rows, k, d) {
    const zv = f32(z, 'nearestCode z', rows * d);
    const cbv = f32(codebook, 'nearestCode codebook', k * d);
    const iv = i32(idx, 'nearestCode idx', rows);
    const dv = f32(dist, 'nearestCode dist', rows);
    if (k < 1) throw new Error(`nearestCode: the codebook needs at least one row, got k = ${k}`);
    for (let r = 0; r < rows; r++) {
      const zBase = r * d;
      let best = 0;
      let bestDist = Infinity;
      for (let code = 0; code < k; code++) {
        const cBase = code * d;
        let sq = 0;
        for (let j = 0; j < d; j++) {
          const diff = zv[zBase + j] - cbv[cBase + j];
          sq += diff * diff;
        }
        if (sq < bestDist) {
          bestDist = sq;
          best = code;
        }
      }
      iv[r] = best;
      dv[r] = bestDist;
    }
  },
};

// The kernels of the wasm backend: each checks its arguments in the cpu addon's order (sizes,
// then buffers against the lengths the sizes imply, then the remaining numbers and flags:
// native/src/kernel_bindings.h) and calls its C entry point (native/wasm/exports.cc) with byte
// offsets into the module's memory. Index and target checks (gather, scatterAdd, the
// cross-entropies) read the int32 buffers in place before the kernel runs, as the cpu addon does.

import type { AdamParams, AdamTensors, Buf, DType, KernelMethods } from '../../backend';
import { Args, elementsOf, opCode, spanOf } from './args';
import type { WasmMemory } from './memory';

type ElementwiseKernel =
  | 'fill'
  | 'copyBlock'
  | 'binary'
  | 'unary'
  | 'unaryBackward'
  | 'affine'
  | 'axpy'
  | 'sumSquares'
  | 'sumAxis'
  | 'broadcastAxis'
  | 'permute';
type LinearAndNormKernel =
  | 'matmul'
  | 'gather'
  | 'scatterAdd'
  | 'layerNorm'
  | 'layerNormBackward'
  | 'softmax'
  | 'softmaxBackward'
  | 'crossEntropy'
  | 'crossEntropyBackward';
/** The rest: randomness, convolution, vector quantisation, the optimiser, the fused kernels. */
type TrainingKernel = Exclude<keyof KernelMethods, ElementwiseKernel | LinearAndNormKernel>;

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** Index checks (messages as js.ts and the cpu addon). */
function checkIndices(
  c: Args,
  mem: WasmMemory,
  idxPtr: number,
  rows: number,
  vocab: number,
  gather: boolean,
): void {
  const { i32 } = mem.heap();
  const base = idxPtr / 4;
  for (let r = 0; r < rows; r++) {
    const i = i32[base + r];
    if (i < 0 || i >= vocab) {
      const at = `index ${i} at row ${r}`;
      if (gather) {
        c.rangeError(
          `${at} is out of range for a vocabulary of size ${vocab} (accepted: 0..${vocab - 1})`,
        );
      }
      c.rangeError(`${at} is out of range for a table of ${vocab} rows`);
    }
  }
}

function checkTargets(c: Args, mem: WasmMemory, ptr: number, rows: number, v: number): void {
  const { i32 } = mem.heap();
  const base = ptr / 4;
  for (let r = 0; r < rows; r++) {
    const t = i32[base + r];
    if (t >= v) {
      c.rangeError(
        `target ${t} at row ${r} is out of range for ${v} classes (accepted: 0..${v - 1}, or negative to ignore)`,
      );
    }
  }
}

function checkStep(c: Args, step: number): void {
  if (!(step >= 1)) c.rangeError(`step is 1-based, got ${step}`);
}

/** The ten convolution sizes n, c, h, w, kh, kw, stride, pad, ho, wo of a geometry object. */
function geometry(c: Args, g: unknown): number[] {
  const o = (g ?? {}) as Record<string, unknown>;
  return ['n', 'c', 'h', 'w', 'kh', 'kw', 'stride', 'pad', 'ho', 'wo'].map((k) => c.size(o[k], k));
}
const imageElements = (c: Args, g: number[]): number => c.mul(c.mul(g[0], g[1]), c.mul(g[2], g[3]));
const columnElements = (c: Args, g: number[]): number =>
  c.mul(c.mul(c.mul(g[0], g[1]), c.mul(g[4], g[5])), c.mul(g[8], g[9]));

/** Elementwise kernels, reductions and layout. */
function elementwise(mem: WasmMemory): Pick<KernelMethods, ElementwiseKernel> {
  const x = mem.x;
  const args = (fn: string): Args => new Args(mem, fn);
  return {
    fill(out: Buf, n: number, value: number): void {
      const c = args('fill');
      const size = c.size(n, 'n');
      const o = c.buf(out, 'out', null, size);
      const v = c.number(value, 'value');
      let bits: number;
      if (o.dtype === 'float32') {
        f32Bits[0] = v;
        bits = u32Bits[0];
      } else {
        bits = v >>> 0; // ToUint32, which ToInt32 shares its bit pattern with
      }
      x.mmgpt_fill32(o.ptr, size, bits | 0);
    },
    copyBlock(src, dst, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, acc): void {
      const c = args('copyBlock');
      const [o, sa, so, da, dof, cnt, inn] = [
        c.size(outer, 'outer'),
        c.size(srcAxis, 'srcAxis'),
        c.size(srcOffset, 'srcOffset'),
        c.size(dstAxis, 'dstAxis'),
        c.size(dstOffset, 'dstOffset'),
        c.size(count, 'count'),
        c.size(inner, 'inner'),
      ];
      const accumulate = c.flag(acc, 'accumulate');
      if (c.add(so, cnt) > sa || c.add(dof, cnt) > da) {
        c.rangeError(`range out of bounds (src ${so}+${cnt} of ${sa}, dst ${dof}+${cnt} of ${da})`);
      }
      const dtype = accumulate ? 'float32' : null;
      const s = c.buf(src, 'src', dtype, c.mul(c.mul(o, sa), inn));
      const d = c.buf(dst, 'dst', dtype, c.mul(c.mul(o, da), inn));
      if (s.dtype !== d.dtype) c.typeError('src and dst must have the same dtype');
      x.mmgpt_copy_block(s.ptr, d.ptr, o, sa, so, da, dof, cnt, inn, accumulate ? 1 : 0);
    },
    binary(op, a, b, out, shape, aStrides, bStrides): void {
      const c = args('binary');
      const code = opCode(c, op, false);
      const sh = c.ints(shape, 'shape');
      const as = c.ints(aStrides, 'aStrides');
      const bs = c.ints(bStrides, 'bStrides');
      if (sh.length === 0 || as.length !== sh.length || bs.length !== sh.length) {
        c.rangeError(
          `shape and strides need one rank >= 1, got ranks ${sh.length} / ${as.length} / ${bs.length}`,
        );
      }
      const size = elementsOf(c, sh);
      const pa = c.f32(a, 'a', spanOf(c, sh, as));
      const pb = c.f32(b, 'b', spanOf(c, sh, bs));
      const po = c.f32(out, 'out', size);
      const [shp, asp, bsp] = mem.doubles([sh, as, bs]);
      x.mmgpt_binary(code, pa, pb, po, sh.length, shp, asp, bsp);
    },
    unary(op, xb, out, n): void {
      const c = args('unary');
      const code = opCode(c, op, true);
      const size = c.size(n, 'n');
      x.mmgpt_unary(code, c.f32(xb, 'x', size), c.f32(out, 'out', size), size);
    },
    unaryBackward(op, xb, y, gy, gx, n): void {
      const c = args('unaryBackward');
      const code = opCode(c, op, true);
      const size = c.size(n, 'n');
      const px = c.f32(xb, 'x', size);
      const py = c.f32(y, 'y', size);
      const pgy = c.f32(gy, 'gy', size);
      x.mmgpt_unary_backward(code, px, py, pgy, c.f32(gx, 'gx', size), size);
    },
    affine(xb, out, n, alpha, beta): void {
      const c = args('affine');
      const size = c.size(n, 'n');
      const px = c.f32(xb, 'x', size);
      const po = c.f32(out, 'out', size);
      x.mmgpt_affine(px, po, size, c.number(alpha, 'alpha'), c.number(beta, 'beta'));
    },
    axpy(xb, y, n, alpha): void {
      const c = args('axpy');
      const size = c.size(n, 'n');
      const px = c.f32(xb, 'x', size);
      x.mmgpt_axpy(px, c.f32(y, 'y', size), size, c.number(alpha, 'alpha'));
    },
    sumSquares(xb, n): number {
      const c = args('sumSquares');
      const size = c.size(n, 'n');
      return x.mmgpt_sum_squares(c.f32(xb, 'x', size), size);
    },
    sumAxis(xb, out, outer, axis, inner, accumulate): void {
      const c = args('sumAxis');
      const [o, a, i] = [c.size(outer, 'outer'), c.size(axis, 'axis'), c.size(inner, 'inner')];
      const px = c.f32(xb, 'x', c.mul(c.mul(o, a), i));
      const po = c.f32(out, 'out', c.mul(o, i));
      x.mmgpt_sum_axis(px, po, o, a, i, c.flag(accumulate, 'accumulate') ? 1 : 0);
    },
    broadcastAxis(xb, out, outer, axis, inner): void {
      const c = args('broadcastAxis');
      const [o, a, i] = [c.size(outer, 'outer'), c.size(axis, 'axis'), c.size(inner, 'inner')];
      const px = c.f32(xb, 'x', c.mul(o, i));
      x.mmgpt_broadcast_axis(px, c.f32(out, 'out', c.mul(c.mul(o, a), i)), o, a, i);
    },
    permute(xb, out, shape, perm, dtype: DType): void {
      const c = args('permute');
      const sh = c.ints(shape, 'shape');
      const pm = c.ints(perm, 'perm');
      const wantFloat = c.isFloatDtype(dtype);
      const seen = new Array<boolean>(sh.length).fill(false);
      const ok =
        pm.length === sh.length && pm.every((p) => p < sh.length && !seen[p] && (seen[p] = true));
      if (!ok) {
        c.rangeError(`perm [${pm.join(',')}] is not a permutation of 0..${sh.length - 1}`);
      }
      const size = elementsOf(c, sh);
      const px = c.buf(xb, 'x', null, size);
      const po = c.buf(out, 'out', null, size);
      const want = wantFloat ? 'float32' : 'int32';
      if (px.dtype !== want || po.dtype !== want) c.typeError(`x and out must both hold ${want}`);
      const [shp, pmp] = mem.doubles([sh, pm]);
      x.mmgpt_permute(px.ptr, po.ptr, sh.length, shp, pmp);
    },
  };
}

/** Linear algebra, embeddings, normalisation, softmax and cross-entropy. */
function linearAndNorm(mem: WasmMemory): Pick<KernelMethods, LinearAndNormKernel> {
  const x = mem.x;
  const args = (fn: string): Args => new Args(mem, fn);
  return {
    matmul(a, b, cb, p): void {
      const c = args('matmul');
      const batch = c.size(p.batch, 'batch');
      const [m, n, k] = [c.size(p.m, 'm'), c.size(p.n, 'n'), c.size(p.k, 'k')];
      const tA = c.flag(p.transA, 'transA');
      const tB = c.flag(p.transB, 'transB');
      const sA = c.size(p.strideA, 'strideA');
      const sB = c.size(p.strideB, 'strideB');
      const sC = c.size(p.strideC, 'strideC');
      const alpha = c.number(p.alpha, 'alpha');
      const acc = c.flag(p.accumulate, 'accumulate');
      if (batch === 0 || m === 0 || n === 0) return;
      const last = batch - 1;
      const pa = c.f32(a, 'A', c.add(c.mul(last, sA), c.mul(m, k)));
      const pb = c.f32(b, 'B', c.add(c.mul(last, sB), c.mul(k, n)));
      const pc = c.f32(cb, 'C', c.add(c.mul(last, sC), c.mul(m, n)));
      const pBias = p.bias === undefined ? 0 : c.f32(p.bias, 'bias', n); // 0: no bias
      const flags = [tA ? 1 : 0, tB ? 1 : 0];
      x.mmgpt_matmul(pa, pb, pc, batch, m, n, k, ...flags, sA, sB, sC, alpha, acc ? 1 : 0, pBias);
    },
    gather(table, idx, out, rows, d, vocab): void {
      const c = args('gather');
      const [r, dd, v] = [c.size(rows, 'rows'), c.size(d, 'd'), c.size(vocab, 'vocab')];
      const pt = c.f32(table, 'table', c.mul(v, dd));
      const pi = c.i32(idx, 'idx', r);
      const po = c.f32(out, 'out', c.mul(r, dd));
      checkIndices(c, mem, pi, r, v, true);
      x.mmgpt_gather(pt, pi, po, r, dd);
    },
    scatterAdd(g, idx, gTable, rows, d): void {
      const c = args('scatterAdd');
      const [r, dd] = [c.size(rows, 'rows'), c.size(d, 'd')];
      const pg = c.f32(g, 'g', c.mul(r, dd));
      const pi = c.i32(idx, 'idx', r);
      const table = c.buf(gTable, 'gTable', 'float32', 0);
      const vocab = dd > 0 ? Math.floor(table.size / dd) : 0;
      checkIndices(c, mem, pi, r, vocab, false);
      x.mmgpt_scatter_add(pg, pi, table.ptr, r, dd);
    },
    layerNorm(xb, w, b, out, mean, rstd, rows, d, eps): void {
      const c = args('layerNorm');
      const [r, dd] = [c.size(rows, 'rows'), c.size(d, 'd')];
      const size = c.mul(r, dd);
      const ptrs = [
        c.f32(xb, 'x', size),
        c.f32(w, 'w', dd),
        c.f32(b, 'b', dd),
        c.f32(out, 'out', size),
        c.f32(mean, 'mean', r),
        c.f32(rstd, 'rstd', r),
      ];
      x.mmgpt_layer_norm(...ptrs, r, dd, c.number(eps, 'eps'));
    },
    layerNormBackward(xb, w, mean, rstd, gy, gx, gw, gb, rows, d): void {
      const c = args('layerNormBackward');
      const [r, dd] = [c.size(rows, 'rows'), c.size(d, 'd')];
      const size = c.mul(r, dd);
      const ptrs = [
        c.f32(xb, 'x', size),
        c.f32(w, 'w', dd),
        c.f32(mean, 'mean', r),
        c.f32(rstd, 'rstd', r),
        c.f32(gy, 'gy', size),
        c.f32(gx, 'gx', size),
        c.f32(gw, 'gw', dd),
        c.f32(gb, 'gb', dd),
      ];
      x.mmgpt_layer_norm_backward(...ptrs, r, dd);
    },
    softmax(xb, out, rows, n, causalTq): void {
      const c = args('softmax');
      const [r, nn, tq] = [c.size(rows, 'rows'), c.size(n, 'n'), c.size(causalTq, 'causalTq')];
      const size = c.mul(r, nn);
      x.mmgpt_softmax(c.f32(xb, 'x', size), c.f32(out, 'out', size), r, nn, tq);
    },
    softmaxBackward(y, gy, gx, rows, n): void {
      const c = args('softmaxBackward');
      const [r, nn] = [c.size(rows, 'rows'), c.size(n, 'n')];
      const size = c.mul(r, nn);
      const py = c.f32(y, 'y', size);
      const pgy = c.f32(gy, 'gy', size);
      x.mmgpt_softmax_backward(py, pgy, c.f32(gx, 'gx', size), r, nn);
    },
    crossEntropy(logits, targets, probs, losses, rows, v): void {
      const c = args('crossEntropy');
      const [r, vv] = [c.size(rows, 'rows'), c.size(v, 'v')];
      const size = c.mul(r, vv);
      const pl = c.f32(logits, 'logits', size);
      const pt = c.i32(targets, 'targets', r);
      const pp = c.f32(probs, 'probs', size);
      const ploss = c.f32(losses, 'losses', r);
      checkTargets(c, mem, pt, r, vv);
      x.mmgpt_cross_entropy(pl, pt, pp, ploss, r, vv);
    },
    crossEntropyBackward(probs, targets, gLoss, gLogits, rows, v): void {
      const c = args('crossEntropyBackward');
      const [r, vv] = [c.size(rows, 'rows'), c.size(v, 'v')];
      const size = c.mul(r, vv);
      const pp = c.f32(probs, 'probs', size);
      const pt = c.i32(targets, 'targets', r);
      const pgl = c.f32(gLoss, 'gLoss', r);
      const pg = c.f32(gLogits, 'gLogits', size);
      checkTargets(c, mem, pt, r, vv);
      x.mmgpt_cross_entropy_backward(pp, pt, pgl, pg, r, vv);
    },
  };
}

/** Randomness, convolution, vector quantisation, the optimiser and the fused step kernels. */
function trainingKernels(mem: WasmMemory): Pick<KernelMethods, TrainingKernel> {
  const x = mem.x;
  const args = (fn: string): Args => new Args(mem, fn);
  return {
    dropoutMask(out, n, p, seed): void {
      const c = args('dropoutMask');
      const size = c.size(n, 'n');
      const po = c.f32(out, 'out', size);
      const prob = c.number(p, 'p');
      x.mmgpt_dropout_mask(po, size, prob, c.number(seed, 'seed') >>> 0);
    },
    im2col(xb, cols, g): void {
      const c = args('im2col');
      const geo = geometry(c, g);
      const px = c.f32(xb, 'x', imageElements(c, geo));
      x.mmgpt_im2col(px, c.f32(cols, 'cols', columnElements(c, geo)), ...geo);
    },
    col2im(cols, xb, g): void {
      const c = args('col2im');
      const geo = geometry(c, g);
      const pc = c.f32(cols, 'cols', columnElements(c, geo));
      x.mmgpt_col2im(pc, c.f32(xb, 'x', imageElements(c, geo)), ...geo);
    },
    nearestCode(z, codebook, idx, dist, rows, k, d): void {
      const c = args('nearestCode');
      const [r, kk, dd] = [c.size(rows, 'rows'), c.size(k, 'k'), c.size(d, 'd')];
      const ptrs = [
        c.f32(z, 'z', c.mul(r, dd)),
        c.f32(codebook, 'codebook', c.mul(kk, dd)),
        c.i32(idx, 'idx', r),
        c.f32(dist, 'dist', r),
      ];
      if (kk < 1) c.rangeError(`the codebook needs at least one row, got k = ${kk}`);
      x.mmgpt_nearest_code(...ptrs, r, kk, dd);
    },
    adam(p, g, m, v, n, a): void {
      const c = args('adam');
      const size = c.size(n, 'n');
      const ptrs = [c.f32(p, 'p', size), c.f32(g, 'g', size), c.f32(m, 'm', size)];
      ptrs.push(c.f32(v, 'v', size));
      const nums = [a.lr, a.beta1, a.beta2, a.eps, a.weightDecay].map((value, i) =>
        c.number(value, ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'][i]),
      );
      const decoupled = c.flag(a.decoupled, 'decoupled') ? 1 : 0;
      const step = c.number(a.step, 'step');
      const gradScale = c.number(a.gradScale, 'gradScale');
      checkStep(c, step);
      x.mmgpt_adam(...ptrs, size, ...nums, decoupled, step, gradScale);
    },
    crossEntropyMean(logits, targets, losses, loss, gLogits, rows, v): void {
      const c = args('crossEntropyMean');
      const [r, vv] = [c.size(rows, 'rows'), c.size(v, 'v')];
      const size = c.mul(r, vv);
      const pl = c.f32(logits, 'logits', size);
      const pt = c.i32(targets, 'targets', r);
      const ptrs = [c.f32(losses, 'losses', r), c.f32(loss, 'loss', 1)];
      ptrs.push(c.f32(gLogits, 'gLogits', size));
      checkTargets(c, mem, pt, r, vv);
      x.mmgpt_cross_entropy_mean(pl, pt, ...ptrs, r, vv);
    },
    biasGelu(xb, bias, out, rows, n): void {
      const c = args('biasGelu');
      const [r, nn] = [c.size(rows, 'rows'), c.size(n, 'n')];
      const size = c.mul(r, nn);
      const px = c.f32(xb, 'x', size);
      const pb = c.f32(bias, 'bias', nn);
      x.mmgpt_bias_gelu(px, pb, c.f32(out, 'out', size), r, nn);
    },
    biasGeluBackward(xb, bias, gy, gx, gBias, rows, n): void {
      const c = args('biasGeluBackward');
      const [r, nn] = [c.size(rows, 'rows'), c.size(n, 'n')];
      const size = c.mul(r, nn);
      const ptrs = [
        c.f32(xb, 'x', size),
        c.f32(bias, 'bias', nn),
        c.f32(gy, 'gy', size),
        c.f32(gx, 'gx', size),
        c.f32(gBias, 'gBias', nn),
      ];
      x.mmgpt_bias_gelu_backward(...ptrs, r, nn);
    },
    addLayerNorm(xb, r, w, b, h, out, mean, rstd, rows, d, eps): void {
      const c = args('addLayerNorm');
      const [rr, dd] = [c.size(rows, 'rows'), c.size(d, 'd')];
      const size = c.mul(rr, dd);
      const ptrs = [
        c.f32(xb, 'x', size),
        c.f32(r, 'r', size),
        c.f32(w, 'w', dd),
        c.f32(b, 'b', dd),
        c.f32(h, 'h', size),
        c.f32(out, 'out', size),
        c.f32(mean, 'mean', rr),
        c.f32(rstd, 'rstd', rr),
      ];
      x.mmgpt_add_layer_norm(...ptrs, rr, dd, c.number(eps, 'eps'));
    },
    adamMulti(t, a, clipNorm, normOut): void {
      adamMulti(mem, t, a, clipNorm, normOut);
    },
    attention(qkv, out, probs, batch, t, heads, headSize, scale): void {
      const c = args('attention');
      const s = attentionSizes(c, batch, t, heads, headSize);
      const ptrs = [
        c.f32(qkv, 'qkv', s.qkv),
        c.f32(out, 'out', s.out),
        c.f32(probs, 'probs', s.probs),
      ];
      x.mmgpt_attention(...ptrs, ...s.dims, c.number(scale, 'scale'));
    },
    attentionBackward(qkv, probs, gy, gQkv, batch, t, heads, headSize, scale): void {
      const c = args('attentionBackward');
      const s = attentionSizes(c, batch, t, heads, headSize);
      const ptrs = [
        c.f32(qkv, 'qkv', s.qkv),
        c.f32(probs, 'probs', s.probs),
        c.f32(gy, 'gy', s.out),
        c.f32(gQkv, 'gQkv', s.qkv),
      ];
      x.mmgpt_attention_backward(...ptrs, ...s.dims, c.number(scale, 'scale'));
    },
  };
}

/** attention's sizes, checked as the cpu binding checks them (t <= 64), and its buffers' lengths. */
function attentionSizes(
  c: Args,
  batch: number,
  t: number,
  heads: number,
  headSize: number,
): { dims: number[]; qkv: number; out: number; probs: number } {
  const dims = [c.size(batch, 'batch'), c.size(t, 't'), c.size(heads, 'heads')];
  dims.push(c.size(headSize, 'headSize'));
  if (dims[1] > 64) c.rangeError(`t must be <= 64, got ${dims[1]}`);
  const rows = c.mul(dims[0], dims[1]);
  const width = c.mul(dims[2], dims[3]);
  return {
    dims,
    qkv: c.mul(c.mul(rows, 3), width),
    out: c.mul(rows, width),
    probs: c.mul(c.mul(dims[0], dims[2]), c.mul(dims[1], dims[1])),
  };
}

/** adamMulti: lists checked element by element, then written to wasm memory as arrays. */
function adamMulti(
  mem: WasmMemory,
  t: AdamTensors,
  a: AdamParams,
  clipNorm: number,
  normOut: Buf,
): void {
  const c = new Args(mem, 'adamMulti');
  const ps = c.list(t.params, 'params', undefined, 'params');
  const count = ps.length;
  const lists = [
    ps,
    ...(['grads', 'm', 'v'] as const).map((k) => c.list(t[k], k, count, 'params')),
  ];
  const sizesList = c.list(t.sizes, 'sizes', count, 'params');
  const wdList = c.list(t.weightDecays, 'weightDecays', count, 'params');
  const names = ['params', 'grads', 'm', 'v'];
  const ptrs: number[][] = [[], [], [], []];
  const sizes: number[] = [];
  const wds: number[] = [];
  for (let i = 0; i < count; i++) {
    sizes.push(c.sizeAt(sizesList, i, 'sizes'));
    wds.push(c.numberAt(wdList, i, 'weightDecays'));
    for (let l = 0; l < 4; l++) ptrs[l].push(c.f32(lists[l][i], `${names[l]}[${i}]`, sizes[i]));
  }
  const nums = [a.lr, a.beta1, a.beta2, a.eps].map((value, i) =>
    c.number(value, ['lr', 'beta1', 'beta2', 'eps'][i]),
  );
  const decoupled = c.flag(a.decoupled, 'decoupled') ? 1 : 0;
  const step = c.number(a.step, 'step');
  const clip = c.number(clipNorm, 'clipNorm');
  const pn = c.f32(normOut, 'normOut', 1);
  checkStep(c, step);
  // The scratch block: sizes and weightDecays (float64), then the four pointer lists (uint32).
  const base = mem.scratch(count * 32);
  const { f64, u32 } = mem.heap();
  f64.set(sizes, base / 8);
  f64.set(wds, base / 8 + count);
  const lists0 = base + count * 16;
  for (let l = 0; l < 4; l++) u32.set(ptrs[l], lists0 / 4 + l * count);
  const lp = [0, 1, 2, 3].map((l) => lists0 + l * count * 4);
  const rc = mem.x.mmgpt_adam_multi(
    ...lp,
    base,
    base + count * 8,
    count,
    ...nums,
    decoupled,
    step,
    clip,
    pn,
  );
  if (rc !== 0) throw new RangeError('adamMulti: out of wasm memory for the tensor sizes');
}

/** Every kernel method of the wasm backend over one module instance's memory. */
export function wasmKernelMethods(mem: WasmMemory): KernelMethods {
  return { ...elementwise(mem), ...linearAndNorm(mem), ...trainingKernels(mem) };
}

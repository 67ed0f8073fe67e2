// Convolution: im2col/col2im (adjoints of each other), and conv2d and its transpose composed from
// them and matmul.

import type { Conv2dGeometry } from '../backend';
import { convOutSize } from '../backend';
import { empty } from '../tensor';
import type { Tensor } from '../tensor';
import { fmt, record, uninit } from './common';
import { add } from './arithmetic';
import { reshape } from './layout';
import { matmul } from './matmul';

/** The geometry of a square k x k kernel over an [n, c, h, w] input; throws if it does not fit. */
export function convGeometry(
  n: number,
  c: number,
  h: number,
  w: number,
  k: number,
  stride: number,
  pad: number,
): Conv2dGeometry {
  const ho = convOutSize(h, k, stride, pad);
  const wo = convOutSize(w, k, stride, pad);
  if (ho <= 0 || wo <= 0)
    throw new Error(
      `conv: a ${k}x${k} kernel (stride ${stride}, pad ${pad}) does not fit ${h}x${w}`,
    );
  return { n, c, h, w, kh: k, kw: k, stride, pad, ho, wo };
}

/**
 * Checks a convolution's operands: x [n, c, h, w] and a square 4-D weight whose axis
 * `channelAxis` is x's channel count; `layouts` names the two layouts in the error.
 */
function checkConvOperands(
  op: string,
  x: Tensor,
  weight: Tensor,
  channelAxis: number,
  layouts: string,
): void {
  if (
    x.rank !== 4 ||
    weight.rank !== 4 ||
    weight.shape[channelAxis] !== x.shape[1] ||
    weight.shape[2] !== weight.shape[3]
  ) {
    throw new Error(
      `${op}: input ${fmt(x.shape)} and weight ${fmt(weight.shape)} do not match (${layouts})`,
    );
  }
}

/** x [n, c, h, w] -> columns [n, c*k*k, ho*wo]. */
export function im2col(x: Tensor, g: Conv2dGeometry): Tensor {
  const out = uninit([g.n, g.c * g.kh * g.kw, g.ho * g.wo], 'float32', x.backend);
  x.backend.im2col(x.buf, out.buf, g);
  return record(out, 'im2col', [x], (gc) => [col2im(gc, g)]);
}

/** columns [n, c*k*k, ho*wo] -> image [n, c, h, w] (summing overlaps). */
export function col2im(cols: Tensor, g: Conv2dGeometry): Tensor {
  const out = empty([g.n, g.c, g.h, g.w], 'float32', cols.backend);
  cols.backend.col2im(cols.buf, out.buf, g);
  return record(out, 'col2im', [cols], (gi) => [im2col(gi, g)]);
}

/** 2-D convolution: x [n, c, h, w], weight [cOut, c, k, k], bias [cOut] -> [n, cOut, ho, wo]. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  stride = 1,
  pad = 0,
): Tensor {
  checkConvOperands('conv2d', x, weight, 1, '[n,c,h,w] and [cOut,c,k,k]');
  const [n, c, h, w] = x.shape;
  const [cOut, , k] = weight.shape;
  const g = convGeometry(n, c, h, w, k, stride, pad);
  const cols = im2col(x, g); // [n, c*k*k, ho*wo]
  const w2 = reshape(weight, [cOut, c * k * k]);
  let out = matmul(w2, cols); // [n, cOut, ho*wo]
  if (bias) out = add(out, reshape(bias, [cOut, 1]));
  return reshape(out, [n, cOut, g.ho, g.wo]);
}

/**
 * Transposed 2-D convolution (the adjoint of conv2d): x [n, cIn, h, w], weight [cIn, cOut, k, k]
 * (PyTorch's layout), bias [cOut] -> [n, cOut, (h-1)*stride - 2*pad + k, ...].
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  stride = 1,
  pad = 0,
): Tensor {
  checkConvOperands('convTranspose2d', x, weight, 0, '[n,cIn,h,w] and [cIn,cOut,k,k]');
  const [n, cIn, h, w] = x.shape;
  const [, cOut, k] = weight.shape;
  const hOut = (h - 1) * stride - 2 * pad + k;
  const wOut = (w - 1) * stride - 2 * pad + k;
  const g = convGeometry(n, cOut, hOut, wOut, k, stride, pad);
  if (g.ho !== h || g.wo !== w)
    throw new Error(`convTranspose2d: geometry mismatch for input ${fmt(x.shape)}`);
  const w2 = reshape(weight, [cIn, cOut * k * k]);
  const x2 = reshape(x, [n, cIn, h * w]);
  const cols = matmul(w2, x2, { transA: true }); // [n, cOut*k*k, h*w]
  let out = col2im(cols, g); // [n, cOut, hOut, wOut]
  if (bias) out = add(out, reshape(bias, [cOut, 1, 1]));
  return out;
}

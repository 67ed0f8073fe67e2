// Differentiable operations on Tensors: each one checks shapes, calls a backend kernel for the
// forward pass and records a backward rule that calls backend kernels for the gradients.
//
// The op set is the one the models need: matmul, broadcasting arithmetic, unary maths,
// reductions, layout ops, embedding, LayerNorm, softmax, cross-entropy, dropout, im2col/col2im
// (from which conv2d and its transpose are composed) and codebook search. Shape errors name the op
// and the shapes involved.
//
// The ops live in ops/ by concept (layout: creation and layout; arithmetic: broadcasting maths,
// unary functions and reductions; matmul; nn: embedding, normalisation, softmax, losses, dropout,
// codebook search; conv; common: the helpers they share). This module is their one entry point
// (`import * as F`) and exports exactly the public ops.

import type { Tensor } from './tensor';
import { checkSameShape } from './tensor';
import { getBackend } from './registry';

export {
  tensor,
  zeros,
  full,
  ones,
  clone,
  detach,
  reshape,
  permute,
  transpose,
  slice,
  concat,
  split,
  writeInto,
} from './ops/layout';
export {
  broadcastShapes,
  sumToShape,
  add,
  sub,
  mul,
  div,
  affine,
  scale,
  addScalar,
  exp,
  log,
  tanh,
  relu,
  gelu,
  neg,
  sqrt,
  square,
  sum,
  mean,
} from './ops/arithmetic';
export { matmul, matmulLeadingRows } from './ops/matmul';
export type { MatmulOptions } from './ops/matmul';
export {
  embedding,
  layerNorm,
  addLayerNorm,
  biasGelu,
  causalAttention,
  ATTENTION_MAX_T,
  softmax,
  crossEntropy,
  dropout,
  nearestCode,
} from './ops/nn';
export { im2col, col2im, conv2d, convTranspose2d } from './ops/conv';

/** Sum of squares of all elements, on the host (grad-norm clipping). */
export function sumOfSquares(x: Tensor): number {
  return x.backend.sumSquares(x.buf, x.size);
}

export { checkSameShape, getBackend };

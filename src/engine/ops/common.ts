// Helpers every op file shares: output allocation, shape formatting, the autodiff record, and the
// checks ops make on their operands (dtype, backend, axis).

import type { Backend, DType } from '../backend';
import { Tensor, Node, empty, isGradEnabled } from '../tensor';

/** An output buffer that the kernel overwrites completely (no zero-fill). */
export const uninit = (shape: readonly number[], dtype: DType, backend: Backend): Tensor =>
  empty(shape, dtype, backend, false);

export const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;
export const prod = (xs: readonly number[]): number => xs.reduce((p, s) => p * s, 1);

/** Attaches an autodiff node to `out` if any input requires grad and grad mode is on. */
export function record(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  backward: Node['backward'],
): Tensor {
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

export function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== 'float32')
      throw new Error(`${op}: expected a float32 tensor, got ${t.describe()}`);
  }
}

export function sameBackend(op: string, ...ts: Tensor[]): void {
  const b = ts[0].backend;
  for (const t of ts) {
    if (t.backend !== b)
      throw new Error(`${op}: tensors live on different backends (${b.name}, ${t.backend.name})`);
  }
}

export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** [outer, axis, inner] view of a shape around one axis. */
export function around(shape: readonly number[], axis: number): [number, number, number] {
  return [prod(shape.slice(0, axis)), shape[axis], prod(shape.slice(axis + 1))];
}

// The reference backend's buffer checks: type and length on entry to every kernel, so an engine
// bug shows up as a clear Error rather than as a silent NaN read past the end of a typed array.

import type { Buf, DType } from '../../backend';

export type AnyArray = Float32Array | Int32Array;

export function f32(buf: Buf, name: string, minLength: number): Float32Array {
  if (!(buf instanceof Float32Array)) {
    throw new Error(`js backend: ${name} must be a Float32Array, got ${describe(buf)}`);
  }
  checkLength(buf, name, minLength);
  return buf;
}

export function i32(buf: Buf, name: string, minLength: number): Int32Array {
  if (!(buf instanceof Int32Array)) {
    throw new Error(`js backend: ${name} must be an Int32Array, got ${describe(buf)}`);
  }
  checkLength(buf, name, minLength);
  return buf;
}

export function anyArray(buf: Buf, name: string, minLength: number): AnyArray {
  if (!(buf instanceof Float32Array) && !(buf instanceof Int32Array)) {
    throw new Error(
      `js backend: ${name} must be a Float32Array or Int32Array, got ${describe(buf)}`,
    );
  }
  checkLength(buf, name, minLength);
  return buf;
}

function checkLength(arr: AnyArray, name: string, minLength: number): void {
  if (arr.length < minLength) {
    throw new Error(
      `js backend: ${name} has ${arr.length} elements but the kernel needs at least ${minLength}`,
    );
  }
}

function describe(buf: Buf): string {
  return buf === null || buf === undefined ? String(buf) : buf.constructor.name;
}

export function checkDtype(arr: AnyArray, dtype: DType, name: string): void {
  const actual: DType = arr instanceof Float32Array ? 'float32' : 'int32';
  if (actual !== dtype) {
    throw new Error(`js backend: ${name} holds ${actual} but dtype '${dtype}' was given`);
  }
}

/** 1 + the largest element offset reached by `shape` with `strides` (0 for an empty shape). */
export function spanOf(shape: readonly number[], strides: readonly number[]): number {
  let last = 0;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 0) return 0;
    last += (shape[d] - 1) * strides[d];
  }
  return last + 1;
}

export function product(shape: readonly number[]): number {
  let size = 1;
  for (const s of shape) size *= s;
  return size;
}

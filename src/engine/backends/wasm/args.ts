// Argument checks of the wasm backend's kernels: the cpu addon's checks (native/src/napi_args.h,
// kernel_bindings.h) in TypeScript, with its messages, so both backends throw the same TypeError /
// RangeError "fn: what was wrong" for the same bad call and no bad call reaches the module
// (whose C entry points check nothing). Buffers are WasmBuffer handles of the same module,
// checked like the cuda backend's device handles (live, dtype, length).

import { WasmBuffer } from './memory';
import type { WasmMemory } from './memory';

/** The largest rank ints() accepts (kernels.h's kMaxRank). */
const MAX_RANK = 16;

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return 'a string';
  if (v instanceof Float32Array) return 'a Float32Array';
  if (v instanceof Int32Array) return 'an Int32Array';
  if (v instanceof Float64Array) return 'a Float64Array';
  if (v instanceof Uint8Array) return 'a Uint8Array';
  if (ArrayBuffer.isView(v)) return 'another typed array';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof WasmBuffer) return `a ${v.dtype} buffer of another wasm backend`;
  return 'an object';
}

function isSize(d: number): boolean {
  return d >= 0 && d <= Number.MAX_SAFE_INTEGER && Number.isInteger(d);
}

/** The checks of one kernel call `fn` on the buffers of `mem`. */
export class Args {
  constructor(
    private readonly mem: WasmMemory,
    readonly fn: string,
  ) {}

  typeError(msg: string): never {
    throw new TypeError(`${this.fn}: ${msg}`);
  }
  rangeError(msg: string): never {
    throw new RangeError(`${this.fn}: ${msg}`);
  }

  number(v: unknown, name: string): number {
    if (typeof v !== 'number') this.typeError(`${name} must be a number, got ${describe(v)}`);
    return v;
  }
  /** A non-negative integer below 2^53. */
  size(v: unknown, name: string): number {
    const d = this.number(v, name);
    if (!isSize(d)) this.rangeError(`${name} must be a non-negative integer, got ${d}`);
    return d;
  }
  flag(v: unknown, name: string): boolean {
    if (typeof v !== 'boolean') this.typeError(`${name} must be a boolean, got ${describe(v)}`);
    return v;
  }
  str(v: unknown, name: string): string {
    if (typeof v !== 'string') this.typeError(`${name} must be a string, got ${describe(v)}`);
    return v;
  }
  /** A dtype name: true for 'float32', false for 'int32'. */
  isFloatDtype(v: unknown): boolean {
    const s = this.str(v, 'dtype');
    if (s !== 'float32' && s !== 'int32') {
      this.typeError(`dtype must be 'float32' or 'int32', got '${s}'`);
    }
    return s === 'float32';
  }
  /** An array of non-negative integers (shape, strides, perm) of length <= 16. */
  ints(v: unknown, name: string): number[] {
    if (!Array.isArray(v)) this.typeError(`${name} must be an array of integers`);
    const arr = v as unknown[];
    if (arr.length > MAX_RANK) {
      this.rangeError(`${name} has rank ${arr.length} (at most ${MAX_RANK} supported)`);
    }
    return arr.map((e, j) => {
      if (typeof e !== 'number' || !isSize(e)) {
        this.rangeError(`${name}[${j}] must be a non-negative integer, got ${describe(e)}`);
      }
      return e;
    });
  }
  /** A list argument: any length when count is undefined, else exactly count elements. */
  list(v: unknown, name: string, count: number | undefined, of: string): unknown[] {
    if (!Array.isArray(v)) this.typeError(`${name} must be an array`);
    const arr = v as unknown[];
    if (count !== undefined && arr.length !== count) {
      this.rangeError(`${name} has ${arr.length} elements but ${of} has ${count}`);
    }
    return arr;
  }
  sizeAt(arr: readonly unknown[], j: number, name: string): number {
    const e = arr[j];
    if (typeof e !== 'number' || !isSize(e)) {
      this.rangeError(`${name}[${j}] must be a non-negative integer, got ${describe(e)}`);
    }
    return e;
  }
  numberAt(arr: readonly unknown[], j: number, name: string): number {
    const e = arr[j];
    if (typeof e !== 'number') {
      this.typeError(`${name}[${j}] must be a number, got ${describe(e)}`);
    }
    return e;
  }

  /** a * b, or a RangeError past 2^53 (where sizes stop being exact). */
  mul(a: number, b: number): number {
    const r = a * b;
    if (r > Number.MAX_SAFE_INTEGER) this.rangeError('sizes overflow');
    return r;
  }
  add(a: number, b: number): number {
    const r = a + b;
    if (r > Number.MAX_SAFE_INTEGER) this.rangeError('sizes overflow');
    return r;
  }

  /** A live buffer of this backend, of `dtype` (null: either), with >= minLength elements. */
  buf(v: unknown, name: string, dtype: 'float32' | 'int32' | null, minLength: number): WasmBuffer {
    if (!(v instanceof WasmBuffer) || v.memory !== this.mem) {
      this.typeError(`${name} must be a wasm buffer, got ${describe(v)}`);
    }
    if (v.freed) this.typeError(`${name} was already freed`);
    if (dtype !== null && v.dtype !== dtype) {
      this.typeError(`${name} must hold ${dtype}, got ${v.dtype}`);
    }
    if (v.size < minLength) {
      this.rangeError(`${name} has ${v.size} elements but the kernel needs at least ${minLength}`);
    }
    return v;
  }
  /** The byte offset of a float32 buffer. */
  f32(v: unknown, name: string, minLength: number): number {
    return this.buf(v, name, 'float32', minLength).ptr;
  }
  /** The byte offset of an int32 buffer. */
  i32(v: unknown, name: string, minLength: number): number {
    return this.buf(v, name, 'int32', minLength).ptr;
  }
}

const BINARY_OPS = ['add', 'sub', 'mul', 'div'];
const UNARY_OPS = ['exp', 'log', 'tanh', 'relu', 'gelu', 'neg', 'sqrt', 'square'];

/** The op code of a binary ("add", ...) or unary ("exp", ...) op name (kernels.h's enums). */
export function opCode(c: Args, op: unknown, unary: boolean): number {
  const name = c.str(op, 'op');
  const names = unary ? UNARY_OPS : BINARY_OPS;
  const code = names.indexOf(name);
  if (code < 0) c.typeError(`unknown op '${name}' (accepted: ${names.join(', ')})`);
  return code;
}

/** 1 + the largest offset that `shape` with `strides` reaches (0 for an empty shape). */
export function spanOf(c: Args, shape: readonly number[], strides: readonly number[]): number {
  if (shape.some((s) => s === 0)) return 0;
  let last = 0;
  for (let d = 0; d < shape.length; d++) last = c.add(last, c.mul(shape[d] - 1, strides[d]));
  return last + 1;
}

/** The product of a shape's sizes (overflow-checked). */
export function elementsOf(c: Args, shape: readonly number[]): number {
  return shape.reduce((size, s) => c.mul(size, s), 1);
}

// Tensor, reverse-mode autodiff tape, and deterministic buffer lifetimes.
//
// A Tensor is a shape + dtype over a reference-counted Storage that lives on one Backend.
// Autodiff follows micrograd/PyTorch: every differentiable op records a Node (its inputs and a
// backward closure); `backward()` walks the graph in reverse topological order and accumulates
// gradients. Leaves that require grad (parameters) keep their gradient in `.grad`.
//
// Lifetimes follow tfjs' `tidy`: every tensor created inside `tidy(fn)` is disposed when fn
// returns, except what fn returns and what was `keep()`-ed. Native and GPU buffers cannot wait
// for the garbage collector, so a training step wrapped in `tidy` frees everything it made, and
// `memoryStats()` lets tests prove that 1000 steps leave the live tensor count unchanged.

import type { Backend, Buf, DType } from './backend';
import { getBackend } from './registry';

/** Reference-counted backend memory shared by views (reshape, detach). */
export class Storage {
  refs = 1;
  constructor(
    public buf: Buf | null,
    readonly size: number,
    readonly dtype: DType,
    readonly backend: Backend,
    /** False for uploaded buffers: they are freed, not pooled (uploads never draw from the pool). */
    private readonly recyclable = true,
  ) {
    stats.liveStorages++;
    stats.liveBytes += size * 4;
    if (stats.liveBytes > stats.peakBytes) stats.peakBytes = stats.liveBytes;
  }
  release(): void {
    if (--this.refs > 0) return;
    if (this.buf !== null) {
      if (this.recyclable) recycle(this.backend, this.buf, this.size, this.dtype);
      else this.backend.free(this.buf);
      this.buf = null;
      stats.liveStorages--;
      stats.liveBytes -= this.size * 4;
    }
  }
}

// ---- buffer pool -----------------------------------------------------------------------------
// Freed buffers are kept by (backend, dtype, size) and handed out again (zero-filled), so a
// training step that allocates the same shapes every time touches no fresh memory: no page
// faults on the CPU backends, no cudaMalloc on CUDA. The pool is bounded; when a freed buffer
// does not fit, the size classes used least recently are freed first, so a new workload (the GPT
// after the tokenizer, in one process) takes the pool over instead of finding it full of the old
// one's shapes and allocating fresh memory at every step. `releasePool()` empties it.

interface PoolEntry {
  backend: Backend;
  bytesEach: number;
  bufs: Buf[];
}
/** Size classes in order of last use (a Map iterates in insertion order; a use re-inserts). */
const pool = new Map<string, PoolEntry>();
const backendIds = new Map<Backend, number>();
let pooledBytes = 0;
/** Upper bound of memory parked in the pool (bytes). */
let poolLimitBytes = Number(process.env.MMGPT_POOL_MB ?? 2048) * 1024 * 1024;

function poolKey(backend: Backend, size: number, dtype: DType): string {
  let id = backendIds.get(backend);
  if (id === undefined) backendIds.set(backend, (id = backendIds.size));
  return `${id}:${dtype}:${size}`;
}

/** Marks a size class as just used (moves it to the end of the eviction order). */
function touch(key: string, entry: PoolEntry): void {
  pool.delete(key);
  pool.set(key, entry);
}

/** Frees pooled buffers, least recently used size classes first (sparing `spare`), until at most `bytes` are pooled. */
function evictUntil(bytes: number, spare?: string): void {
  for (const [key, entry] of pool) {
    if (pooledBytes <= bytes) break;
    if (key === spare) continue;
    while (entry.bufs.length > 0 && pooledBytes > bytes) {
      entry.backend.free(entry.bufs.pop()!);
      pooledBytes -= entry.bytesEach;
    }
    if (entry.bufs.length === 0) pool.delete(key);
  }
}

// Size classes. On the backends whose buffers are host typed arrays (cpu, js), a buffer of more
// than SMALL_BUFFER elements is allocated at its size rounded up to 1/8 of a power of two and
// handed out as a view of the requested length, so that workloads whose shapes vary from call to
// call (the samplers' batches of 1..128 rows of varying lengths) reuse buffers instead of
// touching fresh memory at every new size (at most 1/8 more memory per buffer). Device buffers
// (wasm, cuda) keep exact sizes: a captured step replays on the very buffers of its capture.
const SMALL_BUFFER = 1024;

function hostTyped(backend: Backend): boolean {
  return backend.name === 'cpu' || backend.name === 'js';
}

/** The capacity a buffer of `size` elements is allocated at on `backend` (see above). */
function sizeClass(backend: Backend, size: number): number {
  if (size <= SMALL_BUFFER || !hostTyped(backend)) return size;
  const step = 2 ** (Math.floor(Math.log2(size)) - 3);
  return Math.ceil(size / step) * step;
}

/** The whole buffer behind a view of its first `size` elements (itself when not a view). */
function wholeBuffer(buf: Buf, capacity: number): Buf | null {
  if (!(buf instanceof Float32Array || buf instanceof Int32Array)) return buf;
  if (buf.length === capacity) return buf;
  if (buf.byteOffset !== 0 || buf.buffer.byteLength !== capacity * 4) return null;
  return buf instanceof Float32Array ? new Float32Array(buf.buffer) : new Int32Array(buf.buffer);
}

/** The first `size` elements of a buffer of `capacity` (itself when they are all of it). */
function leadingView(buf: Buf, size: number, capacity: number): Buf {
  if (size === capacity) return buf;
  return (buf as Float32Array | Int32Array).subarray(0, size);
}

function recycle(backend: Backend, view: Buf, size: number, dtype: DType): void {
  const capacity = sizeClass(backend, size);
  const buf = wholeBuffer(view, capacity);
  if (buf === null) return; // not a pool buffer: its memory goes to the garbage collector
  const bytes = capacity * 4;
  if (bytes > poolLimitBytes) {
    backend.free(buf);
    return;
  }
  const key = poolKey(backend, capacity, dtype);
  evictUntil(poolLimitBytes - bytes, key);
  if (pooledBytes + bytes > poolLimitBytes) {
    backend.free(buf); // only this class is left and it fills the pool
    return;
  }
  let entry = pool.get(key);
  if (entry === undefined) entry = { backend, bytesEach: bytes, bufs: [] };
  entry.bufs.push(buf);
  touch(key, entry);
  pooledBytes += bytes;
}

/** A zero-filled buffer, from the pool when one of this size is parked there. */
function allocBuffer(backend: Backend, size: number, dtype: DType, zeroFill = true): Buf {
  const capacity = sizeClass(backend, size);
  const key = poolKey(backend, capacity, dtype);
  const entry = pool.get(key);
  const whole = entry?.bufs.pop();
  if (whole === undefined && captureLog !== null)
    throw new Error(
      `no pooled ${dtype} buffer of ${size} for the captured step (its eager run had none)`,
    );
  if (whole === undefined) return leadingView(backend.alloc(capacity, dtype), size, capacity);
  pooledBytes -= capacity * 4;
  if (entry!.bufs.length === 0) pool.delete(key);
  else touch(key, entry!);
  const buf = leadingView(whole, size, capacity);
  captureLog?.set(buf, { buf, size, dtype, backend });
  if (zeroFill) backend.fill(buf, size, 0);
  return buf;
}

// ---- graph capture ---------------------------------------------------------------------------
// A captured step (graph.ts) replays on the buffers its capture used: they come from the pool (a
// capture cannot allocate) and are the graph's afterwards, never handed out between replays.
// While uploads are pooled (a captured step, its eager run before), fromData writes into one.

/** A pool buffer a captured step used. */
export interface CapturedBuffer {
  readonly buf: Buf;
  readonly size: number;
  readonly dtype: DType;
  readonly backend: Backend;
}
type Writer = (buf: Buf, data: Float32Array | Int32Array) => void;
let captureLog: Map<Buf, CapturedBuffer> | null = null;
let pooledUploads: { backend: Backend; write: Writer } | null = null;

/** Runs fn with fromData on `backend` drawing from the pool and `write`-ing the data in. */
export function withPooledUploads<T>(backend: Backend, write: Writer, fn: () => T): T {
  const previous = pooledUploads;
  pooledUploads = { backend, write };
  try {
    return fn();
  } finally {
    pooledUploads = previous;
  }
}

/** Starts recording the pool buffers handed out; until the end a pool miss throws. */
export const beginPoolCapture = (): void => void (captureLog = new Map());

/**
 * Ends the record. keep: takes the recorded buffers out of the pool and returns them (now the
 * graph's); throws, taking none, if one is still live (a tensor of the step outlived it).
 */
export function endPoolCapture(keep: boolean): CapturedBuffer[] {
  const log = [...(captureLog?.values() ?? [])];
  captureLog = null;
  if (!keep) return [];
  const where = new Map<Buf, [string, PoolEntry]>();
  for (const [key, entry] of pool) for (const b of entry.bufs) where.set(b, [key, entry]);
  const live = log.find((c) => !where.has(c.buf));
  if (live)
    throw new Error(`a ${live.dtype} buffer of ${live.size} the captured step made outlived it`);
  for (const c of log) {
    const [key, entry] = where.get(c.buf)!;
    entry.bufs.splice(entry.bufs.indexOf(c.buf), 1);
    pooledBytes -= entry.bytesEach;
    if (entry.bufs.length === 0) pool.delete(key);
  }
  return log;
}

/** Gives a disposed graph's buffers back to the pool. */
export function releaseCapturedBuffers(bufs: readonly CapturedBuffer[]): void {
  for (const c of bufs) recycle(c.backend, c.buf, c.size, c.dtype);
}

/** Frees every pooled buffer (e.g. before switching workloads). */
export function releasePool(): void {
  for (const entry of pool.values()) entry.bufs.forEach((b) => entry.backend.free(b));
  pool.clear();
  pooledBytes = 0;
}

/**
 * Sets the pool's bound in bytes (default MMGPT_POOL_MB, else 2048 MB), freeing the least
 * recently used buffers beyond it; returns the previous bound.
 */
export function setPoolLimit(bytes: number): number {
  if (!(Number.isFinite(bytes) && bytes >= 0))
    throw new Error(`setPoolLimit: need a number of bytes >= 0, got ${bytes}`);
  const previous = poolLimitBytes;
  poolLimitBytes = bytes;
  evictUntil(poolLimitBytes);
  return previous;
}

/** An autodiff record: the inputs of an op and how to turn the output gradient into theirs. */
export interface Node {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Returns one gradient per input (null where the input needs none). Runs with grad disabled. */
  readonly backward: (gradOutput: Tensor) => (Tensor | null)[];
}

const stats = { liveTensors: 0, liveStorages: 0, liveBytes: 0, peakBytes: 0 };
let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly size: number;
  readonly dtype: DType;
  private storage: Storage | null;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: Node | null = null;
  /** Optional human-readable name (parameters carry their state-dict name). */
  name = '';

  /** Wraps a storage (taking one reference). Use the factory functions in ops.ts instead. */
  constructor(storage: Storage, shape: readonly number[]) {
    const size = shape.reduce((p, s) => p * s, 1);
    if (size !== storage.size) {
      throw new Error(
        `Tensor: shape [${shape.join(', ')}] needs ${size} elements, storage has ${storage.size}`,
      );
    }
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.size = size;
    this.dtype = storage.dtype;
    stats.liveTensors++;
    trackInScope(this);
  }

  get backend(): Backend {
    return this.store().backend;
  }

  /** The backend buffer; throws if the tensor was disposed. */
  get buf(): Buf {
    const buf = this.store().buf;
    if (buf === null) throw new Error(`Tensor #${this.id} ${this.describe()} was already freed`);
    return buf;
  }

  get isDisposed(): boolean {
    return this.storage === null;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A new tensor sharing this one's storage (no copy); used by reshape and detach. */
  shareStorage(shape: readonly number[]): Tensor {
    const storage = this.store();
    storage.refs++;
    try {
      return new Tensor(storage, shape);
    } catch (e) {
      storage.refs--;
      throw e;
    }
  }

  /** True if no other tensor shares this one's storage. */
  ownsStorageAlone(): boolean {
    return this.storage !== null && this.storage.refs === 1;
  }

  /** Releases this tensor's reference to its storage (and its gradient). Idempotent. */
  dispose(): void {
    if (this.storage === null) return;
    this.storage.release();
    this.storage = null;
    this.node = null;
    stats.liveTensors--;
    if (this.grad !== null) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Host copy of the data. */
  toArray(): Float32Array | Int32Array {
    return this.backend.download(this.buf, this.size, this.dtype);
  }

  toFloat32Array(): Float32Array {
    if (this.dtype !== 'float32')
      throw new Error(`toFloat32Array: tensor ${this.describe()} is ${this.dtype}`);
    return this.toArray() as Float32Array;
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new Error(`item(): tensor ${this.describe()} has ${this.size} elements, not 1`);
    return this.toArray()[0];
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}[${this.shape.join(', ')}] ${this.dtype}`;
  }

  /**
   * Reverse-mode autodiff from this tensor. Without `gradOutput` the tensor must have one
   * element and the seed gradient is 1. Gradients of leaves that require grad are added into
   * their `.grad` (kept tensors, so they survive `tidy`); intermediate gradients are freed.
   */
  backward(gradOutput?: Tensor): void {
    if (!this.requiresGrad)
      throw new Error(`backward(): tensor ${this.describe()} does not require grad`);
    const order = topologicalOrder(this);
    const grads = new Map<Tensor, Tensor>();
    const backend = this.backend;
    if (gradOutput) {
      checkSameShape('backward', this, gradOutput);
      grads.set(this, gradOutput);
    } else {
      if (this.size !== 1)
        throw new Error(`backward(): tensor ${this.describe()} is not a scalar; pass a gradient`);
      const seed = new Tensor(
        new Storage(allocBuffer(backend, 1, 'float32', false), 1, 'float32', backend),
        this.shape,
      ); // written by the fill below: no zero-fill first
      backend.fill(seed.buf, 1, 1);
      unitSeeds.add(seed);
      grads.set(this, seed);
    }
    noGrad(() => {
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        const g = grads.get(t);
        if (g === undefined) continue;
        grads.delete(t);
        if (t.node === null) {
          const adopted = accumulateLeafGrad(t, g, g !== gradOutput);
          if (!adopted && g !== gradOutput) g.dispose();
          continue;
        }
        const raw = t.node.backward(g);
        // A backward rule may hand the output gradient (or one tensor twice) straight through;
        // give each such use its own view so that disposing one never frees another.
        const handedOut = new Set<Tensor>([g]);
        const inputGrads = raw.map((gi) => {
          if (gi === null || gi === undefined) return null;
          if (handedOut.has(gi)) return gi.shareStorage(gi.shape);
          handedOut.add(gi);
          return gi;
        });
        if (g !== gradOutput) g.dispose();
        t.node.inputs.forEach((input, k) => {
          const gi = inputGrads[k];
          if (gi === null) return;
          if (!input.requiresGrad) {
            gi.dispose();
            return;
          }
          checkSameShape(`${t.node!.op} backward`, input, gi);
          const prev = grads.get(input);
          if (prev === undefined) {
            grads.set(input, gi);
          } else {
            // Out of place: a gradient in the map may share storage with another one. One
            // written sum (not a zero-filled buffer and two accumulations).
            const sum = new Tensor(
              new Storage(
                allocBuffer(backend, gi.size, 'float32', false),
                gi.size,
                'float32',
                backend,
              ),
              gi.shape,
            );
            backend.binary('add', prev.buf, gi.buf, sum.buf, [gi.size], [1], [1]);
            prev.dispose();
            gi.dispose();
            grads.set(input, sum);
          }
        });
      }
    });
  }

  private store(): Storage {
    if (this.storage === null)
      throw new Error(`Tensor #${this.id} ${this.describe()} was already freed`);
    return this.storage;
  }
}

/**
 * Adds g into leaf.grad. A leaf without a gradient takes g itself when g is a temporary that
 * nothing else shares (`mayAdopt` and g alone on its storage): no copy, no zero-fill. Returns
 * whether g was adopted (then the caller must not dispose it).
 */
function accumulateLeafGrad(leaf: Tensor, g: Tensor, mayAdopt: boolean): boolean {
  if (leaf.grad === null) {
    if (mayAdopt && g.ownsStorageAlone()) {
      untrack(g);
      leaf.grad = g;
      return true;
    }
    const copy = new Tensor(
      new Storage(
        allocBuffer(leaf.backend, g.size, 'float32', false),
        g.size,
        'float32',
        leaf.backend,
      ),
      leaf.shape,
    );
    leaf.backend.copyBlock(g.buf, copy.buf, 1, 1, 0, 1, 0, 1, g.size, false);
    untrack(copy);
    leaf.grad = copy;
  } else {
    leaf.backend.axpy(g.buf, leaf.grad.buf, g.size, 1);
  }
  return false;
}

/** Seed gradients of backward() (exactly 1): a backward rule may skip multiplying by them. */
const unitSeeds = new WeakSet<Tensor>();

/** True if g is the seed gradient 1 that backward() starts from. */
export function isUnitSeed(g: Tensor): boolean {
  return unitSeeds.has(g);
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS (graphs of deep models overflow a recursive one).
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, k] = top;
    const inputs = t.node ? t.node.inputs : [];
    if (k < inputs.length) {
      top[1]++;
      const next = inputs[k];
      if (next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

export function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    throw new Error(`${op}: shapes differ: [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
}

// ---- grad mode -------------------------------------------------------------------------------

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording autodiff nodes (inference, optimiser updates, backward itself). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// ---- scopes ----------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

function untrack(t: Tensor): void {
  for (const scope of scopes) scope.delete(t);
}

/** Removes t from every enclosing tidy scope: it lives until disposed explicitly. */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

/** Anything fn may return; tensors inside arrays and plain objects are kept. */
type Returned = unknown;

function collectTensors(value: Returned, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) value.forEach((v) => collectTensors(v, out));
  else if (
    value !== null &&
    typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    Object.values(value).forEach((v) => collectTensors(v, out));
  }
}

/**
 * Runs fn in a scope: every tensor created inside it is disposed when it returns, except the
 * tensors it returns (directly, or inside arrays / plain objects), which move to the enclosing
 * scope. Exceptions also dispose the scope's tensors.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    scope.forEach((t) => t.dispose());
    throw e;
  }
  scopes.pop();
  const returned = new Set<Tensor>();
  collectTensors(result, returned);
  scope.forEach((t) => {
    if (!returned.has(t)) t.dispose();
  });
  returned.forEach((t) => {
    if (scope.has(t)) trackInScope(t);
  });
  return result;
}

export interface MemoryStats {
  /** Bytes parked in the buffer pool (not live). */
  pooledBytes: number;
  liveTensors: number;
  liveStorages: number;
  liveBytes: number;
  peakBytes: number;
}

export function memoryStats(): MemoryStats {
  return { ...stats, pooledBytes };
}

// ---- construction helpers used by ops.ts -----------------------------------------------------

/** A new tensor on the current backend: zero-filled, or (zeroFill false) with unspecified contents. */
export function empty(
  shape: readonly number[],
  dtype: DType = 'float32',
  backend: Backend = getBackend(),
  zeroFill = true,
): Tensor {
  const size = shape.reduce((p, s) => p * s, 1);
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) throw new Error(`invalid shape [${shape.join(', ')}]`);
  }
  return new Tensor(
    new Storage(allocBuffer(backend, size, dtype, zeroFill), size, dtype, backend),
    shape,
  );
}

/** A tensor holding a copy of host data. */
export function fromData(
  data: Float32Array | Int32Array,
  shape: readonly number[],
  backend: Backend = getBackend(),
): Tensor {
  const size = shape.reduce((p, s) => p * s, 1);
  if (size !== data.length) {
    throw new Error(
      `tensor: shape [${shape.join(', ')}] needs ${size} elements, got ${data.length}`,
    );
  }
  const dtype: DType = data instanceof Int32Array ? 'int32' : 'float32';
  if (pooledUploads !== null && pooledUploads.backend === backend) {
    const buf = allocBuffer(backend, size, dtype, false);
    pooledUploads.write(buf, data);
    return new Tensor(new Storage(buf, size, dtype, backend), shape);
  }
  return new Tensor(new Storage(backend.upload(data), size, dtype, backend, false), shape);
}

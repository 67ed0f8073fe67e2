// The one seeded random number generator that every random choice in mmgpt draws from.
//
// Generator: xoshiro128** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c),
// 128 bits of state, period 2^128 - 1, seeded by splitmix32 as the authors recommend.
// Notable choices:
// - Everything is uint32 arithmetic via Math.imul and >>> 0, so the stream is identical on
//   every platform and Node version.
// - `normal()` uses Box-Muller and does not cache its second value, so the whole state is the
//   four state words: `getState()` / `setState()` capture it exactly (checkpoint resume).
// - `int(n)` is unbiased (rejection of the short tail), not `floor(uniform() * n)`.
// - `deriveSeed(seed, label)` gives independent, named sub-streams (e.g. 'cmnist-v2/train')
//   without consuming anything from a parent generator.

const TWO_POW_32 = 4294967296;

/** splitmix32: one step of the mixing function used to expand a seed into generator state. */
function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97) >>> 0;
  z = (z ^ (z >>> 15)) >>> 0;
  return [next, z];
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`${what}: seed must be a non-negative safe integer, got ${seed}`);
  }
}

/**
 * A seed for a named sub-stream of `seed`: FNV-1a over the label, mixed with both 32-bit halves
 * of the seed through splitmix32. Different labels give unrelated streams.
 */
export function deriveSeed(seed: number, label: string): number {
  checkSeed(seed, 'deriveSeed');
  let hash = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    hash = Math.imul(hash ^ label.charCodeAt(i), 0x01000193) >>> 0;
  }
  const low = seed >>> 0;
  const high = Math.floor(seed / TWO_POW_32) >>> 0;
  let [state, out] = splitmix32((low ^ hash) >>> 0);
  [state, out] = splitmix32((state ^ high ^ out) >>> 0);
  return out;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** `seed`: any non-negative safe integer (both 32-bit halves are used). */
  constructor(seed: number) {
    checkSeed(seed, 'Rng');
    let state = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32) >>> 0, 0x9e3779b1);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(state >>> 0);
      state = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  /** The next uint32 in [0, 2^32). */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.next() / TWO_POW_32;
  }

  /** A uniform integer in [0, n), unbiased; n must be an integer in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    // Reject draws from the incomplete last block of size (2^32 mod n).
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.next();
      if (x < limit) return x % n;
    }
  }

  /** A standard normal sample (Box-Muller; two uniforms per call, no cached spare). */
  normal(): number {
    const u1 = (this.next() + 1) / (TWO_POW_32 + 1); // (0, 1): log is finite
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[] | Int32Array): void {
    const a = items as { [index: number]: T | number; length: number };
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i]!;
      a[i] = a[j]!;
      a[j] = tmp;
    }
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const perm = new Int32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    this.shuffle(perm);
    return perm;
  }

  /** The full generator state: four uint32 words. */
  getState(): number[] {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** Restores a state from `getState()`. */
  setState(state: number[]): void {
    if (
      !Array.isArray(state) ||
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32)
    ) {
      throw new Error(
        `Rng.setState: expected 4 uint32 words from getState(), got ${JSON.stringify(state)}`,
      );
    }
    if (state.every((w) => w === 0)) {
      throw new Error('Rng.setState: the all-zero state is invalid for xoshiro128**');
    }
    [this.s0, this.s1, this.s2, this.s3] = state as [number, number, number, number];
  }
}

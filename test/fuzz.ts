// Seeded mutation fuzzing for the loaders' tests: truncations, bit flips, byte runs, and 4- or
// 8-byte fields set to extremes, drawn from the project's Rng so every failure reproduces from its
// case number. `fuzzLoader` runs a loader on each mutant and checks that it either loads or
// throws a clean Error that names the input, within a time limit per case and without the
// process's memory growing by more than a bound (no huge allocation).

import assert from 'node:assert/strict';
import { Rng } from '../src/nn/rng';

/** Values a length or size field is set to. */
export const EXTREME_U32 = [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];
export const EXTREME_U64 = [
  0n,
  1n,
  2n ** 31n,
  2n ** 32n + 7n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
  100_000_001n,
];

/** One random mutation of `input` (a fresh buffer). */
export function mutate(input: Buffer, rng: Rng): Buffer {
  const out = Buffer.from(input);
  const at = () => rng.int(Math.max(1, out.length));
  switch (rng.int(6)) {
    case 0: // truncation
      return out.subarray(0, rng.int(out.length));
    case 1: {
      // bit flips
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips; i++) out[at()] ^= 1 << rng.int(8);
      return out;
    }
    case 2: {
      // a 4-byte field at a random offset set to an extreme, either byte order
      const offset = Math.min(at(), Math.max(0, out.length - 4));
      const value = EXTREME_U32[rng.int(EXTREME_U32.length)]!;
      if (out.length >= 4) {
        if (rng.int(2) === 0) out.writeUInt32BE(value, offset);
        else out.writeUInt32LE(value, offset);
      }
      return out;
    }
    case 3: {
      // an 8-byte little-endian field set to an extreme (at offset 0 half the time)
      if (out.length < 8) return out;
      const offset = rng.int(2) === 0 ? 0 : Math.min(at(), out.length - 8);
      out.writeBigUInt64LE(EXTREME_U64[rng.int(EXTREME_U64.length)]!, offset);
      return out;
    }
    case 4: {
      // a run of random bytes
      const start = at();
      const length = Math.min(out.length - start, 1 + rng.int(16));
      for (let i = 0; i < length; i++) out[start + i] = rng.int(256);
      return out;
    }
    default: {
      // bytes cut out of the middle
      const start = at();
      const length = 1 + rng.int(32);
      return Buffer.concat([out.subarray(0, start), out.subarray(start + length)]);
    }
  }
}

export interface FuzzOutcome {
  loaded: number;
  refused: number;
  /** Distinct error messages with the input's name removed, a few examples of each kind. */
  messages: Set<string>;
  slowestMs: number;
}

/**
 * Runs `load(mutant, name)` on `cases` mutants; every case must load or throw an Error whose
 * message contains `name`, take under `maxMsPerCase`, and the RSS may not grow by more than
 * `maxRssGrowthBytes` over the run.
 */
export function fuzzLoader(opts: {
  seed: number;
  cases: number;
  make: (rng: Rng, caseNumber: number) => Buffer;
  load: (input: Buffer, name: string) => void;
  maxMsPerCase?: number;
  maxRssGrowthBytes?: number;
}): FuzzOutcome {
  const rng = new Rng(opts.seed);
  const outcome: FuzzOutcome = { loaded: 0, refused: 0, messages: new Set(), slowestMs: 0 };
  const rssBefore = process.memoryUsage().rss;
  for (let i = 0; i < opts.cases; i++) {
    const input = opts.make(rng, i);
    const name = `fuzz-case-${i}`;
    const t0 = performance.now();
    try {
      opts.load(input, name);
      outcome.loaded++;
    } catch (e) {
      assert.ok(e instanceof Error, `case ${i}: threw a non-Error ${String(e)}`);
      assert.ok(
        e.message.includes(name),
        `case ${i}: the error does not name the input: ${e.constructor.name}: ${e.message}`,
      );
      outcome.refused++;
      if (outcome.messages.size < 200)
        outcome.messages.add(e.message.replace(name, '<file>').slice(0, 120));
    }
    const ms = performance.now() - t0;
    outcome.slowestMs = Math.max(outcome.slowestMs, ms);
    assert.ok(ms < (opts.maxMsPerCase ?? 1000), `case ${i} took ${ms.toFixed(0)} ms`);
  }
  const growth = process.memoryUsage().rss - rssBefore;
  assert.ok(
    growth < (opts.maxRssGrowthBytes ?? 256 * 1024 * 1024),
    `RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB over the run`,
  );
  return outcome;
}

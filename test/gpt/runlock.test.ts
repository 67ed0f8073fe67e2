// One writer per run directory, with two real processes: a child holds the lock; trainGpt (the
// notebooks' trainer), trainPipeline and the `mmgpt train` command line in this process or a
// third one are refused with a message naming the child; once the child is killed its lock is
// stale and the next writer takes it over with a warning.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import type { ChildProcess } from 'child_process';
import { setBackend } from '../../src/engine/registry';
import { Vocab } from '../../src/data/vocab';
import { trainGpt } from '../../src/gpt/train';
import { LOCK_FILE, acquireRunLock } from '../../src/gpt/runlock';
import { trainPipeline } from '../../src/pipeline/train';
import { cyclicSource, oneLayerPreset } from './helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

const runlockModule = path.join(__dirname, '..', '..', 'src', 'gpt', 'runlock.js');
const cli = path.join(__dirname, '..', '..', '..', 'bin', 'mmgpt.js');

const vocab = new Vocab(16);
const preset = oneLayerPreset({ trainLimit: 16 });
const trainOptions = (runDir: string, log: (l: string) => void) => ({
  runDir,
  preset,
  vocab,
  train: cyclicSource(vocab, 16),
  test: cyclicSource(vocab, 8),
  tokenizerHash: 'h',
  log,
});

/** A second process that takes the lock on `dir` and holds it until killed. */
async function holdLockInChild(dir: string): Promise<ChildProcess> {
  const script =
    `const { acquireRunLock } = require(${JSON.stringify(runlockModule)});` +
    `acquireRunLock(${JSON.stringify(dir)}, console.log); console.log('locked');` +
    `setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

test('a second writer is refused naming the holder; a stale lock is taken over', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-lock-'));
  const child = await holdLockInChild(dir);
  try {
    const holder = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
    assert.equal(holder.pid, child.pid);
    assert.equal(holder.host, os.hostname());
    const refused = new RegExp(`being written by pid ${child.pid} on host ${os.hostname()}`);
    // The notebooks' trainer, the pipeline (before it loads any data) and the command line.
    await assert.rejects(trainGpt(trainOptions(dir, () => undefined)), refused);
    await assert.rejects(trainPipeline('tiny', { runDir: dir, log: () => undefined }), refused);
    const third = spawnSync(
      process.execPath,
      [cli, 'train', '--preset', 'tiny', '--run-dir', dir],
      { encoding: 'utf8', env: { ...process.env, MMGPT_BACKEND: 'js' } },
    );
    assert.equal(third.status, 1, third.stderr);
    assert.match(third.stderr, refused);
    assert.equal(fs.existsSync(path.join(dir, 'checkpoint.safetensors')), false);
  } finally {
    await kill(child);
  }
  // The holder was killed: its lock is stale and is taken over with a warning.
  assert.ok(fs.existsSync(path.join(dir, LOCK_FILE)), 'a killed holder leaves its lock behind');
  const lines: string[] = [];
  const result = await trainGpt(trainOptions(dir, (l) => lines.push(l)));
  assert.equal(result.complete, true);
  assert.ok(
    lines.some((l) => l.includes(`stale lock`) && l.includes(`pid ${child.pid}`)),
    lines.join('\n'),
  );
  assert.equal(fs.existsSync(path.join(dir, LOCK_FILE)), false, 'released after training');
});

test('within one process a run directory has one writer; a lock from another host is kept', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-lock-'));
  const lock = acquireRunLock(dir, () => undefined);
  assert.throws(() => acquireRunLock(dir, () => undefined), /already being written by this/);
  lock.release();
  lock.release();
  acquireRunLock(dir, () => undefined).release();

  const foreign = { pid: 1, host: 'elsewhere', since: 'then', command: 'mmgpt train' };
  fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(foreign));
  assert.throws(
    () => acquireRunLock(dir, () => undefined),
    /pid 1 on host elsewhere.*if that process is gone, delete .*\.lock/,
  );
});

// The backend registry (src/engine/registry.ts): the default choice and its fallbacks, each in a
// child process with the native addon and the wasm module made missing through the loaders'
// path variables (MMGPT_NATIVE_ADDON, MMGPT_WASM_MODULE): without the addon the wasm backend is
// chosen with one line on stderr saying so; without both, the reference backend with one
// warning; MMGPT_BACKEND=wasm selects it or fails naming why; useBackend installs an instance.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as path from 'path';

import { jsBackend } from '../../src/engine/backends/js';
import { getBackend, useBackend } from '../../src/engine/registry';
import { targetOf } from './backend_targets';

const REGISTRY = path.join(__dirname, '..', '..', 'src', 'engine', 'registry.js');
const MISSING = path.join(__dirname, 'no-such-dir', 'missing');
const wasmSkip = targetOf('wasm').skip;

/** getBackend() twice in a fresh process: the backend's name, and stderr's lines. */
function chooseIn(env: Record<string, string>): { name: string; stderr: string[]; status: number } {
  const script = `const r = require(${JSON.stringify(REGISTRY)}); r.getBackend(); console.log(r.getBackend().name);`;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (env.MMGPT_BACKEND === undefined) delete childEnv.MMGPT_BACKEND;
  const r = spawnSync(process.execPath, ['-e', script], { env: childEnv, encoding: 'utf8' });
  return {
    name: r.stdout.trim(),
    stderr: r.stderr.split('\n').filter((l) => l !== ''),
    status: r.status ?? -1,
  };
}

test(
  'without the native addon the wasm backend is the default, with one line saying so',
  { skip: wasmSkip },
  () => {
    const r = chooseIn({ MMGPT_NATIVE_ADDON: MISSING });
    assert.equal(r.status, 0, r.stderr.join('\n'));
    assert.equal(r.name, 'wasm');
    assert.equal(r.stderr.length, 1, `one line, got: ${r.stderr.join(' | ')}`);
    assert.match(
      r.stderr[0],
      /^mmgpt: native cpu backend unavailable \(the native addon is not built/,
    );
    assert.match(r.stderr[0], /using the wasm backend/);
  },
);

test('without the addon and the wasm module the reference backend is the default, warned once', () => {
  const r = chooseIn({ MMGPT_NATIVE_ADDON: MISSING, MMGPT_WASM_MODULE: MISSING });
  assert.equal(r.status, 0, r.stderr.join('\n'));
  assert.equal(r.name, 'js');
  assert.equal(r.stderr.length, 1, `one line, got: ${r.stderr.join(' | ')}`);
  assert.match(r.stderr[0], /wasm backend unavailable \(the wasm kernels are not built/);
  assert.match(r.stderr[0], /using the slow reference backend/);
});

test('MMGPT_BACKEND=wasm selects the wasm backend, silently', { skip: wasmSkip }, () => {
  const r = chooseIn({ MMGPT_BACKEND: 'wasm' });
  assert.equal(r.status, 0, r.stderr.join('\n'));
  assert.equal(r.name, 'wasm');
  assert.deepEqual(r.stderr, []);
});

test('MMGPT_BACKEND=wasm without the module fails, saying why', () => {
  const r = chooseIn({ MMGPT_BACKEND: 'wasm', MMGPT_WASM_MODULE: MISSING });
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr.join('\n'),
    /backend 'wasm' is unavailable: the wasm kernels are not built/,
  );
});

test('useBackend installs a backend instance as the current one', () => {
  useBackend(jsBackend);
  assert.equal(getBackend(), jsBackend);
});

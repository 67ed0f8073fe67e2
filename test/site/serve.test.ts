// The local server of `mmgpt site --serve` (src/site/serve.ts): each file with its MIME type
// (application/wasm for the kernels, which browsers need to compile a streamed module), the
// folder's index.html at /, and nothing outside the folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { serveSite } from '../../src/site/serve';

test('serves the folder with MIME types, and nothing outside it', async () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-serve-'));
  const dir = path.join(parent, 'site');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(parent, 'secret.txt'), 'outside');
  const files: Record<string, string> = {
    'index.html': 'text/html; charset=utf-8',
    'mmgpt.js': 'text/javascript; charset=utf-8',
    'manifest.json': 'application/json; charset=utf-8',
    'mmgpt_kernels.wasm': 'application/wasm',
    'checkpoint.safetensors': 'application/octet-stream',
  };
  for (const name of Object.keys(files)) fs.writeFileSync(path.join(dir, name), `bytes of ${name}`);
  const { url, close } = await serveSite(dir, 0);
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const [name, type] of Object.entries(files)) {
      const response = await fetch(url + name);
      assert.equal(response.status, 200, name);
      assert.equal(response.headers.get('content-type'), type, name);
      assert.equal(await response.text(), `bytes of ${name}`);
    }
    assert.equal(await (await fetch(url)).text(), 'bytes of index.html');
    for (const outside of ['../secret.txt', '%2e%2e/secret.txt', '..%2fsecret.txt', 'missing.js'])
      assert.equal((await fetch(url + outside)).status, 404, outside);
  } finally {
    await close();
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

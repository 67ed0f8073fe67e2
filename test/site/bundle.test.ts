// The page's bundle (src/site/bundle.ts): it builds for the browser from the TypeScript sources,
// holds the compute modules (engine, GPT, sampling, tokenizer, vocabulary, palette, safetensors
// decoding) and none of the file-reading ones, and imports no Node built-in. A page that imports
// one fails the build, naming it: the check that keeps the compute modules free of them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { projectRoot } from '../../src/paths';
import { buildBundle } from '../../src/site/bundle';

const NODE_BUILT_INS = ['fs', 'path', 'os', 'crypto', 'zlib', 'child_process', 'http', 'util'];

test('the bundle builds for the browser with the compute modules and no Node built-in', async () => {
  const bundle = await buildBundle();
  for (const file of [
    'src/site/page.ts',
    'src/engine/tensor.ts',
    'src/engine/backends/js.ts',
    'src/gpt/model.ts',
    'src/gpt/checkpointContents.ts',
    'src/sampling/modes.ts',
    'src/sampling/rerank.ts',
    'src/sampling/searches.ts',
    'src/sampling/presets.ts',
    'src/vqvae/model.ts',
    'src/vqvae/checkpointContents.ts',
    'src/data/vocab.ts',
    'src/data/palette.ts',
    'src/nn/safetensorsFormat.ts',
  ])
    assert.ok(bundle.inputs.includes(file), `the bundle holds ${file}`);
  for (const file of [
    'src/nn/safetensors.ts',
    'src/data/coloured.ts',
    'src/data/mnist.ts',
    'src/gpt/checkpoint.ts',
    'src/vqvae/checkpoint.ts',
    'src/paths.ts',
    'src/engine/backends/cpu.ts',
  ])
    assert.ok(!bundle.inputs.includes(file), `the bundle does not hold ${file}`);
  for (const name of NODE_BUILT_INS) {
    const imports = new RegExp(`(require\\(|from ?|import\\()["'](node:)?${name}["']`);
    assert.doesNotMatch(bundle.code, imports, `the bundle imports ${name}`);
  }
  assert.ok(bundle.code.length < 1_000_000, `bundle of ${bundle.code.length} bytes`);
  // The engine's wasm backend is in the page wherever the engine has one.
  const wasm = fs.existsSync(path.join(projectRoot(), 'src', 'engine', 'backends', 'wasm.ts'));
  assert.equal(bundle.wasmBackend, wasm);
  assert.equal(bundle.inputs.includes('src/engine/backends/wasm.ts'), wasm);
});

test('a page importing a Node built-in fails the build, naming it', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-bundle-'));
  try {
    fs.mkdirSync(path.join(root, 'src', 'site'), { recursive: true });
    fs.writeFileSync(
      path.join(root, 'src', 'site', 'page.ts'),
      "import * as fs from 'fs';\nconsole.log(fs.existsSync('x'));\n",
    );
    await assert.rejects(buildBundle(root), /Could not resolve "fs"/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

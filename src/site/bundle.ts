// The page's one JavaScript bundle: src/site/page.ts and everything it imports from src/ (the
// engine, the GPT, the sampling, the tokenizer, the vocabulary and palette, safetensors
// decoding), bundled from the TypeScript sources by esbuild for the browser, minified.
//
// esbuild with platform 'browser' refuses a Node built-in (fs, path, crypto, ...): a compute
// module that imports one fails the build, naming it. Two substitutions, both in one plugin:
// - the engine's Node-only backend loaders (src/engine/backends/cpu.ts and cuda.ts load a Node
//   addon, wasm_node.ts reads the .wasm from a file) are reachable only through the registry's
//   lazy require; in the page each is a module whose loader answers that it does not run in a
//   browser (the page compiles the .wasm it fetched itself);
// - src/site/wasm.ts, the page's handle on the engine's wasm backend, is replaced by a
//   re-export of src/engine/backends/wasm.ts when that file exists (else it stays: no wasm).
// `process.env` reads as an empty object: a page has no environment, every MMGPT_* is unset.

import * as fs from 'fs';
import * as path from 'path';
import type * as esbuild from 'esbuild';
import { projectRoot } from '../paths';

/** The Node-only backend modules under src/engine/backends/ (no extension), and their loaders. */
const NODE_ONLY_BACKENDS: Readonly<Record<string, string>> = {
  cpu: 'loadCpuBackend',
  cuda: 'loadCudaBackend',
  wasm_node: 'loadWasmBackend',
};

/** The engine's wasm backend, when the engine has one. */
function wasmBackendSource(srcDir: string): string | null {
  const file = path.join(srcDir, 'engine', 'backends', 'wasm.ts');
  return fs.existsSync(file) ? file : null;
}

function browserPlugin(srcDir: string): esbuild.Plugin {
  const backendsDir = path.join(srcDir, 'engine', 'backends');
  const wasm = wasmBackendSource(srcDir);
  return {
    name: 'mmgpt-browser',
    setup(build) {
      const names = Object.keys(NODE_ONLY_BACKENDS).join('|');
      build.onResolve({ filter: new RegExp(`^\\./backends/(${names})$`) }, (args) => {
        if (path.dirname(args.importer) !== path.join(srcDir, 'engine')) return undefined;
        return { path: args.path.slice('./backends/'.length), namespace: 'mmgpt-native' };
      });
      build.onLoad({ filter: /.*/, namespace: 'mmgpt-native' }, (args) => {
        const loader = NODE_ONLY_BACKENDS[args.path]!;
        const error = `src/engine/backends/${args.path}.ts is Node code: it does not run in a browser`;
        return {
          contents: `export function ${loader}() { return { error: ${JSON.stringify(error)} }; }`,
          loader: 'js',
        };
      });
      if (wasm !== null)
        build.onLoad({ filter: /[\\/]site[\\/]wasm\.ts$/ }, () => ({
          contents: `export { createWasmBackend } from ${JSON.stringify(wasm)};`,
          loader: 'ts',
          resolveDir: backendsDir,
        }));
    },
  };
}

export interface BundleResult {
  /** The minified bundle. */
  code: string;
  /** The source files it holds, relative to the project root. */
  inputs: string[];
  /** Whether the engine's wasm backend is in it. */
  wasmBackend: boolean;
  warnings: string[];
}

/** Bundles src/site/page.ts for the browser (see the file header); throws on any build error. */
export async function buildBundle(root: string = projectRoot()): Promise<BundleResult> {
  const srcDir = path.join(root, 'src');
  const entry = path.join(srcDir, 'site', 'page.ts');
  if (!fs.existsSync(entry))
    throw new Error(
      `the page's source ${entry} is missing: mmgpt site bundles the TypeScript sources of src/`,
    );
  // Loaded here, not at import: the command line (which imports this module) runs where only
  // the runtime packages are installed, e.g. on a GPU host from gpu-check.sh's payload.
  let bundler: typeof esbuild;
  try {
    bundler = await import('esbuild');
  } catch (e) {
    throw new Error(
      `mmgpt site bundles the page with the npm package esbuild, which does not load here (${(e as Error).message.split('\n')[0]}): install the dependencies with npm ci`,
    );
  }
  const result = await bundler.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    define: { 'process.env': '{}' },
    plugins: [browserPlugin(srcDir)],
    absWorkingDir: root,
  });
  const code = result.outputFiles[0]!.text;
  return {
    code,
    inputs: Object.keys(result.metafile.inputs),
    wasmBackend: wasmBackendSource(srcDir) !== null,
    warnings: result.warnings.map((w) => w.text),
  };
}

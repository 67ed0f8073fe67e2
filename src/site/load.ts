// Loading the page's model where it runs (the page's worker, worker.ts): manifest.json, the
// backend, the weights and the tokenizer, each file checked against the manifest (its size, and
// its SHA-256 where the browser can hash: a secure context such as 127.0.0.1 or https) before it
// is decoded, so a damaged file is named as such. The backend is the engine's wasm one when the
// bundle has it, the folder has the .wasm and the browser has WebAssembly SIMD; else the js
// reference backend, with a note that says why.

import { useBackend } from '../engine/registry';
import { jsBackend } from '../engine/backends/js';
import { siteModelFromBytes, type SiteModel } from './api';
import { SITE_FILES, type SiteFile, type SiteManifest } from './manifest';
import { createWasmBackend } from './wasm';

/** A tiny module returning a v128 constant: valid only where WebAssembly SIMD is. */
const SIMD_PROBE = Uint8Array.from(
  '0061736d010000000105016000017b030201000a16011400fd0c000000000000000000000000000000000b'.match(
    /../g,
  )!,
  (hex) => parseInt(hex, 16),
);

function hasWasmSimd(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** The bytes of a file of the site folder. */
export async function fetchBytes(file: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(file);
  } catch (e) {
    throw new Error(`${file} could not be fetched (${(e as Error).message})`);
  }
  if (!response.ok) throw new Error(`${file}: the server answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Checks fetched bytes against the manifest (size, and SHA-256 where the browser can hash). */
async function checkFile(bytes: Uint8Array, expected: SiteFile): Promise<void> {
  const stale = `: the file is damaged, or is not the one manifest.json was written with`;
  if (bytes.length !== expected.bytes)
    throw new Error(`${expected.file} has ${bytes.length} bytes, not ${expected.bytes}${stale}`);
  if (globalThis.crypto?.subtle === undefined) return; // not a secure context: sizes only
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  if (hex !== expected.sha256)
    throw new Error(
      `${expected.file} has SHA-256 ${hex.slice(0, 12)}..., not ${expected.sha256.slice(0, 12)}...${stale}`,
    );
}

/** Installs the backend (see the file header); returns the notes that say why it is js. */
async function chooseBackend(manifest: SiteManifest, asked: string | null): Promise<string[]> {
  if (asked === 'js') {
    useBackend(jsBackend);
    return [];
  }
  const notes: string[] = [];
  const why =
    createWasmBackend === null || manifest.wasm === null
      ? 'this build of the page has no wasm backend'
      : !hasWasmSimd()
        ? 'this browser lacks WebAssembly SIMD'
        : null;
  if (why === null) {
    try {
      const bytes = await fetchBytes(manifest.wasm!.file);
      await checkFile(bytes, manifest.wasm!);
      useBackend(await createWasmBackend!(bytes));
      return notes;
    } catch (e) {
      notes.push(`the wasm backend did not start (${(e as Error).message})`);
    }
  } else notes.push(why);
  useBackend(jsBackend);
  notes.push('running on the slower js reference backend');
  return notes;
}

export interface LoadedSite {
  manifest: SiteManifest;
  model: SiteModel;
  /** Why the page runs the js backend, when it does. */
  notes: string[];
}

/** Loads the manifest, the backend (`asked`: 'js', 'wasm' or null) and the model. */
export async function loadSite(asked: string | null): Promise<LoadedSite> {
  const manifest = JSON.parse(
    new TextDecoder().decode(await fetchBytes(SITE_FILES.manifest)),
  ) as SiteManifest;
  const notes = await chooseBackend(manifest, asked);
  const [checkpoint, tokenizer] = await Promise.all([
    fetchBytes(manifest.checkpoint.file),
    fetchBytes(manifest.tokenizer.file),
  ]);
  await checkFile(checkpoint, manifest.checkpoint);
  await checkFile(tokenizer, manifest.tokenizer);
  const model = siteModelFromBytes(
    { name: manifest.checkpoint.file, bytes: checkpoint },
    { name: manifest.tokenizer.file, bytes: tokenizer },
  );
  return { manifest, model, notes };
}

// What a site folder holds (`mmgpt site`) and its manifest.json: the run's provenance (the
// checkpoint's and the tokenizer's hashes, the model and training configuration, the commit and
// date it was built from) and what the page shows from it (the palette, the example captions).
// Pure: the command writes it, the page reads it.

import type { GptConfig } from '../gpt/model';

/** The files of a site folder. */
export const SITE_FILES = {
  page: 'index.html',
  bundle: 'mmgpt.js',
  manifest: 'manifest.json',
  checkpoint: 'checkpoint.safetensors',
  tokenizer: 'vqvae.safetensors',
  wasm: 'mmgpt_kernels.wasm',
  testImages: 'test-images.json',
} as const;

export const SITE_FORMAT = 'mmgpt-site';
export const SITE_VERSION = 1;

/** One file of the folder: its name, size and SHA-256. */
export interface SiteFile {
  file: string;
  bytes: number;
  sha256: string;
}

export interface SiteManifest {
  format: typeof SITE_FORMAT;
  version: number;
  /** When the folder was written (ISO 8601). */
  date: string;
  /** The commit of the sources the bundle was built from (`+dirty` with local changes). */
  commit: string | null;
  checkpoint: SiteFile & {
    /** Where it was copied from, relative to the project when inside it. */
    source: string;
    /** The training preset (from the run's summary.json), or null when none is recorded. */
    preset: string | null;
    step: number;
    epoch: number;
    complete: boolean;
    gptConfig: GptConfig;
    trainConfig: Record<string, unknown>;
  };
  tokenizer: SiteFile & { fingerprint: string };
  bundle: SiteFile & { wasmBackend: boolean };
  /** The kernels' .wasm, or null when the engine had no wasm build. */
  wasm: SiteFile | null;
  /** The caption format and the words of each position. */
  vocabulary: { captionFormat: string; positions: string[][]; size: number };
  /** Palette colours by index: name and levels 0..3. */
  palette: { name: string; rgb: [number, number, number] }[];
  /** Test images (test-images.json): how many, and from which split. */
  testImages: { file: string; count: number; split: string } | null;
  /** Example captions for the caption box (the test images' captions). */
  exampleCaptions: string[];
}

/** test-images.json: each image as 2352 digits 0-3 ([28, 28, 3] row-major) and its caption. */
export interface TestImage {
  caption: string;
  levels: string;
}

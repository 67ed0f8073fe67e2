// `mmgpt site`: writes the static folder of the page from a trained run (a run directory, a
// checkpoint file, or shipped weights; default: weights/best). The folder (manifest.ts lists it):
// index.html (src/site/index.html), the bundle (bundle.ts), the checkpoint and its tokenizer
// copied byte for byte, the kernels' .wasm when the engine's wasm build is there
// (native/build-wasm/), 16 test images, and manifest.json with the run's provenance. Any static
// web server serves it; the page needs no server code.
// The run is loaded once here (loadRun), so a checkpoint whose tokenizer is not the one it was
// trained with fails now, not in the reader's browser.

import * as fs from 'fs';
import * as path from 'path';
import { projectRoot, weightsDir } from '../paths';
import { PALETTE } from '../data/palette';
import { COLOURS, SHADES } from '../data/palette';
import { DIGIT_WORDS, captionText } from '../data/vocab';
import { IMAGE_VALUES } from '../data/images';
import { loadColouredMnist } from '../data/coloured';
import { findCheckpoint, loadRun, type LoadedRun } from '../eval/run';
import { runProvenance } from '../pipeline/runs';
import { runsDir } from '../paths';
import { atomicWriteFile, makeDirectory } from '../nn/safetensors';
import { sha256Hex } from '../data/mnist';
import { buildBundle } from './bundle';
import {
  SITE_FILES,
  SITE_FORMAT,
  SITE_VERSION,
  type SiteFile,
  type SiteManifest,
  type TestImage,
} from './manifest';

/** The test images shipped in the folder: the first items of the test split. */
const TEST_IMAGE_COUNT = 16;

/** Where the engine's wasm build puts the kernels. */
function wasmBuildPath(root: string = projectRoot()): string {
  return path.join(root, 'native', 'build-wasm', 'mmgpt_kernels.wasm');
}

export interface SiteOptions {
  /** A checkpoint file or run directory; default weights/best. */
  checkpoint?: string;
  out: string;
  log?: (line: string) => void;
}

export interface SiteResult {
  dir: string;
  manifest: SiteManifest;
  /** Every file written, with its size. */
  files: { file: string; bytes: number }[];
}

function writeFile(dir: string, name: string, data: Uint8Array | string): SiteFile {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  atomicWriteFile(path.join(dir, name), bytes);
  return { file: name, bytes: bytes.length, sha256: sha256Hex(bytes) };
}

/** The first test images with their captions (test-images.json). */
function testImages(log: (line: string) => void): TestImage[] {
  const { test } = loadColouredMnist({ log });
  const count = Math.min(TEST_IMAGE_COUNT, test.count);
  return Array.from({ length: count }, (_, i) => ({
    caption: captionText(test.digit[i]!, test.fg[i]!, test.bg[i]!),
    levels: Array.from(test.images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES)).join(''),
  }));
}

/** The preset a run was trained with, from the summary.json beside its checkpoint (if any). */
function runPreset(checkpointPath: string): string | null {
  try {
    const summary = JSON.parse(
      fs.readFileSync(path.join(path.dirname(checkpointPath), 'summary.json'), 'utf8'),
    ) as { preset?: unknown };
    return typeof summary.preset === 'string' ? summary.preset : null;
  } catch {
    return null; // no summary beside the checkpoint
  }
}

/** The manifest's description of the run (provenance and what the page shows). */
function runManifest(
  run: LoadedRun,
  files: Pick<SiteManifest, 'checkpoint' | 'tokenizer' | 'bundle' | 'wasm'>,
  images: TestImage[],
): SiteManifest {
  return {
    format: SITE_FORMAT,
    version: SITE_VERSION,
    date: new Date().toISOString(),
    commit: runProvenance().commit,
    ...files,
    vocabulary: {
      captionFormat: '<shade> <colour> <digit> on <shade> <colour>',
      positions: [[...SHADES], [...COLOURS], [...DIGIT_WORDS], ['on'], [...SHADES], [...COLOURS]],
      size: run.vocab.size,
    },
    palette: PALETTE.map((c) => ({ name: c.name, rgb: [c.rgb[0], c.rgb[1], c.rgb[2]] })),
    testImages:
      images.length > 0
        ? { file: SITE_FILES.testImages, count: images.length, split: 'test' }
        : null,
    exampleCaptions: [...new Set(images.map((t) => t.caption))],
  };
}

/** Writes the site folder (see the file header); returns what it wrote. */
export async function writeSite(opts: SiteOptions): Promise<SiteResult> {
  const log = opts.log ?? (() => undefined);
  const root = projectRoot();
  const explicit = opts.checkpoint ?? path.join(weightsDir(), 'best');
  const checkpointPath = findCheckpoint({ explicit, runsDir: runsDir(), weightsDir: weightsDir() });
  const run = loadRun(checkpointPath);
  const bundle = await buildBundle(root);
  for (const w of bundle.warnings) log(`site: esbuild: ${w}`);
  const dir = path.resolve(opts.out);
  makeDirectory(dir);
  const wasmFile = wasmBuildPath(root);
  const wasm = fs.existsSync(wasmFile)
    ? writeFile(dir, SITE_FILES.wasm, fs.readFileSync(wasmFile))
    : null;
  if (wasm === null) log(`site: no ${path.relative(root, wasmFile)}: the page runs the js backend`);
  const images = testImages(log);
  const relative = path.relative(root, checkpointPath);
  const files = {
    checkpoint: {
      ...writeFile(dir, SITE_FILES.checkpoint, fs.readFileSync(checkpointPath)),
      source: relative.startsWith('..') ? checkpointPath : relative,
      preset: runPreset(checkpointPath),
      step: run.meta.step,
      epoch: run.meta.epoch,
      complete: run.meta.complete,
      gptConfig: run.meta.gptConfig,
      trainConfig: run.meta.trainConfig,
    },
    tokenizer: {
      ...writeFile(dir, SITE_FILES.tokenizer, fs.readFileSync(run.tokenizerPath)),
      fingerprint: run.tokenizerFingerprint,
    },
    bundle: { ...writeFile(dir, SITE_FILES.bundle, bundle.code), wasmBackend: bundle.wasmBackend },
    wasm,
  };
  if (images.length > 0) writeFile(dir, SITE_FILES.testImages, JSON.stringify(images));
  const manifest = runManifest(run, files, images);
  writeFile(dir, SITE_FILES.manifest, JSON.stringify(manifest, null, 2) + '\n');
  writeFile(dir, SITE_FILES.page, fs.readFileSync(path.join(root, 'src', 'site', 'index.html')));
  for (const p of run.model.parameters()) p.dispose();
  run.tokenizer.dispose();
  const written = fs
    .readdirSync(dir)
    .filter((f) => (Object.values(SITE_FILES) as string[]).includes(f))
    .map((file) => ({ file, bytes: fs.statSync(path.join(dir, file)).size }));
  return { dir, manifest, files: written };
}

// A run's samples as pictures. `writeFigures` draws the nine-sample grids into figures/ (or any
// folder): samples_text2image.png (images from the first 9 test captions, captioned with the
// prompt), samples_image2text.png (the first 9 test images with the generated captions) and
// samples_unconditional.png (9 unconditional image + caption samples), all with one seed.
// `drawSamples` and `writeSamples` are `mmgpt sample`: samples of one mode written as
// sample_000.png ... (28x28, levels k*85, readable back as an image2text input), grid.png (all
// samples captioned) and samples.json (the settings, the checkpoint and tokenizer hashes, and
// `samples` [{ image, caption, tokens, ... }]). For image2text each sample's PNG is the image as
// the model saw it: the VQ-VAE reconstruction of the input (the input itself is input.png).

import * as path from 'path';
import { getBackend } from '../engine/registry';
import { IMAGE_VALUES, loadColouredMnist } from '../data/coloured';
import { captionText } from '../data/vocab';
import { IMAGE_TOKENS } from '../data/sequences';
import { atomicWriteFile, makeDirectory } from '../nn/safetensors';
import { imageToText, textToImage, unconditional } from '../sampling/modes';
import type { Sample } from '../sampling/sample';
import {
  SAMPLING_CHOICE_DEFAULTS,
  describeModeSampling,
  modeOptions,
  resolveModeSampling,
  type ModeSampling,
  type SamplingChoice,
} from '../sampling/presets';
import { withImageViews } from '../sampling/views';
import type { LabelledImages } from '../eval/classifier';
import { sampleImageCodes, type ModeName } from '../eval/modes';
import { findCheckpoint, loadRun, type LoadedRun } from '../eval/run';
import { levelsToRgb, writeCaptionedGrid, writePng } from '../viz/png';
import { figuresDir, runsDir, weightsDir } from '../paths';

/**
 * `explicit`, else the newest complete run under runs/ (MMGPT_RUNS_DIR), else weights/
 * (MMGPT_WEIGHTS_DIR, as for the shipped tokenizers and classifier).
 */
export function resolveCheckpoint(explicit?: string): string {
  return findCheckpoint({ explicit, runsDir: runsDir(), weightsDir: weightsDir() });
}

/** Image i of decoded images [count, 28, 28, 3]. */
const imageAt = (images: Uint8Array, i: number): Uint8Array =>
  images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);

/** The images of samples, decoded by the run's tokenizer: [count, 28, 28, 3]. */
function decodeImages(run: LoadedRun, samples: readonly Sample[]): Uint8Array {
  return run.tokenizer.decode(sampleImageCodes(samples), samples.length);
}

// ---- the nine-sample grids -------------------------------------------------------------------

export const FIGURE_FILES = {
  textToImage: 'samples_text2image.png',
  imageToText: 'samples_image2text.png',
  unconditional: 'samples_unconditional.png',
} as const;

/** Each grid's caption images and captions, drawn from the run (count test items). */
function figureCells(
  run: LoadedRun,
  test: LabelledImages,
  choice: SamplingChoice,
  mode: ModeName,
  count: number,
): { image: Uint8Array; caption: string }[] {
  const opts = modeOptions(choice, mode);
  if (mode === 'textToImage') {
    const prompts = Array.from({ length: count }, (_, i) =>
      captionText(test.digit[i]!, test.fg[i]!, test.bg[i]!),
    );
    const images = decodeImages(run, textToImage(run.model, run.vocab, prompts, opts));
    return prompts.map((prompt, i) => ({ image: imageAt(images, i), caption: prompt }));
  }
  if (mode === 'imageToText') {
    const codes = run.tokenizer.encode(test.images, count); // [count, 49]
    const rows = Array.from({ length: count }, (_, i) =>
      codes.subarray(i * IMAGE_TOKENS, (i + 1) * IMAGE_TOKENS),
    );
    const withViews = withImageViews(opts, run.tokenizer, test.images, count);
    const samples = imageToText(run.model, run.vocab, rows, withViews);
    return samples.map((s, i) => ({ image: imageAt(test.images, i), caption: s.caption }));
  }
  const samples = unconditional(run.model, run.vocab, 9, opts);
  const images = decodeImages(run, samples);
  return samples.map((s, i) => ({ image: imageAt(images, i), caption: s.caption }));
}

const GRID_TITLES: Record<ModeName, string> = {
  textToImage: 'text -> image',
  imageToText: 'image -> text',
  unconditional: 'unconditional',
};

/**
 * The nine-sample grids in `dir`: images from the first 9 test captions, captions of the first 9
 * test images, 9 unconditional samples, each a captioned 3x3 grid. Returns the paths.
 */
export function writeSampleFigures(
  run: LoadedRun,
  test: LabelledImages,
  choice: SamplingChoice,
  dir: string,
  /** Appended to each file name (before .png), e.g. '_original-rules'. */
  suffix = '',
): string[] {
  const count = Math.min(9, test.count);
  if (count === 0) throw new Error('figures: the test set is empty');
  return (['textToImage', 'imageToText', 'unconditional'] as const).map((mode) => {
    const file = path.join(dir, FIGURE_FILES[mode].replace(/\.png$/, `${suffix}.png`));
    const settings = resolveModeSampling(choice.samplingPreset, mode, choice.overrides);
    const how = `seed ${choice.seed}, ${describeModeSampling(settings)}`;
    writeCaptionedGrid(file, figureCells(run, test, choice, mode, count), {
      columns: 3,
      title: `${GRID_TITLES[mode]} (${how})`,
    });
    return file;
  });
}

export interface FigureOptions {
  /** The checkpoint (a file or a run directory); default: `resolveCheckpoint()`. */
  checkpoint?: string;
  /** Where the grids go (default figures/). */
  outDir?: string;
  /** The sampling preset, settings over it, seed and batch size (default: the default preset). */
  sampling?: Partial<SamplingChoice>;
  /** Appended to each file name (before .png). */
  suffix?: string;
  log?: (line: string) => void;
}

/** Loads a run and the test split and draws the nine-sample grids; returns what it wrote. */
export async function writeFigures(
  opts: FigureOptions = {},
): Promise<{ checkpoint: string; files: string[] }> {
  const log = opts.log ?? (() => undefined);
  const checkpoint = resolveCheckpoint(opts.checkpoint);
  const run = loadRun(checkpoint);
  const data = loadColouredMnist({ log });
  const choice: SamplingChoice = { ...SAMPLING_CHOICE_DEFAULTS, ...opts.sampling };
  const files = writeSampleFigures(
    run,
    data.test,
    choice,
    opts.outDir ?? figuresDir(),
    opts.suffix,
  );
  return { checkpoint, files };
}

// ---- mmgpt sample ----------------------------------------------------------------------------

export const SAMPLE_MODES = ['text2image', 'image2text', 'unconditional'] as const;
export type SampleMode = (typeof SAMPLE_MODES)[number];

/** The sampler's name of each `mmgpt sample` mode. */
const SAMPLE_MODE_NAMES: Record<SampleMode, ModeName> = {
  text2image: 'textToImage',
  image2text: 'imageToText',
  unconditional: 'unconditional',
};

/** What to sample: a mode, how many, its prompt or image, and the sampling choice. */
export interface SampleRequest extends SamplingChoice {
  mode: SampleMode;
  n: number;
  /** text2image: the caption, normalised ("dark green eight on bright cyan"). */
  prompt: string | null;
  /** image2text: the file and its levels [28, 28, 3]. */
  imagePath: string | null;
  image: Uint8Array | null;
}

/** Draws the samples `req` asks for from a loaded run. */
export function drawSamples(run: LoadedRun, req: SampleRequest): Sample[] {
  const opts = modeOptions(req, SAMPLE_MODE_NAMES[req.mode]);
  switch (req.mode) {
    case 'text2image':
      return textToImage(
        run.model,
        run.vocab,
        Array.from({ length: req.n }, () => req.prompt!),
        opts,
      );
    case 'image2text': {
      const codes = run.tokenizer.encode(req.image!, 1); // [1, 49]
      const withViews = withImageViews(opts, run.tokenizer, req.image!, 1);
      const views = withViews.imageViews?.[0];
      return imageToText(
        run.model,
        run.vocab,
        Array.from({ length: req.n }, () => codes),
        { ...withViews, imageViews: views && Array.from({ length: req.n }, () => views) },
      );
    }
    case 'unconditional':
      return unconditional(run.model, run.vocab, req.n, opts);
  }
}

/** One entry of samples.json. */
export interface SampleRecord {
  /** The PNG, relative to the output directory. */
  image: string;
  /** The words, space-separated. */
  caption: string;
  /** The whole sequence, <bos> first. */
  tokens: number[];
  /** 1: caption then image; 2: image then caption. */
  order: number | null;
  /** The caption parses (6 words, right classes, palette colours). */
  grammatical: boolean;
}

export interface SamplesJson {
  format: 'mmgpt-samples';
  version: 1;
  createdAt: string;
  backend: string;
  mode: SampleMode;
  prompt: string | null;
  input: { path: string; image: string } | null;
  settings: Pick<SamplingChoice, 'seed' | 'samplingPreset' | 'overrides' | 'batchSize'> & {
    n: number;
    resolved: ModeSampling;
  };
  checkpoint: { path: string; sha256: string };
  tokenizer: { path: string; sha256: string; fingerprint: string };
  samples: SampleRecord[];
}

/** Writes one PNG per sample and returns their records. */
function writeSamplePngs(
  run: LoadedRun,
  samples: readonly Sample[],
  outDir: string,
): { records: SampleRecord[]; images: Uint8Array } {
  const images = decodeImages(run, samples); // [n, 28, 28, 3]
  const digits = Math.max(3, String(samples.length - 1).length);
  const records = samples.map((s, i) => {
    const file = `sample_${String(i).padStart(digits, '0')}.png`;
    writePng(path.join(outDir, file), levelsToRgb(imageAt(images, i)));
    return {
      image: file,
      caption: s.caption,
      tokens: Array.from(s.tokens),
      order: s.order,
      grammatical: s.meaning !== null,
    };
  });
  return { records, images };
}

/** Writes one PNG per sample, DIR/grid.png and DIR/samples.json; returns the JSON written. */
export function writeSamples(
  run: LoadedRun,
  req: SampleRequest,
  samples: readonly Sample[],
  outDir: string,
): SamplesJson {
  makeDirectory(outDir);
  const { records, images } = writeSamplePngs(run, samples, outDir);
  let input: SamplesJson['input'] = null;
  if (req.image !== null && req.imagePath !== null) {
    writePng(path.join(outDir, 'input.png'), levelsToRgb(req.image));
    input = { path: req.imagePath, image: 'input.png' };
  }
  const shown = Math.min(samples.length, 100);
  writeCaptionedGrid(
    path.join(outDir, 'grid.png'),
    Array.from({ length: shown }, (_, i) => ({
      image: imageAt(images, i),
      caption: samples[i]!.caption,
    })),
    { title: `${req.mode}${req.prompt ? `: ${req.prompt}` : ''} (seed ${req.seed})` },
  );
  const json: SamplesJson = {
    format: 'mmgpt-samples',
    version: 1,
    createdAt: new Date().toISOString(),
    backend: getBackend().name,
    mode: req.mode,
    prompt: req.prompt,
    input,
    settings: {
      n: req.n,
      seed: req.seed,
      samplingPreset: req.samplingPreset,
      overrides: req.overrides,
      batchSize: req.batchSize,
      resolved: resolveModeSampling(req.samplingPreset, SAMPLE_MODE_NAMES[req.mode], req.overrides),
    },
    checkpoint: { path: run.checkpointPath, sha256: run.checkpointSha256 },
    tokenizer: {
      path: run.tokenizerPath,
      sha256: run.tokenizerSha256,
      fingerprint: run.tokenizerFingerprint,
    },
    samples: records,
  };
  atomicWriteFile(path.join(outDir, 'samples.json'), JSON.stringify(json, null, 2) + '\n');
  return json;
}

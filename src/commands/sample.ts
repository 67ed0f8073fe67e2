// `mmgpt sample` (samples of one mode written as PNGs + samples.json) and `mmgpt figures` (the
// seed's deliverables as captioned grids in figures/), plus the sampling flags that `mmgpt eval`
// shares.
//
// `mmgpt sample --mode text2image|image2text|unconditional [--prompt "..." | --image FILE.png]
//   --n N --seed S [--temperature T --top-k K --top-p P --guidance G --grammar LEVEL]
//   [--checkpoint PATH] --out DIR` writes DIR/sample_000.png ... (28x28, levels k*85, readable
// back with --image), DIR/grid.png (all samples captioned) and DIR/samples.json: the settings,
// the checkpoint and tokenizer hashes, and `samples` [{ image, caption, tokens, ... }].
// Every argument is checked before the checkpoint is loaded, so a bad prompt (unknown word,
// wrong word count, colour not in the palette: parseCaption's messages) or a bad image (wrong
// size, levels that do not quantise: readLevelsPng's messages) fails at once with a message
// that says what is accepted.
// For image2text each sample's PNG is the image as the model saw it: the VQ-VAE reconstruction
// of the input (the quantised input itself is DIR/input.png).
// `mmgpt figures` draws, with one seed: samples_text2image.png (images from the first 9 test
// captions, captioned with the prompt), samples_image2text.png (the first 9 test images with the
// generated captions), samples_unconditional.png (9 unconditional image + caption samples).

import * as path from 'path';
import { setBackend, getBackend } from '../engine/registry';
import { IMAGE_VALUES, loadColouredMnist, projectRoot } from '../data/coloured';
import { captionText, parseCaption } from '../data/vocab';
import { IMAGE_TOKENS } from '../data/sequences';
import { atomicWriteFile, makeDirectory } from '../nn/safetensors';
import { GRAMMAR_LEVELS, type GrammarLevel } from '../sampling/rules';
import {
  imageToText,
  textToImage,
  unconditional,
  type ModeOptions,
  type Sample,
} from '../sampling/sampler';
import type { LabelledImages } from '../eval/classifier';
import { EVAL_DEFAULTS, sampleImageCodes, type EvalSettings } from '../eval/report';
import { findCheckpoint, loadRun, type LoadedRun } from '../eval/run';
import { levelsToRgb, readLevelsPng, writeCaptionedGrid, writePng } from '../viz/png';
import { figuresDir, parseFlags, runsDir } from './train';

/** Parses a flag as a number, saying which flag and what is accepted when it is not one. */
export function numberFlag(
  flags: Record<string, string | boolean>,
  name: string,
  fallback: number,
  accepted: string,
): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(value)) throw new Error(`--${name} must be ${accepted}, got '${raw}'`);
  return value;
}

/** The sampling flags shared by eval, sample and figures. */
export const SAMPLING_FLAGS = {
  seed: 'string',
  temperature: 'string',
  'top-k': 'string',
  'top-p': 'string',
  guidance: 'string',
  grammar: 'string',
  'batch-size': 'string',
} as const;

/** Sampling settings from flags, validated (each message names the flag). */
export function samplingSettingsFromFlags(
  flags: Record<string, string | boolean>,
): Omit<EvalSettings, 'n' | 'speedRows'> {
  const d = EVAL_DEFAULTS;
  const seed = numberFlag(flags, 'seed', d.seed, 'a non-negative integer');
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`--seed must be a non-negative integer, got '${flags.seed}'`);
  const temperature = numberFlag(flags, 'temperature', d.temperature, 'a number >= 0 (0 = argmax)');
  if (temperature < 0)
    throw new Error(`--temperature must be a number >= 0 (0 = argmax), got '${flags.temperature}'`);
  const topK = numberFlag(flags, 'top-k', d.topK, 'an integer >= 1, or 0 for off');
  if (!Number.isInteger(topK) || topK < 0)
    throw new Error(`--top-k must be an integer >= 1, or 0 for off, got '${flags['top-k']}'`);
  const topP = numberFlag(flags, 'top-p', d.topP, 'a number in (0, 1] (1 = off)');
  if (!(topP > 0 && topP <= 1))
    throw new Error(`--top-p must be a number in (0, 1] (1 = off), got '${flags['top-p']}'`);
  const guidance = numberFlag(flags, 'guidance', d.guidance, 'a number (1 = off, e.g. 2 or 3)');
  const batchSize = numberFlag(flags, 'batch-size', d.batchSize, 'a positive integer');
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`--batch-size must be a positive integer, got '${flags['batch-size']}'`);
  const grammar = (typeof flags.grammar === 'string' ? flags.grammar : d.grammar) as GrammarLevel;
  if (!GRAMMAR_LEVELS.includes(grammar))
    throw new Error(`--grammar must be one of ${GRAMMAR_LEVELS.join(', ')}, got '${grammar}'`);
  return { seed, temperature, topK, topP, guidance, grammar, batchSize };
}

/** --checkpoint, else the newest complete run under runs/ (MMGPT_RUNS_DIR), else weights/. */
export function resolveCheckpoint(explicit?: string): string {
  return findCheckpoint({
    explicit,
    runsDir: runsDir(),
    weightsDir: path.join(projectRoot(), 'weights'),
  });
}

/** The ModeOptions of sampling settings (guidance is added by the conditional modes). */
function modeOptions(s: Omit<EvalSettings, 'n' | 'speedRows'>): ModeOptions {
  return {
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    grammar: s.grammar,
    seed: s.seed,
    batchSize: s.batchSize,
  };
}

// ---- mmgpt sample ----------------------------------------------------------------------------

export const SAMPLE_MODES = ['text2image', 'image2text', 'unconditional'] as const;
export type SampleMode = (typeof SAMPLE_MODES)[number];

export interface SampleArgs extends Omit<EvalSettings, 'n' | 'speedRows'> {
  mode: SampleMode;
  n: number;
  /** text2image: the caption, normalised ("dark green eight on bright cyan"). */
  prompt: string | null;
  /** image2text: the file and its levels [28, 28, 3]. */
  imagePath: string | null;
  image: Uint8Array | null;
  checkpoint: string | null;
  out: string;
  backend: string | null;
}

const SAMPLE_HELP = `mmgpt sample --mode text2image|image2text|unconditional
             [--prompt "dark green eight on bright cyan" | --image FILE.png]
             [--n N] [--seed S] [--temperature T] [--top-k K] [--top-p P] [--guidance G]
             [--grammar none|words|palette] [--batch-size B] [--checkpoint PATH]
             [--backend js|cpu|cuda] --out DIR
  text2image needs --prompt (a 6-word caption "<shade> <colour> <digit> on <shade> <colour>");
  image2text needs --image (a 28x28 PNG of coloured-MNIST levels 0, 85, 170, 255, or an exact
  upscale); unconditional needs neither. Writes DIR/sample_000.png ..., DIR/grid.png and
  DIR/samples.json. --guidance (1 = off) applies to text2image and image2text.`;

/** Parses and checks every argument of `mmgpt sample` (prompt and image included). */
export function parseSampleArgs(argv: string[]): SampleArgs | 'help' {
  const flags = parseFlags(argv, {
    mode: 'string',
    prompt: 'string',
    image: 'string',
    n: 'string',
    checkpoint: 'string',
    out: 'string',
    backend: 'string',
    help: 'boolean',
    ...SAMPLING_FLAGS,
  });
  if (flags.help) return 'help';
  const mode = flags.mode;
  if (typeof mode !== 'string')
    throw new Error(`--mode is required: one of ${SAMPLE_MODES.join(', ')}`);
  if (!SAMPLE_MODES.includes(mode as SampleMode))
    throw new Error(`unknown --mode '${mode}': choose one of ${SAMPLE_MODES.join(', ')}`);
  const n = numberFlag(flags, 'n', 9, 'a positive integer');
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--n must be a positive integer, got '${flags.n}'`);
  const settings = samplingSettingsFromFlags(flags);
  if (typeof flags.out !== 'string' || flags.out.trim() === '')
    throw new Error('--out DIR is required: the directory for the PNGs and samples.json');
  let prompt: string | null = null;
  let imagePath: string | null = null;
  let image: Uint8Array | null = null;
  if (mode === 'text2image') {
    if (typeof flags.prompt !== 'string')
      throw new Error(
        '--mode text2image needs --prompt "<shade> <colour> <digit> on <shade> <colour>", ' +
          'e.g. --prompt "dark green eight on bright cyan"',
      );
    const c = parseCaption(flags.prompt); // throws listing the accepted words
    prompt = captionText(c.digit, c.fg, c.bg);
  } else if (flags.prompt !== undefined) {
    throw new Error(`--prompt is only for --mode text2image (this is --mode ${mode})`);
  }
  if (mode === 'image2text') {
    if (typeof flags.image !== 'string')
      throw new Error('--mode image2text needs --image FILE.png (a 28x28 coloured-MNIST image)');
    imagePath = flags.image;
    image = readLevelsPng(imagePath); // throws on a wrong size or off-level colours
  } else if (flags.image !== undefined) {
    throw new Error(`--image is only for --mode image2text (this is --mode ${mode})`);
  }
  if (mode === 'unconditional' && settings.guidance !== 1)
    throw new Error(
      '--guidance needs a condition: use it with --mode text2image or image2text, not unconditional',
    );
  return {
    ...settings,
    mode: mode as SampleMode,
    n,
    prompt,
    imagePath,
    image,
    checkpoint: typeof flags.checkpoint === 'string' ? flags.checkpoint : null,
    out: flags.out,
    backend: typeof flags.backend === 'string' ? flags.backend : null,
  };
}

/** Draws the samples `args` asks for from a loaded run. */
export function drawSamples(run: LoadedRun, args: SampleArgs): Sample[] {
  const options = modeOptions(args);
  const conditional = { ...options, guidance: args.guidance };
  switch (args.mode) {
    case 'text2image':
      return textToImage(
        run.model,
        run.vocab,
        Array.from({ length: args.n }, () => args.prompt!),
        conditional,
      );
    case 'image2text': {
      const codes = run.tokenizer.encode(args.image!, 1); // [1, 49]
      return imageToText(
        run.model,
        run.vocab,
        Array.from({ length: args.n }, () => codes),
        conditional,
      );
    }
    case 'unconditional':
      return unconditional(run.model, run.vocab, args.n, options);
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
  settings: Omit<EvalSettings, 'speedRows'>;
  checkpoint: { path: string; sha256: string };
  tokenizer: { path: string; sha256: string; fingerprint: string };
  samples: SampleRecord[];
}

/** Writes one PNG per sample, DIR/grid.png and DIR/samples.json; returns the JSON written. */
export function writeSamples(
  run: LoadedRun,
  args: SampleArgs,
  samples: readonly Sample[],
  outDir: string,
): SamplesJson {
  makeDirectory(outDir);
  const images = run.tokenizer.decode(sampleImageCodes(samples), samples.length); // [n, 28, 28, 3]
  const imageOf = (i: number): Uint8Array =>
    images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
  const digits = Math.max(3, String(samples.length - 1).length);
  const records: SampleRecord[] = samples.map((s, i) => {
    const file = `sample_${String(i).padStart(digits, '0')}.png`;
    writePng(path.join(outDir, file), levelsToRgb(imageOf(i)));
    return {
      image: file,
      caption: s.caption,
      tokens: Array.from(s.tokens),
      order: s.order,
      grammatical: s.meaning !== null,
    };
  });
  let input: SamplesJson['input'] = null;
  if (args.image !== null && args.imagePath !== null) {
    writePng(path.join(outDir, 'input.png'), levelsToRgb(args.image));
    input = { path: args.imagePath, image: 'input.png' };
  }
  const shown = Math.min(samples.length, 100);
  writeCaptionedGrid(
    path.join(outDir, 'grid.png'),
    Array.from({ length: shown }, (_, i) => ({ image: imageOf(i), caption: samples[i]!.caption })),
    { title: `${args.mode}${args.prompt ? `: ${args.prompt}` : ''} (seed ${args.seed})` },
  );
  const json: SamplesJson = {
    format: 'mmgpt-samples',
    version: 1,
    createdAt: new Date().toISOString(),
    backend: getBackend().name,
    mode: args.mode,
    prompt: args.prompt,
    input,
    settings: {
      n: args.n,
      seed: args.seed,
      temperature: args.temperature,
      topK: args.topK,
      topP: args.topP,
      guidance: args.guidance,
      grammar: args.grammar,
      batchSize: args.batchSize,
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

export async function sampleCommand(argv: string[]): Promise<void> {
  const args = parseSampleArgs(argv);
  if (args === 'help') {
    console.log(SAMPLE_HELP);
    return;
  }
  if (args.backend !== null) setBackend(args.backend);
  const run = loadRun(resolveCheckpoint(args.checkpoint ?? undefined));
  const t0 = performance.now();
  const samples = drawSamples(run, args);
  const ms = performance.now() - t0;
  const json = writeSamples(run, args, samples, args.out);
  for (const s of json.samples) console.log(`${s.image}: ${s.caption}`);
  console.log(
    `sample: ${samples.length} ${args.mode} samples in ${ms.toFixed(0)} ms from ` +
      `${path.relative(process.cwd(), run.checkpointPath) || run.checkpointPath}; wrote ` +
      `${path.join(args.out, 'samples.json')}`,
  );
}

// ---- mmgpt figures ---------------------------------------------------------------------------

export const FIGURE_FILES = {
  textToImage: 'samples_text2image.png',
  imageToText: 'samples_image2text.png',
  unconditional: 'samples_unconditional.png',
} as const;

/**
 * The seed's deliverables as captioned 3x3 grids in `dir`: images from the first 9 test
 * captions, captions of the first 9 test images, 9 unconditional samples. Returns the paths.
 */
export function writeSampleFigures(
  run: LoadedRun,
  test: LabelledImages,
  settings: Omit<EvalSettings, 'n' | 'speedRows'>,
  dir: string,
): string[] {
  const count = Math.min(9, test.count);
  if (count === 0) throw new Error('figures: the test set is empty');
  const options = modeOptions(settings);
  const conditional = { ...options, guidance: settings.guidance };
  const decode = (samples: readonly Sample[]): Uint8Array =>
    run.tokenizer.decode(sampleImageCodes(samples), samples.length);
  const imageAt = (images: Uint8Array, i: number): Uint8Array =>
    images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
  const how =
    `seed ${settings.seed}, temperature ${settings.temperature}` +
    (settings.guidance !== 1 ? `, guidance ${settings.guidance}` : '');
  const written: string[] = [];

  const prompts = Array.from({ length: count }, (_, i) =>
    captionText(test.digit[i]!, test.fg[i]!, test.bg[i]!),
  );
  const t2i = textToImage(run.model, run.vocab, prompts, conditional);
  const t2iImages = decode(t2i);
  const t2iPath = path.join(dir, FIGURE_FILES.textToImage);
  writeCaptionedGrid(
    t2iPath,
    prompts.map((prompt, i) => ({ image: imageAt(t2iImages, i), caption: prompt })),
    { columns: 3, title: `text -> image (${how})` },
  );
  written.push(t2iPath);

  const codes = run.tokenizer.encode(test.images, count); // [count, 49]
  const codeRows = Array.from({ length: count }, (_, i) =>
    codes.subarray(i * IMAGE_TOKENS, (i + 1) * IMAGE_TOKENS),
  );
  const i2t = imageToText(run.model, run.vocab, codeRows, conditional);
  const i2tPath = path.join(dir, FIGURE_FILES.imageToText);
  writeCaptionedGrid(
    i2tPath,
    i2t.map((s, i) => ({ image: imageAt(test.images, i), caption: s.caption })),
    { columns: 3, title: `image -> text (${how})` },
  );
  written.push(i2tPath);

  const unc = unconditional(run.model, run.vocab, 9, options);
  const uncImages = decode(unc);
  const uncPath = path.join(dir, FIGURE_FILES.unconditional);
  writeCaptionedGrid(
    uncPath,
    unc.map((s, i) => ({ image: imageAt(uncImages, i), caption: s.caption })),
    {
      columns: 3,
      title: `unconditional (seed ${settings.seed}, temperature ${settings.temperature})`,
    },
  );
  written.push(uncPath);
  return written;
}

const FIGURES_HELP = `mmgpt figures [--checkpoint PATH] [--seed S] [--temperature T] [--top-k K]
              [--top-p P] [--guidance G] [--grammar none|words|palette] [--backend js|cpu|cuda]
              [--out DIR]
  Draws the seed's deliverables into DIR (default figures/): ${Object.values(FIGURE_FILES).join(', ')}.`;

export async function figuresCommand(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, {
    checkpoint: 'string',
    backend: 'string',
    out: 'string',
    help: 'boolean',
    ...SAMPLING_FLAGS,
  });
  if (flags.help) {
    console.log(FIGURES_HELP);
    return;
  }
  const settings = samplingSettingsFromFlags(flags);
  if (typeof flags.backend === 'string') setBackend(flags.backend);
  const run = loadRun(
    resolveCheckpoint(typeof flags.checkpoint === 'string' ? flags.checkpoint : undefined),
  );
  const data = loadColouredMnist({ log: (l) => console.log(l) });
  const dir = typeof flags.out === 'string' ? flags.out : figuresDir();
  for (const file of writeSampleFigures(run, data.test, settings, dir))
    console.log(`figures: wrote ${path.relative(process.cwd(), file) || file}`);
}

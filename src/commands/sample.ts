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

import * as fs from 'fs';
import * as path from 'path';
import { setBackend, getBackend } from '../engine/registry';
import { IMAGE_VALUES, loadColouredMnist, projectRoot } from '../data/coloured';
import { captionText, parseCaption } from '../data/vocab';
import { IMAGE_TOKENS } from '../data/sequences';
import { atomicWriteFile } from '../nn/safetensors';
import { GRAMMAR_LEVELS, type GrammarLevel } from '../sampling/rules';
import {
  imageToText,
  textToImage,
  unconditional,
  type ModeOptions,
  type Sample,
} from '../sampling/sampler';
import type { LabelledImages } from '../eval/classifier';
import { EVAL_DEFAULTS, type EvalSettings } from '../eval/report';
import { sampleImageCodes, type ModeName } from '../eval/modes';
import {
  SAMPLING_PRESET_NAMES,
  describeModeSampling,
  resolveModeSampling,
  type ModeSampling,
  type SamplingOverrides,
  type SamplingPresetName,
} from '../sampling/presets';
import { IMAGE_TO_TEXT_SCORES, type ImageToTextScore } from '../sampling/rerank';
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
  'preset-sampling': 'string',
  temperature: 'string',
  'text-temperature': 'string',
  'top-k': 'string',
  'top-p': 'string',
  guidance: 'string',
  grammar: 'string',
  rerank: 'string',
  'rerank-score': 'string',
  'batch-size': 'string',
} as const;

/** What the sampling flags say: a preset, the settings given explicitly, seed and batch size. */
export type SamplingFlagSettings = Pick<
  EvalSettings,
  'seed' | 'samplingPreset' | 'overrides' | 'batchSize'
>;

/** Sampling settings from flags, validated (each message names the flag). */
export function samplingSettingsFromFlags(
  flags: Record<string, string | boolean>,
): SamplingFlagSettings {
  const d = EVAL_DEFAULTS;
  const seed = numberFlag(flags, 'seed', d.seed, 'a non-negative integer');
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`--seed must be a non-negative integer, got '${flags.seed}'`);
  const preset = (
    typeof flags['preset-sampling'] === 'string' ? flags['preset-sampling'] : d.samplingPreset
  ) as SamplingPresetName;
  if (!SAMPLING_PRESET_NAMES.includes(preset))
    throw new Error(
      `--preset-sampling must be one of ${SAMPLING_PRESET_NAMES.join(', ')}, got '${preset}'`,
    );
  const overrides: SamplingOverrides = {};
  const given = (name: string) => flags[name] !== undefined;
  if (given('temperature')) {
    overrides.temperature = numberFlag(flags, 'temperature', 1, 'a number >= 0 (0 = argmax)');
    if (overrides.temperature < 0)
      throw new Error(
        `--temperature must be a number >= 0 (0 = argmax), got '${flags.temperature}'`,
      );
    // One temperature for everything unless words get their own.
    overrides.textTemperature = overrides.temperature;
  }
  if (given('text-temperature')) {
    overrides.textTemperature = numberFlag(
      flags,
      'text-temperature',
      1,
      'a number >= 0 (0 = argmax)',
    );
    if (overrides.textTemperature < 0)
      throw new Error(
        `--text-temperature must be a number >= 0 (0 = argmax), got '${flags['text-temperature']}'`,
      );
  }
  if (given('top-k')) {
    overrides.topK = numberFlag(flags, 'top-k', 0, 'an integer >= 1, or 0 for off');
    if (!Number.isInteger(overrides.topK) || overrides.topK < 0)
      throw new Error(`--top-k must be an integer >= 1, or 0 for off, got '${flags['top-k']}'`);
  }
  if (given('top-p')) {
    overrides.topP = numberFlag(flags, 'top-p', 1, 'a number in (0, 1] (1 = off)');
    if (!(overrides.topP > 0 && overrides.topP <= 1))
      throw new Error(`--top-p must be a number in (0, 1] (1 = off), got '${flags['top-p']}'`);
  }
  if (given('guidance'))
    overrides.guidance = numberFlag(flags, 'guidance', 1, 'a number (1 = off, e.g. 2 or 3)');
  if (given('grammar')) {
    const grammar = flags.grammar as GrammarLevel;
    if (!GRAMMAR_LEVELS.includes(grammar))
      throw new Error(`--grammar must be one of ${GRAMMAR_LEVELS.join(', ')}, got '${grammar}'`);
    overrides.grammar = grammar;
  }
  if (given('rerank')) {
    overrides.rerank = numberFlag(flags, 'rerank', 1, 'an integer in 1..1024 (1 = off)');
    if (!Number.isInteger(overrides.rerank) || overrides.rerank < 1 || overrides.rerank > 1024)
      throw new Error(`--rerank must be an integer in 1..1024 (1 = off), got '${flags.rerank}'`);
  }
  if (given('rerank-score')) {
    const score = flags['rerank-score'] as ImageToTextScore;
    if (!IMAGE_TO_TEXT_SCORES.includes(score))
      throw new Error(
        `--rerank-score must be one of ${IMAGE_TO_TEXT_SCORES.join(', ')}, got '${score}'`,
      );
    overrides.imageToTextScore = score;
  }
  const batchSize = numberFlag(flags, 'batch-size', d.batchSize, 'a positive integer');
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`--batch-size must be a positive integer, got '${flags['batch-size']}'`);
  return { seed, samplingPreset: preset, overrides, batchSize };
}

/** The sampling-flag text of every command's --help. */
export const SAMPLING_HELP = `  Sampling (each mode has its own defaults, chosen on the validation split; see README):
    --preset-sampling default|seed   seed = the seed's plain rules (T 1, no guidance/grammar/reranking)
    --temperature T   image codes and words (0 = argmax)   --text-temperature T   words only
    --top-k K (0 = off)   --top-p P (1 = off)   --guidance G (1 = off; conditional modes)
    --grammar none|words|palette   --rerank K (candidates per prompt, 1 = off)
    --rerank-score both|caption|image (image -> text)   --seed S   --batch-size B`;

/** --checkpoint, else the newest complete run under runs/ (MMGPT_RUNS_DIR), else weights/. */
export function resolveCheckpoint(explicit?: string): string {
  return findCheckpoint({
    explicit,
    runsDir: runsDir(),
    weightsDir: path.join(projectRoot(), 'weights'),
  });
}

/** The sampler's name of each `mmgpt sample` mode. */
const SAMPLE_MODE_NAMES: Record<SampleMode, ModeName> = {
  text2image: 'textToImage',
  image2text: 'imageToText',
  unconditional: 'unconditional',
};

/** The ModeOptions of `mode` under the flags' preset and overrides. */
function modeOptions(s: SamplingFlagSettings, mode: ModeName): ModeOptions {
  return {
    ...resolveModeSampling(s.samplingPreset, mode, s.overrides),
    seed: s.seed,
    batchSize: s.batchSize,
  };
}

// ---- mmgpt sample ----------------------------------------------------------------------------

export const SAMPLE_MODES = ['text2image', 'image2text', 'unconditional'] as const;
export type SampleMode = (typeof SAMPLE_MODES)[number];

export interface SampleArgs extends SamplingFlagSettings {
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
             [--n N] [sampling flags] [--checkpoint PATH]
             [--backend js|cpu|cuda] --out DIR
  text2image needs --prompt (a 6-word caption "<shade> <colour> <digit> on <shade> <colour>");
  image2text needs --image (a 28x28 PNG of coloured-MNIST levels 0, 85, 170, 255, or an exact
  upscale); unconditional needs neither. Writes DIR/sample_000.png ..., DIR/grid.png and
  DIR/samples.json. --guidance (1 = off) applies to text2image and image2text.
${SAMPLING_HELP}`;

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
  if (mode === 'unconditional' && settings.overrides.guidance !== undefined)
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
  switch (args.mode) {
    case 'text2image':
      return textToImage(
        run.model,
        run.vocab,
        Array.from({ length: args.n }, () => args.prompt!),
        modeOptions(args, 'textToImage'),
      );
    case 'image2text': {
      const codes = run.tokenizer.encode(args.image!, 1); // [1, 49]
      return imageToText(
        run.model,
        run.vocab,
        Array.from({ length: args.n }, () => codes),
        modeOptions(args, 'imageToText'),
      );
    }
    case 'unconditional':
      return unconditional(run.model, run.vocab, args.n, modeOptions(args, 'unconditional'));
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
  settings: SamplingFlagSettings & { n: number; resolved: ModeSampling };
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
  fs.mkdirSync(outDir, { recursive: true });
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
      samplingPreset: args.samplingPreset,
      overrides: args.overrides,
      batchSize: args.batchSize,
      resolved: resolveModeSampling(
        args.samplingPreset,
        SAMPLE_MODE_NAMES[args.mode],
        args.overrides,
      ),
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
  settings: SamplingFlagSettings,
  dir: string,
  /** Appended to each file name (before .png), e.g. '_seed-rules'. */
  suffix = '',
): string[] {
  const count = Math.min(9, test.count);
  if (count === 0) throw new Error('figures: the test set is empty');
  const file = (name: string) => path.join(dir, name.replace(/\.png$/, `${suffix}.png`));
  const how = (mode: ModeName) =>
    `seed ${settings.seed}, ${describeModeSampling(resolveModeSampling(settings.samplingPreset, mode, settings.overrides))}`;
  const decode = (samples: readonly Sample[]): Uint8Array =>
    run.tokenizer.decode(sampleImageCodes(samples), samples.length);
  const imageAt = (images: Uint8Array, i: number): Uint8Array =>
    images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
  const written: string[] = [];

  const prompts = Array.from({ length: count }, (_, i) =>
    captionText(test.digit[i]!, test.fg[i]!, test.bg[i]!),
  );
  const t2i = textToImage(run.model, run.vocab, prompts, modeOptions(settings, 'textToImage'));
  const t2iImages = decode(t2i);
  const t2iPath = file(FIGURE_FILES.textToImage);
  writeCaptionedGrid(
    t2iPath,
    prompts.map((prompt, i) => ({ image: imageAt(t2iImages, i), caption: prompt })),
    { columns: 3, title: `text -> image (${how('textToImage')})` },
  );
  written.push(t2iPath);

  const codes = run.tokenizer.encode(test.images, count); // [count, 49]
  const codeRows = Array.from({ length: count }, (_, i) =>
    codes.subarray(i * IMAGE_TOKENS, (i + 1) * IMAGE_TOKENS),
  );
  const i2t = imageToText(run.model, run.vocab, codeRows, modeOptions(settings, 'imageToText'));
  const i2tPath = file(FIGURE_FILES.imageToText);
  writeCaptionedGrid(
    i2tPath,
    i2t.map((s, i) => ({ image: imageAt(test.images, i), caption: s.caption })),
    { columns: 3, title: `image -> text (${how('imageToText')})` },
  );
  written.push(i2tPath);

  const unc = unconditional(run.model, run.vocab, 9, modeOptions(settings, 'unconditional'));
  const uncImages = decode(unc);
  const uncPath = file(FIGURE_FILES.unconditional);
  writeCaptionedGrid(
    uncPath,
    unc.map((s, i) => ({ image: imageAt(uncImages, i), caption: s.caption })),
    {
      columns: 3,
      title: `unconditional (${how('unconditional')})`,
    },
  );
  written.push(uncPath);
  return written;
}

const FIGURES_HELP = `mmgpt figures [--checkpoint PATH] [sampling flags] [--backend js|cpu|cuda] [--out DIR]
  Draws the seed's deliverables into DIR (default figures/): ${Object.values(FIGURE_FILES).join(', ')}.
${SAMPLING_HELP}`;

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

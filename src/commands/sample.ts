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
import { IMAGE_VALUES, loadColouredMnist } from '../data/coloured';
import { captionText, parseCaption } from '../data/vocab';
import { IMAGE_TOKENS } from '../data/sequences';
import { atomicWriteFile, makeDirectory } from '../nn/safetensors';
import { GRAMMAR_LEVELS, type GrammarLevel } from '../sampling/rules';
import { imageToText, textToImage, unconditional, type ModeOptions } from '../sampling/modes';
import type { Sample } from '../sampling/sample';
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
import { IMAGE_TO_TEXT_SCORES, type ImageToTextScore } from '../sampling/settings';
import { withImageViews } from '../sampling/views';
import { findCheckpoint, loadRun, type LoadedRun } from '../eval/run';
import { levelsToRgb, readLevelsPng, writeCaptionedGrid, writePng } from '../viz/png';
import { figuresDir, runsDir, weightsDir } from './train';
import { BACKEND_CHOICES, HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec, FlagSpec, Flags } from './args';

/** The sampling flags shared by eval, sample and figures. */
export const SAMPLING_FLAGS: Record<string, FlagSpec> = {
  seed: { type: 'string' },
  'preset-sampling': { type: 'string' },
  temperature: { type: 'string' },
  'text-temperature': { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  guidance: { type: 'string' },
  grammar: { type: 'string' },
  rerank: { type: 'string' },
  'rerank-score': { type: 'string' },
  'digit-search': { type: 'boolean' },
  'no-digit-search': { type: 'boolean' },
  'colour-search': { type: 'boolean' },
  'no-colour-search': { type: 'boolean' },
  'shift-views': { type: 'boolean' },
  'no-shift-views': { type: 'boolean' },
  'caption-first': { type: 'boolean' },
  'no-caption-first': { type: 'boolean' },
  'batch-size': { type: 'string' },
};

/** What the sampling flags say: a preset, the settings given explicitly, seed and batch size. */
export type SamplingFlagSettings = Pick<
  EvalSettings,
  'seed' | 'samplingPreset' | 'overrides' | 'batchSize'
>;

/** --NAME: true, --no-NAME: false, neither: undefined (the preset's value); both are refused. */
function onOffFlag(flags: Flags, name: string): boolean | undefined {
  flags.refuseUnless(
    !flags.boolean(name),
    [`no-${name}`],
    () => `contradicts --${name}: give one of the two`,
  );
  if (flags.boolean(name)) return true;
  if (flags.boolean(`no-${name}`)) return false;
  return undefined;
}

/**
 * Sampling settings from flags, validated (each message names the flag and its range). A flag
 * that is not given leaves each mode's preset value; one that is given applies to every mode.
 */
export function samplingSettingsFromFlags(flags: Flags): SamplingFlagSettings {
  const d = EVAL_DEFAULTS;
  const overrides: SamplingOverrides = {};
  const temperature = flags.number('temperature', { min: 0, max: 100 });
  if (temperature !== undefined) {
    overrides.temperature = temperature;
    overrides.textTemperature = temperature; // one temperature unless words get their own
  }
  const textTemperature = flags.number('text-temperature', { min: 0, max: 100 });
  if (textTemperature !== undefined) overrides.textTemperature = textTemperature;
  const topK = flags.int('top-k', { min: 0, max: 100_000 });
  if (topK !== undefined) overrides.topK = topK;
  const topP = flags.number('top-p', { min: 0, max: 1, exclusiveMin: true });
  if (topP !== undefined) overrides.topP = topP;
  const guidance = flags.number('guidance', { min: -100, max: 100 });
  if (guidance !== undefined) overrides.guidance = guidance;
  const grammar = flags.choice('grammar', GRAMMAR_LEVELS);
  if (grammar !== undefined) overrides.grammar = grammar;
  const rerank = flags.int('rerank', { min: 1, max: 1024 });
  if (rerank !== undefined) overrides.rerank = rerank;
  const score = flags.choice('rerank-score', IMAGE_TO_TEXT_SCORES);
  if (score !== undefined) overrides.imageToTextScore = score;
  const digitSearch = onOffFlag(flags, 'digit-search');
  if (digitSearch !== undefined) overrides.digitSearch = digitSearch;
  const colourSearch = onOffFlag(flags, 'colour-search');
  if (colourSearch !== undefined) overrides.colourSearch = colourSearch;
  const shiftViews = onOffFlag(flags, 'shift-views');
  if (shiftViews !== undefined) overrides.shiftViews = shiftViews;
  const captionFirst = onOffFlag(flags, 'caption-first');
  if (captionFirst !== undefined) overrides.captionFirst = captionFirst;
  return {
    seed: flags.int('seed', { min: 0 }, d.seed),
    samplingPreset: flags.choice('preset-sampling', SAMPLING_PRESET_NAMES, d.samplingPreset),
    overrides,
    batchSize: flags.int('batch-size', { min: 1, max: 100_000 }, d.batchSize),
  };
}

/** The --help lines of the sampling flags. */
export const SAMPLING_HELP = `  Sampling: each mode has its own defaults, chosen on the validation split (README, "Sampling
  defaults"); a flag given applies to every mode it can.
  --preset-sampling P  default or original (the original rules: T 1, no guidance, grammar or reranking)
  --seed S            sampling seed, an integer >= 0 (default ${EVAL_DEFAULTS.seed})
  --temperature T     image codes and words, a number from 0 to 100; 0 = argmax
  --text-temperature T  words only, 0 to 100
  --top-k K           an integer from 0 to 100000; 0 = off
  --top-p P           a number in (0, 1]; 1 = off
  --guidance G        classifier-free guidance, -100 to 100; 1 = off (conditional modes)
  --grammar LEVEL     ${GRAMMAR_LEVELS.join(', ')}
  --rerank K          candidates per prompt, kept by the model's own reverse-order score; 1 to 1024, 1 = off
  --rerank-score S    image -> text score: ${IMAGE_TO_TEXT_SCORES.join(', ')}
  --digit-search, --no-digit-search  with reranking: image -> text also scores the best caption
                      with each other digit; text -> image and unconditional add the log posterior
                      of the caption's digit over the ten digits (default: image -> text only)
  --colour-search, --no-colour-search  with reranking, image -> text: then also score every
                      palette colour as foreground, then as background (default: image -> text)
  --shift-views, --no-shift-views  with reranking, image -> text: last, choose the digit by its
                      score summed over the image and its four one-pixel shifts (default: on)
  --caption-first, --no-caption-first  unconditional: draw the caption first, then its image as
                      text -> image does, guidance included (default: on; off: the model
                      chooses the order, and guidance is not used)
  --batch-size B      rows sampled at once, 1 to 100000 (default ${EVAL_DEFAULTS.batchSize})`;

/**
 * --checkpoint, else the newest complete run under runs/ (MMGPT_RUNS_DIR), else weights/
 * (MMGPT_WEIGHTS_DIR, as for the shipped tokenizers and classifier).
 */
export function resolveCheckpoint(explicit?: string): string {
  return findCheckpoint({ explicit, runsDir: runsDir(), weightsDir: weightsDir() });
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

export const SAMPLE_COMMAND: CommandSpec = {
  name: 'sample',
  help: `mmgpt sample --mode text2image|image2text|unconditional
             [--prompt "dark green eight on bright cyan" | --image FILE.png]
             [--n N] [sampling flags] [--checkpoint PATH]
             [--backend js|cpu|cuda] --out DIR
  text2image needs --prompt (a 6-word caption "<shade> <colour> <digit> on <shade> <colour>");
  image2text needs --image (a 28x28 PNG of coloured-MNIST levels 0, 85, 170, 255, or an exact
  upscale); unconditional needs neither. Writes DIR/sample_000.png ..., DIR/grid.png and
  DIR/samples.json. --guidance (1 = off) applies to text2image and image2text.
  --n N             samples, 1 to 10000 (default 9)
${SAMPLING_HELP}`,
  flags: {
    mode: { type: 'string' },
    prompt: { type: 'string' },
    image: { type: 'string' },
    n: { type: 'string' },
    checkpoint: { type: 'string' },
    out: { type: 'string' },
    backend: { type: 'string' },
    ...SAMPLING_FLAGS,
    ...HELP_FLAG,
  },
};

/** Reads and checks every argument of `mmgpt sample` (prompt and image included). */
export function sampleArgs(argv: string[]): SampleArgs | 'help' {
  const flags = parseCommandLine(SAMPLE_COMMAND, argv);
  if (flags.help) return 'help';
  const mode = flags.choice('mode', SAMPLE_MODES);
  if (mode === undefined) throw new Error(`--mode is required: one of ${SAMPLE_MODES.join(', ')}`);
  const n = flags.int('n', { min: 1, max: 10_000 }, 9);
  const settings = samplingSettingsFromFlags(flags);
  const out = flags.required('out', 'the directory for the PNGs and samples.json');
  const onlyFor = (m: SampleMode) => () => `is only for --mode ${m} (this is --mode ${mode})`;
  flags.refuseUnless(mode === 'text2image', ['prompt'], onlyFor('text2image'));
  flags.refuseUnless(mode === 'image2text', ['image'], onlyFor('image2text'));
  flags.refuseUnless(
    mode !== 'unconditional' || settings.overrides.guidance === undefined,
    ['guidance'],
    () => 'needs a condition: use it with --mode text2image or image2text, not unconditional',
  );
  let prompt: string | null = null;
  let imagePath: string | null = null;
  let image: Uint8Array | null = null;
  if (mode === 'text2image') {
    const text = flags.string('prompt');
    if (text === undefined)
      throw new Error(
        '--mode text2image needs --prompt "<shade> <colour> <digit> on <shade> <colour>", ' +
          'e.g. --prompt "dark green eight on bright cyan"',
      );
    const c = parseCaption(text); // throws listing the accepted words
    prompt = captionText(c.digit, c.fg, c.bg);
  }
  if (mode === 'image2text') {
    imagePath = flags.string('image') ?? null;
    if (imagePath === null)
      throw new Error('--mode image2text needs --image FILE.png (a 28x28 coloured-MNIST image)');
    image = readLevelsPng(imagePath); // throws on a wrong size or off-level colours
  }
  return {
    ...settings,
    mode,
    n,
    prompt,
    imagePath,
    image,
    checkpoint: flags.string('checkpoint') ?? null,
    out,
    backend: flags.choice('backend', BACKEND_CHOICES) ?? null,
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
      const opts = withImageViews(modeOptions(args, 'imageToText'), run.tokenizer, args.image!, 1);
      const views = opts.imageViews?.[0];
      return imageToText(
        run.model,
        run.vocab,
        Array.from({ length: args.n }, () => codes),
        { ...opts, imageViews: views && Array.from({ length: args.n }, () => views) },
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
  const args = sampleArgs(argv);
  if (args === 'help') {
    console.log(SAMPLE_COMMAND.help);
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
  /** Appended to each file name (before .png), e.g. '_original-rules'. */
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
  const i2t = imageToText(
    run.model,
    run.vocab,
    codeRows,
    withImageViews(modeOptions(settings, 'imageToText'), run.tokenizer, test.images, count),
  );
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

export const FIGURES_COMMAND: CommandSpec = {
  name: 'figures',
  help: `mmgpt figures [--checkpoint PATH] [sampling flags] [--backend js|cpu|cuda] [--out DIR]
  Draws the seed's deliverables into DIR (default figures/): ${Object.values(FIGURE_FILES).join(', ')}.
${SAMPLING_HELP}`,
  flags: {
    checkpoint: { type: 'string' },
    backend: { type: 'string' },
    out: { type: 'string' },
    ...SAMPLING_FLAGS,
    ...HELP_FLAG,
  },
};

export async function figuresCommand(argv: string[]): Promise<void> {
  const flags = parseCommandLine(FIGURES_COMMAND, argv);
  if (flags.help) {
    console.log(FIGURES_COMMAND.help);
    return;
  }
  const settings = samplingSettingsFromFlags(flags);
  const backend = flags.choice('backend', BACKEND_CHOICES);
  if (backend !== undefined) setBackend(backend);
  const run = loadRun(resolveCheckpoint(flags.string('checkpoint')));
  const data = loadColouredMnist({ log: (l) => console.log(l) });
  const dir = flags.string('out') ?? figuresDir();
  for (const file of writeSampleFigures(run, data.test, settings, dir))
    console.log(`figures: wrote ${path.relative(process.cwd(), file) || file}`);
}

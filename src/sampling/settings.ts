// The sampling settings, one table: each setting's name and value type, what it does, the values
// it accepts, its command-line flag (only the knobs a user turns: temperature, top-k, top-p,
// guidance, rerank; the others are set by a preset or through the library's options), and its
// value in each mode under each sampling preset. The presets, the validation and the one-line
// description (presets.ts), the flags and their --help lines (src/commands/sampling.ts) and the
// report's settings table all come from it.
//
// The presets: `default`, chosen per mode on the validation split (docs/sampling.md;
// bench/sampling_sweep.ts reproduces the sweep), and `original`, the original rules (temperature
// 1, no top-k/top-p, guidance, grammar beyond the rules or reranking), kept for comparison.
// The dataset's searches (digit, colour, shifted views) serve reranking and act only with it; the
// unconditional caption-first draw is how unconditional candidates are drawn (modes.ts).

import { GRAMMAR_LEVELS, type GrammarLevel } from './rules';

export type SamplingMode = 'textToImage' | 'imageToText' | 'unconditional';
export const SAMPLING_MODES: readonly SamplingMode[] = [
  'textToImage',
  'imageToText',
  'unconditional',
];

/**
 * How image -> text candidates are scored: log p(image | caption) + log p(caption | image)
 * ('both'), or one of the two terms (rerank.ts).
 */
export type ImageToTextScore = 'both' | 'caption' | 'image';
export const IMAGE_TO_TEXT_SCORES: readonly ImageToTextScore[] = ['both', 'caption', 'image'];

export type SamplingPresetName = 'default' | 'original';
/** Each sampling preset, and what it is. */
export const SAMPLING_PRESET_HELP: Readonly<Record<SamplingPresetName, string>> = {
  default: 'chosen per mode on the validation split',
  original: 'the original rules',
};
export const SAMPLING_PRESET_NAMES = Object.keys(SAMPLING_PRESET_HELP) as SamplingPresetName[];

/** Every sampling setting of one mode, in the order of SAMPLING_SETTINGS (which says each). */
export interface ModeSampling {
  temperature: number;
  textTemperature: number;
  topK: number;
  topP: number;
  guidance: number;
  grammar: GrammarLevel;
  rerank: number;
  imageToTextScore: ImageToTextScore;
  digitSearch: boolean;
  colourSearch: boolean;
  foregroundShortlist: number;
  backgroundShortlist: number;
  legibleSearch: boolean;
  shiftViews: boolean;
  viewShortlist: number;
  captionFirst: boolean;
}

/** One value for every mode, or one per mode. */
type PerMode<T> = T | Readonly<Record<SamplingMode, T>>;

/** The numbers a setting accepts: [min, max], or (min, max] with exclusiveMin. */
export interface SettingRange {
  min: number;
  max: number;
  exclusiveMin?: boolean;
  integer?: boolean;
}

interface SettingBase<T> {
  /** What it is (the --help line, the library's documentation). */
  help: string;
  /** Its value in each mode under each preset. */
  presets: Readonly<Record<SamplingPresetName, PerMode<T>>>;
  /** Its words in the one-line description, or null when it adds none. */
  describe(value: T, s: ModeSampling): string | null;
  /** Its words come first in the description. */
  leads?: boolean;
  /** Where it applies; elsewhere it takes the value `otherwise`. */
  only?: { when(mode: SamplingMode, s: ModeSampling): boolean; otherwise: T };
}

export interface NumberSetting extends SettingBase<number> {
  kind: 'number';
  range: SettingRange;
  /** What its special values mean, e.g. '1 = off'. */
  note?: string;
  /** Its command-line flag: --name VALUE, its help if not the setting's, what else it sets. */
  flag?: {
    name: string;
    value: string;
    help?: string;
    alsoSets?: readonly (keyof ModeSampling)[];
  };
}

export interface ChoiceSetting<T extends string> extends SettingBase<T> {
  kind: 'choice';
  choices: readonly T[];
}

export interface SwitchSetting extends SettingBase<boolean> {
  kind: 'switch';
}

export type Setting<T> = [T] extends [boolean]
  ? SwitchSetting
  : [T] extends [number]
    ? NumberSetting
    : [T] extends [string]
      ? ChoiceSetting<T>
      : never;

/** A search that acts only with reranking is described only then. */
const withReranking =
  (words: string | ((s: ModeSampling) => string)) => (on: boolean, s: ModeSampling) =>
    on && s.rerank !== 1 ? (typeof words === 'string' ? words : words(s)) : null;

/** The table (see the file header). */
export const SAMPLING_SETTINGS: { readonly [K in keyof ModeSampling]: Setting<ModeSampling[K]> } = {
  temperature: {
    kind: 'number',
    help: 'temperature of image codes',
    range: { min: 0, max: 100 },
    note: '0 = argmax',
    flag: {
      name: 'temperature',
      value: 'T',
      help: 'temperature of image codes and words',
      alsoSets: ['textTemperature'],
    },
    // A cooler sampler draws cleaner digits, most of all from an undertrained model.
    presets: { default: { textToImage: 0.5, imageToText: 1, unconditional: 0.5 }, original: 1 },
    describe: (t, s) =>
      s.textTemperature === t ? `T ${t}` : `T ${t} (words ${s.textTemperature})`,
  },
  textTemperature: {
    kind: 'number',
    help: 'temperature of caption words',
    range: { min: 0, max: 100 },
    note: '0 = argmax',
    presets: { default: 1, original: 1 },
    describe: () => null, // with the temperature
  },
  topK: {
    kind: 'number',
    help: 'keep the k most likely allowed tokens',
    range: { min: 0, max: 100_000, integer: true },
    note: '0 = off',
    flag: { name: 'top-k', value: 'K' },
    presets: { default: 0, original: 0 },
    describe: (k) => (k !== 0 ? `top-k ${k}` : null),
  },
  topP: {
    kind: 'number',
    help: 'keep the most likely allowed tokens up to probability p',
    range: { min: 0, max: 1, exclusiveMin: true },
    note: '1 = off',
    flag: { name: 'top-p', value: 'P' },
    presets: { default: 1, original: 1 },
    describe: (p) => (p !== 1 ? `top-p ${p}` : null),
  },
  guidance: {
    kind: 'number',
    help: 'classifier-free guidance (conditional modes)',
    range: { min: -100, max: 100 },
    note: '1 = off',
    flag: { name: 'guidance', value: 'G' },
    presets: { default: { textToImage: 1.5, imageToText: 1, unconditional: 1.5 }, original: 1 },
    describe: (g) => (g !== 1 ? `guidance ${g}` : null),
    // Unconditional samples have a condition to guide by only when the caption comes first.
    only: { when: (mode, s) => mode !== 'unconditional' || s.captionFirst, otherwise: 1 },
  },
  grammar: {
    kind: 'choice',
    help: 'caption grammar on top of the original rules (rules.ts)',
    choices: GRAMMAR_LEVELS,
    // Reranking keeps conditional captions grammatical; unconditional captions are drawn
    // with a background legible on the foreground, as in every image of the data.
    presets: {
      default: { textToImage: 'none', imageToText: 'none', unconditional: 'legible' },
      original: 'none',
    },
    describe: (g) => (g !== 'none' ? `grammar ${g}` : null),
  },
  rerank: {
    kind: 'number',
    help: "candidates per prompt, the best kept by the model's reverse-order score",
    range: { min: 1, max: 1024, integer: true },
    note: '1 = off',
    flag: { name: 'rerank', value: 'K' },
    presets: { default: 4, original: 1 },
    describe: (k, s) =>
      k !== 1
        ? `rerank ${k}` + (s.imageToTextScore !== 'both' ? ` (${s.imageToTextScore})` : '')
        : null,
  },
  imageToTextScore: {
    kind: 'choice',
    help: 'how image -> text candidates are scored (rerank.ts)',
    choices: IMAGE_TO_TEXT_SCORES,
    presets: { default: 'both', original: 'both' },
    describe: () => null, // with rerank
  },
  digitSearch: {
    kind: 'switch',
    help:
      'with reranking: image -> text also scores the best caption with each other digit; ' +
      "text -> image and unconditional add the log posterior of the caption's digit",
    // Image -> text: the shift views choose the digit among all ten (the digit search before
    // the colour search changed no validation score).
    presets: { default: false, original: false },
    describe: withReranking('digit search'),
  },
  colourSearch: {
    kind: 'switch',
    help: 'with reranking, image -> text: then every palette colour as foreground, then as background',
    presets: {
      default: { textToImage: false, imageToText: true, unconditional: false },
      original: false,
    },
    describe: withReranking((s) => {
      const tops = [
        s.legibleSearch ? 'legible' : '',
        s.foregroundShortlist !== 0 ? `foreground top ${s.foregroundShortlist}` : '',
        s.backgroundShortlist !== 0 ? `background top ${s.backgroundShortlist}` : '',
      ].filter((t) => t !== '');
      return tops.length === 0 ? 'colour search' : `colour search (${tops.join(', ')})`;
    }),
  },
  foregroundShortlist: {
    kind: 'number',
    help:
      'with the colour search: every foreground colour is scored by log p(caption | image) ' +
      'first (cheap: the image is a shared prefix), and only the best N of each caption get the ' +
      'whole score',
    range: { min: 0, max: 1024, integer: true },
    note: '0 = every colour',
    presets: { default: 0, original: 0 },
    describe: () => null, // with the colour search
    only: { when: (mode) => mode === 'imageToText', otherwise: 0 },
  },
  backgroundShortlist: {
    kind: 'number',
    help: 'with the colour search: the same for the background colour',
    range: { min: 0, max: 1024, integer: true },
    note: '0 = every colour',
    presets: { default: { textToImage: 0, imageToText: 1, unconditional: 0 }, original: 0 },
    describe: () => null, // with the colour search
    only: { when: (mode) => mode === 'imageToText', otherwise: 0 },
  },
  legibleSearch: {
    kind: 'switch',
    help:
      "with the colour search: only colours legible on the caption's other colour are tried, " +
      'as in every image of the data (LEGIBILITY_RULE)',
    presets: {
      default: { textToImage: false, imageToText: true, unconditional: false },
      original: false,
    },
    describe: () => null, // with the colour search
    only: { when: (mode) => mode === 'imageToText', otherwise: false },
  },
  shiftViews: {
    kind: 'switch',
    help:
      'with reranking, image -> text: last, the digit chosen by its score summed over the image ' +
      'and its four one-pixel shifts (views.ts; the caller passes their codes)',
    presets: {
      default: { textToImage: false, imageToText: true, unconditional: false },
      original: false,
    },
    describe: withReranking((s) =>
      s.viewShortlist !== 0 ? `shift views (top ${s.viewShortlist})` : 'shift views',
    ),
  },
  viewShortlist: {
    kind: 'number',
    help:
      'with the shift views: every digit is scored against the image itself first, and only ' +
      'the best N are also scored against its shifts',
    range: { min: 0, max: 10, integer: true },
    note: '0 = every digit',
    presets: { default: { textToImage: 0, imageToText: 3, unconditional: 0 }, original: 0 },
    describe: () => null, // with the shift views
    only: { when: (mode) => mode === 'imageToText', otherwise: 0 },
  },
  captionFirst: {
    kind: 'switch',
    help:
      'unconditional: draw the caption first, then its image as text -> image draws it ' +
      '(guidance included); off: the model chooses the order',
    presets: {
      default: { textToImage: false, imageToText: false, unconditional: true },
      original: false,
    },
    describe: (on) => (on ? 'caption first' : null),
    leads: true,
    only: { when: (mode) => mode === 'unconditional', otherwise: false },
  },
};

/** The settings' names in table order (the order of every ModeSampling object). */
export const SETTING_NAMES = Object.keys(SAMPLING_SETTINGS) as (keyof ModeSampling)[];

/** A setting's value in `mode` under `preset`. */
export function presetValue<K extends keyof ModeSampling>(
  key: K,
  preset: SamplingPresetName,
  mode: SamplingMode,
): ModeSampling[K] {
  const value = SAMPLING_SETTINGS[key].presets[preset] as PerMode<ModeSampling[K]>;
  return typeof value === 'object' ? value[mode] : value;
}

/** The words of a range in a library error, e.g. "in (0, 1]" or "an integer in 1..1024". */
function rangeWords(r: SettingRange): string {
  if (r.integer) return `an integer in ${r.min}..${r.max}`;
  return r.exclusiveMin ? `in (${r.min}, ${r.max}]` : `in [${r.min}, ${r.max}]`;
}

/** Why `value` is not a value of setting `key`, or null if it is one. */
export function settingError(key: keyof ModeSampling, value: unknown): string | null {
  const setting: Setting<number> | Setting<boolean> | Setting<string> = SAMPLING_SETTINGS[key];
  if (setting.kind === 'switch')
    return typeof value === 'boolean' ? null : `${key} must be true or false, got ${String(value)}`;
  if (setting.kind === 'choice')
    return setting.choices.includes(value as string)
      ? null
      : `${key} must be one of ${setting.choices.join(', ')}, got '${String(value)}'`;
  const r = setting.range;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!r.integer || Number.isInteger(value)) &&
    (r.exclusiveMin ? value > r.min : value >= r.min) &&
    value <= r.max;
  const note = setting.note !== undefined ? ` (${setting.note})` : '';
  return ok ? null : `${key} must be ${rangeWords(r)}${note}, got ${String(value)}`;
}

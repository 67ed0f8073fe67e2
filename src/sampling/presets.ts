// Named sampling settings, per mode: `default` (chosen on the validation split; the sweep table is
// in the README and bench/sampling_sweep.ts reproduces it) and `seed` (the seed's plain rules:
// temperature 1, no top-k/top-p, no guidance, no grammar beyond the rules, no reranking), kept one
// flag away (`--preset-sampling seed`) for comparison with the original.
// Explicit flags (--temperature, --rerank, ...) override a preset in every mode they apply to.

import type { GrammarLevel } from './rules';
import { GRAMMAR_LEVELS } from './rules';
import { IMAGE_TO_TEXT_SCORES, checkRerank, type ImageToTextScore } from './rerank';
import { checkSamplingOptions } from './sampler';

/** Every sampling setting of one mode. */
export interface ModeSampling {
  /** Temperature of image codes (0 = argmax). */
  temperature: number;
  /** Temperature of caption words (0 = argmax). */
  textTemperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** Classifier-free guidance (1 = off; conditional modes only). */
  guidance: number;
  grammar: GrammarLevel;
  /** Candidates per prompt for self-reranking (1 = off). */
  rerank: number;
  imageToTextScore: ImageToTextScore;
  /**
   * With reranking: image -> text also scores the best caption with the nine other digits; the
   * other modes add the log posterior of the caption's digit to each candidate's score.
   */
  digitSearch: boolean;
  /** With reranking, image -> text: also score every palette colour as fg, then as bg. */
  colourSearch: boolean;
  /**
   * With reranking, image -> text: last, choose the digit by its score summed over the image and
   * its four one-pixel shifts (views.ts).
   */
  shiftViews: boolean;
  /**
   * Unconditional: draw the caption first, then its image as text -> image does (guidance allowed);
   * false: the model chooses the order.
   */
  captionFirst: boolean;
}

export type SamplingMode = 'textToImage' | 'imageToText' | 'unconditional';
export type SamplingPreset = Record<SamplingMode, ModeSampling>;

const ORIGINAL_RULES: ModeSampling = {
  temperature: 1,
  textTemperature: 1,
  topK: 0,
  topP: 1,
  guidance: 1,
  grammar: 'none',
  rerank: 1,
  imageToTextScore: 'both',
  digitSearch: false,
  colourSearch: false,
  shiftViews: false,
  captionFirst: false,
};

export const SAMPLING_PRESETS: Record<'default' | 'original', SamplingPreset> = {
  /**
   * Chosen on the validation split (README, "Sampling defaults"; bench/sampling_sweep.ts):
   * - text -> image: image codes at temperature 0.5, guidance 1.5 and 4 candidates: 99.8% all
   *   three right against 98.6% at temperature 1 (500 items, the shipped `seed` weights), and
   *   62.0% against 34.5% for the one-epoch `quick` run (200 items): a cooler sampler draws
   *   cleaner digits, most of all from an undertrained model (greedy decoding, 62.5%, would give
   *   one image per caption);
   * - image -> text: 8 candidates scored by both orders, then the digit search: 97.6% exact on 500
   *   items with the `seed` weights (87.2% by the seed's rules), and 68.3% against 48.0% without
   *   the search for the one-epoch `quick` run, which never trained on the validation items;
   *   Then the colour search (every palette colour as foreground, then as background): 76.4%
   *   against 16.6% for the `quick` run, which trains mostly in the caption-first order and
   *   writes colours badly in the other, and 96.2% either way for `best` (500 items each), at
   *   about 3.5x the time of image -> text; then the digit chosen again over the image and its
   *   four one-pixel shifts (shiftViews): 76.4% -> 83.0% for `quick` (500 items) and 95.1% ->
   *   96.9% for `best` (1,000 items), at 1.5x and 1.2x the time;
   * - unconditional: the caption drawn first, then its image as text -> image draws it (image
   *   codes at temperature 0.5, guidance 1.5), 4 such pairs reranked: agreement 74.8% for
   *   `quick` against 63.8% for the previous default (the model choosing the order, image codes
   *   at temperature 0.8, 8 candidates), 100.0% for `best` (100.0%) and `seed-full` (99.4%),
   *   at the same cost (500 items each); all captions grammatical under the seed's rules alone.
   *   With the `legible` grammar (a background legible on the foreground, as in every image of
   *   the data): 81.4% for `quick` (it wrote an illegible pair in 21% of its chosen captions),
   *   100.0% for `best` and `seed-full`.
   * No grammar beyond the seed's rules in the conditional modes: reranking keeps the captions
   * grammatical.
   */
  default: {
    textToImage: { ...ORIGINAL_RULES, temperature: 0.5, guidance: 1.5, rerank: 4 },
    imageToText: {
      ...ORIGINAL_RULES,
      rerank: 8,
      digitSearch: true,
      colourSearch: true,
      shiftViews: true,
    },
    unconditional: {
      ...ORIGINAL_RULES,
      captionFirst: true,
      grammar: 'legible',
      temperature: 0.5,
      guidance: 1.5,
      rerank: 4,
    },
  },
  original: {
    textToImage: ORIGINAL_RULES,
    imageToText: ORIGINAL_RULES,
    unconditional: ORIGINAL_RULES,
  },
};

export type SamplingPresetName = keyof typeof SAMPLING_PRESETS;
export const SAMPLING_PRESET_NAMES = Object.keys(SAMPLING_PRESETS) as SamplingPresetName[];

/** Settings given explicitly (flags); each replaces the preset's value in every mode. */
export type SamplingOverrides = Partial<ModeSampling>;

/** Checks one mode's settings, naming the setting and what is accepted. */
export function validateModeSampling(s: ModeSampling): ModeSampling {
  checkSamplingOptions(s);
  checkSamplingOptions({ ...s, temperature: s.textTemperature });
  if (!Number.isFinite(s.guidance)) throw new Error(`guidance must be finite, got ${s.guidance}`);
  if (!GRAMMAR_LEVELS.includes(s.grammar))
    throw new Error(`grammar must be one of ${GRAMMAR_LEVELS.join(', ')}, got '${s.grammar}'`);
  checkRerank(s.rerank);
  if (!IMAGE_TO_TEXT_SCORES.includes(s.imageToTextScore))
    throw new Error(
      `imageToTextScore must be one of ${IMAGE_TO_TEXT_SCORES.join(', ')}, got '${s.imageToTextScore}'`,
    );
  return s;
}

/**
 * The settings of `mode` under a preset and explicit overrides (unconditional: no guidance unless
 * the caption is drawn first; captionFirst only there).
 */
export function resolveModeSampling(
  preset: SamplingPresetName,
  mode: SamplingMode,
  overrides: SamplingOverrides = {},
): ModeSampling {
  const base = SAMPLING_PRESETS[preset];
  if (base === undefined)
    throw new Error(
      `unknown sampling preset '${preset}' (known: ${SAMPLING_PRESET_NAMES.join(', ')})`,
    );
  const defined = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== undefined),
  ) as SamplingOverrides;
  const s = { ...base[mode], ...defined };
  if (mode !== 'unconditional') s.captionFirst = false;
  else if (!s.captionFirst) s.guidance = 1; // no condition to guide by
  return validateModeSampling(s);
}

/** A one-line description, e.g. "T 1 (words 1), guidance 2, rerank 4". */
export function describeModeSampling(s: ModeSampling): string {
  const parts = [
    s.textTemperature === s.temperature
      ? `T ${s.temperature}`
      : `T ${s.temperature} (words ${s.textTemperature})`,
  ];
  if (s.topK !== 0) parts.push(`top-k ${s.topK}`);
  if (s.topP !== 1) parts.push(`top-p ${s.topP}`);
  if (s.guidance !== 1) parts.push(`guidance ${s.guidance}`);
  if (s.grammar !== 'none') parts.push(`grammar ${s.grammar}`);
  if (s.rerank !== 1)
    parts.push(
      `rerank ${s.rerank}` + (s.imageToTextScore !== 'both' ? ` (${s.imageToTextScore})` : ''),
    );
  if (s.digitSearch && s.rerank !== 1) parts.push('digit search');
  if (s.colourSearch && s.rerank !== 1) parts.push('colour search');
  if (s.shiftViews && s.rerank !== 1) parts.push('shift views');
  if (s.captionFirst) parts.unshift('caption first');
  return parts.join(', ');
}

// Quality metrics of samples: pure functions of predicted and true attributes, caption words and
// timings (no model, no engine), so each is tested on hand-made inputs.
//
// - attributeAccuracy: text -> image (the classifier's reading of each generated image against
//   the prompt), and the classifier's own accuracy on real and reconstructed images.
// - captionAccuracy: image -> text, exact match and per field (digit, foreground, background).
//   Fields are read position by position (`captionFields`), so a caption with one wrong colour
//   still scores its digit; exact match needs the whole caption.
// - unconditionalMetrics: share of grammatical captions (parseCaptionWords accepts them: 6 words,
//   right word classes, palette colours), agreement between each sample's image (classifier) and
//   its own caption, and coverage (distinct digits / colours seen over those possible).
// - the project's targets, as data, so the report prints each number beside its target.
// Notable choice: an ungrammatical caption never agrees and never matches (it names no image).

import { PALETTE, legiblePairs } from '../data/palette';
import { CAPTION_LENGTH, DIGIT_WORDS, captionText, parseCaptionWords } from '../data/vocab';

import type { Attributes } from '../data/coloured';
/** Digit and palette colours per image (defined beside the data): three Int32Array [N]. */
export type { Attributes };

/** Accuracy of each head and of all three at once, on `count` images. */
export interface AttributeAccuracy {
  count: number;
  digit: number;
  fg: number;
  bg: number;
  /** All three attributes right. */
  all: number;
}

/** Compares predicted attributes with the truth over the first `count` items. */
export function attributeAccuracy(
  predicted: Attributes,
  truth: Attributes,
  count = predicted.digit.length,
): AttributeAccuracy {
  for (const [name, arr] of [
    ['predicted.digit', predicted.digit],
    ['predicted.fg', predicted.fg],
    ['predicted.bg', predicted.bg],
    ['truth.digit', truth.digit],
    ['truth.fg', truth.fg],
    ['truth.bg', truth.bg],
  ] as const) {
    if (arr.length < count)
      throw new Error(`attributeAccuracy: ${name} has ${arr.length} values, need ${count}`);
  }
  if (count === 0) return { count, digit: 0, fg: 0, bg: 0, all: 0 };
  let d = 0;
  let f = 0;
  let b = 0;
  let all = 0;
  for (let i = 0; i < count; i++) {
    const dr = predicted.digit[i] === truth.digit[i];
    const fr = predicted.fg[i] === truth.fg[i];
    const br = predicted.bg[i] === truth.bg[i];
    if (dr) d++;
    if (fr) f++;
    if (br) b++;
    if (dr && fr && br) all++;
  }
  return { count, digit: d / count, fg: f / count, bg: b / count, all: all / count };
}

// ---- captions --------------------------------------------------------------------------------

/** The fields a caption's words name, read position by position; -1 where a field is unreadable. */
export interface CaptionFields {
  digit: number;
  fg: number;
  bg: number;
  /** parseCaptionWords accepts the words (6 words, right classes, palette colours). */
  grammatical: boolean;
}

const COLOUR_BY_WORDS = new Map(PALETTE.map((c) => [`${c.shade} ${c.colour}`, c.index]));

/** Reads digit (word 3), foreground (words 1-2) and background (words 5-6) independently. */
export function captionFields(words: readonly string[]): CaptionFields {
  const digit =
    words.length > 2 ? DIGIT_WORDS.indexOf(words[2] as (typeof DIGIT_WORDS)[number]) : -1;
  const colourAt = (at: number): number =>
    words.length > at + 1 ? (COLOUR_BY_WORDS.get(`${words[at]} ${words[at + 1]}`) ?? -1) : -1;
  let grammatical = words.length === CAPTION_LENGTH;
  if (grammatical) {
    try {
      parseCaptionWords(words);
    } catch {
      grammatical = false;
    }
  }
  return { digit, fg: colourAt(0), bg: colourAt(4), grammatical };
}

/** Image -> text scores of generated captions against the true captions. */
export interface CaptionAccuracy {
  count: number;
  /** The whole caption equals the true one. */
  exactMatch: number;
  digit: number;
  fg: number;
  bg: number;
  /** Share of captions that parse (whatever they say). */
  grammatical: number;
}

/** Scores `words[i]` (a generated caption, split) against the truth of item i. */
export function captionAccuracy(
  words: readonly (readonly string[])[],
  truth: Attributes,
): CaptionAccuracy {
  const count = words.length;
  if (truth.digit.length < count || truth.fg.length < count || truth.bg.length < count)
    throw new Error(`captionAccuracy: ${count} captions but truth for ${truth.digit.length} items`);
  if (count === 0) return { count, exactMatch: 0, digit: 0, fg: 0, bg: 0, grammatical: 0 };
  let exact = 0;
  let d = 0;
  let f = 0;
  let b = 0;
  let grammatical = 0;
  for (let i = 0; i < count; i++) {
    const fields = captionFields(words[i]!);
    if (fields.grammatical) grammatical++;
    if (fields.digit === truth.digit[i]) d++;
    if (fields.fg === truth.fg[i]) f++;
    if (fields.bg === truth.bg[i]) b++;
    if (words[i]!.join(' ') === captionText(truth.digit[i]!, truth.fg[i]!, truth.bg[i]!)) exact++;
  }
  return {
    count,
    exactMatch: exact / count,
    digit: d / count,
    fg: f / count,
    bg: b / count,
    grammatical: grammatical / count,
  };
}

// ---- unconditional samples -------------------------------------------------------------------

/** Distinct values seen over those possible. */
export interface Coverage {
  seen: number;
  possible: number;
  share: number;
}

function coverage(values: Iterable<number>, possible: ReadonlySet<number>): Coverage {
  const seen = new Set<number>();
  for (const v of values) if (possible.has(v)) seen.add(v);
  return { seen: seen.size, possible: possible.size, share: seen.size / possible.size };
}

/** The values a field can take in the dataset: digits 0..9, colours of the legible pairs. */
export function possibleValues(): { digits: Set<number>; fg: Set<number>; bg: Set<number> } {
  const pairs = legiblePairs(); // [P, 2]
  const fg = new Set<number>();
  const bg = new Set<number>();
  for (let i = 0; i < pairs.length; i += 2) {
    fg.add(pairs[i]!);
    bg.add(pairs[i + 1]!);
  }
  return { digits: new Set(Array.from({ length: 10 }, (_, d) => d)), fg, bg };
}

export interface CoverageReport {
  digits: Coverage;
  fgColours: Coverage;
  bgColours: Coverage;
  /** Palette colours seen as foreground or background. */
  colours: Coverage;
}

/** Coverage of digits and colours by a list of (digit, fg, bg) readings (-1 = none). */
export function attributeCoverage(attrs: Attributes): CoverageReport {
  const possible = possibleValues();
  const anyColour = new Set([...possible.fg, ...possible.bg]);
  return {
    digits: coverage(attrs.digit, possible.digits),
    fgColours: coverage(attrs.fg, possible.fg),
    bgColours: coverage(attrs.bg, possible.bg),
    colours: coverage([...attrs.fg, ...attrs.bg], anyColour),
  };
}

/** What an unconditional sample consists of (a sampler Sample fits). */
export interface UnconditionalSample {
  words: readonly string[];
  /** 1: text first, 2: image first (null if the sample never chose). */
  order: number | null;
}

export interface UnconditionalMetrics {
  count: number;
  /** Share of captions that parse. */
  grammatical: number;
  /** Image (classifier) and caption agree on all three attributes; ungrammatical = disagree. */
  agreement: number;
  /** Agreement field by field (read position by position from the caption). */
  agreementDigit: number;
  agreementFg: number;
  agreementBg: number;
  /** Share of samples that chose text first (order 1). */
  textFirst: number;
  /** Coverage by the grammatical captions. */
  captionCoverage: CoverageReport;
  /** Coverage by the classifier's reading of the images. */
  imageCoverage: CoverageReport;
}

/**
 * Scores unconditional samples: `imageAttributes` is the classifier's reading of each sample's
 * image (item i belongs to samples[i]).
 */
export function unconditionalMetrics(
  samples: readonly UnconditionalSample[],
  imageAttributes: Attributes,
): UnconditionalMetrics {
  const count = samples.length;
  if (imageAttributes.digit.length < count)
    throw new Error(
      `unconditionalMetrics: ${count} samples but ${imageAttributes.digit.length} image readings`,
    );
  const captionAttrs: Attributes = {
    digit: new Int32Array(count).fill(-1),
    fg: new Int32Array(count).fill(-1),
    bg: new Int32Array(count).fill(-1),
  };
  let grammatical = 0;
  let agree = 0;
  let d = 0;
  let f = 0;
  let b = 0;
  let textFirst = 0;
  samples.forEach((s, i) => {
    const fields = captionFields(s.words);
    if (s.order === 1) textFirst++;
    const dr = fields.digit === imageAttributes.digit[i];
    const fr = fields.fg === imageAttributes.fg[i];
    const br = fields.bg === imageAttributes.bg[i];
    if (dr) d++;
    if (fr) f++;
    if (br) b++;
    if (fields.grammatical) {
      grammatical++;
      captionAttrs.digit[i] = fields.digit;
      captionAttrs.fg[i] = fields.fg;
      captionAttrs.bg[i] = fields.bg;
      if (dr && fr && br) agree++;
    }
  });
  const share = (k: number): number => (count === 0 ? 0 : k / count);
  const imageSlice: Attributes = {
    digit: imageAttributes.digit.subarray(0, count),
    fg: imageAttributes.fg.subarray(0, count),
    bg: imageAttributes.bg.subarray(0, count),
  };
  return {
    count,
    grammatical: share(grammatical),
    agreement: share(agree),
    agreementDigit: share(d),
    agreementFg: share(f),
    agreementBg: share(b),
    textFirst: share(textFirst),
    captionCoverage: attributeCoverage(captionAttrs),
    imageCoverage: attributeCoverage(imageSlice),
  };
}

// ---- speed -----------------------------------------------------------------------------------

/** Tokens per second of `tokens` produced in `ms` milliseconds. */
export function tokensPerSecond(tokens: number, ms: number): number {
  return ms > 0 ? (tokens * 1000) / ms : Infinity;
}

// ---- targets ---------------------------------------------------------------------------------

/** A target the project sets, and how a report value compares with it. */
export interface Target {
  /** Dotted path of the value in the report JSON. */
  key: string;
  label: string;
  /** 'min': value >= threshold is met; 'max': value <= threshold. */
  kind: 'min' | 'max';
  threshold: number;
  /** How to print value and threshold. */
  unit: 'percent' | 'times' | 'ms';
}

/** The targets of the default sampling settings, and of sampling speed. */
export const TARGETS: readonly Target[] = [
  {
    key: 'textToImage.all',
    label: 'text -> image: all three attributes right',
    kind: 'min',
    threshold: 0.98,
    unit: 'percent',
  },
  {
    key: 'imageToText.exactMatch',
    label: 'image -> text: exact match',
    kind: 'min',
    threshold: 0.97,
    unit: 'percent',
  },
  {
    key: 'unconditional.grammatical',
    label: 'unconditional: grammatical captions',
    kind: 'min',
    threshold: 0.995,
    unit: 'percent',
  },
  {
    key: 'unconditional.agreement',
    label: 'unconditional: image/caption agreement',
    kind: 'min',
    threshold: 0.95,
    unit: 'percent',
  },
  {
    key: 'classifier.reconstructed.all',
    label: 'tokenizer: reconstructions keep all three attributes',
    kind: 'min',
    threshold: 0.99,
    unit: 'percent',
  },
  {
    key: 'speed.speedup',
    label: 'KV-cache decoding speed-up over uncached (full sequences, cpu backend)',
    kind: 'min',
    threshold: 5,
    unit: 'times',
  },
  {
    key: 'speed.nineImagesMs',
    label: '9 images from a caption (2 cores: well under a second)',
    kind: 'max',
    threshold: 1000,
    unit: 'ms',
  },
];

export interface TargetCheck {
  key: string;
  label: string;
  value: number | null;
  target: string;
  /** null when the value is missing. */
  met: boolean | null;
}

/** Formats a value in a target's unit. */
export function formatTargetValue(value: number, unit: Target['unit']): string {
  if (unit === 'percent') return `${(100 * value).toFixed(1)}%`;
  if (unit === 'times') return `${value.toFixed(1)}x`;
  return `${value.toFixed(0)} ms`;
}

/** Looks each target's key up in `report` (a plain object) and compares. */
export function checkTargets(report: object, targets: readonly Target[] = TARGETS): TargetCheck[] {
  return targets.map((t) => {
    let v: unknown = report;
    for (const part of t.key.split('.'))
      v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
    const value = typeof v === 'number' && Number.isFinite(v) ? v : null;
    const target = `${t.kind === 'min' ? '>=' : '<='} ${formatTargetValue(t.threshold, t.unit)}`;
    const met =
      value === null ? null : t.kind === 'min' ? value >= t.threshold : value <= t.threshold;
    return { key: t.key, label: t.label, value, target, met };
  });
}

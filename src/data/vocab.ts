// The vocabulary shared by text and images, and the 6-word captions.
//
// Layout: [image codes 0..K-1][31 words][<bos>, <end of text>, <end of image>],
// so K = 1024 VQ-VAE codes give 1024 + 31 + 3 = 1058 tokens; an image code c is token c.
// Words, in order: shades (plain light dark bright normal), colours (black ... yellow, as listed
// in the original write-up), digits zero..nine (spelled "eight"), and "on".
// Captions are `<shade> <colour> <digit> on <shade> <colour>`: foreground, digit, background.
// Notable choices: parsing is case-insensitive and ignores extra spaces; every parse error lists
// the accepted words for each position, and a shade + colour that is not a palette colour lists
// the palette.

import { COLOURS, PALETTE, SHADES, paletteIndex } from './palette';

export const DIGIT_WORDS = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
] as const;

/** The 31 caption words in vocabulary order. */
export const WORDS: readonly string[] = [...SHADES, ...COLOURS, ...DIGIT_WORDS, 'on'];

export const SPECIAL_TOKENS = ['<bos>', '<end of text>', '<end of image>'] as const;

/** Words per caption. */
export const CAPTION_LENGTH = 6;

/** VQ-VAE codebook size of the original (and our default). */
export const DEFAULT_IMAGE_CODES = 1024;

/** A caption's meaning: the digit and the palette indices of foreground and background. */
export interface Caption {
  digit: number;
  fg: number;
  bg: number;
}

const POSITION_KINDS = ['shade', 'colour', 'digit', 'on', 'shade', 'colour'] as const;
const ACCEPTED: Record<(typeof POSITION_KINDS)[number], readonly string[]> = {
  shade: SHADES,
  colour: COLOURS,
  digit: DIGIT_WORDS,
  on: ['on'],
};

function acceptedWordsHelp(): string {
  const lines = POSITION_KINDS.map(
    (kind, i) => `  word ${i + 1} (${kind}): ${ACCEPTED[kind].join(', ')}`,
  );
  return (
    'A caption is 6 words "<shade> <colour> <digit> on <shade> <colour>" ' +
    '(foreground, digit, background), e.g. "dark green eight on bright cyan". Accepted words:\n' +
    lines.join('\n') +
    `\n  and each shade + colour must be a palette colour: ${PALETTE.map((c) => c.name).join(', ')}`
  );
}

/** The caption words of (digit, fg, bg): `<shade> <colour> <digit> on <shade> <colour>`. */
export function captionWords(digit: number, fg: number, bg: number): string[] {
  const fgColour = PALETTE[fg];
  const bgColour = PALETTE[bg];
  const digitWord = DIGIT_WORDS[digit];
  if (fgColour === undefined || bgColour === undefined || digitWord === undefined) {
    throw new Error(
      `captionWords: digit ${digit} must be 0..9 and fg ${fg}, bg ${bg} palette indices ` +
        `0..${PALETTE.length - 1}`,
    );
  }
  return [fgColour.shade, fgColour.colour, digitWord, 'on', bgColour.shade, bgColour.colour];
}

/** The caption as one string, e.g. "dark green eight on bright cyan". */
export function captionText(digit: number, fg: number, bg: number): string {
  return captionWords(digit, fg, bg).join(' ');
}

/** Parses caption words (already split) back to (digit, fg, bg); throws a helpful Error. */
export function parseCaptionWords(words: readonly string[]): Caption {
  const shown = JSON.stringify(words.join(' '));
  if (words.length !== CAPTION_LENGTH) {
    throw new Error(
      `caption ${shown} has ${words.length} words, expected ${CAPTION_LENGTH}.\n` +
        acceptedWordsHelp(),
    );
  }
  for (let i = 0; i < CAPTION_LENGTH; i++) {
    const kind = POSITION_KINDS[i]!;
    const word = words[i]!;
    if (!ACCEPTED[kind].includes(word)) {
      const hint = word === 'eigth' ? ' (did you mean "eight"?)' : '';
      throw new Error(
        `caption ${shown}: word ${i + 1} "${word}" is not a ${kind}${hint}.\n` +
          acceptedWordsHelp(),
      );
    }
  }
  const fg = paletteIndex(words[0]!, words[1]!);
  const bg = paletteIndex(words[4]!, words[5]!);
  for (const [index, at] of [
    [fg, 0],
    [bg, 4],
  ] as const) {
    if (index < 0) {
      throw new Error(
        `caption ${shown}: "${words[at]} ${words[at + 1]}" (words ${at + 1}-${at + 2}) is not ` +
          `a palette colour.\n` +
          acceptedWordsHelp(),
      );
    }
  }
  return { digit: DIGIT_WORDS.indexOf(words[2] as (typeof DIGIT_WORDS)[number]), fg, bg };
}

/** Parses a caption string (case-insensitive, any whitespace) back to (digit, fg, bg). */
export function parseCaption(text: string): Caption {
  const words = text
    .trim()
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w.length > 0);
  return parseCaptionWords(words);
}

/** vocab.json: the layout and every token's name, for tools outside the project. */
export interface VocabJson {
  size: number;
  imageCodes: number;
  layout: string;
  wordOffset: number;
  words: string[];
  specialTokens: Record<string, number>;
  captionFormat: string;
}

export class Vocab {
  /** K: the number of image codes (tokens 0..K-1). */
  readonly imageCodes: number;
  /** First word token: word i is token wordOffset + i. */
  readonly wordOffset: number;
  readonly bos: number;
  readonly endOfText: number;
  readonly endOfImage: number;
  /** K + 31 + 3. */
  readonly size: number;
  private readonly wordIds: Map<string, number>;

  constructor(imageCodes: number = DEFAULT_IMAGE_CODES) {
    if (!Number.isSafeInteger(imageCodes) || imageCodes < 1) {
      throw new Error(`Vocab: imageCodes must be a positive integer, got ${imageCodes}`);
    }
    this.imageCodes = imageCodes;
    this.wordOffset = imageCodes;
    this.bos = imageCodes + WORDS.length;
    this.endOfText = this.bos + 1;
    this.endOfImage = this.bos + 2;
    this.size = this.bos + SPECIAL_TOKENS.length;
    this.wordIds = new Map(WORDS.map((w, i) => [w, this.wordOffset + i]));
  }

  isImageToken(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.imageCodes;
  }

  isWordToken(id: number): boolean {
    return Number.isInteger(id) && id >= this.wordOffset && id < this.bos;
  }

  /** The token of a caption word; throws listing the words if unknown. */
  wordToken(word: string): number {
    const id = this.wordIds.get(word);
    if (id === undefined) {
      throw new Error(`unknown word "${word}"; the vocabulary's words are: ${WORDS.join(', ')}`);
    }
    return id;
  }

  /** A readable name for any token: the word, the special token, or "<image 17>". */
  tokenName(id: number): string {
    if (this.isImageToken(id)) return `<image ${id}>`;
    if (this.isWordToken(id)) return WORDS[id - this.wordOffset]!;
    if (Number.isInteger(id) && id >= this.bos && id < this.size) {
      return SPECIAL_TOKENS[id - this.bos]!;
    }
    throw new Error(`token ${id} is outside the vocabulary 0..${this.size - 1}`);
  }

  /** The 6 caption tokens of (digit, fg, bg). */
  captionTokens(digit: number, fg: number, bg: number): Int32Array {
    return Int32Array.from(captionWords(digit, fg, bg).map((w) => this.wordToken(w)));
  }

  /** Caption tokens for a whole split: [N, 6]. */
  captionTokensBatch(digit: Int32Array, fg: Int32Array, bg: Int32Array): Int32Array {
    const n = digit.length;
    if (fg.length !== n || bg.length !== n) {
      throw new Error(
        `captionTokensBatch: digit, fg, bg lengths differ (${n}, ${fg.length}, ${bg.length})`,
      );
    }
    const out = new Int32Array(n * CAPTION_LENGTH); // [N, 6]
    for (let i = 0; i < n; i++) {
      out.set(this.captionTokens(digit[i]!, fg[i]!, bg[i]!), i * CAPTION_LENGTH);
    }
    return out;
  }

  /** Tokens of a caption string (validated by parseCaption). */
  encodeCaption(text: string): Int32Array {
    const { digit, fg, bg } = parseCaption(text);
    return this.captionTokens(digit, fg, bg);
  }

  /** Decodes 6 caption tokens to (digit, fg, bg); throws if they are not a valid caption. */
  decodeCaption(tokens: ArrayLike<number>): Caption {
    const words: string[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const id = tokens[i]!;
      if (!this.isWordToken(id)) {
        throw new Error(
          `caption token ${i + 1} is ${this.describe(id)}, not a word token ` +
            `(${this.wordOffset}..${this.bos - 1})`,
        );
      }
      words.push(WORDS[id - this.wordOffset]!);
    }
    return parseCaptionWords(words);
  }

  /** Like decodeCaption, but null instead of an Error (for scoring sampled captions). */
  tryDecodeCaption(tokens: ArrayLike<number>): Caption | null {
    try {
      return this.decodeCaption(tokens);
    } catch {
      return null;
    }
  }

  /** Any token sequence as readable text, e.g. "<bos> <end of image> dark green ...". */
  decodeToText(tokens: ArrayLike<number>): string {
    return Array.from(tokens, (id) => this.describe(id)).join(' ');
  }

  private describe(id: number): string {
    return Number.isInteger(id) && id >= 0 && id < this.size ? this.tokenName(id) : `<bad ${id}>`;
  }

  toJSON(): VocabJson {
    return {
      size: this.size,
      imageCodes: this.imageCodes,
      layout: '[image codes 0..K-1][31 words][<bos>, <end of text>, <end of image>]',
      wordOffset: this.wordOffset,
      words: [...WORDS],
      specialTokens: {
        '<bos>': this.bos,
        '<end of text>': this.endOfText,
        '<end of image>': this.endOfImage,
      },
      captionFormat: '<shade> <colour> <digit> on <shade> <colour>',
    };
  }
}

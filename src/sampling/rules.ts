// The original sampling rules as data: an allowed-token mask for every state of a sequence.
//
// Follows DALLE-pytorch's `logits_mask` idea: the rules are precomputed boolean masks over the
// vocabulary, picked by a small state machine and applied to the logits before top-k/top-p.
// One machine serves every mode (text -> image, image -> text, unconditional) and also validates
// prompts, so a prompt the rules would never produce is rejected with a message that says why.
//
// A sequence (src/data/sequences.ts) is `<bos> marker segment closing segment`:
//   order 1: <bos> <end of image> text(6) <end of text> image(49)
//   order 2: <bos> <end of text> image(49) <end of image> text(6)
// The rules (the original write-up's sampling rules):
// - after <bos> only <end of image> (text follows) or <end of text> (an image follows);
// - after <end of image> only text tokens, after <end of text> only image tokens;
// - a text segment is exactly 6 words and an image exactly 49 codes: inside a segment only its
//   own modality may be sampled, and once it is full the closing token is forced (<end of text>
//   after the first text, <end of image> after the first image). The original write-up allowed
//   the closing token at any time ("text tokens and <end of text>"); with fixed lengths it can
//   only come when the segment is full, so here it is forced exactly then and never earlier;
// - after the second segment the sequence is complete (58 tokens): nothing more is allowed.
// Optional stricter caption grammar (off by default): 'words' allows one word class per caption
// position (shade, colour, digit, 'on', shade, colour); 'palette' additionally allows after a
// shade only the colours that form a palette colour with it ("normal" -> only "red"); 'legible'
// also allows as background only palette colours legible on the caption's foreground (the
// dataset's LEGIBILITY_RULE: no image of the data has any other pair), and only the shades that
// have one.
// Masks are Uint8Array(vocab.size), 1 = allowed; they are shared and must not be mutated.

import { COLOURS, PALETTE, SHADES, isLegible, paletteIndex } from '../data/palette';
import { CAPTION_LENGTH, DIGIT_WORDS, Vocab } from '../data/vocab';
import { IMAGE_TOKENS, IMAGE_TO_TEXT, TEXT_TO_IMAGE, type SequenceOrder } from '../data/sequences';

/**
 * How strictly captions are constrained: the original rules only, word classes, palette colours, or
 * palette colours with a background legible on the foreground.
 */
export type GrammarLevel = 'none' | 'words' | 'palette' | 'legible';
export const GRAMMAR_LEVELS: readonly GrammarLevel[] = ['none', 'words', 'palette', 'legible'];

/** What the next token of a sequence must be. */
export type SequencePhase =
  | 'bos' // nothing yet: only <bos>
  | 'start' // after <bos>: <end of image> (text next) or <end of text> (image next)
  | 'text' // inside a caption: words
  | 'closeText' // first caption full: <end of text>
  | 'image' // inside an image: codes
  | 'closeImage' // first image full: <end of image>
  | 'complete'; // both segments done: nothing

/** The state after a prefix. Plain data; `advance` returns a new one. */
export interface SequenceState {
  readonly phase: SequencePhase;
  /** Tokens emitted so far in the current segment (words or image codes). */
  readonly count: number;
  readonly textDone: boolean;
  readonly imageDone: boolean;
  /** 1 (text first) or 2 (image first) once the marker after <bos> is known. */
  readonly order: SequenceOrder | null;
  /** Index in WORDS of the previous caption word (-1 if none): the palette rule needs it. */
  readonly previousWord: number;
  /** Palette index of the caption's foreground once its two words are in (else -1). */
  readonly foreground: number;
  /** Tokens consumed. */
  readonly length: number;
}

export const INITIAL_STATE: SequenceState = {
  phase: 'bos',
  count: 0,
  textDone: false,
  imageDone: false,
  order: null,
  previousWord: -1,
  foreground: -1,
  length: 0,
};

/** Word class of each caption position. */
export const CAPTION_WORD_CLASSES = ['shade', 'colour', 'digit', 'on', 'shade', 'colour'] as const;

export interface SamplingRulesOptions {
  /** Caption grammar on top of the original rules (default 'none'). */
  grammar?: GrammarLevel;
}

export class SamplingRules {
  readonly grammar: GrammarLevel;
  /** Only <bos>. */
  readonly bosMask: Uint8Array;
  /** After <bos>: <end of image> or <end of text>. */
  readonly startMask: Uint8Array;
  /** Any of the 31 words. */
  readonly wordMask: Uint8Array;
  /** Any image code 0..K-1. */
  readonly imageMask: Uint8Array;
  /** Only <end of text> (a full first caption). */
  readonly closeTextMask: Uint8Array;
  /** Only <end of image> (a full first image). */
  readonly closeImageMask: Uint8Array;
  /** Nothing (the sequence is complete). */
  readonly noneMask: Uint8Array;
  /** 'words' grammar: the allowed words at caption position 0..5. */
  readonly positionMasks: readonly Uint8Array[];
  /** 'palette' grammar: the colours allowed after shade s (index into SHADES). */
  readonly colourAfterShadeMasks: readonly Uint8Array[];
  /** 'legible' grammar: the background shades allowed on foreground f (palette index). */
  readonly legibleShadeMasks: readonly Uint8Array[];
  /** 'legible' grammar: the background colours allowed on foreground f after shade s, [f][s]. */
  readonly legibleColourMasks: readonly (readonly Uint8Array[])[];

  constructor(
    readonly vocab: Vocab,
    options: SamplingRulesOptions = {},
  ) {
    const grammar = options.grammar ?? 'none';
    if (!GRAMMAR_LEVELS.includes(grammar)) {
      throw new Error(`unknown grammar '${grammar}': choose one of ${GRAMMAR_LEVELS.join(', ')}`);
    }
    this.grammar = grammar;
    const v = vocab.size;
    const make = (ids: Iterable<number>): Uint8Array => {
      const m = new Uint8Array(v);
      for (const id of ids) m[id] = 1;
      return m;
    };
    const range = (start: number, end: number): number[] =>
      Array.from({ length: end - start }, (_, i) => start + i);
    const wordTokens = (words: readonly string[]): number[] => words.map((w) => vocab.wordToken(w));
    this.bosMask = make([vocab.bos]);
    this.startMask = make([vocab.endOfImage, vocab.endOfText]);
    this.wordMask = make(range(vocab.wordOffset, vocab.bos));
    this.imageMask = make(range(0, vocab.imageCodes));
    this.closeTextMask = make([vocab.endOfText]);
    this.closeImageMask = make([vocab.endOfImage]);
    this.noneMask = make([]);
    const classWords: Record<(typeof CAPTION_WORD_CLASSES)[number], readonly string[]> = {
      shade: SHADES,
      colour: COLOURS,
      digit: DIGIT_WORDS,
      on: ['on'],
    };
    this.positionMasks = CAPTION_WORD_CLASSES.map((c) => make(wordTokens(classWords[c])));
    this.colourAfterShadeMasks = SHADES.map((shade) =>
      make(wordTokens(PALETTE.filter((c) => c.shade === shade).map((c) => c.colour))),
    );
    const legibleOn = (fg: number) => PALETTE.filter((c) => isLegible(fg, c.index));
    this.legibleShadeMasks = PALETTE.map((fg) =>
      make(wordTokens([...new Set(legibleOn(fg.index).map((c) => c.shade))])),
    );
    this.legibleColourMasks = PALETTE.map((fg) =>
      SHADES.map((shade) =>
        make(
          wordTokens(
            legibleOn(fg.index)
              .filter((c) => c.shade === shade)
              .map((c) => c.colour),
          ),
        ),
      ),
    );
  }

  /** The allowed next tokens in `state` (a shared mask: do not mutate). */
  maskFor(state: SequenceState): Uint8Array {
    switch (state.phase) {
      case 'bos':
        return this.bosMask;
      case 'start':
        return this.startMask;
      case 'image':
        return this.imageMask;
      case 'closeText':
        return this.closeTextMask;
      case 'closeImage':
        return this.closeImageMask;
      case 'complete':
        return this.noneMask;
      case 'text':
        return this.textMask(state);
    }
  }

  private textMask(state: SequenceState): Uint8Array {
    if (this.grammar === 'none') return this.wordMask;
    const position = state.count; // 0..5
    const isColour = CAPTION_WORD_CLASSES[position] === 'colour';
    // 'legible': the background's shade and colour given the foreground (when the grammar has been
    // followed; a hand-made prompt that broke it falls back to the palette rule).
    if (this.grammar === 'legible' && position >= 4 && state.foreground >= 0) {
      if (position === 4) return this.legibleShadeMasks[state.foreground]!;
      const shade = state.previousWord;
      if (shade >= 0 && shade < SHADES.length)
        return this.legibleColourMasks[state.foreground]![shade]!;
    }
    if ((this.grammar === 'palette' || this.grammar === 'legible') && isColour) {
      // The previous word is a shade whenever the grammar has been followed; a prompt that broke
      // it (only possible with a hand-made prompt) falls back to the word-class mask.
      const shade = state.previousWord; // shades are WORDS 0..4
      if (shade >= 0 && shade < SHADES.length) return this.colourAfterShadeMasks[shade]!;
    }
    return this.positionMasks[position]!;
  }

  /** The state after one more token; throws if the token is not allowed in `state`. */
  advance(state: SequenceState, token: number): SequenceState {
    const mask = this.maskFor(state);
    if (!(Number.isInteger(token) && token >= 0 && token < mask.length && mask[token] === 1)) {
      throw new Error(this.refusal(state, token));
    }
    const vocab = this.vocab;
    const length = state.length + 1;
    switch (state.phase) {
      case 'bos':
        return { ...state, phase: 'start', length };
      case 'start':
      case 'closeText':
      case 'closeImage': {
        const textNext = token === vocab.endOfImage;
        const order = state.order ?? (textNext ? TEXT_TO_IMAGE : IMAGE_TO_TEXT);
        return { ...state, phase: textNext ? 'text' : 'image', count: 0, order, length };
      }
      case 'text': {
        const count = state.count + 1;
        const previousWord = token - vocab.wordOffset;
        const foreground =
          count === 2
            ? paletteIndex(
                vocab.tokenName(state.previousWord + vocab.wordOffset),
                vocab.tokenName(token),
              )
            : state.foreground;
        if (count < CAPTION_LENGTH) return { ...state, count, previousWord, foreground, length };
        const phase = state.imageDone ? 'complete' : 'closeText';
        return { ...state, phase, count, textDone: true, previousWord, foreground, length };
      }
      case 'image': {
        const count = state.count + 1;
        if (count < IMAGE_TOKENS) return { ...state, count, length };
        const phase = state.textDone ? 'complete' : 'closeImage';
        return { ...state, phase, count, imageDone: true, length };
      }
      case 'complete':
        throw new Error(this.refusal(state, token)); // unreachable: the mask is empty
    }
  }

  /** The state after a whole prefix (from the start); throws at the first token not allowed. */
  stateAfter(prefix: ArrayLike<number>): SequenceState {
    let state = INITIAL_STATE;
    for (let i = 0; i < prefix.length; i++) state = this.advance(state, prefix[i]!);
    return state;
  }

  /** The allowed next tokens after `prefix` (a whole sequence so far, starting with <bos>). */
  nextAllowed(prefix: ArrayLike<number>): Uint8Array {
    return this.maskFor(this.stateAfter(prefix));
  }

  /** Whether `prefix` is a complete sequence (both segments done). */
  isComplete(prefix: ArrayLike<number>): boolean {
    return this.stateAfter(prefix).phase === 'complete';
  }

  /** The allowed token ids of a mask (for messages and tests). */
  allowedTokens(mask: Uint8Array): number[] {
    const ids: number[] = [];
    for (let i = 0; i < mask.length; i++) if (mask[i] === 1) ids.push(i);
    return ids;
  }

  private refusal(state: SequenceState, token: number): string {
    const vocab = this.vocab;
    const name =
      Number.isInteger(token) && token >= 0 && token < vocab.size
        ? vocab.tokenName(token)
        : `<bad ${token}>`;
    const expected: Record<SequencePhase, string> = {
      bos: 'a sequence starts with <bos>',
      start: 'after <bos> only <end of image> (text follows) or <end of text> (an image follows)',
      text:
        `caption word ${state.count + 1} of ${CAPTION_LENGTH}` +
        (this.grammar === 'none'
          ? ' (any word)'
          : ` (a ${CAPTION_WORD_CLASSES[Math.min(state.count, CAPTION_LENGTH - 1)]})`),
      closeText: `the caption has ${CAPTION_LENGTH} words: only <end of text> may follow`,
      image: `image code ${state.count + 1} of ${IMAGE_TOKENS} (0..${vocab.imageCodes - 1})`,
      closeImage: `the image has ${IMAGE_TOKENS} codes: only <end of image> may follow`,
      complete: 'the sequence is complete: nothing may follow',
    };
    const allowed = this.allowedTokens(this.maskFor(state));
    const shown =
      allowed.length <= 12
        ? allowed.map((id) => vocab.tokenName(id)).join(', ')
        : `${allowed.length} tokens`;
    return (
      `token ${state.length + 1} (${name}) breaks the sampling rules: ${expected[state.phase]}` +
      (allowed.length > 0 ? `; allowed: ${shown}` : '')
    );
  }
}

const originalRulesCache = new WeakMap<Vocab, SamplingRules>();

/** A sampled sequence split into its parts. */
export interface ParsedSequence {
  /** 1 (text first), 2 (image first) or null if the sequence has no marker yet. */
  order: SequenceOrder | null;
  /** The image codes in order (49 when the image is complete). */
  imageCodes: Int32Array;
  /** The caption words in order (6 when the caption is complete). */
  words: string[];
  /** Both segments done. */
  complete: boolean;
}

/** Splits a sequence (checked against the original rules) into order, image codes and words. */
export function parseSequence(tokens: ArrayLike<number>, vocab: Vocab): ParsedSequence {
  let rules = originalRulesCache.get(vocab);
  if (rules === undefined) {
    rules = new SamplingRules(vocab);
    originalRulesCache.set(vocab, rules);
  }
  const state = rules.stateAfter(tokens); // throws if the sequence breaks the rules
  const codes: number[] = [];
  const words: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (vocab.isImageToken(id)) codes.push(id);
    else if (vocab.isWordToken(id)) words.push(vocab.tokenName(id));
  }
  return {
    order: state.order,
    imageCodes: Int32Array.from(codes),
    words,
    complete: state.phase === 'complete',
  };
}

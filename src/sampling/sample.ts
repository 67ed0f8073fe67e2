// A sample: a sampled sequence and its parts (order, image codes, caption words and meaning).
// What the sampler returns and what reranking and the searches choose among.

import { CAPTION_LENGTH, type Caption, type Vocab } from '../data/vocab';
import type { SequenceOrder } from '../data/sequences';
import { parseSequence } from './rules';

/** A sample and its parts. */
export interface Sample {
  /** The whole sequence, <bos> first. */
  tokens: Int32Array;
  /** 1: caption then image; 2: image then caption. */
  order: SequenceOrder | null;
  /** The image codes (49 when complete). */
  imageCodes: Int32Array;
  /** The caption words (6 when complete). */
  words: string[];
  /** The words, space-separated. */
  caption: string;
  /** Digit and palette colours when the caption is grammatical with palette colours, else null. */
  meaning: Caption | null;
  complete: boolean;
  /**
   * With reranking: the score this sample won with, and how many candidates it beat; after the
   * shift views, the digit captions that search scored over every view and their scores, best
   * first.
   */
  rerank?: {
    score: number;
    candidates: number;
    alternatives?: { caption: string; score: number }[];
  };
}

/** Splits a sampled sequence into a Sample. */
export function toSample(tokens: Int32Array, vocab: Vocab): Sample {
  const parsed = parseSequence(tokens, vocab);
  const wordTokens = parsed.words.map((w) => vocab.wordToken(w));
  return {
    tokens,
    order: parsed.order,
    imageCodes: parsed.imageCodes,
    words: parsed.words,
    caption: parsed.words.join(' '),
    meaning: wordTokens.length === CAPTION_LENGTH ? vocab.tryDecodeCaption(wordTokens) : null,
    complete: parsed.complete,
  };
}

/** The (caption tokens, image codes) pair of a sample, as the scorers take it. */
export function pairOf(
  vocab: Vocab,
  s: Sample,
): { captionTokens: number[]; imageCodes: Int32Array } {
  return { captionTokens: s.words.map((w) => vocab.wordToken(w)), imageCodes: s.imageCodes };
}

// The caption box's check as it is typed: a caption is "<shade> <colour> <digit> on <shade>
// <colour>". While fewer than 6 words are typed, each finished word is checked against the words
// its position accepts (a word being typed, the last one without a space after it, may still be a
// prefix of one); 6 or more words get the library's own check (parseCaption), whose message names
// the accepted words and the palette colours.

import { COLOURS, SHADES } from '../data/palette';
import { CAPTION_LENGTH, DIGIT_WORDS, parseCaption } from '../data/vocab';

const POSITIONS: readonly { kind: string; words: readonly string[] }[] = [
  { kind: 'a shade', words: SHADES },
  { kind: 'a colour', words: COLOURS },
  { kind: 'a digit', words: DIGIT_WORDS },
  { kind: 'the word "on"', words: ['on'] },
  { kind: 'a shade', words: SHADES },
  { kind: 'a colour', words: COLOURS },
];

export interface CaptionVerdict {
  /** A whole caption the model takes. */
  ok: boolean;
  /** Whether the draft is past being partial (6 words or more, or a word that fits nowhere). */
  complete: boolean;
  message: string;
}

/** The verdict on a draft caption (see the file header). */
export function checkCaptionDraft(text: string): CaptionVerdict {
  const words = text
    .trim()
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w.length > 0);
  if (words.length >= CAPTION_LENGTH) {
    try {
      parseCaption(text);
      return { ok: true, complete: true, message: 'A caption the model knows.' };
    } catch (e) {
      return { ok: false, complete: true, message: (e as Error).message };
    }
  }
  const typing = !/\s$/.test(text) && words.length > 0;
  for (let i = 0; i < words.length; i++) {
    const { kind, words: accepted } = POSITIONS[i]!;
    const word = words[i]!;
    const fits =
      i === words.length - 1 && typing
        ? accepted.some((w) => w.startsWith(word))
        : accepted.includes(word);
    if (!fits)
      return {
        ok: false,
        complete: true,
        message: `Word ${i + 1} "${word}" is not ${kind}: word ${i + 1} is one of ${accepted.join(', ')}.`,
      };
  }
  const next = POSITIONS[typing ? words.length - 1 : words.length]!;
  return {
    ok: false,
    complete: false,
    message:
      `${words.length} of ${CAPTION_LENGTH} words; word ${typing ? words.length : words.length + 1} ` +
      `is ${next.kind}: ${next.words.join(', ')}.`,
  };
}

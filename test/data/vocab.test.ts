// The vocabulary layout (1058 tokens for K = 1024), caption words and parsing with helpful errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PALETTE } from '../../src/data/palette';
import {
  DIGIT_WORDS,
  Vocab,
  WORDS,
  captionText,
  captionWords,
  parseCaption,
} from '../../src/data/vocab';

test('layout: [image codes][31 words][<bos>, <end of text>, <end of image>], 1058 tokens', () => {
  const v = new Vocab();
  assert.equal(WORDS.length, 31);
  assert.equal(new Set(WORDS).size, 31);
  assert.equal(v.size, 1058);
  assert.equal(v.imageCodes, 1024);
  assert.equal(v.wordToken(WORDS[0]!), 1024);
  assert.equal(v.wordToken('on'), 1054);
  assert.equal(v.bos, 1055);
  assert.equal(v.endOfText, 1056);
  assert.equal(v.endOfImage, 1057);
  assert.equal(v.tokenName(1057), '<end of image>');
  assert.equal(v.tokenName(17), '<image 17>');
  assert.ok(v.isImageToken(1023) && !v.isImageToken(1024));
  assert.ok(v.isWordToken(1024) && v.isWordToken(1054) && !v.isWordToken(1055));
  assert.throws(() => v.tokenName(1058), /outside the vocabulary 0\.\.1057/);
  assert.equal(new Vocab(512).size, 512 + 34);
  assert.ok(WORDS.includes('eight') && !WORDS.includes('eigth'));
  const json = v.toJSON();
  assert.equal(json.size, 1058);
  assert.deepEqual(json.specialTokens, {
    '<bos>': 1055,
    '<end of text>': 1056,
    '<end of image>': 1057,
  });
});

test('every (digit, fg, bg) caption parses back, as text and as tokens', () => {
  const v = new Vocab();
  assert.equal(captionText(8, 6, 17), 'dark green eight on bright cyan');
  for (let digit = 0; digit < 10; digit++) {
    for (let fg = 0; fg < PALETTE.length; fg++) {
      for (let bg = 0; bg < PALETTE.length; bg++) {
        const words = captionWords(digit, fg, bg);
        assert.equal(words.length, 6);
        assert.equal(words[2], DIGIT_WORDS[digit]);
        assert.deepEqual(parseCaption(words.join(' ')), { digit, fg, bg });
        assert.deepEqual(v.decodeCaption(v.captionTokens(digit, fg, bg)), { digit, fg, bg });
      }
    }
  }
  assert.deepEqual(parseCaption('  Dark GREEN eight   on bright cyan '), {
    digit: 8,
    fg: 6,
    bg: 17,
  });
  assert.deepEqual(
    [...v.encodeCaption('dark green eight on bright cyan')],
    [...v.captionTokens(8, 6, 17)],
  );
});

test('bad captions fail with the accepted words per position', () => {
  const accepted =
    /word 1 \(shade\): plain, light, dark, bright, normal[\s\S]*word 3 \(digit\): zero, one/;
  assert.throws(() => parseCaption('dark green eight on bright'), /has 5 words, expected 6/);
  assert.throws(() => parseCaption('dark green eight on bright'), accepted);
  assert.throws(
    () => parseCaption('dark green eigth on bright cyan'),
    /word 3 "eigth" is not a digit \(did you mean "eight"\?\)/,
  );
  assert.throws(() => parseCaption('dark green eight in bright cyan'), /word 4 "in" is not a on/);
  assert.throws(() => parseCaption('dark green eight in bright cyan'), accepted);
  assert.throws(
    () => parseCaption('dark teal eight on bright cyan'),
    /word 2 "teal" is not a colour/,
  );
  assert.throws(
    () => parseCaption('dark green eight on bright black'),
    /"bright black" \(words 5-6\) is not a palette colour[\s\S]*plain white, plain black/,
  );
  const v = new Vocab();
  assert.throws(
    () => v.decodeCaption([1024, 5, 1024, 1024, 1024, 1024]),
    /caption token 2 is <image 5>/,
  );
  assert.equal(v.tryDecodeCaption([v.bos, 0, 0, 0, 0, 0]), null);
  assert.throws(() => v.wordToken('teal'), /unknown word "teal"/);
});

// The searches' shortlists and the legible colour search (src/sampling/searches.ts), against
// direct computations with the scorers on a tiny random model: which alternatives get the whole
// score, what they score, and that a shortlist as long as the alternatives changes nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import { Rng } from '../../src/nn/rng';
import { DIGIT_WORDS } from '../../src/data/vocab';
import { tinyModel, vocab } from './helpers';
import { PALETTE, isLegible, paletteIndex } from '../../src/data/palette';
import { IMAGE_TOKENS } from '../../src/data/sequences';
import { captionGivenImage, imageGivenCaption } from '../../src/sampling/score';
import { imageToTextPairScores, rerankContext } from '../../src/sampling/rerank';
import { imageToText, type ModeOptions } from '../../src/sampling/modes';

setBackend('js');

const model = tinyModel(31);

function randomImage(rng: Rng): Int32Array {
  return Int32Array.from({ length: IMAGE_TOKENS }, () => rng.int(vocab.imageCodes));
}

const pair = (caption: string, imageCodes: Int32Array) => ({
  captionTokens: caption.split(' ').map((w) => vocab.wordToken(w)),
  imageCodes,
});

/** Each caption's image -> text score against `image` under the default rule ('both'). */
function bothScores(captions: readonly string[], image: Int32Array): number[] {
  const ctx = rerankContext(model, vocab, {});
  return Array.from(
    imageToTextPairScores(
      ctx,
      captions.map((c) => pair(c, image)),
    ),
  );
}

/** Indices of the `n` largest of `xs`, best first (ties: the earlier). */
function topIndices(xs: readonly number[], n: number): number[] {
  return xs
    .map((x, i) => [x, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, n)
    .map(([, i]) => i);
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

const rng = new Rng(15);
const images = Array.from({ length: 5 }, () => randomImage(rng));
const views = images.map(() => [randomImage(rng), randomImage(rng), randomImage(rng)]);
const BASE: ModeOptions = { seed: 2, grammar: 'words', rerank: 2 };

test('shift views with a shortlist score only the best digits on the image itself on its views', () => {
  const plain = imageToText(model, vocab, images, BASE);
  const opts = { ...BASE, shiftViews: true, imageViews: views };
  const full = imageToText(model, vocab, images, opts);
  const short = imageToText(model, vocab, images, { ...opts, viewShortlist: 3 });
  let differs = 0;
  images.forEach((image, i) => {
    const w = plain[i]!.words;
    const options = DIGIT_WORDS.map((d) => [w[0], w[1], d, ...w.slice(3)].join(' '));
    const own = bothScores(options, image);
    const kept = topIndices(own, 3);
    const sums = kept.map(
      (d, j) =>
        own[kept[j]!]! + views[i]!.reduce((s, v) => s + bothScores([options[d]!], v)[0]!, 0),
    );
    const best = kept[sums.indexOf(Math.max(...sums))]!;
    assert.equal(short[i]!.caption, options[best], `image ${i}`);
    assert.ok(close(short[i]!.rerank!.score, Math.max(...sums)), `image ${i}: score`);
    // The alternatives are the shortlisted digits with their sums, best first.
    const alternatives = short[i]!.rerank!.alternatives!;
    assert.deepEqual(
      alternatives.map((a) => a.caption).sort(),
      kept.map((d) => options[d]!).sort(),
    );
    alternatives.forEach((a) =>
      assert.ok(close(a.score, sums[kept.indexOf(options.indexOf(a.caption))]!), a.caption),
    );
    assert.equal(full[i]!.rerank!.alternatives!.length, 10);
    if (full[i]!.caption !== plain[i]!.caption) differs++;
  });
  assert.ok(differs > 0, 'the views change some digit (the test has power)');
  // A shortlist of all ten digits is the search without one.
  const ten = imageToText(model, vocab, images, { ...opts, viewShortlist: 10 });
  assert.deepEqual(
    ten.map((s) => s.caption),
    full.map((s) => s.caption),
  );
});

test('a colour shortlist gives the whole score only to the best colours by p(caption | image)', () => {
  const plain = imageToText(model, vocab, images, BASE);
  const short = imageToText(model, vocab, images, {
    ...BASE,
    colourSearch: true,
    foregroundShortlist: 2,
    backgroundShortlist: 3,
  });
  let changed = 0;
  images.forEach((image, i) => {
    // The foreground: the chosen caption and the best 2 other colours by the caption term.
    let words = plain[i]!.words;
    let score = plain[i]!.rerank!.score;
    for (const [slot, n] of [
      [0, 2],
      [4, 3],
    ] as const) {
      const options = PALETTE.map((c) => {
        const w = words.slice();
        w[slot] = c.shade;
        w[slot + 1] = c.colour;
        return w.join(' ');
      }).filter((c) => c !== words.join(' '));
      const cheap = Array.from(
        captionGivenImage(
          model,
          vocab,
          options.map((c) => pair(c, image)),
        ),
      );
      const kept = topIndices(cheap, n).map((k) => options[k]!);
      const whole = bothScores(kept, image);
      const best = whole.indexOf(Math.max(...whole));
      if (whole[best]! > score) {
        words = kept[best]!.split(' ');
        score = whole[best]!;
      }
    }
    assert.equal(short[i]!.caption, words.join(' '), `image ${i}`);
    assert.ok(close(short[i]!.rerank!.score, score), `image ${i}: score`);
    // Every colour was tried by the cheap score: 39 or 40 per slot.
    assert.ok(short[i]!.rerank!.candidates >= 2 + 39 + 39);
    if (short[i]!.caption !== plain[i]!.caption) changed++;
  });
  assert.ok(changed > 0, 'the search changes some caption (the test has power)');
  // Shortlists as long as the palette are the search without them.
  const all = { ...BASE, colourSearch: true };
  assert.deepEqual(
    imageToText(model, vocab, images, {
      ...all,
      foregroundShortlist: 40,
      backgroundShortlist: 40,
    }).map((s) => s.caption),
    imageToText(model, vocab, images, all).map((s) => s.caption),
  );
  // The 'image' rule: the caption term shortlists, the image term alone decides.
  const byImage = imageToText(model, vocab, images, {
    ...BASE,
    imageToTextScore: 'image',
    colourSearch: true,
    foregroundShortlist: 1,
  });
  byImage.forEach((s, i) => {
    const score = imageGivenCaption(model, vocab, [pair(s.caption, images[i]!)])[0]!;
    assert.ok(close(s.rerank!.score, score), `image ${i}: the image term only`);
  });
});

test('the legible colour search tries only colours legible on the caption’s other colour', () => {
  const opts = { ...BASE, colourSearch: true };
  const plain = imageToText(model, vocab, images, BASE);
  const legible = imageToText(model, vocab, images, { ...opts, legibleSearch: true });
  const all = imageToText(model, vocab, images, opts);
  let fewer = 0;
  legible.forEach((s, i) => {
    const w = s.words;
    const fg = paletteIndex(w[0]!, w[1]!);
    const bg = paletteIndex(w[4]!, w[5]!);
    if (fg >= 0 && bg >= 0) assert.ok(isLegible(fg, bg), `image ${i}: ${s.caption}`);
    assert.ok(s.rerank!.candidates <= all[i]!.rerank!.candidates);
    if (s.rerank!.candidates < all[i]!.rerank!.candidates) fewer++;
    // The foreground alternatives are the palette colours legible on the sampled background.
    const sampled = plain[i]!.words;
    const sampledBg = paletteIndex(sampled[4]!, sampled[5]!);
    if (sampledBg >= 0) {
      const own = paletteIndex(sampled[0]!, sampled[1]!);
      const tried = PALETTE.filter((c) => c.index !== own && isLegible(c.index, sampledBg));
      assert.ok(s.rerank!.candidates >= 2 + tried.length, `image ${i}: candidates`);
    }
  });
  assert.ok(fewer > 0, 'legibility leaves some colours out (the test has power)');
});

test('bad search settings are refused with what is accepted', () => {
  const opts = { ...BASE, colourSearch: true, shiftViews: true, imageViews: views };
  assert.throws(
    () => imageToText(model, vocab, images, { ...opts, viewShortlist: -1 }),
    /viewShortlist must be an integer in 0\.\.10/,
  );
  assert.throws(
    () => imageToText(model, vocab, images, { ...opts, backgroundShortlist: 1.5 }),
    /backgroundShortlist must be an integer in 0\.\.1024/,
  );
  assert.throws(
    () =>
      imageToText(model, vocab, images, {
        ...opts,
        legibleSearch: 'yes' as unknown as boolean,
      }),
    /legibleSearch must be true or false/,
  );
});

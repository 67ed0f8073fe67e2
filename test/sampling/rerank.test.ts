// Self-reranking and sequence scoring: the span scores equal a direct per-position computation
// of the log-likelihood; reranking keeps, for each prompt, exactly the candidate with the best
// directly computed score, and candidate 0 is the unreranked sample (so K = 1 changes nothing);
// separate temperatures for words and image codes; the sampling presets.
// Tiny GPT with random weights on the js backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import * as F from '../../src/engine/ops';
import { noGrad, tidy } from '../../src/engine/tensor';
import { Rng } from '../../src/nn/rng';
import { DIGIT_WORDS } from '../../src/data/vocab';
import { tinyModel, vocab } from './helpers';
import { PALETTE } from '../../src/data/palette';
import { IMAGE_TOKENS, SEQUENCE_LENGTH } from '../../src/data/sequences';
import { generate, logSoftmax } from '../../src/sampling/sampler';
import {
  captionFirstImageSeed,
  imageToText,
  textToImage,
  unconditional,
  type ModeOptions,
} from '../../src/sampling/modes';
import type { Sample } from '../../src/sampling/sample';
import {
  CAPTION_GIVEN_IMAGE,
  IMAGE_GIVEN_CAPTION,
  captionGivenImage,
  imageGivenCaption,
  pairSequence,
  spanLogLikelihood,
} from '../../src/sampling/score';
import { candidateSeed } from '../../src/sampling/rerank';
import { digitPosterior } from '../../src/sampling/searches';
import {
  SAMPLING_PRESETS,
  describeModeSampling,
  resolveModeSampling,
} from '../../src/sampling/presets';

setBackend('js');

const model = tinyModel(21);
const CAPTIONS = [
  'dark green eight on bright cyan',
  'plain white zero on plain black',
  'normal red three on light blue',
];

/** log p(seq[t] | seq[<t]) summed over [from, to), one sequence and one position at a time. */
function directLogLikelihood(seq: Int32Array, from: number, to: number): number {
  let total = 0;
  for (let t = from; t < to; t++) {
    const logits = noGrad(() =>
      tidy(() => {
        const out = model.forward(F.tensor(seq.slice(0, t), [1, t], 'int32')); // [1, t, V]
        return F.slice(out, 1, t - 1, t).toFloat32Array(); // [V]
      }),
    );
    total += logSoftmax(logits)[seq[t]!]!;
  }
  return total;
}

function randomImage(rng: Rng): Int32Array {
  return Int32Array.from({ length: IMAGE_TOKENS }, () => rng.int(vocab.imageCodes));
}

const pairOf = (s: Sample) => ({
  captionTokens: s.words.map((w) => vocab.wordToken(w)),
  imageCodes: s.imageCodes,
});

test('span scores equal a direct computation of the sequence log-likelihood', () => {
  const rng = new Rng(3);
  const pairs = CAPTIONS.map((c) => ({
    captionTokens: Array.from(vocab.encodeCaption(c)),
    imageCodes: randomImage(rng),
  }));
  const byCaption = captionGivenImage(model, vocab, pairs, 2); // batches of 2: batching is exact
  const byImage = imageGivenCaption(model, vocab, pairs);
  pairs.forEach((p, i) => {
    const order2 = pairSequence(vocab, 2, p.captionTokens, p.imageCodes);
    const order1 = pairSequence(vocab, 1, p.captionTokens, p.imageCodes);
    const c = directLogLikelihood(order2, CAPTION_GIVEN_IMAGE.from, CAPTION_GIVEN_IMAGE.to);
    const m = directLogLikelihood(order1, IMAGE_GIVEN_CAPTION.from, IMAGE_GIVEN_CAPTION.to);
    assert.ok(Math.abs(byCaption[i]! - c) < 1e-5, `caption ${i}: ${byCaption[i]} vs ${c}`);
    assert.ok(Math.abs(byImage[i]! - m) < 1e-4, `image ${i}: ${byImage[i]} vs ${m}`);
    assert.ok(c < 0 && m < c, 'log-likelihoods are negative; 49 codes cost more than 6 words');
  });
  // The whole sequence at once: the sum of the two orders' parts, plus the markers.
  const whole = spanLogLikelihood(
    model,
    [pairSequence(vocab, 2, pairs[0]!.captionTokens, pairs[0]!.imageCodes)],
    { from: 1, to: SEQUENCE_LENGTH },
  )[0]!;
  const seq = pairSequence(vocab, 2, pairs[0]!.captionTokens, pairs[0]!.imageCodes);
  assert.ok(Math.abs(whole - directLogLikelihood(seq, 1, SEQUENCE_LENGTH)) < 1e-5);
  // Incomplete pairs score -Infinity rather than throwing.
  const bad = captionGivenImage(model, vocab, [
    { captionTokens: [1, 2], imageCodes: pairs[0]!.imageCodes },
  ]);
  assert.equal(bad[0], -Infinity);
  assert.throws(() => spanLogLikelihood(model, [seq], { from: 0, to: 5 }), /span/);
});

test('captions of one image share its prefix and score as the teacher-forced sequence', () => {
  const rng = new Rng(8);
  const images = [randomImage(rng), randomImage(rng), randomImage(rng)];
  const words = (seed: number) => {
    const r = new Rng(seed);
    return Array.from({ length: 6 }, () => vocab.wordOffset + r.int(vocab.bos - vocab.wordOffset));
  };
  // 14 captions over 3 images, interleaved, one duplicated, one incomplete.
  const pairs = Array.from({ length: 14 }, (_, i) => ({
    captionTokens: words(i % 13),
    imageCodes: images[(i * 7) % 3]!,
  }));
  pairs.push({ captionTokens: [1, 2], imageCodes: images[0]! });
  for (const batchSize of [1, 4, 64]) {
    const shared = captionGivenImage(model, vocab, pairs, batchSize);
    pairs.forEach((p, i) => {
      if (p.captionTokens.length !== 6) return assert.equal(shared[i], -Infinity);
      const seq = pairSequence(vocab, 2, p.captionTokens, p.imageCodes);
      const forced = spanLogLikelihood(model, [seq], CAPTION_GIVEN_IMAGE)[0]!;
      assert.ok(Math.abs(shared[i]! - forced) < 1e-5, `pair ${i}, batch ${batchSize}`);
    });
  }
});

test('K = 1 reproduces the unreranked samples exactly', () => {
  const plain = textToImage(model, vocab, CAPTIONS, { seed: 5 });
  const one = textToImage(model, vocab, CAPTIONS, { seed: 5, rerank: 1 });
  assert.deepEqual(
    one.map((s) => Array.from(s.tokens)),
    plain.map((s) => Array.from(s.tokens)),
  );
  assert.equal(candidateSeed(5, 0), 5);
});

test('text -> image keeps the candidate whose caption is most likely read off it', () => {
  const K = 3;
  const candidates = Array.from({ length: K }, (_, c) =>
    textToImage(model, vocab, CAPTIONS, { seed: candidateSeed(9, c) }),
  );
  const scores = candidates.map((samples) => captionGivenImage(model, vocab, samples.map(pairOf)));
  const chosen = textToImage(model, vocab, CAPTIONS, { seed: 9, rerank: K });
  let differs = false;
  CAPTIONS.forEach((_, i) => {
    let best = 0;
    for (let c = 1; c < K; c++) if (scores[c]![i]! > scores[best]![i]!) best = c;
    if (best !== 0) differs = true;
    assert.deepEqual(Array.from(chosen[i]!.tokens), Array.from(candidates[best]![i]!.tokens));
    assert.equal(chosen[i]!.rerank?.candidates, K);
    assert.ok(Math.abs(chosen[i]!.rerank!.score - scores[best]![i]!) < 1e-9);
  });
  assert.ok(differs, 'some prompt keeps a candidate other than the first (the test has power)');
});

test('image -> text scores candidates by both orders; unconditional by its own caption', () => {
  const rng = new Rng(4);
  const images = [randomImage(rng), randomImage(rng)];
  const K = 4;
  const candidates = Array.from({ length: K }, (_, c) =>
    imageToText(model, vocab, images, { seed: candidateSeed(2, c), grammar: 'words' }),
  );
  for (const rule of ['both', 'caption', 'image'] as const) {
    const chosen = imageToText(model, vocab, images, {
      seed: 2,
      grammar: 'words',
      rerank: K,
      imageToTextScore: rule,
    });
    const scores = candidates.map((samples) => {
      const pairs = samples.map(pairOf);
      const c = captionGivenImage(model, vocab, pairs);
      const m = imageGivenCaption(model, vocab, pairs);
      return c.map((x, i) => (rule === 'both' ? x + m[i]! : rule === 'caption' ? x : m[i]!));
    });
    images.forEach((_, i) => {
      let best = 0;
      for (let c = 1; c < K; c++) if (scores[c]![i]! > scores[best]![i]!) best = c;
      assert.equal(chosen[i]!.caption, candidates[best]![i]!.caption, `${rule}, image ${i}`);
    });
  }
  const uncCandidates = Array.from({ length: 3 }, (_, c) =>
    unconditional(model, vocab, 4, { seed: candidateSeed(8, c), grammar: 'words' }),
  );
  const uncChosen = unconditional(model, vocab, 4, { seed: 8, grammar: 'words', rerank: 3 });
  const uncScores = uncCandidates.map((s) => captionGivenImage(model, vocab, s.map(pairOf)));
  for (let i = 0; i < 4; i++) {
    let best = 0;
    for (let c = 1; c < 3; c++) if (uncScores[c]![i]! > uncScores[best]![i]!) best = c;
    assert.deepEqual(Array.from(uncChosen[i]!.tokens), Array.from(uncCandidates[best]![i]!.tokens));
  }
  assert.throws(() => textToImage(model, vocab, CAPTIONS, { rerank: 0 }), /rerank must be/);
});

test('words and image codes take their own temperatures', () => {
  const rng = new Rng(6);
  const images = [randomImage(rng), randomImage(rng), randomImage(rng)];
  const greedy = imageToText(model, vocab, images, { temperature: 0 });
  // Words at temperature 0 are the argmax whatever the image temperature and seed.
  for (const seed of [1, 2]) {
    const words0 = imageToText(model, vocab, images, { seed, temperature: 3, textTemperature: 0 });
    assert.deepEqual(
      words0.map((s) => s.caption),
      greedy.map((s) => s.caption),
    );
  }
  // Images at temperature 0 are the argmax while words still vary with the seed.
  const t2iGreedy = textToImage(model, vocab, CAPTIONS, { temperature: 0 });
  const t2iHot = textToImage(model, vocab, CAPTIONS, {
    seed: 4,
    temperature: 0,
    textTemperature: 5,
  });
  assert.deepEqual(
    t2iHot.map((s) => Array.from(s.imageCodes)),
    t2iGreedy.map((s) => Array.from(s.imageCodes)),
  );
  const hot = (seed: number) =>
    unconditional(model, vocab, 6, { seed, temperature: 0, textTemperature: 5 }).map(
      (s) => s.caption,
    );
  assert.notDeepEqual(hot(1), hot(2));
});

test('sampling presets: the original rules are plain; flags override every mode', () => {
  for (const mode of ['textToImage', 'imageToText', 'unconditional'] as const) {
    const seed = resolveModeSampling('original', mode);
    assert.equal(describeModeSampling(seed), 'T 1');
    assert.deepEqual(seed, SAMPLING_PRESETS.original[mode]);
    const over = resolveModeSampling('default', mode, { rerank: 3, temperature: undefined });
    assert.equal(over.rerank, 3);
    assert.equal(over.temperature, SAMPLING_PRESETS.default[mode].temperature);
  }
  // Unconditional takes guidance only with the caption drawn first (the default).
  assert.equal(resolveModeSampling('default', 'unconditional', { guidance: 3 }).guidance, 3);
  const joint = resolveModeSampling('default', 'unconditional', {
    guidance: 3,
    captionFirst: false,
  });
  assert.equal(joint.guidance, 1);
  assert.equal(resolveModeSampling('original', 'unconditional', { guidance: 3 }).guidance, 1);
  // captionFirst belongs to unconditional only.
  assert.equal(
    resolveModeSampling('default', 'textToImage', { captionFirst: true }).captionFirst,
    false,
  );
  assert.match(
    describeModeSampling(resolveModeSampling('default', 'unconditional')),
    /^caption first, /,
  );
  assert.throws(() => resolveModeSampling('default', 'textToImage', { topP: 2 }), /topP/);
  assert.throws(
    () => resolveModeSampling('greedy' as never, 'textToImage'),
    /unknown sampling preset/,
  );
});

/**
 * Three random images captioned with 2 candidates scored by p(image | caption), without and with
 * the searches in `search`.
 */
function searchedCaptions(rngSeed: number, seed: number, search: ModeOptions) {
  const rng = new Rng(rngSeed);
  const images = [randomImage(rng), randomImage(rng), randomImage(rng)];
  const opts = { seed, grammar: 'words' as const, rerank: 2, imageToTextScore: 'image' as const };
  const plain = imageToText(model, vocab, images, opts);
  const searched = imageToText(model, vocab, images, { ...opts, ...search });
  return { images, plain, searched };
}

/** The one of `options` (captions) under which `image` is most likely, log p(image | caption). */
function bestCaptionFor(image: Int32Array, options: readonly string[]): string {
  const scores = imageGivenCaption(
    model,
    vocab,
    options.map((c) => ({
      captionTokens: c.split(' ').map((w) => vocab.wordToken(w)),
      imageCodes: image,
    })),
  );
  return options[scores.indexOf(Math.max(...scores))]!;
}

test('digit search keeps the best of the chosen caption and its nine other digits', () => {
  const { images, plain, searched } = searchedCaptions(12, 3, { digitSearch: true });
  let changed = false;
  images.forEach((image, i) => {
    const words = plain[i]!.words;
    const options = DIGIT_WORDS.map((d) => [words[0], words[1], d, ...words.slice(3)].join(' '));
    assert.equal(searched[i]!.caption, bestCaptionFor(image, options), `image ${i}`);
    assert.equal(searched[i]!.tokens.length, SEQUENCE_LENGTH);
    if (searched[i]!.caption !== plain[i]!.caption) changed = true;
  });
  assert.ok(changed, 'the search changes some caption (the test has power)');
});

test('text -> image and unconditional digit search add the log posterior of the caption digit', () => {
  // The posterior, computed directly: each sample's image under its caption with each of the ten
  // digits, normalised over the ten.
  const samples = textToImage(model, vocab, CAPTIONS, { seed: 4 });
  const posterior = digitPosterior(model, vocab, samples, 5);
  samples.forEach((s, i) => {
    const scores = DIGIT_WORDS.map(
      (d) =>
        imageGivenCaption(model, vocab, [
          {
            captionTokens: [s.words[0], s.words[1], d, ...s.words.slice(3)].map((w) =>
              vocab.wordToken(w!),
            ),
            imageCodes: s.imageCodes,
          },
        ])[0]!,
    );
    const own = scores[(DIGIT_WORDS as readonly string[]).indexOf(s.words[2]!)]!;
    const max = Math.max(...scores);
    const direct = own - max - Math.log(scores.reduce((a, x) => a + Math.exp(x - max), 0));
    assert.ok(Math.abs(posterior[i]! - direct) < 1e-6, `sample ${i}: ${posterior[i]} vs ${direct}`);
    assert.ok(posterior[i]! <= 0);
  });
  // A sample without a digit word scores -Infinity.
  const broken = { ...samples[0]!, words: ['dark', 'green'] };
  assert.equal(digitPosterior(model, vocab, [broken])[0], -Infinity);

  // Reranking keeps the candidate with the best caption score plus that posterior.
  const K = 4;
  for (const mode of ['textToImage', 'unconditional'] as const) {
    const draw = (seed: number, extra = {}) =>
      mode === 'textToImage'
        ? textToImage(model, vocab, CAPTIONS, { seed, ...extra })
        : unconditional(model, vocab, 3, { seed, grammar: 'words', ...extra });
    const candidates = Array.from({ length: K }, (_, c) => draw(candidateSeed(6, c)));
    const scores = candidates.map((c) => {
      const byCaption = captionGivenImage(model, vocab, c.map(pairOf));
      const p = digitPosterior(model, vocab, c);
      return byCaption.map((x, i) => x + p[i]!);
    });
    const plainChoice = draw(6, { rerank: K });
    const chosen = draw(6, { rerank: K, digitSearch: true });
    let differs = false;
    for (let i = 0; i < 3; i++) {
      let best = 0;
      for (let c = 1; c < K; c++) if (scores[c]![i]! > scores[best]![i]!) best = c;
      assert.deepEqual(Array.from(chosen[i]!.tokens), Array.from(candidates[best]![i]!.tokens));
      assert.ok(Math.abs(chosen[i]!.rerank!.score - scores[best]![i]!) < 1e-9);
      if (chosen[i]!.tokens.join() !== plainChoice[i]!.tokens.join()) differs = true;
    }
    if (mode === 'textToImage')
      assert.ok(differs, 'the posterior changes some choice (the test has power)');
  }
});

test('colour search then tries every palette colour as foreground, then as background', () => {
  const { images, plain, searched } = searchedCaptions(13, 4, { colourSearch: true });
  let changed = 0;
  images.forEach((image, i) => {
    const w = plain[i]!.words;
    const fg = bestCaptionFor(
      image,
      PALETTE.map((c) => [c.shade, c.colour, ...w.slice(2)].join(' ')),
    ).split(' ');
    const both = bestCaptionFor(
      image,
      PALETTE.map((c) => [...fg.slice(0, 4), c.shade, c.colour].join(' ')),
    );
    assert.equal(searched[i]!.caption, both, `image ${i}`);
    // 39 other colours each time, 40 where the sampled words name no palette colour.
    const named = (shade: string, colour: string) =>
      PALETTE.some((c) => c.shade === shade && c.colour === colour);
    const tried = (named(w[0]!, w[1]!) ? 39 : 40) + (named(fg[4]!, fg[5]!) ? 39 : 40);
    assert.equal(searched[i]!.rerank?.candidates, 2 + tried);
    if (both !== plain[i]!.caption) changed++;
  });
  assert.ok(changed > 0, 'the search changes some caption (the test has power)');
});

test('shift views choose the digit by its score summed over the image and its views', () => {
  const rng = new Rng(14);
  const images = Array.from({ length: 6 }, () => randomImage(rng));
  const views = images.map(() => [randomImage(rng), randomImage(rng), randomImage(rng)]);
  const opts = {
    seed: 4,
    grammar: 'words' as const,
    rerank: 2,
    imageToTextScore: 'image' as const,
    digitSearch: true,
  };
  const plain = imageToText(model, vocab, images, opts);
  const voted = imageToText(model, vocab, images, { ...opts, shiftViews: true, imageViews: views });
  let changed = 0;
  images.forEach((image, i) => {
    const words = plain[i]!.words;
    const options = DIGIT_WORDS.map((d) => [words[0], words[1], d, ...words.slice(3)].join(' '));
    const sums = options.map((c) =>
      [image, ...views[i]!].reduce(
        (sum, codes) =>
          sum +
          imageGivenCaption(model, vocab, [
            { captionTokens: c.split(' ').map((w) => vocab.wordToken(w)), imageCodes: codes },
          ])[0]!,
        0,
      ),
    );
    const best = sums.indexOf(Math.max(...sums));
    assert.equal(voted[i]!.caption, options[best], `image ${i}`);
    assert.ok(Math.abs(voted[i]!.rerank!.score - sums[best]!) < 1e-9);
    // The digit search already tried the ten digits: the vote adds no candidates.
    assert.equal(voted[i]!.rerank!.candidates, plain[i]!.rerank!.candidates);
    if (voted[i]!.caption !== plain[i]!.caption) changed++;
  });
  assert.ok(changed > 0, 'the views change some digit (the test has power)');
  // Without the digit search the vote brings the nine other digits in as candidates.
  const alone = imageToText(model, vocab, images, {
    ...opts,
    digitSearch: false,
    shiftViews: true,
    imageViews: views,
  });
  alone.forEach((s) => assert.equal(s.rerank!.candidates, 2 + 9));
  // With no views beyond the image itself the vote is the digit search again.
  const none = imageToText(model, vocab, images, {
    ...opts,
    shiftViews: true,
    imageViews: images.map(() => []),
  });
  assert.deepEqual(
    none.map((s) => s.caption),
    plain.map((s) => s.caption),
  );
  // shiftViews needs the views, one list per image of 49 codes each; rerank 1 ignores it.
  assert.throws(
    () => imageToText(model, vocab, images, { ...opts, shiftViews: true }),
    /imageViews/,
  );
  assert.throws(
    () => imageToText(model, vocab, images, { ...opts, shiftViews: true, imageViews: [] }),
    /one list of views per image/,
  );
  assert.throws(
    () =>
      imageToText(model, vocab, images, {
        ...opts,
        shiftViews: true,
        imageViews: images.map(() => [[1, 2, 3]]),
      }),
    /imageViews\[0\]\[0\]/,
  );
  assert.deepEqual(
    imageToText(model, vocab, images, { seed: 4, rerank: 1, shiftViews: true }).map((s) =>
      Array.from(s.tokens),
    ),
    imageToText(model, vocab, images, { seed: 4 }).map((s) => Array.from(s.tokens)),
  );
});

test('caption first: the caption from p(caption), then its image as text -> image draws it', () => {
  const opts = { seed: 9, temperature: 0.5, guidance: 1.5, captionFirst: true };
  const samples = unconditional(model, vocab, 4, opts);
  // The captions: 6 words after <bos> <end of image>, drawn with the caller's seed.
  const prompt = Int32Array.from([vocab.bos, vocab.endOfImage]);
  const drawn = generate(model, vocab, [prompt, prompt, prompt, prompt], {
    seed: 9,
    temperature: 0.5,
    maxTokens: 6,
  });
  const captions = drawn.map((seq) => Array.from(seq.subarray(2, 8)));
  assert.deepEqual(
    samples.map((s) => s.words.map((w) => vocab.wordToken(w))),
    captions,
  );
  // The images: text -> image on those captions, guidance included, with the image seed.
  const images = textToImage(model, vocab, captions, {
    seed: captionFirstImageSeed(9),
    temperature: 0.5,
    guidance: 1.5,
  });
  assert.deepEqual(
    samples.map((s) => Array.from(s.tokens)),
    images.map((s) => Array.from(s.tokens)),
  );
  samples.forEach((s) => assert.equal(s.imageCodes.length, IMAGE_TOKENS));
  // Reranking draws K whole pairs (candidate c with its candidate seed) and keeps the one whose
  // caption is best read back off its image.
  const K = 3;
  const candidates = Array.from({ length: K }, (_, c) =>
    unconditional(model, vocab, 4, { ...opts, seed: candidateSeed(9, c) }),
  );
  const scores = candidates.map((c) => captionGivenImage(model, vocab, c.map(pairOf)));
  const chosen = unconditional(model, vocab, 4, { ...opts, rerank: K });
  let fromOthers = 0;
  chosen.forEach((s, i) => {
    let best = 0;
    for (let c = 1; c < K; c++) if (scores[c]![i]! > scores[best]![i]!) best = c;
    assert.deepEqual(Array.from(s.tokens), Array.from(candidates[best]![i]!.tokens));
    if (best !== 0) fromOthers++;
  });
  assert.ok(fromOthers > 0, 'some pair comes from another candidate (the test has power)');
  // Guidance needs a condition: refused when the model chooses the order.
  assert.throws(
    () => unconditional(model, vocab, 2, { ...opts, captionFirst: false }),
    /guidance needs a condition/,
  );
});
